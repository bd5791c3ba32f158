"""The on-disk compile cache: a second executable (and a second process) loads the plan and the
object code and computes the right numbers; damaged, forged, re-sealed and swapped entries are
removed and rebuilt; unsafe directories and secrets are refused with one warning; concurrent
compiles of one graph both succeed and leave one valid entry; the key depends on the target.
(tests/compiler/test_cache_fuzz.py throws many more attacks at it, each in its own process.)"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from native import assert_match, reference
from subproc import child_env

import compiler.backend_cpu as backend_cpu
from compiler.backend_cpu import CpuExecutable
from compiler.codegen import cache as cache_mod
from compiler.codegen.cache import CacheWarning, DiskCache, load_secret

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A graph with a constant (stored as .npy), a GEMM and a softmax kernel. The child processes
# build the same graph from this source.
GRAPH_SRC = '''
import numpy as np
from compiler.ir.graph import Graph
from compiler.ir.ops import Literal, Op
from compiler.ir.types import DType, TensorType

def make_graph(scale=1.0):
    f32 = DType.float32
    g = Graph(name="cached")
    x = g.add_input(TensorType((6, 5), f32), "x")
    w = g.add_input(TensorType((5, 7), f32), "w")
    bias = (np.arange(7) * scale).astype(np.float32)
    c = g.add(Op.CONSTANT, value=Literal(bias), shape=(7,), dtype=f32)
    h = g.add(Op.ADD, [g.add(Op.MATMUL, [x, w]), c])
    m = g.add(Op.MAX, [h], axes=(1,))
    e = g.add(Op.EXP, [g.add(Op.SUB, [h, m])])
    g.set_outputs([g.add(Op.DIV, [e, g.add(Op.SUM, [e], axes=(1,))])])
    return g

def make_inputs(seed=0):
    rng = np.random.default_rng(seed)
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
out = ex(make_inputs(int(sys.argv[2])))[0]
print(json.dumps({"from_cache": ex.from_cache, "out": out.tolist()}))
'''


def numpy_reference(inputs: list[np.ndarray], scale: float = 1.0) -> np.ndarray:
    """The graph's softmax(x @ w + bias) in float64, written independently of the compiler."""
    x, w = (a.astype(np.float64) for a in inputs)
    h = x @ w + np.arange(7) * scale
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def private_secret(tmp_path_factory, monkeypatch):
    """Each test (and its child processes) gets its own cache secret, never ~/.config's."""
    folder = tmp_path_factory.mktemp("secret")
    monkeypatch.setenv("HYBRID_CACHE_SECRET_FILE", str(folder / "cache-secret"))
    monkeypatch.setattr(cache_mod, "_WARNED", set())
    return folder / "cache-secret"


def entries(root: str) -> list[str]:
    return [d for d in glob.glob(os.path.join(root, "v*", "*", "*")) if os.path.isdir(d)
            and not os.path.basename(d).startswith(".tmp")]


def run_child(root: str, seed: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, root, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(root), env=child_env())


def child_result(p: subprocess.Popen) -> dict:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def check(ex: CpuExecutable, seed: int = 0, scale: float = 1.0) -> None:
    ins = make_inputs(seed)
    assert_match(ex(ins), reference(make_graph(scale), ins), 1e-5, 1e-6)
    np.testing.assert_allclose(ex(ins)[0], numpy_reference(ins, scale), rtol=1e-5, atol=1e-6)


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


@pytest.mark.parametrize("donate", [{}, {0: 0}])
def test_describe_after_a_cache_hit_equals_the_fresh_compile(tmp_path, donate):
    """A cache hit holds the plan, not the fused program or the memory report: describe() and
    the memory plan rebuilt from it (with the same donation) are the fresh compile's."""
    cache, graph = DiskCache(str(tmp_path)), make_graph()
    first = CpuExecutable(graph, cache=cache, donate=donate)
    second = CpuExecutable(graph, cache=cache, donate=donate)
    assert second.from_cache and not first.from_cache
    assert second.describe() == first.describe()
    assert second.memory.describe() == first.memory.describe()


def test_env_var_chooses_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    CpuExecutable(make_graph())
    assert len(entries(str(tmp_path))) == 1
    assert CpuExecutable(make_graph()).from_cache


def test_second_process_loads_the_entry_and_computes_the_right_numbers(tmp_path):
    CpuExecutable(make_graph(), cache=DiskCache(str(tmp_path)))
    for seed in (1, 2):
        res = child_result(run_child(str(tmp_path), seed))
        assert res["from_cache"] is True
        want = numpy_reference(make_inputs(seed))
        np.testing.assert_allclose(np.array(res["out"]), want, rtol=1e-5, atol=1e-6)


def test_secret_is_private_random_and_created_once(private_secret):
    got = []
    threads = [threading.Thread(target=lambda: got.append(load_secret())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got[0]) == 32
    assert os.stat(private_secret).st_mode & 0o777 == 0o600
    assert os.listdir(private_secret.parent) == ["cache-secret"]  # no temporary left over
    assert load_secret() == got[0]


def _flip(path: str) -> None:
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(path, "wb").write(bytes(data))


def _truncate(path: str) -> None:
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])


def _garbage_meta(path: str) -> None:
    open(path, "w").write("{not json")


def _fifo(path: str) -> None:
    os.remove(path)
    os.mkfifo(path)


def _symlink_to_dev_zero(path: str) -> None:
    os.remove(path)
    os.symlink("/dev/zero", path)


def _directory(path: str) -> None:
    os.remove(path)
    os.mkdir(path)


def _huge_sparse(path: str) -> None:
    with open(path, "ab") as f:
        f.truncate(cache_mod.MAX_FILE_BYTES + 1)


@pytest.mark.parametrize("name,damage", [
    ("kernels.o", _flip), ("plan.json", _flip), ("const0.npy", _flip), ("kernels.o", _truncate),
    ("plan.json", _truncate), ("meta.json", os.remove), ("plan.json", os.remove),
    ("meta.json", _garbage_meta), ("meta.json", _truncate), ("kernels.o", _fifo),
    ("meta.json", _fifo), ("kernels.o", _symlink_to_dev_zero), ("const0.npy", _directory),
    ("kernels.o", _huge_sparse),
])
def test_damaged_entry_is_removed_and_rebuilt(tmp_path, name, damage):
    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    (entry,) = entries(str(tmp_path))
    damage(os.path.join(entry, name))
    old = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.alarm(60)  # NOTE: a blocking open of the FIFO would hang here forever
    try:
        ex = CpuExecutable(make_graph(), cache=cache)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert not ex.from_cache
    check(ex)
    again = CpuExecutable(make_graph(), cache=cache)  # the rebuilt entry is valid
    assert again.from_cache
    check(again)


def test_entry_resealed_with_fresh_sha256_sums_is_rebuilt(tmp_path):
    """What an attacker can compute (SHA-256 of edited files, written into meta.json) no longer
    makes an entry valid: only the HMAC with the user's secret does."""
    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    (entry,) = entries(str(tmp_path))
    bad = json.dumps(json.load(open(os.path.join(entry, "plan.json"))) | {"arena_bytes": 1})
    open(os.path.join(entry, "plan.json"), "w").write(bad)
    meta_path = os.path.join(entry, "meta.json")
    meta = json.load(open(meta_path))
    meta["files"]["plan.json"] = len(bad)
    meta["hmac"] = hashlib.sha256(bad.encode()).hexdigest()
    json.dump(meta, open(meta_path, "w"))
    ex = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache
    check(ex)
    assert CpuExecutable(make_graph(), cache=cache).from_cache


def test_entry_of_another_graph_copied_under_this_key_is_rebuilt(tmp_path):
    """Two graphs with the same plan shape but different constants: B's valid entry copied into
    A's place would give B's numbers for A; the HMAC binds an entry to its key."""
    import shutil

    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    (entry_a,) = entries(str(tmp_path))
    CpuExecutable(make_graph(scale=3.0), cache=cache)
    (entry_b,) = [e for e in entries(str(tmp_path)) if e != entry_a]
    shutil.rmtree(entry_a)
    shutil.copytree(entry_b, entry_a)
    meta = json.load(open(os.path.join(entry_a, "meta.json")))
    meta["key"] = os.path.basename(entry_a)  # the key is in the MAC, not only in meta.json
    json.dump(meta, open(os.path.join(entry_a, "meta.json"), "w"))
    ex = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache
    check(ex)
    check(CpuExecutable(make_graph(scale=3.0), cache=cache), scale=3.0)


def test_entry_made_with_another_secret_is_rebuilt(tmp_path, private_secret):
    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    os.remove(private_secret)  # a new secret: every old entry is now a stranger's
    ex = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache
    check(ex)
    assert CpuExecutable(make_graph(), cache=cache).from_cache


def _authentic_plan_edit(tmp_path, edit) -> CpuExecutable:
    """Rewrite the plan of the only entry and sign it with the real secret (what a buggy writer
    would leave), then compile again."""
    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    (entry,) = entries(str(tmp_path))
    plan = json.load(open(os.path.join(entry, "plan.json")))
    edit(plan)
    blob = json.dumps(plan).encode()
    open(os.path.join(entry, "plan.json"), "wb").write(blob)
    meta_path = os.path.join(entry, "meta.json")
    meta = json.load(open(meta_path))
    meta["files"]["plan.json"] = len(blob)
    blobs = {name: open(os.path.join(entry, name), "rb").read() for name in meta["files"]}
    meta["hmac"] = cache_mod._mac(load_secret(), meta["key"], meta, blobs)
    json.dump(meta, open(meta_path, "w"))
    assert cache.get(meta["key"]) is not None  # authentic: only the plan's checks stop it
    return CpuExecutable(make_graph(), cache=cache)


def _first(plan: dict, op: str) -> dict:
    return next(s for s in plan["steps"] if s["op"] == op)


def _smallest(plan: dict) -> int:
    """The id of the plan's smallest non-empty buffer (the 7-float constant here)."""
    sizes = [(b["nbytes"], i) for i, b in enumerate(plan["buffers"]) if b["nbytes"]]
    return min(sizes)[1]


@pytest.mark.parametrize("what,edit", [
    ("kernel range 2**40", lambda p: _first(p, "kernel").update(n=2**40)),
    ("kernel argument out of range", lambda p: _first(p, "kernel").update(args=[99])),
    ("kernel argument to a smaller buffer", lambda p: _first(p, "kernel").update(
        args=_first(p, "kernel")["args"][:-1] + [_smallest(p)])),
    ("kernel extents dropped", lambda p: _first(p, "kernel").update(touches=[])),
    ("kernel extents dropped and range raised", lambda p: _first(p, "kernel").update(
        touches=[], n=2**20)),
    ("gemm operand too small", lambda p: _first(p, "gemm").update(m=600)),
    ("arena smaller than its buffers", lambda p: p.update(arena_bytes=4)),
    ("input of another shape", lambda p: p["buffers"][p["inputs"][0]].update(shape=[5, 5],
                                                                            nbytes=100)),
    ("output dropped", lambda p: p.update(outputs=[])),
    ("unknown kernel symbol", lambda p: _first(p, "kernel").update(symbol="system")),
    ("huge buffer", lambda p: p["buffers"][-1].update(shape=[2**63, 0], nbytes=0)),
    ("plan of another version", lambda p: p.update(version=0)),
])
def test_authentic_but_impossible_plan_is_rebuilt_not_run(tmp_path, what, edit):
    ex = _authentic_plan_edit(tmp_path, edit)
    assert not ex.from_cache, what
    check(ex)
    assert CpuExecutable(make_graph(), cache=DiskCache(str(tmp_path))).from_cache


def _refused(cache: DiskCache) -> CpuExecutable:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ex = CpuExecutable(make_graph(), cache=cache)
        check(ex)
        again = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache and not again.from_cache
    cache_warnings = [w for w in seen if issubclass(w.category, CacheWarning)]
    assert len(cache_warnings) == 1, [str(w.message) for w in seen]  # once, not per compile
    return cache_warnings[0]


def test_cache_directory_writable_by_others_is_refused(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o777)
    w = _refused(DiskCache(str(root)))
    assert "writable" in str(w.message) and str(root) in str(w.message)
    assert entries(str(root)) == []  # nothing written either


def test_entry_directory_writable_by_others_is_refused_and_rebuilt(tmp_path):
    cache = DiskCache(str(tmp_path))
    CpuExecutable(make_graph(), cache=cache)
    (entry,) = entries(str(tmp_path))
    os.chmod(entry, 0o777)
    with pytest.warns(CacheWarning, match="writable by group or others"):
        ex = CpuExecutable(make_graph(), cache=cache)
    assert not ex.from_cache
    check(ex)
    (entry,) = entries(str(tmp_path))
    assert os.stat(entry).st_mode & 0o077 == 0
    assert CpuExecutable(make_graph(), cache=cache).from_cache


@pytest.mark.parametrize("mode,what", [(0o644, "readable or writable"), (0o620, "readable or "
                                                                           "writable")])
def test_secret_readable_or_writable_by_others_is_refused(tmp_path, private_secret, mode, what):
    load_secret()
    os.chmod(private_secret, mode)
    w = _refused(DiskCache(str(tmp_path)))
    assert what in str(w.message) and "cache secret" in str(w.message)
    assert entries(str(tmp_path)) == []


def test_secret_in_a_directory_writable_by_others_is_refused(tmp_path, private_secret):
    load_secret()
    os.chmod(private_secret.parent, 0o777)
    w = _refused(DiskCache(str(tmp_path)))
    assert "directory of the cache secret" in str(w.message)


def test_secret_that_is_a_symlink_is_refused(tmp_path, private_secret):
    real = tmp_path / "real-secret"
    real.write_bytes(os.urandom(32))
    real.chmod(0o600)
    os.symlink(real, private_secret)
    w = _refused(DiskCache(str(tmp_path / "cache")))
    assert "cannot read the cache secret" in str(w.message)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_cache_or_secret_owned_by_another_user_is_refused(tmp_path, private_secret):
    root = tmp_path / "cache"
    root.mkdir()
    os.chown(root, 65534, 65534)
    w = _refused(DiskCache(str(root)))
    assert "owned by uid 65534" in str(w.message)
    cache_mod._WARNED.clear()
    load_secret()
    os.chown(private_secret, 65534, 65534)
    w = _refused(DiskCache(str(tmp_path / "other")))
    assert "owned by uid 65534" in str(w.message) and "secret" in str(w.message)


def test_concurrent_compiles_leave_one_valid_entry(tmp_path):
    procs = [run_child(str(tmp_path), seed) for seed in (3, 4)]
    for seed, p in zip((3, 4), procs):
        res = child_result(p)
        np.testing.assert_allclose(np.array(res["out"]), numpy_reference(make_inputs(seed)),
                                   rtol=1e-5, atol=1e-6)
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


def test_no_pickle_in_caches_or_artifacts():
    """Caches and artifacts never unpickle: no pickle import, no pickle load or dump, and numpy
    loads with allow_pickle=False. NOTE: hybrid/data/ is left out: DataLoader workers send
    batches to their own parent process over a pipe (IPC, as PyTorch's do), nothing on disk."""
    import re

    bad = re.compile(r"import pickle|from pickle|pickle\.(loads?|dumps?)|cPickle"
                     r"|allow_pickle=True")
    found = []
    for package in ("compiler", "hybrid"):
        for path in glob.glob(os.path.join(ROOT, package, "**", "*.py"), recursive=True):
            if os.path.relpath(path, ROOT).startswith(os.path.join("hybrid", "data", "")):
                continue
            for i, line in enumerate(open(path, encoding="utf-8"), 1):
                if bad.search(line) or ("np.load(" in line and "allow_pickle=False" not in line):
                    found.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert found == []
