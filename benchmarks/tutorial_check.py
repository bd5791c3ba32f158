"""The tutorial check as a table: for every re-created PyTorch tutorial script (tests/tutorials),
whether it runs eagerly on hybrid, whether its training step runs under @hybrid.compile, how many
compiled variants it needed, and, with PyTorch installed, whether its losses follow PyTorch's.

    python benchmarks/tutorial_check.py [name-substring ...]
"""

from __future__ import annotations

import os
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "tutorials")]

from tutorial_harness import (
    assert_same_run,
    assert_same_trend,
    assert_same_values,
    assert_trains,
    load_all,
    run,
)

import hybrid


def _first_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".splitlines()[0]
    return text[:110]


def check(entry, torch) -> dict:
    """One row: eager / compiled status, compiles, seconds, the first failure."""
    row = {"name": entry.name, "eager": "-", "compiled": "-", "compiles": "", "note": "",
           "trains": entry.trains}
    try:
        got, _, secs = run(entry, hybrid)
        if torch is not None:
            want, _, _ = run(entry, torch)
            if entry.trains:
                assert_same_trend(got, want)
            assert_same_values(got, want)
        elif entry.trains:
            assert_trains(got)
        row["eager"] = f"ok {secs:.1f}s"
    except Exception as e:  # noqa: BLE001  (a table of outcomes: report, go on)
        row["eager"] = "FAIL"
        row["note"] = _first_line(e)
        if os.environ.get("TUTORIAL_CHECK_TRACEBACK"):
            traceback.print_exc()
        return row
    if not entry.trains:
        return row
    try:
        compiled, compiles, secs = run(entry, hybrid, compiled=True)
        row["compiles"] = str(compiles)
        assert_same_run(compiled, got)
        row["compiled"] = f"ok {secs:.1f}s"
    except Exception as e:  # noqa: BLE001
        row["compiled"] = "FAIL"
        row["note"] = _first_line(e)
    return row


def main(argv: list[str]) -> int:
    try:
        import torch
    except ImportError:
        torch = None
    scripts = load_all()
    rows = [check(e, torch) for name, e in scripts.items()
            if not argv or any(a in name for a in argv)]
    width = max(len(r["name"]) for r in rows)
    print(f"{'script':<{width}}  {'eager':<9} {'compiled':<9} {'compiles':>8}  note")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['eager']:<9} {r['compiled']:<9} {r['compiles']:>8}  "
              f"{r['note']}")
    eager_ok = sum(r["eager"].startswith("ok") for r in rows)
    trains = sum(r["trains"] for r in rows)
    comp_ok = sum(r["compiled"].startswith("ok") for r in rows)
    print(f"\n{eager_ok}/{len(rows)} scripts run eagerly"
          f"{' with PyTorch-consistent results' if torch is not None else ''}; "
          f"{comp_ok}/{trains} training steps run compiled with eager's losses")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
