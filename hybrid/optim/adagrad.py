"""Adagrad (Duchi et al.) with PyTorch's learning-rate decay, weight decay and initial value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hybrid.ops import elementwise as ew
from hybrid.ops.creation import full_like
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

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """sum += g^2; p -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(sum) + eps)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        torch_flags("Adagrad", foreach, False, differentiable, fused)
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value,
                    "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group)
        check("lr_decay", group["lr_decay"] >= 0, group["lr_decay"])
        check("weight_decay", group["weight_decay"] >= 0, group["weight_decay"])
        check("initial_accumulator_value", group["initial_accumulator_value"] >= 0,
              group["initial_accumulator_value"])
        check("epsilon", group["eps"] >= 0, group["eps"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        # NOTE: as PyTorch, the accumulator starts at the group's value when the param is added
        return {"step": step_tensor(p),
                "sum": full_like(p, float(group["initial_accumulator_value"]))}

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        step = state["step"]
        step.add_(1.0)
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = g + p * hp(group, "weight_decay", p)
        clr = hp(group, "lr", p)
        if group["lr_decay"] != 0:
            clr = clr / (1 + (as_param_dtype(step, p) - 1) * hp(group, "lr_decay", p))
        state_sum = state["sum"]
        state_sum.add_(g * g)
        std = ew.sqrt(state_sum) + hp(group, "eps", p)
        p.sub_(g / std * clr)
