"""One test per README claim that had none: random creation (randperm, normal, *_like,
Generator under compile), set_num_threads, a compiled function's describe / kernel_count /
memory_plan, HYBRID_LOG=graphs and HYBRID_BACKEND (in a subprocess), float16 compiled,
safetensors round trips of float16 and int32, DLPack for bool / float16 / non-contiguous / 0-d,
the disk cache reused by @hybrid.compile in a new process, and gradients of nan_to_num and casts.
(Known-answer and distribution tests of the random ops: test_random_spec.py; float16 in depth:
test_float16.py.)"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import gradcheck
from subproc import run_python
from tolerance import assert_matches_eager

import hybrid as h
import hybrid.nn.functional as F


def arr(t):
    return t.detach().numpy()


# --- creation: randperm, normal, the *_like forms, Generator under compile -----------------------


def test_randperm_is_a_reproducible_permutation():
    h.manual_seed(3)
    p = h.randperm(50)
    assert p.dtype is h.int64 and sorted(p.tolist()) == list(range(50))
    assert p.tolist() != list(range(50))
    h.manual_seed(3)
    assert h.randperm(50).tolist() == p.tolist()
    assert h.randperm(50).tolist() != p.tolist()  # the stream moved on


def test_normal_has_the_requested_mean_std_and_shape():
    h.manual_seed(0)
    z = h.normal(3.0, 0.25, (200, 50))
    assert z.shape == (200, 50) and z.dtype is h.float32
    assert abs(arr(z).mean() - 3.0) < 0.01 and abs(arr(z).std() - 0.25) < 0.005


def test_like_forms_take_shape_dtype_and_device_from_their_argument():
    x = h.zeros(2, 3, dtype=h.float64)
    for fn in (h.rand_like, h.randn_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype is h.float64 and y.device == x.device
        assert np.unique(arr(y)).size == 6
    r = h.randint_like(h.zeros(4, 5, dtype=h.int32), 2, 9)
    assert r.shape == (4, 5) and r.dtype is h.int32 and 2 <= arr(r).min() and arr(r).max() < 9


def test_generator_under_compile_draws_what_eager_draws(compiled_backend):
    g_eager, g_comp = h.Generator(5), h.Generator(5)

    def f(x, g):
        return x * h.randn(3, 4, generator=g)

    cf = h.compile(f)
    x = h.ones(3, 4)
    for _ in range(3):
        np.testing.assert_array_equal(arr(cf(x, g_comp)), arr(f(x, g_eager)))
    assert g_comp.get_state().tolist() == g_eager.get_state().tolist() == [5, 3 * 24]


# --- threads and introspection -----------------------------------------------------------------


def test_set_num_threads_is_read_back_and_results_do_not_depend_on_it():
    before = h.get_num_threads()
    x = h.randn(512, 256)
    cf = h.compile(lambda a: (a @ a.T).relu().sum(1))
    try:
        h.set_num_threads(1)
        assert h.get_num_threads() == 1
        one = arr(cf(x))
        h.set_num_threads(2)
        assert h.get_num_threads() == 2
        two = arr(cf(x))
    finally:
        h.set_num_threads(before)
    assert h.get_num_threads() == before
    np.testing.assert_allclose(one, two, rtol=1e-6)
    with pytest.raises((ValueError, h.HybridError, TypeError)):
        h.set_num_threads(0)


def test_describe_kernel_count_and_memory_plan(compiled_backend):
    w = h.randn(16, 8)

    @h.compile
    def f(x):
        return F.softmax(x @ w, -1).relu().sum()

    assert "not compiled" in f.describe()
    f(h.randn(4, 16))
    text = f.describe()
    if compiled_backend == "interpreter":
        assert f.kernel_count is None and f.memory_plan is None
        assert "matmul" in text
        return
    assert isinstance(f.kernel_count, int) and 1 <= f.kernel_count <= 6
    plan = f.memory_plan
    assert 0 < plan.peak_bytes <= plan.arena_bytes <= plan.naive_bytes
    assert "arena" in plan.describe()
    assert "kernel" in text and "arena" in text and "f32[4,8]" in text


# --- environment variables, in a fresh process -------------------------------------------------

GRAPH_CHILD = """
import hybrid as h
f = h.compile(lambda x: (x * 2.0).exp().sum())
f(h.ones(3, 5))
print("backend", h.config.backend, f.kernel_count)
"""


def test_env_hybrid_log_graphs_prints_the_compiled_graph():
    r = run_python(GRAPH_CHILD, HYBRID_LOG="graphs")
    assert r.returncode == 0, r.stderr
    assert "f32[3,5]" in r.stderr and "exp" in r.stderr and "compiled" in r.stderr
    quiet = run_python(GRAPH_CHILD)
    assert quiet.returncode == 0 and "f32[3,5]" not in quiet.stderr


@pytest.mark.parametrize("env, backend", [(None, "native"), ("native", "native"),
                                          ("interpreter", "interpreter")])
def test_env_hybrid_backend_picks_the_backend(env, backend):
    r = run_python(GRAPH_CHILD, **({} if env is None else {"HYBRID_BACKEND": env}))
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:2] == ["backend", backend]
    assert (words[2] == "None") == (backend == "interpreter")


DISK_CACHE_CHILD = """
import hybrid as h
f = h.compile(lambda x, y: (x @ y).tanh().sum(0))
out = f(h.ones(8, 4), h.ones(4, 3))
print([s.name for s in f.graphs][-1])
print(out.tolist())
"""


def test_disk_cache_is_reused_by_a_new_process(tmp_path):
    cache = str(tmp_path / "cache")
    first = run_python(DISK_CACHE_CHILD, HYBRID_CACHE_DIR=cache)
    second = run_python(DISK_CACHE_CHILD, HYBRID_CACHE_DIR=cache)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.split("\n")[0] == "native: LLVM optimize and load"
    assert second.stdout.split("\n")[0] == "native: from the disk cache"
    assert first.stdout.split("\n")[1] == second.stdout.split("\n")[1]
    assert os.listdir(cache)


# --- float16 compiled, safetensors, DLPack -----------------------------------------------------


def test_float16_compiled_function_and_gradient(compiled_backend):
    a = (np.random.default_rng(0).standard_normal((6, 7)) * 2).astype(np.float16)

    def step(x):
        loss = (x.sin() * x).sum()
        loss.backward()
        return loss

    xe = h.tensor(a, requires_grad=True)
    xc = h.tensor(a, requires_grad=True)
    le, lc = step(xe), h.compile(step)(xc)
    assert lc.dtype is h.float16 and xc.grad.dtype is h.float16
    np.testing.assert_allclose(arr(lc), arr(le), rtol=2e-3)  # the sum rounds once or twice
    assert_matches_eager(xc.grad, xe.grad)


def test_safetensors_round_trip_of_float16_int32_and_friends(tmp_path):
    from safetensors.numpy import load_file

    rng = np.random.default_rng(1)
    tensors = {
        "half": h.tensor(rng.standard_normal((3, 4)).astype(np.float16)),
        "int": h.tensor(rng.integers(-2**31, 2**31 - 1, (5,), dtype=np.int32)),
        "mask": h.tensor(rng.random(6) < 0.5),
        "special": h.tensor(np.array([np.nan, -0.0, np.inf, 65504], np.float16)),
    }
    path = str(tmp_path / "w.safetensors")
    h.save(tensors, path)
    back = h.load(path)
    for k, t in tensors.items():
        assert back[k].dtype is t.dtype, k
        np.testing.assert_array_equal(arr(back[k]).view(np.uint8), arr(t).view(np.uint8), k)
    raw = load_file(path)  # the file is plain safetensors, readable without hybrid
    assert raw["half"].dtype == np.float16 and raw["int"].dtype == np.int32
    np.testing.assert_array_equal(raw["int"], arr(tensors["int"]))


@pytest.mark.parametrize("name", ["bool", "float16", "non_contiguous", "zero_d", "negative"])
def test_dlpack_shares_memory_for_every_kind(name):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    a = {"bool": base > 10, "float16": base.astype(np.float16), "non_contiguous": base[:, ::2].T,
         "zero_d": np.array(2.5, np.float64), "negative": base[::-1]}[name]
    t = h.from_dlpack(a)
    assert t.shape == a.shape and t.dtype.np == a.dtype
    np.testing.assert_array_equal(arr(t), a)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, a)
    np.testing.assert_array_equal(back, a)
    if a.ndim:
        a[(0,) * a.ndim] = not a[(0,) * a.ndim] if a.dtype == bool else 7
        assert arr(t)[(0,) * a.ndim] == a[(0,) * a.ndim]


# --- gradients of nan_to_num and casts ---------------------------------------------------------


def test_nan_to_num_gradient_passes_finite_values_only():
    gradcheck(lambda x: h.nan_to_num(x * 2.0), np.array([0.5, -1.5, 3.0]))
    x = h.tensor([1.0, np.nan, np.inf, -np.inf, -2.0], requires_grad=True)
    h.nan_to_num(x, nan=0.0, posinf=9.0, neginf=-9.0).mul(h.tensor([1., 2., 3., 4., 5.])).sum() \
        .backward()
    np.testing.assert_array_equal(arr(x.grad), [1.0, 0.0, 0.0, 0.0, 5.0])  # as PyTorch


@pytest.mark.parametrize("cast", ["float", "double", "half"])
def test_cast_gradients_flow_back_in_the_source_dtype(cast):
    x = h.tensor(np.array([0.5, -1.25, 3.0], np.float32), requires_grad=True)
    y = getattr(x, cast)()
    (y * y).sum().backward()
    assert x.grad.dtype is h.float32
    np.testing.assert_allclose(arr(x.grad), 2 * arr(x), rtol=1e-3 if cast == "half" else 1e-7)
    # finite differences through the cast: a step of many of its ulps
    eps, rtol = {"float": (1e-3, 1e-3), "double": (1e-6, 1e-5), "half": (1e-2, 0.1)}[cast]
    gradcheck(lambda v: getattr(v, cast)().double().sin(), np.array([0.3, -0.7]), eps=eps,
              rtol=rtol, atol=1e-3)
    assert not x.long().requires_grad  # integer results carry no gradient
