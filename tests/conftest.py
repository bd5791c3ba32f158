"""Shared test setup: every eager primitive checks its output type against its IR rule."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:  # `from gradcheck import gradcheck`
    sys.path.insert(0, TESTS)

import tempfile  # noqa: E402

# Compiled kernels go to a cache private to this test session, not the user's ~/.cache/hybrid.
os.environ.setdefault("HYBRID_CACHE_DIR", tempfile.mkdtemp(prefix="hybrid-test-cache-"))

import hybrid  # noqa: E402
from hybrid.ops.core import STATE  # noqa: E402

STATE.verify = True


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
