"""The test session is hermetic (tests/conftest.py): no HYBRID_* setting of the developer's
leaks in, the compile cache is a fresh directory of this session, and the hybrid under test is
the installed package (a wheel, or an editable install), not a source tree that shadows it."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile

import pytest

import hybrid


def test_no_hybrid_variable_but_a_fresh_cache_dir():
    names = sorted(k for k in os.environ if k.startswith("HYBRID_"))
    assert names == ["HYBRID_CACHE_DIR"]
    cache = os.environ["HYBRID_CACHE_DIR"]
    assert os.path.basename(cache).startswith("hybrid-test-cache-")
    assert os.path.dirname(cache) == tempfile.gettempdir()
    assert hybrid.config.cache_dir == cache
    assert hybrid.config.backend == "native" and hybrid.config.recompile_limit == 8
    assert not hybrid.config.log_recompiles and not hybrid.config.log_graphs


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _resolve(path: list) -> str | None:
    """Where `import hybrid` would load from with this sys.path (ignoring the loaded module)."""
    saved = list(sys.path)
    sys.path[:] = path
    try:
        for finder in sys.meta_path:
            spec = finder.find_spec("hybrid", None) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return spec.origin if spec.origin not in (None, "namespace") else None
        return None
    finally:
        sys.path[:] = saved


def test_the_installed_package_is_imported():
    """hybrid comes from the installed package when one exists (the source root is then off
    sys.path); from the source root only when nothing is installed."""
    without_root = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]
    installed = _resolve(without_root)
    if installed is not None:
        assert os.path.samefile(installed, hybrid.__file__)
        assert len(without_root) == len(sys.path)  # conftest took the root off
    else:
        assert os.path.dirname(os.path.dirname(os.path.abspath(hybrid.__file__))) == ROOT


def test_child_processes_import_the_same_packages():
    """A child started by tests/subproc.py imports the hybrid, compiler and runtime this session
    tests, never a source tree put ahead of them."""
    from subproc import run_python

    import compiler
    import hybrid_runtime

    code = ("import sys, hybrid, compiler, hybrid_runtime\n"
            "print(hybrid.__file__); print(compiler.__file__); print(hybrid_runtime.__file__)")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    child = done.stdout.split()
    for theirs, ours in zip(child, (hybrid.__file__, compiler.__file__, hybrid_runtime.__file__),
                            strict=True):
        assert os.path.samefile(theirs, ours), (theirs, ours)


# --- the native-fallback rule (tests/conftest.py) ---------------------------------------------


def _force_fallback(monkeypatch):
    """Make the native backend refuse every graph, as it does one with an op it cannot lower."""
    import compiler.backend_cpu as backend_cpu

    monkeypatch.setattr(backend_cpu, "unsupported", lambda graph: ["an op for this test"])


def test_a_native_fallback_fails_a_test_that_compiles(monkeypatch):
    """Without any backend fixture, a compile that falls back to the interpreter raises the
    conftest's NativeFallback (so the test would fail), naming the warning."""
    _force_fallback(monkeypatch)
    f = hybrid.compile(lambda x: x * 2 + 1)
    with pytest.raises(AssertionError, match="native backend fell back.*on the interpreter") as e:
        f(hybrid.ones(3))
    assert type(e.value).__name__ == "NativeFallback"  # tests/conftest.py's, not a plain assert


@pytest.mark.expect_fallback
def test_expect_fallback_lets_the_interpreter_run_and_keeps_the_warning(monkeypatch):
    _force_fallback(monkeypatch)
    f = hybrid.compile(lambda x: x * 2 + 1)
    with pytest.warns(RuntimeWarning, match="on the interpreter"):
        assert f(hybrid.ones(3)).tolist() == [3.0, 3.0, 3.0]


def test_a_native_fallback_fails_under_compiled_backend_too(monkeypatch, compiled_backend):
    _force_fallback(monkeypatch)
    f = hybrid.compile(lambda x: x * 2 + 1)
    if compiled_backend == "native":
        with pytest.raises(AssertionError, match="native backend fell back") as e:
            f(hybrid.ones(3))
        assert type(e.value).__name__ == "NativeFallback"
        return
    assert f(hybrid.ones(3)).tolist() == [3.0, 3.0, 3.0]  # the interpreter never falls back


def test_config_cache_dir_moves_the_compile_cache(tmp_path, monkeypatch):
    """hybrid.config.cache_dir is read by the cache: set, a new compile writes its entry there."""
    import glob

    from compiler.codegen import cache as cache_mod

    monkeypatch.setattr(cache_mod, "_DIR_SET", [])  # restored after the test
    hybrid.config.cache_dir = str(tmp_path)
    assert hybrid.config.cache_dir == str(tmp_path)
    f = hybrid.compile(lambda x: x * 3.25 + 0.5)
    assert f(hybrid.ones(4)).tolist() == [3.75] * 4
    assert glob.glob(str(tmp_path / "v*" / "*" / "*")), "no entry written in the new directory"


def test_config_verify_turns_on_the_graph_verifier_too(monkeypatch):
    from compiler.passes import manager
    from hybrid.ops import core

    monkeypatch.setattr(manager, "_VERIFY_SET", [])
    monkeypatch.setattr(core, "_VERIFY", core._VERIFY)
    assert not manager.verify_enabled()  # HYBRID_VERIFY is cleared in the test session
    before = hybrid.config.verify
    try:
        hybrid.config.verify = True
        assert manager.verify_enabled()
        hybrid.config.verify = False
        assert not manager.verify_enabled()
    finally:
        hybrid.config.verify = before
