"""Shared fixtures for the native runtime tests."""

import hybrid_runtime  # a missing extension must fail loudly here, never skip
import pytest


@pytest.fixture
def threads():
    """Returns a setter for the pool size; restores the previous size afterwards."""
    previous = hybrid_runtime.get_num_threads()
    yield hybrid_runtime.set_num_threads
    hybrid_runtime.set_num_threads(previous)
