"""Adam and AdamW with PyTorch's bias corrections, weight decay, amsgrad and maximize."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hybrid.ops import elementwise as ew
from hybrid.ops.creation import zeros_like
from hybrid.optim.optimizer import (
    Optimizer,
    as_param_dtype,
    check,
    check_lr,
    hp,
    step_tensor,
    torch_flags,
)
from hybrid.tensor import Tensor

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias corrections, L2 weight decay (decoupled, as AdamW,
    with decoupled_weight_decay=True) and amsgrad."""

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False) -> None:
        torch_flags(type(self).__name__, foreach, capturable, differentiable, fused)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize,
                    "decoupled_weight_decay": decoupled_weight_decay or self._decoupled}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group)
        check("epsilon", group["eps"] >= 0, group["eps"])
        b1, b2 = group["betas"]
        check("beta parameter at index 0", 0 <= b1 < 1, b1)
        check("beta parameter at index 1", 0 <= b2 < 1, b2)
        check("weight_decay", group["weight_decay"] >= 0, group["weight_decay"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": step_tensor(p), "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros_like(p)
        return state

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, eps = hp(group, "lr", p), hp(group, "eps", p)
        b1, b2 = hp(group, "betas", p, 0), hp(group, "betas", p, 1)
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            wd = hp(group, "weight_decay", p)
            if group.get("decoupled_weight_decay", self._decoupled):
                p.mul_(1 - lr * wd)
            else:
                g = g + p * wd
        step = state["step"]
        step.add_(1.0)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(b1).add_(g * (1 - b1))
        exp_avg_sq.mul_(b2).add_(g * g * (1 - b2))
        t = as_param_dtype(step, p)
        bias_correction1 = 1 - b1**t
        bias_correction2_sqrt = ew.sqrt(1 - b2**t)
        if group["amsgrad"]:
            max_sq = self._state(p, state, group, "max_exp_avg_sq")
            max_sq.copy_(ew.maximum(max_sq, exp_avg_sq))
            denom = ew.sqrt(max_sq) / bias_correction2_sqrt + eps
        else:
            denom = ew.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        p.sub_(exp_avg / denom * (lr / bias_correction1))


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay), default weight_decay 0.01."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         foreach=foreach, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True)
