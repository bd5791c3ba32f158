"""Schedulers made of schedulers: SequentialLR (one after another at milestones) and
ChainedScheduler (all of them, every step)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from hybrid.optim.lr_scheduler.base import LRScheduler, bad_argument, check_optimizer, set_value
from hybrid.optim.lr_scheduler.plateau import ReduceLROnPlateau
from hybrid.optim.optimizer import Optimizer

__all__ = ["ChainedScheduler", "SequentialLR"]


def _check_children(name: str, optimizer: Optimizer, schedulers: Sequence[Any]) -> None:
    if len(schedulers) < 1:
        raise bad_argument(name, "expects at least one scheduler, got none")
    for i, s in enumerate(schedulers):
        if not isinstance(s, LRScheduler):
            raise bad_argument(name, f"schedulers[{i}] is a {type(s).__name__}, not a "
                                     "hybrid.optim.lr_scheduler scheduler")
        if isinstance(s, ReduceLROnPlateau):
            raise bad_argument(name, f"schedulers[{i}] is a ReduceLROnPlateau, which needs the "
                                     "metric at every step; step it separately")
        if s.optimizer is not optimizer:
            raise bad_argument(name, f"schedulers[{i}] ({type(s).__name__}) schedules another "
                                     f"optimizer than the {type(optimizer).__name__} given; "
                                     "build every scheduler on the same optimizer")


class _Composite(LRScheduler):
    def state_dict(self) -> dict[str, Any]:
        """Own fields plus each child's state_dict under '_schedulers'."""
        sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        sd["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore own fields and each child's state."""
        sd = dict(state_dict)
        children = sd.pop("_schedulers")
        self.__dict__.update(sd)
        for s, saved in zip(self._schedulers, children):
            s.load_state_dict(saved)


class SequentialLR(_Composite):
    """Run schedulers[0] until milestones[0], then schedulers[1] (restarted at its epoch 0)..."""

    def __init__(self, optimizer: Optimizer, schedulers: list[LRScheduler],
                 milestones: list[int], last_epoch: int = -1) -> None:
        check_optimizer("SequentialLR", optimizer)
        _check_children("SequentialLR", optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise bad_argument("SequentialLR", f"expects one milestone fewer than schedulers: "
                                               f"got {len(schedulers)} schedulers and "
                                               f"{len(milestones)} milestones")
        self._schedulers, self._milestones = list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # NOTE: as PyTorch: undo the initial steps the children took when they were built, then
        # start the first one afresh
        for group in optimizer.param_groups:
            set_value(group, "lr", group["initial_lr"])
        self._undo(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _undo(self, sched: Any) -> None:
        if hasattr(sched, "_schedulers"):
            for s in sched._schedulers:
                self._undo(s)
        elif hasattr(sched, "last_epoch"):
            sched.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """Step the scheduler of the current segment (restarting it at its milestone)."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        current = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            current._update_lr(0)
        else:
            current.step()
        self._last_lr = current.get_last_lr()


class ChainedScheduler(_Composite):
    """Step every scheduler in order at each step (their effects multiply)."""

    def __init__(self, schedulers: Sequence[LRScheduler],
                 optimizer: Optimizer | None = None) -> None:
        if len(schedulers) < 1:
            raise bad_argument("ChainedScheduler", "expects at least one scheduler, got none")
        optimizer = optimizer if optimizer is not None else getattr(schedulers[0], "optimizer",
                                                                    None)
        check_optimizer("ChainedScheduler", optimizer)
        _check_children("ChainedScheduler", optimizer, schedulers)
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._last_lr = self._current()

    def step(self) -> None:  # type: ignore[override]
        """Step each scheduler."""
        for s in self._schedulers:
            s.step()
        self._last_lr = self._current()
