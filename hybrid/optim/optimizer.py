"""The Optimizer base class: PyTorch's param_groups, state and state_dict format.

Design rules every optimizer here follows, so that `optimizer.step()` traces into a compiled
training step:
- every update is an in-place op on the same Tensor objects, under no_grad;
- per-parameter state (momentum_buffer, exp_avg, exp_avg_sq, and `step` as a float32 0-d tensor,
  as PyTorch's capturable mode) is created eagerly when a parameter is added, never at step time;
- no tensor value is read into Python (bias corrections and SGD's first-step rule are tensor math);
- every numeric hyperparameter is read through `hyperparameter(group, key, like)`: the Python value
  eagerly, a 0-d tensor read afresh on every call while tracing, so a new lr never recompiles.
  Python control flow looks at a hyperparameter only as `group[key] != 0` or at booleans.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from compiler.ir.types import DType
from hybrid import errors
from hybrid.autograd import no_grad
from hybrid.ops import elementwise as ew
from hybrid.ops.core import STATE
from hybrid.ops.creation import zeros
from hybrid.optim import fused_step
from hybrid.tensor import Tensor

try:  # NOTE: the lead's runtime-hyperparameter hook; until it lands, values are baked constants
    from hybrid.tracing import hyperparameter as _hp  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the tracing module's version

    def _hp(group: dict[str, Any], key: str, like: Tensor, index: int | None = None) -> Any:
        """`group[key]` (or its `index`-th entry): the value baked into a trace."""
        value = group[key]
        return value if index is None else value[index]


__all__ = ["Optimizer", "required"]


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


# Optimizers whose step() has run (a compiled step's trace counts), for the schedulers' check
# that they schedule an optimizer in use. NOTE: not an attribute: the compile key would see it.
STEPPED: weakref.WeakSet = weakref.WeakSet()


def tracing() -> bool:
    """True while @hybrid.compile is tracing a function."""
    return STATE.tracer is not None


class Optimizer:
    """Base class: holds param_groups (dicts of params + hyperparameters) and per-param state."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise errors.DTypeError(
                errors.at_user(f"{type(self).__name__}: params should be an iterable of Tensors "
                               "or dicts, got a Tensor; pass model.parameters() or [tensor]")
            )
        groups = list(params)
        if not groups:
            raise errors.ShapeError(
                errors.at_user(f"{type(self).__name__} got an empty parameter list")
            )
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self) -> str:
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for key in sorted(group):
                if key != "params":
                    s += f"\n    {key}: {group[key]}"
        return s + "\n)"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with its own hyperparameters) and create their state."""
        if not isinstance(param_group, dict):
            raise errors.DTypeError(errors.at_user("add_param_group: param_group must be a dict"))
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if params and all(isinstance(p, tuple) and len(p) == 2 for p in params):
            # model.named_parameters(), as PyTorch accepts: the names go to 'param_names'
            group["param_names"] = [n for n, _ in params]
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise errors.DTypeError(
                    errors.at_user(f"{type(self).__name__} can only optimize Tensors, got "
                                   f"{type(p).__name__}")
                )
            if not p.is_leaf:
                raise errors.AutogradError(
                    errors.at_user(f"{type(self).__name__}: can't optimize a non-leaf Tensor")
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise errors.ShapeError(
                errors.at_user("some parameters appear more than once (in this group or in "
                               "another group); each parameter may be optimized only once")
            )
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise errors.ShapeError(
                    errors.at_user(f"parameter group didn't specify a value of required "
                                   f"optimization parameter {key}")
                )
            group.setdefault(key, default)
        self._check_group(group)
        self.param_groups.append(group)
        with no_grad():
            for p in params:
                self.state[p] = self._init_state(p, group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate hyperparameters (overridden by each optimizer)."""

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The state tensors of one parameter, created eagerly (overridden)."""
        return {}

    def _state(self, p: Tensor, state: dict[str, Any], group: dict[str, Any], key: str) -> Tensor:
        """`state[key]`; a buffer that a hyperparameter changed since construction now needs
        (e.g. momentum 0 -> 0.9) is created here eagerly, and refused while tracing."""
        t = state.get(key)
        if t is None:
            if tracing():
                raise errors.TraceError(errors.at_user(
                    f"{type(self).__name__}: the optimizer state {key!r} does not exist yet (a "
                    "hyperparameter changed after the optimizer was built) and cannot be created "
                    "inside @hybrid.compile; call optimizer.step() once eagerly first, or build "
                    "the optimizer with that setting"))
            with no_grad():
                for k, v in self._init_state(p, group).items():
                    state.setdefault(k, v)
            t = state[key]
        return t

    def _ensure_state(self, group: dict[str, Any]) -> None:
        """Create, eagerly, the state a changed hyperparameter of `group` now needs (called by
        schedulers that turn momentum on, so that a compiled step finds it)."""
        with no_grad():
            for p in group["params"]:
                state = self.state.setdefault(p, {})
                for k, v in self._init_state(p, group).items():
                    state.setdefault(k, v)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized parameters (to None by default)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    with no_grad():
                        p.grad = p.grad.detach()
                        p.grad.zero_()

    def step(self, closure: Any = None) -> Any:
        """Update every parameter that has a gradient; `closure` re-evaluates the loss."""
        STEPPED.add(self)
        loss = None
        if closure is not None:
            from hybrid.autograd import enable_grad

            with enable_grad():
                loss = closure()
        if not fused_step.run(self, self._update_all):
            self._update_all()
        return loss

    def _update_all(self) -> None:
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, self.state[p], group)

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    # --- state dict (PyTorch's format) -----------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: {name: tensor}}, 'param_groups': [{..., 'params': [indices]}]}, the
        indices numbering the parameters across groups in order (tensors are not copied)."""
        index = 0
        groups, state = [], {}
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(index, index + len(group["params"])))
            for i, p in zip(packed["params"], group["params"]):
                if self.state.get(p):
                    state[i] = dict(self.state[p])
            index += len(group["params"])
            groups.append(packed)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load hyperparameters and state; state tensors are copied into the existing ones."""
        try:
            saved_groups = state_dict["param_groups"]
            saved_state = state_dict["state"]
        except (KeyError, TypeError):
            raise errors.StateDictError(
                errors.at_user("optimizer load_state_dict: expected a dict with 'state' and "
                               "'param_groups' (from optimizer.state_dict())")
            ) from None
        if len(saved_groups) != len(self.param_groups):
            raise errors.StateDictError(
                errors.at_user(f"optimizer load_state_dict: the state dict has "
                               f"{len(saved_groups)} parameter groups, this optimizer has "
                               f"{len(self.param_groups)}")
            )
        lens = [len(g["params"]) for g in self.param_groups]
        saved_lens = [len(g["params"]) for g in saved_groups]
        if lens != saved_lens:
            raise errors.StateDictError(
                errors.at_user(f"optimizer load_state_dict: parameter group sizes {saved_lens} "
                               f"in the state dict do not match this optimizer's {lens}")
            )
        with no_grad():
            for group, saved in zip(self.param_groups, saved_groups):
                for idx, p in zip(saved["params"], group["params"]):
                    entry = saved_state.get(idx, saved_state.get(str(idx)))
                    if entry is not None:
                        self._load_param_state(p, self.state[p], entry)
                for k, v in saved.items():
                    if k != "params":
                        group[k] = tuple(v) if isinstance(v, list) and k == "betas" else v

    def _load_param_state(self, p: Tensor, state: dict[str, Any], saved: dict[str, Any]) -> None:
        for key, value in saved.items():
            if value is None:
                continue
            if not isinstance(value, Tensor):
                from hybrid.ops.creation import tensor

                value = tensor(value, dtype=DType.float32 if key == "step" else p.dtype)
            mine = state.get(key)
            if mine is None:
                dt = DType.float32 if key == "step" else p.dtype
                state[key] = value.to(device=p.device, dtype=dt).clone()
                continue
            if tuple(value.shape) != tuple(mine.shape):
                raise errors.ShapeError(
                    errors.at_user(f"optimizer load_state_dict: state {key!r} has shape "
                                   f"{list(value.shape)}, the parameter's is {list(mine.shape)}")
                )
            mine.copy_(value)


def torch_flags(name: str, foreach: bool | None = None, capturable: bool = False,
                differentiable: bool = False, fused: bool | None = None) -> None:
    """Accept PyTorch's implementation switches: every hybrid optimizer is one tensor program
    (as foreach), capturable (step counts are tensors) and traceable; `differentiable` is not
    supported."""
    if differentiable:
        raise errors.AutogradError(errors.at_user(
            f"{name}(differentiable=True) is not supported: hybrid's optimizer steps run under "
            "no_grad; write the update with tensor ops yourself to differentiate through it"))


def check(name: str, ok: bool, value: Any) -> None:
    """Raise PyTorch's "Invalid <name> value" as a hybrid ShapeError when `ok` is false."""
    if not ok:
        raise errors.ShapeError(errors.at_user(f"Invalid {name} value: {value}"))


def check_lr(group: dict[str, Any]) -> None:
    """A learning rate is a non-negative number (or a tensor)."""
    lr = group["lr"]
    check("learning rate", isinstance(lr, Tensor) or lr >= 0, lr)


def step_tensor(p: Tensor) -> Tensor:
    """A fresh `step` counter: a float32 0-d tensor on p's device (PyTorch's capturable form)."""
    return zeros((), dtype=DType.float32, device=p.device)


def as_param_dtype(t: Tensor, p: Tensor) -> Tensor:
    """`t` cast to p's dtype when p is floating point."""
    return ew.cast(t, p.dtype) if p.dtype.is_floating else t


def hp(group: dict[str, Any], key: str, like: Tensor, index: int | None = None) -> Any:
    """The hyperparameter `group[key]` as the update should use it (see the module docstring)."""
    return _hp(group, key, like, index)
