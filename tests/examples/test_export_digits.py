"""examples/export_digits.py as a user runs it: train, export, reload in a new process, hybrid-run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


@pytest.mark.skipif(sys.platform != "linux", reason="exports link ELF objects")
def test_export_digits_runs_three_ways(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "export_digits.py"),
                           "--epochs", "3", "--out", str(tmp_path / "d.hyb")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert float(re.search(r"accuracy (\d\.\d+)", out).group(1)) > 0.9
    assert "max |exported - eager| 0.00e+00" in out
    assert "new process: 100% of predictions identical" in out
    assert "max |hybrid-run - in-process| 0.00e+00" in out
