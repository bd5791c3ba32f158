"""Optimizers: SGD, Adam, AdamW with PyTorch's param_groups, state and state_dict format.

Written so that `optimizer.step()` traces into a compiled training step:
- every update is an in-place op on the same Tensor objects, under no_grad;
- per-parameter state (momentum_buffer, exp_avg, exp_avg_sq, and `step` as a float32 0-d tensor,
  as PyTorch's capturable mode) is created eagerly when a parameter is added, never at step time;
- no tensor value is read into Python (bias corrections and SGD's first-step rule are tensor math).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from compiler.ir.types import DType
from hybrid import errors
from hybrid.autograd import no_grad
from hybrid.ops import elementwise as ew
from hybrid.ops.creation import zeros, zeros_like
from hybrid.tensor import Tensor

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


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
        loss = None
        if closure is not None:
            from hybrid.autograd import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, self.state[p], group)
        return loss

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
                        group[k] = v

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
        if "momentum_buffer" in saved and saved["momentum_buffer"] is not None \
                and "step" not in saved and "step" in state:
            state["step"].fill_(1.0)  # a PyTorch SGD state: its buffer has been started


def _check(name: str, ok: bool, value: Any) -> None:
    if not ok:
        raise errors.ShapeError(errors.at_user(f"Invalid {name} value: {value}"))


def _step_tensor(p: Tensor) -> Tensor:
    return zeros((), dtype=DType.float32, device=p.device)


def _as_param_dtype(t: Tensor, p: Tensor) -> Tensor:
    return ew.cast(t, p.dtype) if p.dtype.is_floating else t


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (PyTorch's formulation), dampening, nesterov,
    weight decay and maximize."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                        "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check("learning rate", isinstance(group["lr"], Tensor) or group["lr"] >= 0, group["lr"])
        _check("momentum", group["momentum"] >= 0, group["momentum"])
        _check("weight_decay", group["weight_decay"] >= 0, group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise errors.ShapeError(
                errors.at_user("SGD: Nesterov momentum requires a momentum and zero dampening")
            )

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if group["momentum"] == 0:
            return {}
        # NOTE: PyTorch's SGD starts the buffer at the first gradient; `step` (not in PyTorch's
        # SGD state) tells the first step apart without reading a value into Python.
        return {"momentum_buffer": zeros_like(p), "step": _step_tensor(p)}

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = g + p * group["weight_decay"]
        momentum = group["momentum"]
        if momentum != 0:
            buf, step = state["momentum_buffer"], state["step"]
            started = buf * momentum + g * (1 - group["dampening"])
            buf.copy_(ew.where(step == 0, g, started))
            step.add_(1.0)
            g = g + buf * momentum if group["nesterov"] else buf
        p.sub_(g * group["lr"])


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias corrections, L2 weight decay and amsgrad."""

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                        "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check("learning rate", isinstance(group["lr"], Tensor) or group["lr"] >= 0, group["lr"])
        _check("epsilon", group["eps"] >= 0, group["eps"])
        b1, b2 = group["betas"]
        _check("beta parameter at index 0", 0 <= b1 < 1, b1)
        _check("beta parameter at index 1", 0 <= b2 < 1, b2)
        _check("weight_decay", group["weight_decay"] >= 0, group["weight_decay"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": _step_tensor(p), "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros_like(p)
        return state

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        b1, b2 = group["betas"]
        if group["maximize"]:
            g = -g
        if wd != 0:
            if self._decoupled:
                p.mul_(1 - lr * wd)
            else:
                g = g + p * wd
        step = state["step"]
        step.add_(1.0)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(b1).add_(g * (1 - b1))
        exp_avg_sq.mul_(b2).add_(g * g * (1 - b2))
        t = _as_param_dtype(step, p)
        bias_correction1 = 1 - b1**t
        bias_correction2_sqrt = ew.sqrt(1 - b2**t)
        if group["amsgrad"]:
            max_sq = state["max_exp_avg_sq"]
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
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
