"""Table-driven op suite (in the spirit of PyTorch's OpInfo and tinygrad's test_ops): one row per
public op with an independent numpy float64 reference, sample inputs (broadcasting, 0-d, empty),
the dtypes it runs on, and whether it is differentiable. Every row is checked against its
reference on contiguous and non-contiguous inputs, and differentiable rows by finite differences.
This file holds the checks; the rows are in _ops_table_elementwise.py and _ops_table_structural.py
(machinery in _ops_helpers.py), the creation and random ops are in test_ops_creation.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _ops_helpers import B8, F16, F64, I64, Idx, Mask, OpInfo, S
from _ops_helpers import FLOATS, INTS, unary, values  # noqa: F401  (re-exported: see below)
from _ops_table_elementwise import OPS as ELEMENTWISE_OPS
from _ops_table_structural import OPS as STRUCTURAL_OPS
from gradcheck import gradcheck

import hybrid

# test_ops_extra.py, test_compiled_op_suite.py and test_compile_native.py import the suite's
# machinery from here: OPS, OpInfo, S, Idx, Mask, to_hybrid, compare, _outputs, and the re-exported
# FLOATS, INTS, unary, values.
OPS: list[OpInfo] = ELEMENTWISE_OPS + STRUCTURAL_OPS

OPS_BY_NAME = {o.name: o for o in OPS}
assert len(OPS_BY_NAME) == len(OPS), "duplicate OpInfo names"


# --- the checks -------------------------------------------------------------------------------


def _np_dtype(d):
    return d.np


def to_hybrid(a: Any, dtype, layout: str = "contiguous") -> Any:
    """A numpy sample value as a hybrid tensor of `dtype` in the given memory layout."""
    if isinstance(a, Idx):
        return hybrid.tensor(np.asarray(a), dtype=I64)
    if isinstance(a, Mask):
        return hybrid.tensor(np.asarray(a), dtype=B8)
    if not isinstance(a, np.ndarray):
        return a
    a = np.asarray(a).astype(dtype.np)
    if layout == "transposed" and a.ndim >= 2:
        rev = tuple(range(a.ndim - 1, -1, -1))
        t = hybrid.tensor(np.ascontiguousarray(a.transpose(rev)), dtype=dtype).permute(rev)
        assert a.size <= 1 or not t.is_contiguous() or min(a.shape) <= 1
        return t
    if layout == "strided" and a.ndim >= 1:
        base = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), dtype=a.dtype)
        base[..., 1::2] = a
        t = hybrid.tensor(base, dtype=dtype)[..., 1::2]
        assert t.shape == a.shape
        return t
    return hybrid.tensor(a, dtype=dtype)


def to_ref(a: Any, dtype) -> Any:
    """The same sample value for the numpy reference: float arrays rounded to `dtype`, in float64."""
    if isinstance(a, (Idx, Mask)):
        return np.asarray(a)
    if not isinstance(a, np.ndarray):
        return a
    a = np.asarray(a).astype(dtype.np)
    return a.astype(np.float64) if dtype.is_floating else a


def _outputs(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def compare(info: OpInfo, sample: S, dtype, layout: str) -> None:
    args = [to_hybrid(a, dtype, layout) for a in sample.args]
    kwargs = {k: to_hybrid(v, dtype, layout) for k, v in sample.kwargs.items()}
    got = _outputs(info.op(*args, **kwargs))
    rargs = [to_ref(a, dtype) for a in sample.args]
    rkwargs = {k: to_ref(v, dtype) for k, v in sample.kwargs.items()}
    with np.errstate(all="ignore"):
        want = _outputs(info.ref(*rargs, **rkwargs))
    assert len(got) == len(want), f"{info.name}: {len(got)} outputs, reference has {len(want)}"
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert isinstance(g, hybrid.Tensor), f"{info.name}: returned {type(g)}"
        assert tuple(g.shape) == w.shape, f"{info.name}{sample}: shape {g.shape} != {w.shape}"
        if len(got) == 1:
            want_dt = info.out_dtype(dtype) if info.out_dtype else dtype
            assert g.dtype is want_dt, f"{info.name}: dtype {g.dtype} != {want_dt}"
        gv = g.detach().numpy()
        if gv.dtype.kind == "f" or w.dtype.kind == "f":
            tol = 1e-2 if g.dtype is F16 else 1
            np.testing.assert_allclose(gv.astype(np.float64), w.astype(np.float64),
                                       rtol=info.rtol * tol * (100 if g.dtype is F16 else 1),
                                       atol=info.atol * (100 if g.dtype is F16 else 1),
                                       equal_nan=True, err_msg=f"{info.name} {sample} {dtype}")
        else:
            np.testing.assert_array_equal(gv, w.astype(gv.dtype), err_msg=f"{info.name} {sample}")


def _forward_params():
    for info in OPS:
        for dt in info.dtypes:
            yield pytest.param(info, dt, id=f"{info.name}-{dt.name}")


@pytest.mark.parametrize("info,dtype", list(_forward_params()))
def test_forward(info: OpInfo, dtype) -> None:
    """Every sample matches the float64 numpy reference (float32 tolerances)."""
    rng = np.random.default_rng(0)
    for sample in info.samples(rng, dtype):
        compare(info, sample, dtype, "contiguous")


# NOTE: not view: on a transposed or strided input it raises, as PyTorch's view does
# (tests/hybrid/test_reliability.py::test_view_of_transpose_raises)
@pytest.mark.parametrize("info", [o for o in OPS if o.name != "view"], ids=lambda o: o.name)
def test_noncontiguous(info: OpInfo) -> None:
    """The same samples on transposed and strided-sliced views give the same results."""
    rng = np.random.default_rng(1)
    dt = info.dtypes[0]
    for sample in info.samples(rng, dt):
        for layout in ("transposed", "strided"):
            compare(info, sample, dt, layout)


@pytest.mark.parametrize("info", [o for o in OPS if o.grad], ids=lambda o: o.name)
def test_gradient(info: OpInfo) -> None:
    """Autograd matches central finite differences in float64 on every sample."""
    rng = np.random.default_rng(2)
    for sample in info.samples(rng, F64):
        args = [np.asarray(a, dtype=np.float64) if isinstance(a, np.ndarray)
                and not isinstance(a, (Idx, Mask)) else to_hybrid(a, F64) for a in sample.args]
        kwargs = sample.kwargs
        if not any(isinstance(a, np.ndarray) and not isinstance(a, hybrid.Tensor) for a in args):
            continue
        gradcheck(lambda *xs: info.op(*xs, **kwargs), *args, rtol=1e-5, atol=1e-6)


def test_table_covers_public_ops() -> None:
    """Every op named in the issue has at least one row."""
    names = {o.name.split("_dunder")[0] for o in OPS}
    wanted = """add sub mul div pow_scalar_exp pow_scalar_base pow_tensor maximum minimum remainder
        floor_divide atan2 exp log sqrt rsqrt abs sign sin cos tan tanh sigmoid erf log1p expm1
        reciprocal floor ceil round trunc relu clamp where lerp isnan isinf isfinite logical_and
        logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not eq ne lt
        le gt ge sum mean max_dim min_dim amax amin argmax argmin var std logsumexp prod all any
        reshape view permute transpose T expand squeeze unsqueeze flatten contiguous cat stack
        split chunk unbind pad repeat flip narrow matmul gather index_select scatter_add index_add
        masked_fill take""".split()
    assert not set(wanted) - names, set(wanted) - names
