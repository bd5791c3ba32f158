"""hybrid/_native.py: re-exports the extension, and explains how to build it when missing."""

import importlib.util
import pathlib
import sys

import hybrid_runtime
import pytest

NATIVE_PY = pathlib.Path(__file__).resolve().parents[2] / "hybrid" / "_native.py"


def load_native_module():
    """Imports hybrid/_native.py by path, independent of hybrid/__init__.py."""
    spec = importlib.util.spec_from_file_location("_hybrid_native_under_test", NATIVE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reexports_the_extension():
    native = load_native_module()
    assert native.runtime is hybrid_runtime
    assert native.set_num_threads is hybrid_runtime.set_num_threads
    assert native.get_num_threads is hybrid_runtime.get_num_threads


def test_missing_extension_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "hybrid_runtime", None)  # makes the import fail
    with pytest.raises(ImportError) as info:
        load_native_module()
    message = str(info.value)
    assert "hybrid_runtime" in message
    assert "not built" in message
    assert "pip install ." in message
    assert "--no-build-isolation -e ." in message
    assert "Original error: ModuleNotFoundError" in message
    assert isinstance(info.value.__cause__, ImportError)
