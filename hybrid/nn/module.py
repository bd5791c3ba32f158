"""nn.Module and nn.Parameter with PyTorch's semantics: registration by attribute assignment,
recursive parameters/buffers/submodules, state_dict / load_state_dict, train/eval, to(), repr.

`structure_epoch()` is a process-wide counter bumped whenever any module's parameters, buffers or
submodules are registered, assigned or deleted, when train()/eval() changes a mode, or when to()
moves or casts a module; the compiler uses it as a cheap guard ("nothing structural changed")."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from typing import Any

from hybrid import errors
from hybrid.autograd import no_grad
from hybrid.tensor import Tensor

STRUCTURE_EPOCH = 0


def structure_epoch() -> int:
    """The current structure epoch (read it through this function, not by importing the int)."""
    return STRUCTURE_EPOCH


def bump_structure_epoch() -> None:
    """Record that some module's structure or mode changed."""
    global STRUCTURE_EPOCH
    STRUCTURE_EPOCH += 1


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter; requires grad by default."""

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        from hybrid.ops.creation import zeros

        if data is None:
            data = zeros(0)
        if not isinstance(data, Tensor):
            raise errors.DTypeError(
                errors.at_user(f"Parameter: expected a hybrid.Tensor, got {type(data).__name__}; "
                               "wrap data with hybrid.tensor(...)")
            )
        p = object.__new__(cls)
        p._value = data._value  # NOTE: shares storage with `data`, as torch.nn.Parameter does
        p.requires_grad_(requires_grad)
        return p

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        pass  # everything happens in __new__ (Tensor.__init__ would build a new tensor)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _type_name(value: Any) -> str:
    return type(value).__name__


def _addindent(s: str, spaces: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class of all layers and models: subclass it, assign layers and Parameters in
    __init__, and write forward()."""

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers"] = set()
        d["_modules"] = OrderedDict()
        bump_structure_epoch()

    # --- registration ---------------------------------------------------------------------------

    def _check_ready(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise errors.HybridError(
                errors.at_user(f"cannot assign {what} before Module.__init__() is called; "
                               "call super().__init__() first in your module's __init__")
            )

    def _check_name(self, kind: str, name: Any) -> None:
        if not isinstance(name, str):
            raise errors.DTypeError(errors.at_user(f"{kind} name should be a str, got "
                                                   f"{_type_name(name)}"))
        if "." in name or name == "":
            raise errors.HybridError(
                errors.at_user(f"{kind} name {name!r} can't be empty or contain '.'")
            )
        if hasattr(self, name) and name not in self._parameters and name not in self._buffers \
                and name not in self._modules:
            raise errors.HybridError(errors.at_user(f"attribute {name!r} already exists"))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None, a declared but absent parameter) under `name`."""
        self._check_ready("parameters")
        self._check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise errors.DTypeError(
                errors.at_user(f"cannot assign {_type_name(param)} as parameter {name!r} "
                               "(hybrid.nn.Parameter or None expected)")
            )
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._parameters[name] = param
        bump_structure_epoch()

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state that is not a parameter (in state_dict() when persistent)."""
        self._check_ready("buffers")
        self._check_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise errors.DTypeError(
                errors.at_user(f"cannot assign {_type_name(tensor)} as buffer {name!r} "
                               "(hybrid.Tensor or None expected)")
            )
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        bump_structure_epoch()

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under `name`."""
        self._check_ready("submodules")
        self._check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise errors.DTypeError(errors.at_user(f"{_type_name(module)} is not a Module subclass"))
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules[name] = module
        bump_structure_epoch()

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            self._check_ready("parameters")
            d.pop(name, None)
            self._buffers.pop(name, None)
            self._modules.pop(name, None)
            self._non_persistent_buffers.discard(name)
            params[name] = value
            bump_structure_epoch()
        elif params is not None and name in params:
            if value is not None:
                raise errors.DTypeError(
                    errors.at_user(f"cannot assign {_type_name(value)} as parameter {name!r} "
                                   "(hybrid.nn.Parameter or None expected)")
                )
            params[name] = None
            bump_structure_epoch()
        elif isinstance(value, Module):
            self._check_ready("submodules")
            d.pop(name, None)
            params.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = value
            bump_structure_epoch()
        elif params is not None and name in d["_modules"]:
            if value is not None:
                raise errors.DTypeError(
                    errors.at_user(f"cannot assign {_type_name(value)} as child module {name!r} "
                                   "(hybrid.nn.Module or None expected)")
                )
            d["_modules"][name] = None
            bump_structure_epoch()
        elif params is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise errors.DTypeError(
                    errors.at_user(f"cannot assign {_type_name(value)} as buffer {name!r} "
                                   "(hybrid.Tensor or None expected)")
                )
            d["_buffers"][name] = value
            bump_structure_epoch()
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            t = d.get(table)
            if t is not None and name in t:
                return t[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent_buffers.discard(name)
                bump_structure_epoch()
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = list(super().__dir__()) + list(self._parameters) + list(self._buffers)
        return sorted(set(keys + list(self._modules)))

    # --- traversal --------------------------------------------------------------------------------

    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(name, module) for this module and every descendant, depth first, each once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from child.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, table: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Tensor]]:
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        seen = set()
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, table).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs, shared parameters once (under their first name)."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        mod = self
        for part in target.split(".") if target else []:
            if part not in mod._modules:
                raise AttributeError(f"{mod._get_name()} has no submodule {part!r} (in {target!r})")
            mod = mod._modules[part]
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path `target` ("layer.0.weight")."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters or mod._parameters[name] is None:
            raise AttributeError(f"{mod._get_name()} has no parameter {name!r} (in {target!r})")
        return mod._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path `target` ("bn.running_mean")."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._buffers or mod._buffers[name] is None:
            raise AttributeError(f"{mod._get_name()} has no buffer {name!r} (in {target!r})")
        return mod._buffers[name]

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn on every submodule (children first) and then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- modes, gradients, devices ------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every descendant."""
        if not isinstance(mode, bool):
            raise errors.DTypeError(errors.at_user("train: mode should be a bool"))
        changed = False
        for m in self.modules():
            if m.training != mode:
                m.__dict__["training"] = mode
                changed = True
        if changed:
            bump_structure_epoch()
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None by default, as PyTorch)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                with no_grad():
                    p.grad = p.grad.detach()
                    p.grad.zero_()

    def _apply_to_tensors(self, fn: Callable[[Tensor], Tensor]) -> Module:
        """Replace the data of every parameter and buffer by fn(data), keeping the objects."""
        with no_grad():
            for m in self.modules():
                for table in (m._parameters, m._buffers):
                    for t in table.values():
                        if t is None:
                            continue
                        new = fn(t.detach())
                        if new._value is not t._value:
                            t.data = new
                        if t.grad is not None:
                            g = fn(t.grad)
                            if g._value is not t.grad._value:
                                t.grad = g
        bump_structure_epoch()
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move and/or cast parameters and buffers in place: `.to(device)`, `.to(dtype)`.
        Only floating-point tensors are cast (integer buffers keep their dtype)."""
        from hybrid.dtypes import as_dtype

        dev = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        for a in args:
            if isinstance(a, Tensor):
                dev, dtype = a.device, a.dtype
            elif isinstance(a, str) or a.__class__.__name__ == "device" or isinstance(a, int):
                dev = a
            else:
                dtype = a
        if dtype is not None:
            dtype = as_dtype(dtype)
            if not dtype.is_floating:
                raise errors.DTypeError(
                    errors.at_user(f"Module.to only accepts floating point dtypes, got {dtype.name}")
                )

        def convert(t: Tensor) -> Tensor:
            out = t.to(dev) if dev is not None else t
            if dtype is not None and out.dtype.is_floating:
                out = out.to(dtype)
            return out

        return self._apply_to_tensors(convert)

    def to_empty(self, *, device: Any = None, recurse: bool = True) -> Module:
        """Give every parameter and buffer new, uninitialized storage on `device` (hybrid zeroes
        it), keeping shapes and dtypes: then initialize or load_state_dict into them."""
        from hybrid.ops.creation import empty_like

        return self._apply_to_tensors(lambda t: empty_like(t, device=device))

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        return self.to("cuda" if device is None else device)

    def float(self) -> Module:
        from hybrid.dtypes import float32

        return self.to(float32)

    def double(self) -> Module:
        from hybrid.dtypes import float64

        return self.to(float64)

    def half(self) -> Module:
        from hybrid.dtypes import float16

        return self.to(float16)

    def bfloat16(self) -> Module:
        from hybrid.dtypes import bfloat16

        return self.to(bfloat16)

    # --- state dict -------------------------------------------------------------------------------

    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (own first, then children's), as
        detached tensors sharing storage with the module's."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def _state_entries(self) -> OrderedDict:
        return self.state_dict(keep_vars=True)

    def load_state_dict(self, state_dict: dict, strict: bool = True,
                        assign: bool = False) -> _IncompatibleKeys:
        """Copy tensors from `state_dict` into parameters and buffers (in place). With strict,
        the keys must match exactly; returns (missing_keys, unexpected_keys)."""
        if not hasattr(state_dict, "items"):
            raise errors.DTypeError(
                errors.at_user(f"load_state_dict: expected a dict, got {_type_name(state_dict)}")
            )
        own = self._state_entries()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                parts.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
            raise errors.StateDictError(
                errors.at_user(f"Error(s) in loading state_dict for {self._get_name()}: "
                               + "; ".join(parts)
                               + " (compare with model.state_dict().keys(), or pass strict=False)")
            )
        pairs = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                from hybrid.ops.creation import tensor

                try:
                    value = tensor(value)
                except errors.HybridError:
                    raise errors.DTypeError(
                        errors.at_user(f"load_state_dict: entry {key!r} is a "
                                       f"{_type_name(value)}, expected a tensor")
                    ) from None
            if tuple(value.shape) != tuple(target.shape):
                raise errors.ShapeError(
                    errors.at_user(
                        f"Error(s) in loading state_dict for {self._get_name()}: size mismatch "
                        f"for {key!r}: copying a param with shape {list(value.shape)} from the "
                        f"checkpoint, the shape in the current model is {list(target.shape)}"
                    )
                )
            pairs.append((target, value))
        with no_grad():
            for target, value in pairs:
                if assign:
                    target.data = value.to(target.device)
                else:
                    target.copy_(value)
        return _IncompatibleKeys(missing, unexpected)

    # --- calling and printing -----------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hooks = self.__dict__.get("_hooks")
        if hooks is None:
            return self.forward(*args, **kwargs)
        from hybrid.nn.hooks import call

        return call(self, hooks, args, kwargs)

    _call_impl = __call__

    # --- hooks (hybrid/nn/hooks.py) ------------------------------------------------------------

    def _hook(self, table: str, fn: Callable, with_kwargs: bool = False,
              prepend: bool = False) -> Any:
        from hybrid.nn.hooks import register

        handle = register(self, table, fn, with_kwargs, prepend)
        bump_structure_epoch()  # NOTE: a traced call must not keep running without the hook
        return handle

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> Any:
        """hook(module, args) -> None or new args (with_kwargs: (module, args, kwargs) ->
        None or (args, kwargs)), before each forward; returns a handle with .remove()."""
        return self._hook("forward_pre", hook, with_kwargs, prepend)

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False, always_call: bool = False) -> Any:
        """hook(module, args, output) -> None or a new output (with_kwargs: (module, args,
        kwargs, output)), after each forward; returns a handle with .remove()."""
        return self._hook("forward", hook, with_kwargs, prepend)

    def register_full_backward_hook(self, hook: Callable, prepend: bool = False) -> Any:
        """hook(module, grad_input, grad_output) -> None or new grad_input, when the gradients
        of the module's tensor inputs are computed."""
        return self._hook("backward", hook, False, prepend)

    def register_full_backward_pre_hook(self, hook: Callable, prepend: bool = False) -> Any:
        """hook(module, grad_output) -> None or new grad_output, before the module's backward."""
        return self._hook("backward_pre", hook, False, prepend)

    def register_backward_hook(self, hook: Callable) -> Any:
        """The deprecated form: registers `hook` as a full backward hook."""
        return self.register_full_backward_hook(hook)

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (override in layers)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({key}): " + _addindent(repr(mod), 2) for key, mod in self._modules.items()
        ]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
