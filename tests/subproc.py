"""Run Python code in a fresh process that imports the same hybrid as this test session."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import hybrid


def run_python(code: str, timeout: float = 180, cwd: str | None = None,
               **env: str) -> subprocess.CompletedProcess:
    """`python -c code` with this session's (hermetic) environment plus `env`; the child's
    sys.path starts with the directory holding the hybrid package this session imported, and it
    runs in a scratch directory so that no source tree shadows it."""
    with tempfile.TemporaryDirectory(prefix="hybrid-subproc-") as scratch:
        return subprocess.run([sys.executable, "-c", code], env=child_env(**env),
                              capture_output=True, text=True, timeout=timeout,
                              cwd=cwd or scratch, check=False)


def child_env(**env: str) -> dict[str, str]:
    """This session's environment plus `env`, with PYTHONPATH set to the directory holding the
    hybrid package this session imported (the installed one in CI, not the source tree), for
    children started with subprocess.Popen; start them in a scratch directory (`cwd=`)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(hybrid.__file__)))
    return dict(os.environ, PYTHONPATH=package_parent, **env)
