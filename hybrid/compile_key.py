"""The cache key of a compiled function, its guards, and the names of what it reads.

A key is a tuple: (grad mode, one part per positional argument, the keyword arguments, the
environment: closure and global values the function reads, module structure and train/eval
mode, optimizer hyperparameters). `describe_change` names the part that differs between two keys,
for the recompile log."""

from __future__ import annotations

import dis
import inspect
import types
from typing import Any

import numpy as _np

from hybrid.compile_tree import call_leaves
from hybrid.ops.core import STATE
from hybrid.tensor import _TENSOR_CLASSES

_np_ndarray = _np.ndarray
_np_asarray_c = _np.ascontiguousarray

_SCALARS = (int, float, bool, str, type(None), bytes, complex)
_SCALAR_SET = frozenset(_SCALARS)


# --- keys ------------------------------------------------------------------------------------------


def _is_module(obj: Any) -> bool:
    return hasattr(obj, "named_modules") and hasattr(obj, "training")


def _is_optimizer(obj: Any) -> bool:
    return hasattr(obj, "param_groups") and hasattr(obj, "state")


_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


def _code_globals(code: types.CodeType, out: set[str]) -> None:
    """The global names `code` (and the functions and comprehensions nested in it) reads."""
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_LOADS:
            out.add(ins.argval)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_globals(c, out)


def _user_function(fn: Any) -> Any:
    """The Python function whose closure and globals the traced code reads."""
    self_obj = getattr(fn, "__self__", None)
    if self_obj is not None and _is_module(self_obj):
        return type(self_obj).forward
    return getattr(fn, "__func__", fn)


def _structure_epoch() -> int | None:
    try:
        from hybrid.nn.module import structure_epoch
    except ImportError:
        return None
    return structure_epoch()


class KeyBuilder:
    """Computes cache keys for one function, fast on the common all-tensor call."""

    def __init__(self, fn: Any):
        self.fn = fn
        user = _user_function(fn)
        code = getattr(user, "__code__", None)
        self.globals_dict = getattr(user, "__globals__", {})
        names: set[str] = set()
        if code is not None:
            _code_globals(code, names)
        # NOTE: every global the code loads, also those not defined yet (a notebook may define
        # them after decorating); builtins only when a global of that name exists now.
        builtins = getattr(user, "__builtins__", None) or {}
        builtins = builtins if isinstance(builtins, dict) else vars(builtins)
        self.global_names = tuple(sorted(n for n in names
                                         if n in self.globals_dict or n not in builtins))
        self.free_names = code.co_freevars if code is not None else ()
        self.cells = getattr(user, "__closure__", None) or ()
        self.user = user  # its default argument values are read on every call (see _env)
        self.self_obj = getattr(fn, "__self__", None)
        try:
            self.params = [p.name for p in inspect.signature(fn).parameters.values()]
        except (TypeError, ValueError):
            self.params = []
        self._sig_cache: tuple = (None, None, None, ())
        # globals, closure cells or a module/optimizer `self` to read on every call
        self.has_env = bool(self.global_names or self.cells or _defaults(user) or (
            self.self_obj is not None and (_is_module(self.self_obj)
                                           or _is_optimizer(self.self_obj))))

    # the key -----------------------------------------------------------------------------------

    def key(self, args: tuple, kwargs: dict) -> tuple[tuple, list]:
        """(the cache key of a call, its tensor leaves in `call_leaves` order): the one walk over
        the arguments a compiled call makes."""
        # NOTE: this is the cache-hit path of every compiled call; keep it free of generic
        # helpers on the common call (tensor and scalar arguments, no keywords, no environment).
        roots: list = []
        parts = []
        tensors: list = []
        shared: list = []  # (position in tensors, tensor) of views and aliases (detach, .data)
        for a in args:
            c = a.__class__
            if c in _TENSOR_CLASSES:
                v = a._value
                parts.append((v.__class__, v.shape, v.dtype, a._rg))  # = tensor_meta(a)
                tensors.append(a)
                if a._base is not None or a._alias_of is not None:
                    shared.append((len(tensors) - 1, a))
            elif c in _SCALAR_SET:
                parts.append((c, a))
            else:
                parts.append(self._leaf(a, roots, tensors, shared))
        kw = tuple((k, self._leaf(v, roots, tensors, shared))
                   for k, v in sorted(kwargs.items())) if kwargs else ()
        env = self._env(roots) if roots or self.has_env else ()
        alias = None
        if tensors:
            ids = [id(t) for t in tensors]
            if len(ids) > 1 and len(set(ids)) != len(ids):
                alias = _aliasing(ids)
            if shared:  # which arguments share storage (x and x.detach(), x and x[0])
                alias = (alias, _storage_pattern(ids, shared))
            if env:
                in_env = _env_tensor_ids(env)
                if in_env and any(i in in_env for i in ids):  # an argument is also a global
                    alias = (alias, tuple(in_env.get(i, -1) for i in ids))
        return (STATE.grad, tuple(parts), kw, env, alias), tensors

    def _leaf(self, a: Any, roots: list, tensors: list | None = None,
              shared: list | None = None) -> Any:
        c = a.__class__
        if c in _TENSOR_CLASSES:
            v = a._value
            if tensors is not None:
                tensors.append(a)
                if (a._base is not None or a._alias_of is not None) and shared is not None:
                    shared.append((len(tensors) - 1, a))
            return (v.__class__, v.shape, v.dtype, a._rg)  # = tensor_meta(a)
        if c in _SCALAR_SET:
            return (c, a)
        if c is tuple or c is list:
            return (c, tuple(self._leaf(x, roots, tensors, shared) for x in a))
        if c is dict:
            return (c, tuple((k, self._leaf(v, roots, tensors, shared)) for k, v in a.items()))
        if isinstance(a, tuple) and hasattr(a, "_fields"):  # namedtuple
            return (c, tuple(self._leaf(x, roots, tensors, shared) for x in a))
        if _is_module(a) or _is_optimizer(a):
            roots.append(a)
        if c is _np_ndarray:
            return ("ndarray", a.shape, a.dtype, id(a), _array_digest(a))
        return ("object", c.__qualname__, id(a), _scalar_attrs(a), _held_tensors(a))

    def _env(self, roots: list) -> tuple:
        g = self.globals_dict
        env = []
        for name in self.global_names:
            env.append(self._env_leaf(g.get(name), roots))
        for cell in self.cells:
            try:
                v = cell.cell_contents
            except ValueError:  # empty cell
                env.append(None)
                continue
            env.append(self._env_leaf(v, roots))
        for v in _defaults(self.user):  # `def f(x, k=2.0, model=model)`
            env.append(self._env_leaf(v, roots))
        if self.self_obj is not None and (_is_module(self.self_obj) or _is_optimizer(self.self_obj)):
            roots.append(self.self_obj)
        if roots:
            env.append(self._signature(roots))
        return tuple(env)

    def _env_leaf(self, v: Any, roots: list) -> Any:
        """Scalars by value; tensors by identity and type (the graph reads that very object);
        modules, optimizers and other objects by identity."""
        c = v.__class__
        if c in _SCALAR_SET:
            return (c, v)
        if c in _TENSOR_CLASSES:
            return ("tensor", id(v)) + self._leaf(v, roots)
        if isinstance(v, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)):
            return id(v)
        return self._leaf(v, roots)

    def _signature(self, roots: list) -> tuple:
        """Module structure / modes and optimizer hyperparameters of the reachable roots."""
        ids = tuple(id(r) for r in roots)
        epoch = _structure_epoch()
        cached_epoch, cached_ids, cached_mods, subs = self._sig_cache
        if epoch is None or epoch != cached_epoch or ids != cached_ids:
            mods = tuple(_module_sig(r) for r in roots if _is_module(r))
            subs = tuple({id(m): m for r in roots if _is_module(r)
                          for _, m in r.named_modules()}.values())
            self._sig_cache = (epoch, ids, mods, subs)
        else:
            mods = cached_mods
        # NOTE: plain attributes (self.scale = 2.0) change without bumping the structure epoch,
        # so they are read on every call.
        attrs = tuple(_scalar_attrs(m) for m in subs)
        opts = tuple(_optimizer_sig(r) for r in roots if _is_optimizer(r))
        return ("roots", mods, opts, attrs)

    # names -------------------------------------------------------------------------------------

    def arg_paths(self, args: tuple, kwargs: dict) -> list[str]:
        """A readable name per flattened leaf of (args, kwargs), in flatten order."""
        out: list[str] = []
        for i, a in enumerate(args):
            base = self.params[i] if i < len(self.params) and not self.params[i].startswith(
                "*") else f"args[{i}]"
            _paths(a, base, out)
        for k, v in sorted(kwargs.items()):
            _paths(v, k, out)
        return out

    def roots_named(self, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
        """(name, object) for modules and optimizers the function can reach."""
        found: list[tuple[str, Any]] = []
        for leaf, path in zip(call_leaves(args, kwargs), self.arg_paths(args, kwargs)):
            found.append((path, leaf))
        for name in self.global_names:
            found.append((name, self.globals_dict.get(name)))
        for name, cell in zip(self.free_names, self.cells):
            try:
                found.append((name, cell.cell_contents))
            except ValueError:
                pass
        if self.self_obj is not None:
            found.append(("self", self.self_obj))
        return [(n, o) for n, o in found if _is_module(o) or _is_optimizer(o)]

    def namer(self, args: tuple, kwargs: dict):
        """A function naming captured tensors: `model.fc1.weight`, `opt.state[...].exp_avg`."""
        table: dict[int, str] = {}

        def build() -> None:
            pnames: dict[int, str] = {}
            for root, obj in self.roots_named(args, kwargs):
                if _is_module(obj):
                    for n, p in obj.named_parameters():
                        pnames.setdefault(id(p), f"{root}.{n}")
                        table.setdefault(id(p), f"{root}.{n}")
                    for n, b in obj.named_buffers():
                        table.setdefault(id(b), f"{root}.{n}")
            for root, obj in self.roots_named(args, kwargs):
                if _is_optimizer(obj):
                    for p, st in obj.state.items():
                        pn = pnames.get(id(p), "param")
                        for k, v in st.items():
                            if v.__class__ in _TENSOR_CLASSES:
                                table.setdefault(id(v), f"{root}.state[{pn}].{k}")
            from hybrid.random import default_generator

            table.setdefault(id(default_generator._state), "rng_state")

        def name(t: Any) -> str:
            if not table:
                build()
            return table.get(id(t), "")

        return name


def _defaults(fn: Any) -> tuple:
    """The default values of a function's parameters (positional, then keyword-only)."""
    pos = getattr(fn, "__defaults__", None) or ()
    kw = getattr(fn, "__kwdefaults__", None) or {}
    return tuple(pos) + tuple(kw.values())


def _paths(obj: Any, base: str, out: list[str]) -> None:
    c = obj.__class__
    if c in _TENSOR_CLASSES:
        out.append(base)
    elif c is tuple or c is list or (isinstance(obj, tuple) and hasattr(obj, "_fields")):
        for i, x in enumerate(obj):
            _paths(x, f"{base}[{i}]", out)
    elif c is dict:
        for k, v in obj.items():
            _paths(v, f"{base}[{k!r}]", out)
    else:
        out.append(base)


def _aliasing(ids: list[int]) -> Any:
    """Which tensor arguments (anywhere in nested containers, in flatten order) are the same
    object (a graph assumes one pattern)."""
    if len(ids) < 2 or len(set(ids)) == len(ids):
        return None
    return tuple(ids.index(i) for i in ids)


def _storage_pattern(ids: list[int], shared: list) -> tuple:
    """For each view or alias argument, which argument's storage it shares (its position, or
    -1 for a storage no argument owns) and whether it is all of it: a graph traced for one
    pattern makes in-place updates of one argument visible in the others."""
    from hybrid.tracing import storage_root

    out = []
    for pos, t in shared:
        root = storage_root(t)
        rid = id(root)
        same = t._value.shape == root._value.shape and t._value.strides == root._value.strides
        out.append((pos, ids.index(rid) if rid in ids else -1, same,
                    tuple(p for p, u in shared if u is not t and storage_root(u) is root)))
    return tuple(out)


def _env_tensor_ids(env: tuple) -> dict[int, int]:
    """id -> position of the tensors the function reads as globals / closure values."""
    out: dict[int, int] = {}
    for k, part in enumerate(env):
        if part.__class__ is tuple and len(part) == 6 and part[0] == "tensor":
            out.setdefault(part[1], k)
    return out


def _array_digest(a: Any) -> Any:
    """A numpy array argument is read as a constant: its contents are part of the key (a
    mutated array recompiles instead of returning a stale result)."""
    import hashlib

    if a.nbytes > 1 << 16:
        return ("large", a.nbytes, hashlib.blake2b(_np_asarray_c(a).tobytes(),
                                                   digest_size=16).digest())
    return hashlib.blake2b(_np_asarray_c(a).tobytes(), digest_size=16).digest()


def _scalar_attrs(obj: Any) -> tuple:
    """(name, value) of an object's plain scalar attributes (what `self.k` in traced code reads
    as a constant); () for objects without a __dict__."""
    d = getattr(obj, "__dict__", None)
    if d is None or d.__class__ is not dict:
        return ()
    return tuple((k, v) for k, v in d.items() if v.__class__ in _SCALAR_SET)


def _held_tensors(obj: Any) -> tuple:
    """(name, id) of the tensors an argument object holds directly (attributes, or the values of
    a dict subclass such as OrderedDict): traced code reads them as captured tensors, so an
    object whose tensor was replaced must not hit the entry traced with the old one."""
    out: list = []
    d = getattr(obj, "__dict__", None)
    if d is not None and d.__class__ is dict:
        out += [(k, id(v)) for k, v in d.items() if v.__class__ in _TENSOR_CLASSES]
    if isinstance(obj, dict):
        out += [(k, id(v)) for k, v in obj.items() if v.__class__ in _TENSOR_CLASSES]
    return tuple(out)


def _module_sig(m: Any) -> tuple:
    out = []
    for _, sub in m.named_modules():
        params = tuple(id(p) for _, p in sub.named_parameters(recurse=False))
        bufs = tuple(id(b) for _, b in sub.named_buffers(recurse=False))
        out.append((id(sub), sub.training, params, bufs))
    return tuple(out)


def _hyper_key(v: Any) -> Any:
    """What the key keeps of a hyperparameter: numbers only as zero / non-zero (the step reads
    them at run time, or its entry guards the value it baked in), everything else by value."""
    c = v.__class__
    if c is int or c is float:
        return ("nonzero", v != 0)
    if c is tuple and all(x.__class__ is int or x.__class__ is float for x in v):
        return ("nonzero", tuple(x != 0 for x in v))
    return v


# Hyperparameters no step branches on, not even as `!= 0`: any number, 0 included (a schedule
# that anneals the learning rate to exactly 0), is the same key; the step reads it at run time.
_READ_AT_RUN_TIME = frozenset({"lr"})
_RUNTIME = ("number",)


def _optimizer_sig(opt: Any) -> tuple:
    groups = []
    for g in opt.param_groups:
        hyper = tuple((k, _RUNTIME if k in _READ_AT_RUN_TIME and v.__class__ in (int, float)
                       else _hyper_key(v)) for k, v in g.items()
                      if k != "params" and (v.__class__ in _SCALAR_SET or isinstance(v, tuple)))
        groups.append((hyper, tuple(id(p) for p in g["params"])))
    return (id(opt), tuple(groups))


# --- explaining a miss -----------------------------------------------------------------------------


def _show_leaf(part: Any) -> str:
    if isinstance(part, tuple) and len(part) == 6 and part[0] == "tensor":  # a captured tensor
        return f"tensor {_show_leaf(part[2:])} (object at {part[1]:#x})"
    if isinstance(part, tuple) and len(part) == 4 and isinstance(part[1], tuple):
        cls, shape, dtype, rg = part
        from compiler.ir.types import DType

        dev = "cpu" if cls.__module__.startswith("numpy") else "cuda"
        try:
            d = DType.from_np(dtype).short
        except TypeError:
            d = str(dtype)
        return f"{d}[{','.join(map(str, shape))}]{'' if dev == 'cpu' else '@' + dev}" + (
            " requires_grad" if rg else "")
    if isinstance(part, tuple) and len(part) == 2 and part[0] in (list, tuple):
        inner = ", ".join(_show_leaf(x) for x in part[1])
        return f"[{inner}]" if part[0] is list else f"({inner}{',' if len(part[1]) == 1 else ''})"
    if isinstance(part, tuple) and len(part) == 2 and part[0] is dict:
        return "{" + ", ".join(f"{k!r}: {_show_leaf(v)}" for k, v in part[1]) + "}"
    if isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], type):
        return repr(part[1])
    if isinstance(part, tuple) and part and part[0] == "object":
        return f"<{part[1]} object at {part[2]:#x}>"
    return repr(part)


def _distance(a: tuple, b: tuple) -> int:
    """How many parts of two keys differ (grad mode, each argument, each environment value)."""
    d = (a[0] != b[0]) + (a[2] != b[2]) + (a[4] != b[4])
    d += sum(x != y for x, y in zip(a[1], b[1])) + abs(len(a[1]) - len(b[1]))
    d += sum(x != y for x, y in zip(a[3], b[3])) + abs(len(a[3]) - len(b[3]))
    return d


def nearest_key(keys: list[tuple], key: tuple) -> tuple | None:
    """The cached key closest to `key` (fewest differing parts; the newest on a tie), so that the
    recompile log names what actually differs rather than what changed since the last compile."""
    best, best_d = None, None
    for k in reversed(keys):
        d = _distance(k, key)
        if best_d is None or d < best_d:
            best, best_d = k, d
    return best


def describe_change(old: tuple, new: tuple, kb: KeyBuilder) -> str:
    """Which part of the key changed, old -> new, in words."""
    return explain_change(old, new, kb)[1]


def explain_change(old: tuple, new: tuple, kb: KeyBuilder) -> tuple[str, str]:
    """(the part of the key that changed, e.g. "argument 'n'"; that part's old -> new in words)."""
    if old[0] != new[0]:
        return "grad mode", f"grad mode {'on' if old[0] else 'off'} -> {'on' if new[0] else 'off'}"
    for i, (a, b) in enumerate(zip(old[1], new[1])):
        if a != b:
            name = kb.params[i] if i < len(kb.params) and not kb.params[i].startswith(
                "*") else f"args[{i}]"
            return _leaf_change(f"argument '{name}'", a, b)
    if len(old[1]) != len(new[1]):
        return "number of arguments", f"number of arguments {len(old[1])} -> {len(new[1])}"
    if old[2] != new[2]:
        olds = dict(old[2])
        for k, v in new[2]:
            if k not in olds:
                return f"argument '{k}'", f"argument '{k}': not passed -> {_show_leaf(v)}"
            if olds[k] != v:
                return _leaf_change(f"argument '{k}'", olds[k], v)
        return "keyword arguments", "keyword arguments changed"
    code = getattr(kb.user, "__code__", None)
    n_pos = len(getattr(kb.user, "__defaults__", None) or ())
    pos_names = code.co_varnames[code.co_argcount - n_pos:code.co_argcount] if code else ()
    kw_names = tuple(getattr(kb.user, "__kwdefaults__", None) or {})
    env_names = [f"global '{n}'" for n in kb.global_names] + [
        f"closure variable '{n}'" for n in kb.free_names] + [
        f"default of '{n}'" for n in pos_names + kw_names]
    for i, (a, b) in enumerate(zip(old[3], new[3])):
        if a != b:
            if isinstance(b, tuple) and b and b[0] == "roots":
                if a[1] != b[1]:
                    return _module_change(a[1], b[1])
                if a[3] != b[3]:
                    return _attr_change("module attribute", a[3], b[3])
                return _optimizer_change(a[2], b[2])
            label = env_names[i] if i < len(env_names) else "environment"
            return label, f"{label}: {_show_env_change(a, b)}"
    if old[4] != new[4]:
        return "aliasing", "which tensor arguments are the same object"
    return "unknown", "an unknown part of the key"


def _leaf_change(name: str, a: Any, b: Any) -> tuple[str, str]:
    """Descend into lists / tuples / dicts to the element that changed: `argument 'xs'[1]`."""
    while (a.__class__ is tuple and b.__class__ is tuple and len(a) == 2 == len(b)
           and a[0] is b[0] and a[0] in (list, tuple, dict) and len(a[1]) == len(b[1])):
        for k, (ea, eb) in enumerate(zip(a[1], b[1])):
            if ea != eb:
                if a[0] is dict:
                    if ea[0] != eb[0]:
                        return name, f"{name}: keys changed"
                    name, a, b = f"{name}[{ea[0]!r}]", ea[1], eb[1]
                else:
                    name, a, b = f"{name}[{k}]", ea, eb
                break
    if _same_object(a, b):
        if a[3] != b[3]:
            return _attr_change(f"{name} attribute", (a[3],), (b[3],))
        held = [k for (k, i), (_, j) in zip(a[4], b[4]) if i != j] or ["a tensor"]
        return name, f"{name}: the tensor it holds as {held[0]!r} is another tensor"
    return name, f"{name}: {_show_leaf(a)} -> {_show_leaf(b)}"


def _same_object(a: Any, b: Any) -> bool:
    return (a.__class__ is tuple and b.__class__ is tuple and len(a) == 5 == len(b)
            and a[0] == "object" == b[0] and a[2] == b[2])


def _attr_change(what: str, old: tuple, new: tuple) -> tuple[str, str]:
    """The first plain attribute whose value differs, over per-object (name, value) tuples."""
    for da, db in zip(old, new):
        if da != db:
            oa, ob = dict(da), dict(db)
            for k in list(ob) + [k for k in oa if k not in ob]:
                if oa.get(k, "<unset>") != ob.get(k, "<unset>"):
                    label = f"{what} '{k}'"
                    return label, f"{label}: {oa.get(k, '<unset>')!r} -> {ob.get(k, '<unset>')!r}"
    return what, f"{what} changed"


def _module_change(old: tuple, new: tuple) -> tuple[str, str]:
    for root_a, root_b in zip(old, new):  # one tuple per reachable module
        for (ida, ta, _, _), (idb, tb, _, _) in zip(root_a, root_b):
            if ida == idb and ta != tb:
                modes = ("eval", "train")
                return ("module train/eval mode",
                        f"module train/eval mode: {modes[ta]} -> {modes[tb]}")
    return ("module structure",
            "module structure (a parameter, buffer or submodule was replaced, added or removed)")


def _show_env_change(a: Any, b: Any) -> str:
    """`old -> new` for a global or closure value; a tensor read by identity says which changed."""
    if _same_object(a, b):
        return _attr_change("attribute", (a[3],), (b[3],))[1]
    tensor = (tuple, 6)
    if (a.__class__, len(a) if a.__class__ is tuple else 0) == tensor == (
            b.__class__, len(b) if b.__class__ is tuple else 0) and a[0] == b[0] == "tensor":
        if a[1] != b[1]:
            return (f"rebound to another tensor ({_show_leaf(a[2:])} -> {_show_leaf(b[2:])}, "
                    "the graph read the old object)")
        return f"{_show_leaf(a[2:])} -> {_show_leaf(b[2:])}"
    return f"{_show_leaf(a)} -> {_show_leaf(b)}"


def _optimizer_change(old: tuple, new: tuple) -> tuple[str, str]:
    for (_, ga), (_, gb) in zip(old, new):
        for (ha, pa), (hb, pb) in zip(ga, gb):
            for (k, va), (_, vb) in zip(ha, hb):
                if va != vb:
                    label = f"optimizer hyperparameter '{k}'"
                    return label, f"{label}: {va!r} -> {vb!r}"
            if pa != pb:
                return "optimizer parameters", "optimizer parameters"
    return "optimizer", "optimizer (parameter groups added or removed)"
