"""Adadelta (Zeiler) with PyTorch's learning rate and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hybrid.ops import elementwise as ew
from hybrid.ops.creation import zeros_like
from hybrid.optim.optimizer import Optimizer, check, check_lr, hp, step_tensor, torch_flags
from hybrid.tensor import Tensor

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """square_avg = rho * square_avg + (1 - rho) g^2; delta = sqrt(acc_delta + eps) /
    sqrt(square_avg + eps) * g; acc_delta = rho * acc_delta + (1 - rho) delta^2; p -= lr * delta."""

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0.0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        torch_flags("Adadelta", foreach, capturable, differentiable)
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay,
                    "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group)
        check("rho", 0 <= group["rho"] <= 1, group["rho"])
        check("epsilon", group["eps"] >= 0, group["eps"])
        check("weight_decay", group["weight_decay"] >= 0, group["weight_decay"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": step_tensor(p), "square_avg": zeros_like(p), "acc_delta": zeros_like(p)}

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        rho, eps = hp(group, "rho", p), hp(group, "eps", p)
        state["step"].add_(1.0)
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = g + p * hp(group, "weight_decay", p)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).add_(g * g * (1 - rho))
        std = ew.sqrt(square_avg + eps)
        delta = ew.sqrt(acc_delta + eps) / std * g
        # NOTE: p is updated before acc_delta (PyTorch does the reverse; the values are the
        # same): the native backend's fused multi-output kernel recomputes `delta` after the
        # first in-place write, from the updated buffer (with weight_decay, p is one of them);
        # see test_native_fused_kernel_reads_state_before_its_update
        p.sub_(delta * hp(group, "lr", p))
        acc_delta.mul_(rho).add_(delta * delta * (1 - rho))
