"""RMSprop (Hinton's lecture 6e) with PyTorch's momentum, centered variant and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hybrid.ops import elementwise as ew
from hybrid.ops.creation import zeros_like
from hybrid.optim.optimizer import Optimizer, check, check_lr, hp, step_tensor, torch_flags
from hybrid.tensor import Tensor

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """square_avg = alpha * square_avg + (1 - alpha) * g^2; p -= lr * g / (sqrt(square_avg) + eps),
    centered by the running mean of g, with a momentum buffer over g / avg when momentum > 0."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        torch_flags("RMSprop", foreach, capturable, differentiable)
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                    "momentum": momentum, "centered": centered, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group)
        check("epsilon", group["eps"] >= 0, group["eps"])
        check("momentum", group["momentum"] >= 0, group["momentum"])
        check("weight_decay", group["weight_decay"] >= 0, group["weight_decay"])
        check("alpha", group["alpha"] >= 0, group["alpha"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": step_tensor(p), "square_avg": zeros_like(p)}
        if group["momentum"] != 0:
            state["momentum_buffer"] = zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = zeros_like(p)
        return state

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        alpha, eps, lr = hp(group, "alpha", p), hp(group, "eps", p), hp(group, "lr", p)
        if group["maximize"]:
            g = -g
        state["step"].add_(1.0)
        if group["weight_decay"] != 0:
            g = g + p * hp(group, "weight_decay", p)
        square_avg = state["square_avg"]
        square_avg.mul_(alpha).add_(g * g * (1 - alpha))
        if group["centered"]:
            grad_avg = self._state(p, state, group, "grad_avg")
            grad_avg.add_((g - grad_avg) * (1 - alpha))  # PyTorch's lerp_(g, 1 - alpha)
            avg = ew.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = ew.sqrt(square_avg) + eps
        if group["momentum"] != 0:
            buf = self._state(p, state, group, "momentum_buffer")
            buf.mul_(hp(group, "momentum", p)).add_(g / avg)
            p.sub_(buf * lr)
        else:
            p.sub_(g / avg * lr)
