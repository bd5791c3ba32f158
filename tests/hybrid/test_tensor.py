"""Tensor behaviour: PyTorch's type promotion, repr, conversions, DLPack, in-place ops and views."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import hybrid
from hybrid.ops.core import STATE

F16, F32, F64 = hybrid.float16, hybrid.float32, hybrid.float64
I32, I64, B8 = hybrid.int32, hybrid.int64, hybrid.bool


def dim(dtype):
    """A dimensioned (1-d) tensor of `dtype`."""
    return hybrid.ones(3, dtype=dtype)


def zd(dtype):
    """A 0-d tensor of `dtype`."""
    return hybrid.ones((), dtype=dtype)


# (a, b, expected) from PyTorch's documented rules: categories bool < integer < float; a
# dimensioned tensor's dtype wins within its category; a 0-d tensor or Python scalar only matters
# when its category is higher, then the 0-d tensor's dtype (or, for a scalar, the default dtype).
PROMOTION = [
    (lambda: dim(I32), lambda: 2.5, F32),
    (lambda: dim(F16), lambda: zd(F64), F16),
    (lambda: dim(B8), lambda: dim(B8), B8),
    (lambda: dim(I32), lambda: 5, I32),
    (lambda: dim(I32), lambda: zd(I64), I32),
    (lambda: dim(I32), lambda: dim(I64), I64),
    (lambda: dim(F32), lambda: dim(F64), F64),
    (lambda: dim(I64), lambda: dim(F16), F16),
    (lambda: dim(B8), lambda: 3, I64),
    (lambda: dim(B8), lambda: 2.5, F32),
    (lambda: dim(B8), lambda: True, B8),
    (lambda: dim(B8), lambda: zd(I32), I32),
    (lambda: dim(I32), lambda: zd(F64), F64),
    (lambda: dim(I64), lambda: zd(F16), F16),
    (lambda: zd(I32), lambda: 2.5, F32),
    (lambda: zd(F64), lambda: 2.5, F64),
    (lambda: zd(I64), lambda: zd(F16), F16),
    (lambda: zd(I32), lambda: zd(I64), I64),
    (lambda: dim(F16), lambda: 2.5, F16),
    (lambda: dim(F16), lambda: 7, F16),
    (lambda: zd(B8), lambda: 7, I64),
    (lambda: dim(F32), lambda: zd(F64), F32),
]


@pytest.mark.parametrize("a,b,want", PROMOTION, ids=[str(i) for i in range(len(PROMOTION))])
def test_type_promotion(a, b, want) -> None:
    x, y = a(), b()
    assert hybrid.result_type(x, y) is want
    assert hybrid.result_type(y, x) is want
    op = hybrid.logical_or if want is B8 else hybrid.add
    assert op(x, y).dtype is want
    assert op(y, x).dtype is want
    if want is not B8:
        assert (x + y).dtype is want and (y + x).dtype is want
        assert (x * y).dtype is want


def test_promotion_default_dtype_float64() -> None:
    hybrid.set_default_dtype(F64)
    assert (dim(I64) + 2.5).dtype is F64
    assert hybrid.tensor([1.0]).dtype is F64
    hybrid.set_default_dtype(F32)
    assert (dim(I64) + 2.5).dtype is F32


@pytest.mark.parametrize("a,b,want", [
    (lambda: dim(I64), lambda: 2, F32),
    (lambda: dim(I32), lambda: dim(I32), F32),
    (lambda: dim(F64), lambda: 2, F64),
    (lambda: dim(F16), lambda: zd(F64), F16),
    (lambda: dim(B8), lambda: dim(B8), F32),
])
def test_true_division_promotes_to_float(a, b, want) -> None:
    assert (a() / b()).dtype is want
    assert hybrid.div(a(), b()).dtype is want


def test_comparison_and_bool_results() -> None:
    assert (dim(I32) < 2.5).dtype is B8
    assert (dim(F16) == zd(F64)).dtype is B8
    np.testing.assert_array_equal((hybrid.tensor([1, 2, 3]) < 2.5).numpy(), [True, True, False])
    # the comparison happens in the promoted type: int tensor vs 2.5 is not truncated to 2
    np.testing.assert_array_equal((hybrid.tensor([2, 3]) == 2.5).numpy(), [False, False])


def test_promote_types_table() -> None:
    assert hybrid.promote_types(I32, F16) is F16
    assert hybrid.promote_types(B8, I32) is I32
    assert hybrid.promote_types(F64, F32) is F64


# --- repr -----------------------------------------------------------------------------------

REPRS = [
    (lambda: hybrid.tensor([1.0, 2.0, 3.0]), "tensor([1., 2., 3.])"),
    (lambda: hybrid.tensor([1.5, 2.25]), "tensor([1.5000, 2.2500])"),
    (lambda: hybrid.tensor([-1.5, 2.0]), "tensor([-1.5000,  2.0000])"),
    (lambda: hybrid.tensor([1, 2, 3]), "tensor([1, 2, 3])"),
    (lambda: hybrid.tensor([True, False]), "tensor([ True, False])"),
    (lambda: hybrid.tensor([True, True]), "tensor([True, True])"),
    (lambda: hybrid.tensor(3.0), "tensor(3.)"),
    (lambda: hybrid.tensor(2), "tensor(2)"),
    (lambda: hybrid.tensor(2.5), "tensor(2.5000)"),
    (lambda: hybrid.tensor([]), "tensor([])"),
    (lambda: hybrid.zeros(0, 3), "tensor([], size=(0, 3))"),
    (lambda: hybrid.tensor([], dtype=I32), "tensor([], dtype=hybrid.int32)"),
    (lambda: hybrid.tensor([1.0, 2.0], dtype=F64), "tensor([1., 2.], dtype=hybrid.float64)"),
    (lambda: hybrid.tensor([1, 2], dtype=I32), "tensor([1, 2], dtype=hybrid.int32)"),
    (lambda: hybrid.tensor([1.0, 2.0], dtype=F16), "tensor([1., 2.], dtype=hybrid.float16)"),
    (lambda: hybrid.tensor([1.0, 2.0], requires_grad=True),
     "tensor([1., 2.], requires_grad=True)"),
    (lambda: hybrid.tensor([1.0, 2.0], requires_grad=True) * 2,
     "tensor([2., 4.], grad_fn=<MulBackward>)"),
    (lambda: hybrid.tensor([[1.0, 2.0], [3.0, 4.0]]), "tensor([[1., 2.],\n        [3., 4.]])"),
    (lambda: hybrid.tensor([1e10, 1.0]), "tensor([1.0000e+10, 1.0000e+00])"),
    (lambda: hybrid.tensor([1.0, float("nan"), float("inf")]), "tensor([1., nan, inf])"),
]


@pytest.mark.parametrize("make,want", REPRS, ids=[w for _, w in REPRS])
def test_repr(make, want) -> None:
    assert repr(make()) == want


def test_repr_float16_has_no_overflow_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert repr(hybrid.tensor([1.5, 2.0], dtype=F16)) == \
            "tensor([1.5000, 2.0000], dtype=hybrid.float16)"


# --- conversions and metadata ----------------------------------------------------------------


def test_metadata_and_conversions() -> None:
    t = hybrid.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert t.shape == (2, 3) and t.ndim == 2 and t.dim() == 2 and t.numel() == 6
    assert t.size() == (2, 3) and t.size(1) == 3 and t.size(-1) == 3
    assert t.dtype is F32 and t.device == hybrid.device("cpu") and str(t.device) == "cpu"
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    a = t.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(t), a)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert hybrid.tensor(3.5).item() == 3.5 and isinstance(hybrid.tensor(3).item(), int)
    assert hybrid.tensor([7]).item() == 7
    assert float(hybrid.tensor(2.5)) == 2.5 and int(hybrid.tensor(4)) == 4
    assert bool(hybrid.tensor([True])) is True
    assert len(t) == 2 and [r.tolist() for r in t] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert f"{hybrid.tensor(1.5):.2f}" == "1.50"
    assert t.is_floating_point() and not hybrid.tensor([1]).is_floating_point()
    assert t.element_size() == 4
    assert hybrid.tensor(3).tolist() == 3


def test_numpy_shares_memory() -> None:
    t = hybrid.zeros(3)
    t.numpy()[1] = 5.0
    assert t.tolist() == [0.0, 5.0, 0.0]


def test_numpy_on_requires_grad_raises() -> None:
    t = hybrid.ones(2, requires_grad=True)
    with pytest.raises(hybrid.AutogradError, match="detach"):
        t.numpy()
    np.testing.assert_array_equal(t.detach().numpy(), [1.0, 1.0])


def test_to_dtype_and_device() -> None:
    t = hybrid.tensor([1.7, -2.2])
    assert t.to(I32).tolist() == [1, -2]
    assert t.to(dtype=F64).dtype is F64
    assert t.to("cpu") is t
    assert t.to("cpu", F64).dtype is F64
    assert t.to(hybrid.tensor([1])).dtype is I64
    assert t.to(np.float64).dtype is F64
    c = t.to(F32, copy=True)
    assert c is not t and c.tolist() == t.tolist()
    assert t.type() == "hybrid.float32" and t.type(I64).dtype is I64


# --- creation ----------------------------------------------------------------------------------


def test_tensor_dtype_inference() -> None:
    assert hybrid.tensor([1, 2]).dtype is I64
    assert hybrid.tensor([1, 2.0]).dtype is F32
    assert hybrid.tensor([True, False]).dtype is B8
    assert hybrid.tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert hybrid.tensor(np.array([1, 2], dtype=np.int32)).dtype is I32
    assert hybrid.tensor(np.array([1.0], dtype=np.float64)).dtype is F64
    assert hybrid.tensor([hybrid.tensor(1.0), hybrid.tensor(2.0)]).tolist() == [1.0, 2.0]
    assert hybrid.tensor([[1, 2]], dtype=F64).dtype is F64
    assert hybrid.Tensor([1, 2]).dtype is F32


def test_tensor_copies_and_as_tensor_shares() -> None:
    a = np.zeros(3, dtype=np.float32)
    t = hybrid.tensor(a)
    s = hybrid.as_tensor(a)
    f = hybrid.from_numpy(a)
    a[0] = 9
    assert t.tolist()[0] == 0 and s.tolist()[0] == 9 and f.tolist()[0] == 9
    f[1] = 4.0
    assert a[1] == 4.0
    assert hybrid.as_tensor(a, dtype=F64).dtype is F64


# --- DLPack ----------------------------------------------------------------------------------


def test_dlpack_round_trips() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = hybrid.from_dlpack(a)
    a[0, 0] = 42
    assert t[0, 0].item() == 42  # shares memory
    b = np.from_dlpack(t)
    b[1, 2] = -1
    assert t[1, 2].item() == -1 and a[1, 2] == -1
    u = hybrid.from_dlpack(hybrid.tensor([1, 2, 3], dtype=I32))
    assert u.dtype is I32 and u.tolist() == [1, 2, 3]
    cap = hybrid.to_dlpack(t)
    data, shape, code_bits = _read_dlpack_capsule(cap)
    assert data == t.numpy().ctypes.data  # the capsule points at the tensor's own memory
    assert shape == [2, 3] and code_bits == (2, 32)  # kDLFloat, 32 bits


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32),
                ("device_id", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16),
                ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


def _read_dlpack_capsule(cap) -> tuple[int, list[int], tuple[int, int]]:
    """Data pointer, shape and (type code, bits) of a "dltensor" capsule (DLPack's C layout)."""
    api = ctypes.pythonapi
    api.PyCapsule_IsValid.restype = ctypes.c_int
    api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    assert api.PyCapsule_IsValid(cap, b"dltensor") == 1
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    dl = _DLTensor.from_address(api.PyCapsule_GetPointer(cap, b"dltensor"))
    assert dl.device_type == 1 and dl.lanes == 1  # kDLCPU
    return dl.data + dl.byte_offset, [dl.shape[i] for i in range(dl.ndim)], (dl.code, dl.bits)


def test_dlpack_rejects_objects_without_protocol() -> None:
    with pytest.raises(hybrid.HybridError):
        hybrid.from_dlpack([1, 2, 3])


# --- in-place ops and views -----------------------------------------------------------------


def test_inplace_operators() -> None:
    t = hybrid.tensor([1.0, 2.0, 3.0])
    before = t
    t += 1
    assert t is before and t.tolist() == [2.0, 3.0, 4.0]
    t *= hybrid.tensor([2.0, 1.0, 0.5])
    assert t.tolist() == [4.0, 3.0, 2.0]
    t -= 1
    t /= 2
    assert t.tolist() == [1.5, 1.0, 0.5]
    t.add_(1).mul_(2)
    assert t.tolist() == [5.0, 4.0, 3.0]
    t.clamp_(3.5, 4.5)
    assert t.tolist() == [4.5, 4.0, 3.5]
    t.fill_(7)
    assert t.tolist() == [7.0] * 3
    t.copy_(hybrid.tensor([1.0, 2.0, 3.0]))
    assert t.tolist() == [1.0, 2.0, 3.0]
    t.copy_(hybrid.tensor(5.0))
    assert t.tolist() == [5.0] * 3
    t.zero_()
    assert t.tolist() == [0.0] * 3 and t.dtype is F32
    i = hybrid.tensor([1, 2])
    i += 3
    assert i.tolist() == [4, 5] and i.dtype is I64
    i.copy_(hybrid.tensor([1.9, 2.1]))
    assert i.tolist() == [1, 2]


def test_inplace_int_with_float_result_raises() -> None:
    i = hybrid.tensor([1, 2])
    with pytest.raises(hybrid.DTypeError):
        i += 2.5
    with pytest.raises(hybrid.DTypeError):
        i.mul_(1.5)


def test_inplace_through_views_is_visible_in_base() -> None:
    base = hybrid.zeros(3, 4)
    row = base[1]
    row += 1
    col = base[:, 2]
    col.mul_(0).add_(5)
    base.T[0].fill_(-1)
    sl = base[::2, 1:3]
    sl.zero_()
    want = np.zeros((3, 4), dtype=np.float32)
    want[1] += 1
    want[:, 2] = 5
    want[:, 0] = -1
    want[::2, 1:3] = 0
    np.testing.assert_array_equal(base.numpy(), want)
    v = base.view(12)
    v[0] = 3.0
    assert base[0, 0].item() == 3.0
    base.add_(1)  # and the other way round: views see writes to the base
    assert row.tolist() == (want[1] + 1).tolist() and row[0].item() == 0.0


def test_inplace_on_view_with_grad() -> None:
    """A view cannot take a grad-recording in-place result (it would silently leave its base
    behind); assigning through the base works and differentiates."""
    x = hybrid.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    with pytest.raises(hybrid.AutogradError, match="view"):
        y[1:].mul_(2)
    y[1:] = y[1:] * 2
    assert y.tolist() == [1.0, 4.0, 6.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 2.0]


def test_inplace_on_view_under_no_grad_updates_base() -> None:
    x = hybrid.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    with hybrid.no_grad():
        y[1:].mul_(2)
        x[:1].add_(10)
    assert y.tolist() == [1.0, 4.0, 6.0]
    assert x.tolist() == [11.0, 2.0, 3.0] and x.requires_grad and y.grad_fn is not None


def test_inplace_fast_path_keeps_version_counter() -> None:
    t = hybrid.ones(2)
    v = t._version
    t += 1
    t.add_(1)
    assert t._version == v + 2


def test_expanded_view_cannot_be_written() -> None:
    e = hybrid.ones(3, 1).expand(3, 4)
    with pytest.raises(hybrid.HybridError):
        e.add_(1)


def test_torch_interop() -> None:
    try:
        import torch
    except Exception:  # not installed, or installed without its native libraries
        pytest.skip("torch is not importable")
    t = hybrid.tensor([[1.0, 2.0], [3.0, 4.0]])
    tt = torch.from_dlpack(t)
    assert tt.tolist() == t.tolist()
    back = hybrid.from_dlpack(torch.arange(4.0))
    assert back.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_grad_mode_state_restored_by_fixture() -> None:
    assert STATE.grad


def test_inplace_keeps_history_for_earlier_consumers() -> None:
    """Nodes recorded before an in-place op keep the old history of their input."""
    x = hybrid.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y + 1  # add reads only shapes: the in-place op below does not invalidate it
    y.mul_(3)
    (z.sum() + y.sum()).backward()
    assert x.grad.tolist() == [4.0, 4.0]
    w = hybrid.tensor([1.0, 2.0], requires_grad=True)
    a = hybrid.zeros(2)
    b = a + w
    a.add_(w)  # a takes a history; b's record of a (no history) must stay as it was
    (a.sum() + b.sum()).backward()
    assert w.grad.tolist() == [2.0, 2.0]
