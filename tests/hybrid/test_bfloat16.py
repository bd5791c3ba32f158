"""bfloat16 (ml_dtypes' numpy dtype): storage, conversion, promotion, printing, finfo,
arithmetic and gradients in eager mode, compiled (on the interpreter, with its warning) and in
safetensors files, against an independent bit-level rounding and PyTorch."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F


def _round_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits by round-to-nearest-even on the raw bits (finite inputs)."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _values() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 1000)
    ties = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 3.0, 0.0, -0.0], np.float32)
    return np.concatenate([x.astype(np.float32), ties])


def test_conversion_rounds_to_nearest_even():
    x = _values()
    b = hybrid.tensor(x).bfloat16()
    assert b.dtype is hybrid.bfloat16 and b.element_size() == 2
    np.testing.assert_array_equal(b.numpy().view(np.uint16), _round_to_bf16_bits(x))
    back = b.float().numpy()
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.view(np.uint32), _round_to_bf16_bits(x).astype(np.uint32) << 16)
    assert b.to(hybrid.float64).dtype is hybrid.float64
    assert hybrid.tensor(x, dtype=hybrid.bfloat16).numpy().view(np.uint16).tolist() == \
        _round_to_bf16_bits(x).tolist()
    assert hybrid.zeros(2, 3, dtype=hybrid.bfloat16).dtype is hybrid.bfloat16
    assert hybrid.from_numpy(b.numpy()).dtype is hybrid.bfloat16


def test_conversion_promotion_finfo_and_repr_match_torch():
    torch = pytest.importorskip("torch")
    x = _values()
    tb = torch.tensor(x).bfloat16()
    np.testing.assert_array_equal(hybrid.tensor(x).bfloat16().float().numpy(), tb.float().numpy())
    h, t = hybrid.tensor([1.5, -2.25]).bfloat16(), torch.tensor([1.5, -2.25]).bfloat16()
    pairs = [
        (h + hybrid.tensor([1.0], dtype=hybrid.float16), t + torch.tensor([1.0]).half()),
        (h + hybrid.tensor([1.0]), t + torch.tensor([1.0])),
        (h + hybrid.tensor([1]), t + torch.tensor([1])),
        (h * 2.5, t * 2.5),
        (h + hybrid.tensor(1.0, dtype=hybrid.float64), t + torch.tensor(1.0, dtype=torch.float64)),
    ]
    for a, b in pairs:
        assert a.dtype.name == str(b.dtype).removeprefix("torch.")
    assert hybrid.promote_types(hybrid.bfloat16, hybrid.float16) is hybrid.float32
    fi, ft = hybrid.finfo(hybrid.bfloat16), torch.finfo(torch.bfloat16)
    assert (fi.eps, fi.max, fi.tiny, fi.resolution, fi.bits) == \
        (ft.eps, ft.max, ft.tiny, ft.resolution, ft.bits)
    assert repr(hybrid.tensor([1.0, 2.5, 3.14159]).bfloat16()) == \
        repr(torch.tensor([1.0, 2.5, 3.14159]).bfloat16()).replace("torch.", "hybrid.")


def test_arithmetic_and_gradients_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a32, b32 = rng.standard_normal((16, 64)).astype(np.float32), rng.standard_normal((64, 8))
    a, b = hybrid.tensor(a32).bfloat16(), hybrid.tensor(b32.astype(np.float32)).bfloat16()
    ta, tb = torch.tensor(a32).bfloat16(), torch.tensor(b32.astype(np.float32)).bfloat16()

    def same(h, t, ulps=0):
        assert h.dtype is hybrid.bfloat16
        hv, tv = h.detach().float().numpy(), t.detach().float().numpy()
        np.testing.assert_allclose(hv, tv, rtol=ulps * 2 ** -7, atol=ulps * 2 ** -7)

    same(a * b[:16, :1] + a, ta * tb[:16, :1] + ta)  # elementwise: exact
    same(a @ b, ta @ tb)  # products accumulated in float32, rounded once: exact
    same(a.sum(1), ta.sum(1), ulps=1)  # float32 accumulation, as torch
    same(a.mean(), ta.mean(), ulps=1)
    same(F.softmax(a, -1), torch.softmax(ta, -1), ulps=1)
    a.requires_grad_()
    ta.requires_grad_()
    (a * a).sum().backward()
    (ta * ta).sum().backward()
    same(a.grad, ta.grad)


@pytest.mark.expect_fallback
def test_compiled_runs_on_the_interpreter_with_a_warning_and_matches_eager():
    x = hybrid.tensor(np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)).bfloat16()

    def f(x):
        return F.gelu(x) * 2 + x.sum(0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = hybrid.compile(f)(x)
    assert any("bfloat16" in str(w.message) for w in caught)
    np.testing.assert_array_equal(got.numpy().view(np.uint16), f(x).numpy().view(np.uint16))


def test_safetensors_round_trip_and_torch_files(tmp_path):
    x = hybrid.tensor(_values()[:12].reshape(3, 4)).bfloat16()
    path = tmp_path / "w.safetensors"
    hybrid.save({"w": x, "step": 3}, path)
    back = hybrid.load(path)
    assert back["w"].dtype is hybrid.bfloat16 and back["step"] == 3
    np.testing.assert_array_equal(back["w"].numpy().view(np.uint16), x.numpy().view(np.uint16))
    buf = io.BytesIO(path.read_bytes())
    np.testing.assert_array_equal(hybrid.load(buf)["w"].float().numpy(), x.float().numpy())
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    t = st.load_file(str(path))["w"]  # hybrid's file read by torch
    assert t.dtype == torch.bfloat16
    np.testing.assert_array_equal(t.float().numpy(), x.float().numpy())
    st.save_file({"w": torch.arange(6.0).reshape(2, 3).bfloat16()}, str(tmp_path / "t.st"))
    w = hybrid.load(tmp_path / "t.st")["w"]  # torch's file read by hybrid
    assert w.dtype is hybrid.bfloat16 and w.float().tolist() == [[0, 1, 2], [3, 4, 5]]


def test_module_bfloat16_converts_parameters_and_buffers():
    m = hybrid.nn.Sequential(hybrid.nn.Linear(3, 2), hybrid.nn.BatchNorm1d(2))
    assert m.bfloat16() is m
    assert {p.dtype for p in m.parameters()} == {hybrid.bfloat16}
    assert m[1].running_mean.dtype is hybrid.bfloat16
    y = m(hybrid.randn(4, 3).bfloat16())
    assert y.dtype is hybrid.bfloat16 and y.shape == (4, 2)
