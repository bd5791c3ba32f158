"""Shared by the @hybrid.compile guard tests (test_compile_guards.py, test_compile_cache.py): a
tensor's values as numpy, and the recompile log (the log_recompiles fixture and its lines)."""

from __future__ import annotations

import logging

import pytest

from hybrid.config import config


def arr(t):
    return t.detach().numpy()


# NOTE: registered as `log_recompiles`; the tests import log_recompiles_fixture, so that their
# `log_recompiles` parameter does not shadow an import.
@pytest.fixture(name="log_recompiles")
def log_recompiles_fixture(caplog):
    old = config.log_recompiles
    config.log_recompiles = True
    caplog.set_level(logging.INFO, logger="hybrid")
    yield caplog
    config.log_recompiles = old


def recompile_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "hybrid" and r.getMessage().startswith("recompiling")]
