"""The on-disk compile cache: a second executable (and a second process) loads the plan and the
object code; damaged entries are detected and rebuilt; concurrent compiles of one graph both
succeed and leave one valid entry; the key depends on the target."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from native import assert_match, reference

import compiler.backend_cpu as backend_cpu
from compiler.backend_cpu import CpuExecutable
from compiler.codegen.cache import DiskCache
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.types import DType, TensorType

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A graph with a constant (stored as .npy), a GEMM and a softmax kernel. The child processes
# build the same graph from this source.
GRAPH_SRC = '''
import numpy as np
from compiler.ir.graph import Graph
from compiler.ir.ops import Literal, Op
from compiler.ir.types import DType, TensorType

def make_graph():
    f32 = DType.float32
    g = Graph(name="cached")
    x = g.add_input(TensorType((6, 5), f32), "x")
    w = g.add_input(TensorType((5, 7), f32), "w")
    c = g.add(Op.CONSTANT, value=Literal(np.arange(7, dtype=np.float32)), shape=(7,), dtype=f32)
    h = g.add(Op.ADD, [g.add(Op.MATMUL, [x, w]), c])
    m = g.add(Op.MAX, [h], axes=(1,))
    e = g.add(Op.EXP, [g.add(Op.SUB, [h, m])])
    g.set_outputs([g.add(Op.DIV, [e, g.add(Op.SUM, [e], axes=(1,))])])
    return g

def make_inputs():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((6, 5)).astype(np.float32),
            rng.standard_normal((5, 7)).astype(np.float32)]
'''
_ns: dict = {}
exec(GRAPH_SRC, _ns)
make_graph, make_inputs = _ns["make_graph"], _ns["make_inputs"]

CHILD = GRAPH_SRC + '''
import json, sys
from compiler.backend_cpu import CpuExecutable
from compiler.codegen.cache import DiskCache
ex = CpuExecutable(make_graph(), cache=DiskCache(sys.argv[1]))
out = ex(make_inputs())[0]
print(json.dumps({"from_cache": ex.from_cache, "sum": float(out.sum())}))
'''


def entries(root: str) -> list[str]:
    return [d for d in glob.glob(os.path.join(root, "v*", "*", "*")) if os.path.isdir(d)
            and not os.path.basename(d).startswith(".tmp")]


def run_child(root: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", CHILD, root], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def child_result(p: subprocess.Popen) -> dict:
    import json

    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def check(ex: CpuExecutable) -> None:
    ins = make_inputs()
    assert_match(ex(ins), reference(make_graph(), ins), 1e-5, 1e-6)


def test_second_executable_loads_from_cache(tmp_path):
    cache = DiskCache(str(tmp_path))
    first = CpuExecutable(make_graph(), cache=cache)
    assert not first.from_cache
    assert len(entries(str(tmp_path))) == 1
    second = CpuExecutable(make_graph(), cache=cache)
    assert second.from_cache and second.program is None  # nothing was fused or compiled
    check(first)
    check(second)
    assert second.kernel_count == first.kernel_count
    assert_match(second(make_inputs()), first(make_inputs()))


def test_env_var_chooses_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    CpuExecutable(make_graph())
    assert len(entries(str(tmp_path))) == 1
    assert CpuExecutable(make_graph()).from_cache


def test_second_process_reuses_the_entry(tmp_path):
    CpuExecutable(make_graph(), cache=DiskCache(str(tmp_path)))
    res = child_result(run_child(str(tmp_path)))
    assert res["from_cache"] is True
    want = reference(make_graph(), make_inputs())[0]
    assert abs(res["sum"] - float(want.sum())) < 1e-4


def _flip(path: str) -> None:
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(path, "wb").write(bytes(data))


def _truncate(path: str) -> None:
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])


def _garbage_meta(path: str) -> None:
    open(path, "w").write("{not json")


@pytest.mark.parametrize("name,damage", [
    ("kernels.o", _flip), ("plan.json", _flip), ("const0.npy", _flip), ("kernels.o", _truncate),
    ("plan.json", _truncate), ("meta.json", os.remove), ("plan.json", os.remove),
    ("meta.json", _garbage_meta), ("meta.json", _truncate),
])
def test_damaged_entry_is_rebuilt(tmp_path, name, damage):
    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    (entry,) = entries(str(tmp_path))
    damage(os.path.join(entry, name))
    ex = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache
    check(ex)
    again = CpuExecutable(make_graph(), cache=cache)  # the rebuilt entry is valid
    assert again.from_cache
    check(again)


def test_consistent_but_wrong_entry_is_rebuilt(tmp_path):
    """An entry whose checksums match but whose plan does not parse (say, written by a buggy
    version) is rebuilt too."""
    import hashlib
    import json

    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    (entry,) = entries(str(tmp_path))
    bad = b'{"version": 1, "nonsense": true}'
    open(os.path.join(entry, "plan.json"), "wb").write(bad)
    meta_path = os.path.join(entry, "meta.json")
    meta = json.load(open(meta_path))
    meta["files"]["plan.json"] = hashlib.sha256(bad).hexdigest()
    json.dump(meta, open(meta_path, "w"))
    ex = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache
    check(ex)


def test_concurrent_compiles_leave_one_valid_entry(tmp_path):
    procs = [run_child(str(tmp_path)) for _ in range(2)]
    results = [child_result(p) for p in procs]
    sums = {round(r["sum"], 5) for r in results}
    assert len(sums) == 1
    assert len(entries(str(tmp_path))) == 1
    leftovers = glob.glob(os.path.join(str(tmp_path), "v*", "*", ".tmp-*"))
    assert leftovers == []
    ex = CpuExecutable(make_graph(), cache=DiskCache(str(tmp_path)))
    assert ex.from_cache
    check(ex)


def test_key_depends_on_target(tmp_path, monkeypatch):
    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    key1 = backend_cpu.graph_key(make_graph())
    real = backend_cpu.target_id()
    monkeypatch.setattr(backend_cpu, "target_id", lambda: real.replace("|", "|-avx512f,", 1))
    key2 = backend_cpu.graph_key(make_graph())
    assert key1 != key2
    ex = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache
    assert len(entries(str(tmp_path))) == 2


def test_key_ignores_source_lines_and_names():
    g1, g2 = make_graph(), make_graph()
    g2.name = "other"
    g2.input_names = ["a", "b"]
    assert backend_cpu.graph_key(g1) == backend_cpu.graph_key(g2)


def test_use_cache_false_writes_nothing(tmp_path):
    ex = CpuExecutable(make_graph(), cache=DiskCache(str(tmp_path)), use_cache=False)
    assert not ex.from_cache and entries(str(tmp_path)) == []
    check(ex)


def test_unwritable_cache_still_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ex = CpuExecutable(make_graph(), cache=DiskCache(str(blocker)))
    check(ex)
