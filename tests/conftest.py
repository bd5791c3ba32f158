"""Shared test setup: a hermetic environment, the installed package, every eager primitive
checked against its IR rule, and the `compiled_backend` fixture (see tests/README.md)."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import warnings

# --- hermetic runs: before hybrid is imported (hybrid.config reads the environment once) ---------
# NOTE: HYBRID_HYPOTHESIS_PROFILE is the test suite's own knob (not read by hybrid); it is read
# here, then every HYBRID_* variable is dropped so that a developer's HYBRID_CACHE_DIR,
# HYBRID_BACKEND, HYBRID_LOG, ... cannot change what the tests see.
HYPOTHESIS_PROFILE = os.environ.get("HYBRID_HYPOTHESIS_PROFILE", "ci")
# HYBRID_TEST_REQUIRE_TORCH=1 (the torch phase of .ci/run): torch must import, no silent skips.
REQUIRE_TORCH = os.environ.get("HYBRID_TEST_REQUIRE_TORCH", "") not in ("", "0")
# HYBRID_TEST_REQUIRE_MKL=1 (the MKL phase of .ci/run): the MKL provider tests may not skip.
# Passed on as TESTS_REQUIRE_MKL, which hybrid never reads, for tests/runtime/test_gemm_split.py.
if os.environ.get("HYBRID_TEST_REQUIRE_MKL", "") not in ("", "0"):
    os.environ["TESTS_REQUIRE_MKL"] = "1"
for _name in [k for k in os.environ if k.startswith("HYBRID_")]:
    del os.environ[_name]
# Compiled kernels go to a fresh cache private to this test session (always: never a user's).
os.environ["HYBRID_CACHE_DIR"] = tempfile.mkdtemp(prefix="hybrid-test-cache-")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))


def _installed_hybrid() -> bool:
    """Whether `hybrid` is importable without the source tree on sys.path (an installed wheel
    or an editable install)."""
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]
    try:
        spec = importlib.util.find_spec("hybrid")
        # NOTE: tests/hybrid/ would pass as a namespace package (no origin): not an install.
        return spec is not None and spec.origin not in (None, "namespace")
    finally:
        sys.path[:] = saved


if _installed_hybrid():
    # NOTE: `python -m pytest` puts the working directory (the repo root in CI) first on
    # sys.path, which would shadow the installed package with the source tree: drop it.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]
elif ROOT not in sys.path:
    sys.path.insert(0, ROOT)
if TESTS not in sys.path:  # `from gradcheck import gradcheck`
    sys.path.insert(0, TESTS)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import hybrid  # noqa: E402
from hybrid.ops.core import STATE  # noqa: E402

STATE.verify = True

try:
    from hypothesis import HealthCheck, settings

    _COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.data_too_large,
                                                          HealthCheck.filter_too_much])
    settings.register_profile("ci", max_examples=25, derandomize=True, **_COMMON)
    settings.register_profile("dev", max_examples=2000, **_COMMON)
    settings.load_profile(HYPOTHESIS_PROFILE)
except ImportError:  # hypothesis is a test extra; files that use it importorskip it
    pass


def pytest_report_header(config) -> str:
    """Say which hybrid the session imports (the installed package, not the source tree)."""
    return f"hybrid: {os.path.dirname(hybrid.__file__)}; hypothesis profile {HYPOTHESIS_PROFILE}"


def _names_torch(code) -> bool:
    """Whether a code object (or one nested in it) imports or names torch."""
    if "torch" in code.co_names or "torch" in code.co_consts:
        return True
    return any(_names_torch(c) for c in code.co_consts if hasattr(c, "co_names"))


def pytest_collection_modifyitems(config, items) -> None:
    """Every test that uses PyTorch as an oracle is marked `torch_oracle` (also unmarked ones:
    a module that binds `torch`, or a test function whose code names it)."""
    for item in items:
        fn = getattr(item, "function", None)
        module = getattr(item, "module", None)
        if (fn is not None and hasattr(fn, "__code__") and _names_torch(fn.__code__)) or (
                module is not None and "torch" in vars(module)):
            item.add_marker(pytest.mark.torch_oracle)


def pytest_sessionstart(session) -> None:
    """With HYBRID_TEST_REQUIRE_TORCH=1, stop at once if torch does not import."""
    if REQUIRE_TORCH and importlib.util.find_spec("torch") is None:
        pytest.exit("HYBRID_TEST_REQUIRE_TORCH=1 but torch is not installed", returncode=3)


@pytest.fixture(autouse=True)
def _clean_state():
    """Each test starts with grad mode on, verification on and the default dtype float32."""
    STATE.grad = True
    STATE.verify = True
    yield
    STATE.grad = True
    hybrid.set_default_dtype(hybrid.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy generator with a fixed seed."""
    return np.random.default_rng(0)


# --- backends ------------------------------------------------------------------------------------

# NOTE: "cuda" joins this list when hybrid has a CUDA backend (config.backend = "cuda").
BACKENDS = ["native", "interpreter"]
FALLBACK_MESSAGE = "on the interpreter"


class NativeFallback(AssertionError):
    """A native compile fell back to the interpreter in a test that does not expect it."""


def _use_backend(request, monkeypatch, backend: str) -> None:
    """Set hybrid.config.backend for this test; on native, fail on a fallback (see below)."""
    monkeypatch.setattr(hybrid.config, "backend", backend)
    if backend == "native":
        _fail_on_fallback(request, monkeypatch)


@pytest.fixture(autouse=True)
def _native_fallback_fails(request, monkeypatch):
    """Every test that compiles without choosing a backend runs on native (the default), and a
    fallback to the interpreter fails it as in `compiled_backend`: a compiled test can never
    pass by silently running the reference."""
    if not {"compiled_backend", "run_mode"} & set(request.fixturenames):
        _fail_on_fallback(request, monkeypatch)


def _fail_on_fallback(request, monkeypatch) -> None:
    module = sys.modules["hybrid.compile"]
    original = module._executable
    expected = request.node.get_closest_marker("expect_fallback") is not None

    def checked_executable(graph, *args, **kwargs):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            out = original(graph, *args, **kwargs)
        for w in seen:
            fell_back = (issubclass(w.category, RuntimeWarning) and hybrid.config.backend ==
                         "native" and FALLBACK_MESSAGE in str(w.message))
            if fell_back and not expected:
                raise NativeFallback(f"native backend fell back: {w.message} (mark the test "
                                     "@pytest.mark.expect_fallback if that is intended)")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return out

    monkeypatch.setattr(module, "_executable", checked_executable)


@pytest.fixture(params=BACKENDS)
def compiled_backend(request, monkeypatch) -> str:
    """Runs the test once per backend (hybrid.config.backend). On "native", a compile that
    falls back to the interpreter (the RuntimeWarning of hybrid/compile.py `_executable`) fails
    the test unless it is marked `@pytest.mark.expect_fallback`; the warning is re-emitted then."""
    _use_backend(request, monkeypatch, request.param)
    return request.param


@pytest.fixture(params=["eager"] + BACKENDS)
def run_mode(request, monkeypatch) -> str:
    """"eager", or a backend as `compiled_backend` sets it: for tests that check eager and
    compiled results against the same independent reference (run them with `run_compiled`)."""
    if request.param != "eager":
        _use_backend(request, monkeypatch, request.param)
    return request.param
