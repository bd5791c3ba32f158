"""LRScheduler: the base of every learning-rate schedule, with PyTorch's semantics (last_epoch,
`initial_lr` in the param groups, the chainable `get_lr` form, the closed form when `step` is given
an epoch, state_dict/load_state_dict of everything but the optimizer).

Schedules only write Python numbers into `group["lr"]` (and momentum/betas): a compiled training
step reads them as runtime hyperparameters, so a schedule never recompiles it."""

from __future__ import annotations

import warnings
from typing import Any

from hybrid import errors
from hybrid.optim.optimizer import STEPPED, Optimizer
from hybrid.tensor import Tensor

__all__ = ["LRScheduler", "bad_argument", "check_optimizer", "per_group",
           "warn_if_optimizer_never_stepped"]


def bad_argument(scheduler: str, message: str) -> errors.HybridError:
    """A ShapeError (a ValueError) naming the scheduler, for an invalid argument."""
    return errors.ShapeError(errors.at_user(f"{scheduler}: {message}"))


def check_optimizer(scheduler: str, optimizer: Any) -> None:
    """Refuse anything but a hybrid.optim optimizer (e.g. a torch.optim one) with a clear error."""
    if not isinstance(optimizer, Optimizer):
        kind = type(optimizer)
        raise errors.DTypeError(errors.at_user(
            f"{scheduler}: expected a hybrid.optim optimizer, got {kind.__module__}."
            f"{kind.__qualname__}; build the optimizer with hybrid.optim (e.g. "
            f"hybrid.optim.SGD(model.parameters(), lr=0.1)) and pass that"))


# What a scheduler holds that is not its state: the optimizer, and the bookkeeping of the
# warning below (PyTorch's state_dict has neither).
_NOT_STATE = frozenset({"optimizer", "_warned_idle", "_plateau_steps"})


def warn_if_optimizer_never_stepped(scheduler: Any, steps: int) -> None:
    """After `steps` (>= 2) scheduler steps with not one optimizer.step() in between, warn once:
    the schedule changes the lr of an optimizer that nothing uses, usually one built for
    another model (or a second optimizer left over in a notebook)."""
    opt = scheduler.optimizer
    if steps < 2 or opt in STEPPED or scheduler.__dict__.get("_warned_idle"):
        return
    scheduler.__dict__["_warned_idle"] = True
    params = sum(len(g["params"]) for g in opt.param_groups)
    warnings.warn(errors.at_user(
        f"{type(scheduler).__name__}.step() has run {steps} times, but the {type(opt).__name__} "
        f"it schedules (over {params} parameters) has never stepped, so the new learning rates "
        "reach no training. Was the scheduler given the optimizer of another model? Pass the "
        "optimizer whose step() your training loop calls"), UserWarning, stacklevel=3)


def per_group(scheduler: str, name: str, optimizer: Optimizer, value: Any) -> list[Any]:
    """`value` repeated for each param group, or a list/tuple with one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise bad_argument(scheduler, f"{name} must have one value per parameter group: got "
                                          f"{len(value)}, the optimizer has "
                                          f"{len(optimizer.param_groups)} groups")
        return [v.clone() if isinstance(v, Tensor) else v for v in value]
    return [value] * len(optimizer.param_groups)


def _values(optimizer: Optimizer, key: str) -> list[Any]:
    return [g[key].clone() if isinstance(g[key], Tensor) else g[key]
            for g in optimizer.param_groups]


def set_value(group: dict[str, Any], key: str, value: Any) -> None:
    """Write a scheduled value into a group (in place when the group holds a tensor)."""
    if isinstance(group[key], Tensor):
        group[key].fill_(float(value))
    else:
        group[key] = value


class LRScheduler:
    """Base class: subclasses define `get_lr` (chainable form, from the current group lrs) and
    optionally `_closed_form_lr` (from base_lrs and last_epoch)."""

    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        check_optimizer(name, optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                lr = group["lr"]
                group.setdefault("initial_lr", lr.clone() if isinstance(lr, Tensor) else lr)
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise errors.StateDictError(errors.at_user(
                        f"{name}: param_groups[{i}] has no 'initial_lr' while resuming with "
                        f"last_epoch={last_epoch}; load the optimizer's state_dict first, or "
                        "pass last_epoch=-1 for a fresh run"))
        self.base_lrs: list[Any] = _values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[Any]:
        """The learning rates for the new last_epoch (overridden)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[Any]:
        """The learning rates the last step set, one per param group."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one epoch (or jump to `epoch`, with the closed form)."""
        self._step_count += 1
        self._update_lr(epoch)
        warn_if_optimizer_never_stepped(self, self._step_count - 1)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            set_value(group, "lr", lr)
        self._last_lr = _values(self.optimizer, "lr")

    def _current(self) -> list[Any]:
        return _values(self.optimizer, "lr")

    def state_dict(self) -> dict[str, Any]:
        """Everything the scheduler holds except the optimizer (PyTorch's format)."""
        return {k: v for k, v in self.__dict__.items() if k not in _NOT_STATE}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.__dict__.update(state_dict)
