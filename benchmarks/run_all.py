"""Run every benchmark, print one markdown table, write benchmarks/results.md and
benchmarks/results.png.

Each suite (kernels, training, compile) runs in its own subprocess, so that one framework's
thread pools and JIT state do not leak into the next suite. Before each suite the script waits
(up to --max-wait seconds) for the 1-minute load average to drop below --max-load: the figures
are medians of interleaved runs, but a machine whose cores are busy with other work still
skews multi-threaded runtimes (spinning OpenMP / thread-pool workers) badly. The load average
at the start of each suite is recorded in the results.

A full run also replaces the table in README.md (between its benchmark markers).

Run: pip install ".[bench]" && python benchmarks/run_all.py [--repeats N] [--only kernels,...]
     [--with-overhead]   also run compile_overhead.py / eager_overhead.py when present and
                         append their output to results.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import Row, add_ratios, load_average, table  # noqa: E402

SUITES = {"kernels": "bench_kernels", "training": "bench_training", "compile": "bench_compile"}


def _suite_worker(name: str, repeats: int | None) -> None:
    import importlib

    mod = importlib.import_module(SUITES[name])
    rows = mod.run(repeats) if repeats else mod.run()
    print("ROWS " + json.dumps([dataclasses.asdict(r) for r in rows]))


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    t0 = time.time()
    while load_average() > max_load and time.time() - t0 < max_wait:
        time.sleep(5)
    return load_average()


def run_suite(name: str, repeats: int | None) -> list[Row]:
    cmd = [sys.executable, os.path.abspath(__file__), "--suite-worker", name]
    if repeats:
        cmd += ["--repeats", str(repeats)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("ROWS ")]
    if r.returncode != 0 or not lines:
        print(f"suite {name} failed (rc {r.returncode}):\n{r.stderr[-4000:]}", file=sys.stderr)
        return []
    fields = {f.name for f in dataclasses.fields(Row)}
    return [Row(**{k: v for k, v in d.items() if k in fields})
            for d in json.loads(lines[-1][5:])]


def chart(rows: list[Row], path: str) -> bool:
    """Grouped bars of every implementation's ratio to the best peer (log scale); hybrid's bars
    are drawn in a strong color, peers' in grey."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)", file=sys.stderr)
        return False
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.ratio is not None:
            groups.setdefault(r.group, []).append(r)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(groups)), 5.5))
    x = 0.0
    ticks, labels = [], []
    for g, rs in groups.items():
        w = 0.8 / len(rs)
        for i, r in enumerate(rs):
            color = "#d62728" if not r.peer else "#9e9e9e"
            ax.bar(x + i * w, r.ratio, w * 0.9, color=color)
            keep = r.impl.startswith("hybrid.compile (")  # the BLAS variant
            ax.text(x + i * w, r.ratio, r.impl if keep else r.impl.split(" (")[0], rotation=90,
                    fontsize=6, ha="center", va="bottom")
        ticks.append(x + 0.4 - w / 2)
        labels.append(g)
        x += 1.0
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("cost relative to the best peer (log; < 1 is better)")
    ax.set_title("hybrid (red) vs numpy / torch / jax (grey)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=None, help="samples per implementation")
    ap.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    ap.add_argument("--max-load", type=float, default=1.0)
    ap.add_argument("--max-wait", type=float, default=120.0)
    ap.add_argument("--with-overhead", action="store_true")
    ap.add_argument("--suite-worker", choices=sorted(SUITES))
    ap.add_argument("--only-print", action="store_true",
                    help="do not write the table into README.md (it is written after a full run)")
    a = ap.parse_args()
    if a.suite_worker:
        _suite_worker(a.suite_worker, a.repeats)
        return
    rows: list[Row] = []
    loads = {}
    for name in a.only.split(","):
        loads[name] = wait_for_quiet(a.max_load, a.max_wait)
        print(f"running {name} (load average {loads[name]:.2f}) ...", file=sys.stderr)
        rows += run_suite(name, a.repeats)
    add_ratios(rows)
    md = table(rows)
    print(md)
    header = [
        "# hybrid benchmark results", "",
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()}; "
        "hybrid.set_num_threads(2), torch.set_num_threads(2).",
        "Medians of samples taken in rounds (benchmarks/README.md); ratio = cost / best peer's "
        "cost (time, bytes) or best peer's GFLOP/s / this GFLOP/s, so < 1 beats every peer. "
        "Bold: hybrid.",
        "Load average at the start of each suite: "
        + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()) + ".", "",
    ]
    text = "\n".join(header) + "\n" + md + "\n"
    if a.with_overhead:
        for script in ("compile_overhead.py", "eager_overhead.py"):
            path = os.path.join(HERE, script)
            if os.path.exists(path):
                r = subprocess.run([sys.executable, path], capture_output=True, text=True)
                text += f"\n## {script}\n\n{r.stdout}\n"
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write(text)
    if chart(rows, os.path.join(HERE, "results.png")):
        print("wrote benchmarks/results.md and benchmarks/results.png", file=sys.stderr)
    if not a.only_print and set(a.only.split(",")) == set(SUITES):
        update_readme("\n\n".join(header[2:-1]) + "\n\n" + md +
                      "\n\n![hybrid vs peers](benchmarks/results.png)\n")


README = os.path.join(os.path.dirname(HERE), "README.md")
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def update_readme(block: str) -> None:
    """Replace the README's text between the benchmark markers with `block`."""
    with open(README) as f:
        text = f.read()
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} markers: not updated", file=sys.stderr)
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(README, "w") as f:
        f.write(f"{head}{START}\n{block}{END}{tail}")
    print("updated the table in README.md", file=sys.stderr)


if __name__ == "__main__":
    main()
