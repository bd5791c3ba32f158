"""hybrid.Tensor: an array (numpy on the CPU, CuPy on a GPU, or a traced value inside
@hybrid.compile) with PyTorch's methods and autograd state."""

from __future__ import annotations

import numpy as np

from compiler.ir.ops import Op
from compiler.ir.types import DType
from hybrid import errors
from hybrid.device import CPU, as_device, device, xp_of
from hybrid.dtypes import as_dtype
from hybrid.ops import core
from hybrid.ops import creation as cr
from hybrid.ops import elementwise as ew
from hybrid.ops import indexing as ix
from hybrid.ops import linalg as la
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.core import NP, STATE, ndarray, wrap

_new = object.__new__
_asarray = np.asarray
_TENSOR_CLASSES: set = set()


class Tensor:
    """A multi-dimensional array with autograd, on the CPU (numpy) or a GPU (CuPy)."""

    # Defaults live on the class so that creating a tensor sets only `_value` (eager overhead).
    _node = None  # the autograd TapeNode that produced it (grad_fn)
    _rg = False  # requires_grad
    _grad = None  # .grad (a property: a trace must see every read and write of it)
    _version = 0  # bumped by in-place ops; autograd checks saved inputs against it
    _base = None  # the tensor this is a view of (reshape/permute/slice/expand)
    _alias_of = None  # the tensor this is the same storage as (detach(), .data)
    _history = None  # {version: (grad_fn, requires_grad)} before each in-place op that changed them
    __array_priority__ = 1000  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        _TENSOR_CLASSES.add(cls)

    def __init__(self, *args, **kwargs):
        from hybrid.legacy import construct  # Tensor(*sizes), Tensor(data): PyTorch's legacy forms

        self._value = construct(args, kwargs, None)._value

    # --- metadata ---------------------------------------------------------------------------

    @property
    def shape(self) -> tuple:
        return tuple(self._value.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return tuple(self._value.shape)
        return self._value.shape[rd.normalize_dim("size", dim, self.ndim)]

    @property
    def ndim(self) -> int:
        return len(self._value.shape)

    def dim(self) -> int:
        return len(self._value.shape)

    def numel(self) -> int:
        n = 1
        for s in self._value.shape:
            n *= s
        return n

    nelement = numel

    @property
    def dtype(self) -> DType:
        d = self._value.dtype
        return d if d.__class__ is DType else DType.from_np(d)

    @property
    def device(self) -> device:
        v = self._value
        if v.__class__ is ndarray:
            return CPU
        dev = getattr(v, "device", None)
        if dev is None or isinstance(dev, device):
            return dev or CPU
        return device("cuda", dev.id)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def element_size(self) -> int:
        return self.dtype.itemsize

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating

    def is_contiguous(self) -> bool:
        flags = getattr(self._value, "flags", None)
        return flags is None or bool(flags.c_contiguous)

    # --- autograd state -----------------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.dtype.is_floating:
            raise errors.DTypeError(
                errors.at_user(
                    f"only floating-point tensors can require gradients, got {self.dtype.name}; "
                    "use .float() first"
                )
            )
        if not requires_grad and self._node is not None:
            raise errors.AutogradError(
                errors.at_user("requires_grad_(False) on a non-leaf tensor: use .detach() instead")
            )
        self._rg = bool(requires_grad)
        return self

    @property
    def grad(self):
        tracer = STATE.tracer
        if tracer is not None:
            tracer.touch_grad(self)
        return self._grad

    @grad.setter
    def grad(self, g) -> None:
        tracer = STATE.tracer
        if tracer is not None:
            tracer.touch_grad(self)
        self._grad = g

    @property
    def grad_fn(self):
        return self._node

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def detach(self) -> Tensor:
        """The same data, cut from the autograd graph (shares storage)."""
        t = wrap(self._value)
        t._alias_of = self
        return t

    def detach_(self) -> Tensor:
        self._node = None
        self._rg = False
        return self

    @property
    def data(self) -> Tensor:
        return self.detach()

    @data.setter
    def data(self, other: Tensor) -> None:
        self._value = other._value
        self._version += 1

    def backward(self, gradient=None, retain_graph=None, create_graph=False) -> None:
        """Accumulate the gradient of this tensor into the .grad of the leaves it depends on."""
        from hybrid.autograd import backward

        backward(self, gradient, retain_graph, create_graph)

    def retain_grad(self) -> None:
        from hybrid.autograd import retain_grad

        retain_grad(self)

    # --- conversion ---------------------------------------------------------------------------

    def _concrete(self, what: str):
        v = self._value
        if getattr(v, "traced", False):
            raise errors.TraceError(
                errors.at_user(
                    f"{what} reads the value of a traced tensor inside @hybrid.compile, where "
                    "values are not known yet; use hybrid.where(...) for data-dependent choices, "
                    "pass the value as a static (non-tensor) argument, or run this part eagerly "
                    "(@hybrid.compile(fallback='eager'))"
                )
            )
        return v

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The data as a numpy array (shares memory on the CPU)."""
        v = self._concrete("Tensor.numpy()")
        if self._rg and not force:
            raise errors.AutogradError(
                errors.at_user(
                    "cannot call numpy() on a tensor that requires grad; use tensor.detach().numpy()"
                )
            )
        if v.__class__ is not ndarray:
            if not force:
                raise errors.DeviceError(
                    errors.at_user(f"numpy() needs a CPU tensor, this one is on {self.device}; "
                                   "use .cpu().numpy()")
                )
            return v.get()
        return v

    def item(self):
        v = self._concrete("Tensor.item()")
        if v.size != 1:
            raise errors.ShapeError(
                errors.at_user(f"item: only a one-element tensor can be converted to a Python "
                               f"number, this one has shape {list(v.shape)}")
            )
        return v.reshape(()).item() if v.__class__ is ndarray else v.reshape(()).get().item()

    def tolist(self):
        v = self._concrete("Tensor.tolist()")
        return (v if v.__class__ is ndarray else v.get()).tolist()

    def __array__(self, dtype=None, copy=None):
        v = self._concrete("numpy conversion (np.asarray)")
        if v.__class__ is not ndarray:
            raise errors.DeviceError(
                errors.at_user(f"cannot convert a {self.device} tensor to numpy; use .cpu() first")
            )
        if dtype is not None:
            return v.astype(dtype, copy=bool(copy))
        return v.copy() if copy else v

    def __dlpack__(self, *args, **kwargs):
        return self._concrete("__dlpack__").__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._concrete("__dlpack_device__").__dlpack_device__()

    def __bool__(self) -> bool:
        v = self._concrete("bool(tensor) (an `if` or `while` on a tensor)")
        if v.size != 1:
            raise errors.ShapeError(
                errors.at_user(f"bool of a tensor with {v.size} elements is ambiguous; "
                               "use .any() or .all()")
            )
        return bool(self.item())

    def __int__(self) -> int:
        self._concrete("int(tensor)")
        return int(self.item())

    def __float__(self) -> float:
        self._concrete("float(tensor)")
        return float(self.item())

    def __index__(self) -> int:
        self._concrete("using a tensor as a Python index or range bound")
        if not self.dtype.is_integer or self.numel() != 1:
            raise errors.DTypeError(
                errors.at_user("only one-element integer tensors can be used as a Python index")
            )
        return int(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise errors.DTypeError(errors.at_user("len() of a 0-d tensor"))
        return self._value.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise errors.DTypeError(errors.at_user("iteration over a 0-d tensor"))
        return iter(sh.unbind(self, 0))

    def __format__(self, spec: str) -> str:
        if self.ndim == 0 and not getattr(self._value, "traced", False):
            return format(self.item(), spec)
        return format(repr(self), spec)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        from hybrid.printing import tensor_repr

        return tensor_repr(self)

    def to(self, *args, **kwargs) -> Tensor:
        """`.to(device)`, `.to(dtype)`, `.to(device, dtype)`, `.to(other_tensor)`."""
        dev = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        copy = kwargs.pop("copy", False)
        for a in args:
            if isinstance(a, Tensor):
                dev, dtype = a.device, a.dtype
            elif isinstance(a, DType) or (not isinstance(a, (str, device, int)) and a is not None):
                dtype = a
            else:
                dev = a
        out = self
        if dev is not None:
            out = _to_device(out, as_device(dev))
        if dtype is not None:
            out = ew.cast(out, as_dtype(dtype))
        if copy and out is self:
            out = sh.clone(self)
        return out

    def cpu(self) -> Tensor:
        return self.to(CPU)

    def cuda(self, index: int | None = None) -> Tensor:
        return self.to(device("cuda", index))

    def float(self) -> Tensor:
        return ew.cast(self, DType.float32)

    def double(self) -> Tensor:
        return ew.cast(self, DType.float64)

    def half(self) -> Tensor:
        return ew.cast(self, DType.float16)

    def bfloat16(self) -> Tensor:
        return ew.cast(self, DType.bfloat16)

    def long(self) -> Tensor:
        return ew.cast(self, DType.int64)

    def int(self) -> Tensor:
        return ew.cast(self, DType.int32)

    def bool(self) -> Tensor:
        return ew.cast(self, DType.bool)

    def type_as(self, other: Tensor) -> Tensor:
        return ew.cast(self, other.dtype)

    def type(self, dtype=None):
        if dtype is None:
            return f"hybrid.{self.dtype.name}"
        return ew.cast(self, as_dtype(dtype))

    # --- methods with extra arguments ---------------------------------------------------------

    def view(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], DType):
            raise errors.DTypeError(errors.at_user("view(dtype) is not supported; use .to(dtype)"))
        return sh.view(self, *shape)

    def view_as(self, other: Tensor) -> Tensor:
        return sh.reshape(self, other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return sh.reshape(self, other.shape)

    @property
    def T(self) -> Tensor:  # noqa: N802
        return sh.T(self)

    @property
    def mT(self) -> Tensor:  # noqa: N802
        return sh.transpose(self, -2, -1)

    def __getitem__(self, index) -> Tensor:
        return ix.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        ix.setitem(self, index, value)

    # --- in-place ops ---------------------------------------------------------------------------

    def copy_(self, src) -> Tensor:
        src = src if isinstance(src, Tensor) else cr.tensor(src, device=self.device)
        if src.device != self.device and not getattr(src._value, "traced", False):
            src = _to_device(src, self.device)
        return inplace_op(self, lambda x: sh.expand(ew.cast(src, x.dtype), x.shape) + 0 * x
                          if STATE.grad and x._rg else sh.expand(ew.cast(src, x.dtype), x.shape))

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value) -> Tensor:
        if isinstance(value, Tensor):
            return inplace_op(self, lambda x: ew.where(cr.ones_like(x, dtype=DType.bool), value, x))
        return inplace_op(self, lambda x: cr.full_like(x, value))

    def normal_(self, mean=0.0, std=1.0, *, generator=None) -> Tensor:
        from hybrid import random as hr

        return inplace_op(self, lambda x: hr._normal(x.shape, x.dtype, x.device, generator)
                          * std + mean)

    def uniform_(self, a=0.0, b=1.0, *, generator=None) -> Tensor:
        from hybrid import random as hr

        return inplace_op(self, lambda x: hr.rand(x.shape, dtype=x.dtype, device=x.device,
                                                  generator=generator) * (b - a) + a)

    def masked_fill_(self, mask, value) -> Tensor:
        return inplace_op(self, lambda x: ix.masked_fill(x, mask, value))

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002
        return inplace_op(self, lambda x: ew.clamp(x, min, max))


def _to_device(x: Tensor, dev: device) -> Tensor:
    v = x._value
    if getattr(v, "traced", False):
        if dev == x.device:
            return x
        raise errors.TraceError(
            errors.at_user(f"moving a tensor to {dev} inside @hybrid.compile is not supported; "
                           "move inputs before calling the compiled function")
        )
    if dev == x.device:
        return x
    if x._node is not None and STATE.grad and x._rg:
        raise errors.AutogradError(
            errors.at_user("moving a non-leaf tensor that requires grad between devices is not "
                           "differentiable yet; move the leaf tensors (inputs, parameters) instead")
        )
    arr = v.get() if dev.type == "cpu" else xp_of(dev).asarray(v)
    out = wrap(arr)
    out._rg = x._rg
    return out


def _binop(op: Op, slow, swap: bool = False, floats_only: bool = False):
    """A dunder method with an eager fast path (numpy, equal dtypes, no grad recorded)."""
    fn = NP[op]

    def method(self, other):
        av = self._value
        if av.__class__ is ndarray and STATE.fast:
            oc = other.__class__
            if oc in _TENSOR_CLASSES:
                bv = other._value
                if (bv.__class__ is ndarray and av.dtype is bv.dtype
                        and not ((self._rg or other._rg) and STATE.grad)
                        and (not floats_only or av.dtype.kind == "f")):
                    try:  # NOTE: free in 3.11 unless raised; numpy's error becomes ours
                        r = fn(bv, av) if swap else fn(av, bv)
                    except ValueError:
                        return slow(other, self) if swap else slow(self, other)
                    t = _new(Tensor)
                    t._value = r if r.__class__ is ndarray else _asarray(r)
                    return t
            elif (oc is float or oc is int) and av.dtype.kind == "f" and not (
                    self._rg and STATE.grad):
                r = fn(other, av) if swap else fn(av, other)
                t = _new(Tensor)
                t._value = r if r.__class__ is ndarray else _asarray(r)
                return t
        return slow(other, self) if swap else slow(self, other)

    method.__name__ = f"__{'r' if swap else ''}{op.value}__"
    return method


def _ibinop(fn):
    def method(self, other):
        av = self._value
        if (av.__class__ is ndarray and STATE.fast and not (self._rg and STATE.grad)
                and av.flags.writeable):
            ov = other._value if other.__class__ in _TENSOR_CLASSES else other
            if ov.__class__ is ndarray and not getattr(other, "_rg", False) or \
                    ov.__class__ in (float, int):
                r = fn(self, other)
                if r.dtype is self.dtype and tuple(r.shape) == tuple(self.shape):
                    av[...] = r._value
                    self._version += 1
                    return self
        return inplace_op(self, lambda x: fn(x, other))

    return method


_TENSOR_CLASSES.add(Tensor)
core.Tensor = Tensor

for _name, _op, _slow, _floats in [
    ("add", Op.ADD, ew.add, False), ("sub", Op.SUB, ew.sub, False),
    ("mul", Op.MUL, ew.mul, False), ("truediv", Op.DIV, ew.div, True),
]:
    setattr(Tensor, f"__{_name}__", _binop(_op, _slow, floats_only=_floats))
    setattr(Tensor, f"__r{_name}__", _binop(_op, _slow, swap=True, floats_only=_floats))
    setattr(Tensor, f"__i{_name}__", _ibinop(_slow))

for _name, _op, _slow in [("eq", Op.EQ, ew.eq), ("ne", Op.NE, ew.ne), ("lt", Op.LT, ew.lt),
                          ("le", Op.LE, ew.le), ("gt", Op.GT, ew.gt), ("ge", Op.GE, ew.ge)]:
    setattr(Tensor, f"__{_name}__", _binop(_op, _slow))


def _reflect(fn):
    return lambda self, other: fn(other, self)


Tensor.__neg__ = ew.neg
Tensor.__abs__ = ew.abs
Tensor.__invert__ = ew.bitwise_not
Tensor.__pos__ = lambda self: self
Tensor.__matmul__ = la.matmul
Tensor.__rmatmul__ = _reflect(la.matmul)
Tensor.__pow__ = ew.pow
Tensor.__rpow__ = _reflect(ew.pow)
Tensor.__floordiv__ = ew.floor_divide
Tensor.__rfloordiv__ = _reflect(ew.floor_divide)
Tensor.__mod__ = ew.remainder
Tensor.__rmod__ = _reflect(ew.remainder)
Tensor.__and__ = ew.bitwise_and
Tensor.__rand__ = _reflect(ew.bitwise_and)
Tensor.__or__ = ew.bitwise_or
Tensor.__ror__ = _reflect(ew.bitwise_or)
Tensor.__xor__ = ew.bitwise_xor
Tensor.__rxor__ = _reflect(ew.bitwise_xor)
Tensor.__imatmul__ = _ibinop(la.matmul)
Tensor.__ipow__ = _ibinop(ew.pow)
Tensor.__iand__ = _ibinop(ew.bitwise_and)
Tensor.__ior__ = _ibinop(ew.bitwise_or)
Tensor.__ixor__ = _ibinop(ew.bitwise_xor)

# Plain methods: x.f(*args) is f(x, *args) for these functions.
for _mod, _names in [
    (ew, "add sub mul div pow maximum minimum atan2 remainder floor_divide eq ne lt le gt ge "
         "logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor "
         "bitwise_not neg abs sign floor ceil trunc round tan log2 log10 exp2 square relu clamp "
         "isnan isinf isfinite lerp nan_to_num"),
    (rd, "sum prod mean amax amin argmax argmin max min var std logsumexp all any "
         "count_nonzero"),
    (sh, "reshape permute transpose t expand expand_as squeeze unsqueeze flatten unflatten "
         "narrow split chunk unbind repeat flip contiguous clone"),
    (ix, "index_select gather scatter_add index_add masked_fill take"),
    (la, "matmul mm bmm dot outer"),
]:
    for _n in _names.split():
        setattr(Tensor, _n, getattr(_mod, _n))
for _n, _f in ew.FROM_TABLE.items():  # exp, log, erf, ...: from the op table
    setattr(Tensor, _n, _f)

Tensor.clip = ew.clamp
Tensor.negative = ew.neg
Tensor.absolute = ew.abs
Tensor.multiply = ew.mul
Tensor.subtract = ew.sub
Tensor.divide = ew.div
Tensor.greater = ew.gt
Tensor.less = ew.lt
Tensor.where = lambda self, cond, other: ew.where(cond, self, other)
Tensor.softmax = lambda self, dim: __import__("hybrid.functional", fromlist=["x"]).softmax(self, dim)
Tensor.log_softmax = lambda self, dim: __import__(
    "hybrid.functional", fromlist=["x"]).log_softmax(self, dim)

# In-place semantics (check_inplace, inplace, inplace_op): hybrid/tensor_inplace.py, which needs
# the class above; re-exported here for the modules that import them from hybrid.tensor.
from hybrid.tensor_inplace import _snapshot, check_inplace, inplace, inplace_op  # noqa: E402, F401

# In-place variants: x.f_(*args) makes x = f(x, *args) in place.
for _n in ("add sub mul div pow clamp neg abs relu floor ceil round trunc sign maximum minimum "
           "lerp remainder square").split() + list(ew.FROM_TABLE):
    _f = getattr(Tensor, _n)

    def _make(f):
        def method(self, *args, **kwargs):
            return inplace_op(self, lambda x: f(x, *args, **kwargs))

        return method

    setattr(Tensor, _n + "_", _make(_f))

# Methods of the extra ops (new_*, norms, sort, cumsum, asin, ..., and in-place forms such as
# sin_ and unsqueeze_): hybrid/ops/methods.py.
from hybrid.ops import methods as _methods  # noqa: E402

_methods.bind(Tensor)
