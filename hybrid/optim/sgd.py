"""SGD with momentum, dampening, nesterov, weight decay and maximize (PyTorch's formulation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops.creation import zeros_like
from hybrid.optim.optimizer import Optimizer, check, check_lr, hp, step_tensor, torch_flags
from hybrid.tensor import Tensor

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (PyTorch's formulation), dampening, nesterov,
    weight decay and maximize."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        torch_flags("SGD", foreach, False, differentiable, fused)
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group)
        check("momentum", group["momentum"] >= 0, group["momentum"])
        check("weight_decay", group["weight_decay"] >= 0, group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise errors.ShapeError(
                errors.at_user("SGD: Nesterov momentum requires a momentum and zero dampening")
            )

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["momentum"] == 0:
            return {}
        # NOTE: PyTorch's SGD starts the buffer at the first gradient; `step` (not in PyTorch's
        # SGD state) tells the first step apart without reading a value into Python.
        return {"momentum_buffer": zeros_like(p), "step": step_tensor(p)}

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = g + p * hp(group, "weight_decay", p)
        if group["momentum"] != 0:
            momentum = hp(group, "momentum", p)
            buf = self._state(p, state, group, "momentum_buffer")
            step = state["step"]
            started = buf * momentum + g * (1 - hp(group, "dampening", p))
            buf.copy_(ew.where(step == 0, g, started))
            step.add_(1.0)
            g = g + buf * momentum if group["nesterov"] else buf
        p.sub_(g * hp(group, "lr", p))

    def _load_param_state(self, p: Tensor, state: dict[str, Any], saved: dict[str, Any]) -> None:
        super()._load_param_state(p, state, saved)
        if saved.get("momentum_buffer") is not None and "step" not in saved:
            # a PyTorch SGD state (no `step`): its buffer has been started
            state.setdefault("step", step_tensor(p)).fill_(1.0)
