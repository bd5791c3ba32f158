"""parallel_add_f32: a native kernel split over the pool, checked against numpy."""

import hybrid_runtime as rt
import numpy as np
import pytest


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("size", [0, 1, 7, (1 << 14) + 1, 1 << 20])
def test_matches_numpy(threads, num_threads, size):
    threads(num_threads)
    rng = np.random.default_rng(size)
    a = rng.standard_normal(size).astype(np.float32)
    b = rng.standard_normal(size).astype(np.float32)
    out = np.full(size, np.nan, dtype=np.float32)
    result = rt.parallel_add_f32(a, b, out)
    assert result is out
    np.testing.assert_array_equal(out, a + b)


def test_multidimensional_and_converted_inputs(threads):
    threads(2)
    a = np.arange(600 * 700, dtype=np.float64).reshape(600, 700)  # float64: converted
    b = np.ones((600, 700), dtype=np.float32)[:, ::-1]  # non-contiguous: converted
    out = np.empty((600, 700), dtype=np.float32)
    rt.parallel_add_f32(a, b, out)
    np.testing.assert_array_equal(out, a.astype(np.float32) + 1.0)


def test_out_may_alias_an_input(threads):
    threads(2)
    a = np.arange(1 << 16, dtype=np.float32)
    expected = a + a
    rt.parallel_add_f32(a, a, a)
    np.testing.assert_array_equal(a, expected)


def test_shape_mismatch_names_both_shapes():
    a = np.zeros((2, 3), dtype=np.float32)
    b = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        rt.parallel_add_f32(a, b, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"out \(5,\)"):
        rt.parallel_add_f32(a, a, np.zeros(5, dtype=np.float32))


def _read_only(array):
    array.flags.writeable = False
    return array


@pytest.mark.parametrize(
    "out",
    [
        np.zeros(4, dtype=np.float64),
        np.zeros(8, dtype=np.float32)[::2],
        _read_only(np.zeros(4, dtype=np.float32)),
    ],
    ids=["wrong-dtype", "strided", "read-only"],
)
def test_out_must_be_writeable_contiguous_float32(out):
    a = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError, match="out must be"):
        rt.parallel_add_f32(a, a, out)
