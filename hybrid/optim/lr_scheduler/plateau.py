"""ReduceLROnPlateau: multiply the lr by `factor` when a metric stops improving for `patience`
epochs (PyTorch's rules for threshold modes, cooldown and min_lr)."""

from __future__ import annotations

import math
from typing import Any

from hybrid.optim.lr_scheduler.base import (
    LRScheduler, bad_argument, check_optimizer, set_value, warn_if_optimizer_never_stepped,
)
from hybrid.optim.optimizer import Optimizer

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(LRScheduler):
    """Reduce the lr of every group by `factor` after `patience` epochs without improvement."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | list[float] = 0, eps: float = 1e-8) -> None:
        name = "ReduceLROnPlateau"
        check_optimizer(name, optimizer)
        if factor >= 1.0:
            raise bad_argument(name, f"factor must be < 1.0 (it multiplies the lr), got {factor}")
        if mode not in ("min", "max"):
            raise bad_argument(name, f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise bad_argument(name, f"threshold_mode must be 'rel' or 'abs', got "
                                     f"{threshold_mode!r}")
        self.optimizer = optimizer
        self.factor = factor
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise bad_argument(name, f"expected {n} min_lrs (one per param group), got "
                                         f"{len(min_lr)}")
            self.default_min_lr, self.min_lrs = None, list(min_lr)
        else:
            self.default_min_lr, self.min_lrs = min_lr, [min_lr] * n
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr = self._current()
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        """True while epochs after a reduction are not counted."""
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric `a` improves on `best` by more than the threshold."""
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return a < best * (1.0 - self.threshold)
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's metric (a number or a 1-element tensor, read eagerly)."""
        current = float(metrics)
        self._plateau_steps = self.__dict__.get("_plateau_steps", 0) + 1
        warn_if_optimizer_never_stepped(self, self._plateau_steps)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current()

    def _reduce(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise bad_argument("ReduceLROnPlateau", f"the optimizer now has {len(groups)} "
                                   f"param groups but {len(self.min_lrs)} min_lrs were given; "
                                   "set scheduler.min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, floor in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, floor)
            if old - new > self.eps:
                set_value(group, "lr", new)
