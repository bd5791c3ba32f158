"""A fuzzer for the compile cache, as an attacker who can write the cache directory but not the
user's secret: it rewrites bytes, truncates, re-seals meta.json with fresh SHA-256 sums or an
HMAC of its own, swaps entries and files between keys, puts symlinks, FIFOs, devices,
directories and huge sparse files in place of files, and plants an object file whose code would
create a marker file. After each attack a fresh process (forked from a zygote that has imported
the compiler, so a case costs milliseconds) compiles the graph with that cache, and the test
checks: the result equals a float64 numpy reference on random data, the process did not crash
or hang (a subprocess with a timeout), no marker file appeared, and the entry left behind is
valid (the next process hits it). A few authentic-but-impossible plans (signed with the real
secret: what a buggy writer would leave) check the plan validation too.

CACHE_FUZZ_CASES=5000 (and CACHE_FUZZ_SEED) runs more cases locally; the counts
are printed (pytest -s) and, with CACHE_FUZZ_REPORT=path, written as JSON."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import select
import shutil
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
from subproc import child_env
from test_disk_cache import GRAPH_SRC, numpy_reference

from compiler.codegen import cache as cache_mod
from compiler.codegen.cache import DiskCache

CASES = int(os.environ.get("CACHE_FUZZ_CASES", "48"))
SEED = int(os.environ.get("CACHE_FUZZ_SEED", "0"))
CASE_TIMEOUT = 60.0
SCALES = {"A": 1.0, "B": 3.0}  # two graphs whose entries differ only in a constant
FILES = ("meta.json", "plan.json", "kernels.o", "const0.npy")

ZYGOTE = GRAPH_SRC + r'''
import json, os, signal, sys, time, traceback
import compiler.codegen.llvm_cpu, compiler.lower, compiler.passes.fuse  # imported once, here
from compiler.backend_cpu import CpuExecutable, target_id
from compiler.codegen.cache import DiskCache

target_id()  # NOTE: the compiler's fingerprint, once: every victim computes the same keys

def victim(req):
    ex = CpuExecutable(make_graph(req["scale"]), cache=DiskCache(req["root"]))
    out = ex(make_inputs(req["seed"]))[0]
    with open(req["result"], "w") as f:
        json.dump({"from_cache": ex.from_cache, "out": out.tolist()}, f)

for line in sys.stdin:
    req = json.loads(line)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the victim: a fresh process as far as the cache is concerned
        code = 0
        try:
            log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(log, 1)
            os.dup2(log, 2)
            victim(req)
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - t0 > req["timeout"]:
            os.kill(pid, signal.SIGKILL)
            _, _, usage = os.wait4(pid, 0)
            status = None
            break
        time.sleep(0.002)
    if status is None:
        outcome = "hang"
    elif os.WIFSIGNALED(status):
        outcome = "crash"
    else:
        outcome = "ok" if os.WEXITSTATUS(status) == 0 else "error"
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - t0,
                      "maxrss_kb": usage.ru_maxrss}), flush=True)
'''

EVIL_C = r'''
#include <stdint.h>
#include <stdlib.h>
static void mark(void) { system("touch '%(marker)s'"); }
__attribute__((constructor)) static void on_load(void) { mark(); }
%(kernels)s
'''


class Zygote:
    """A process that forks one victim per request and reports how it ended."""

    def __init__(self, env: dict[str, str], cwd: str):
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=cwd, env=env)

    def run(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], req["timeout"] + 60)
        assert ready, "the zygote itself stopped answering"
        line = self.proc.stdout.readline()
        assert line, f"the zygote died (exit {self.proc.poll()})"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Harness:
    """The cache under attack, its two entries, and the victims' results."""

    def __init__(self, work: str, secret_file: str, zygote: Zygote):
        self.work, self.zygote = work, zygote
        self.root = os.path.join(work, "cache")
        self.marker = os.path.join(work, "marker")
        self.secret_file = secret_file
        self.attacker_secret = os.urandom(32)
        self.evil: bytes | None = None
        self.entry: dict[str, str] = {}
        self.runs = 0

    def victim(self, which: str, seed: int) -> dict:
        """Run one victim process on graph `which`; its outcome, result and reuse."""
        self.runs += 1
        result = os.path.join(self.work, "result.json")
        if os.path.exists(result):
            os.remove(result)
        req = {"root": self.root, "scale": SCALES[which], "seed": seed, "result": result,
               "log": os.path.join(self.work, "victim.log"), "timeout": CASE_TIMEOUT}
        report = self.zygote.run(req)
        report["log"] = open(req["log"], errors="replace").read()[-3000:]
        if report["outcome"] == "ok":
            got = json.load(open(result))
            report["from_cache"] = got["from_cache"]
            want = numpy_reference(_inputs(seed), SCALES[which])
            report["correct"] = bool(np.allclose(np.array(got["out"]), want, rtol=1e-5,
                                                 atol=1e-6))
        return report

    def valid(self, which: str) -> bool:
        """Whether `which`'s entry is in place and authentic (read only: nothing is loaded)."""
        key = os.path.basename(self.entry[which])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DiskCache(self.root, secret_file=self.secret_file).get(key) is not None

    def restore(self, which: str) -> None:
        """Undo what a victim cannot (permissions, owners, a symlinked level), then let a
        victim rebuild the entry if it is not valid."""
        for path in [self.root, *glob.glob(os.path.join(self.root, "v*")),
                     *glob.glob(os.path.join(self.root, "v*", "*"))]:
            if os.path.islink(path):  # a level the attack moved away: put it back
                target = os.readlink(path)
                os.unlink(path)
                os.rename(target, path)
            if os.path.isdir(path):
                os.chmod(path, 0o700)
                if os.geteuid() == 0:
                    os.chown(path, 0, 0)
        if not self.valid(which):
            report = self.victim(which, 0)
            assert report["outcome"] == "ok" and report["correct"], report
        assert self.valid(which), f"no valid entry for {which} after a rebuild"


def _inputs(seed: int) -> list[np.ndarray]:
    ns: dict = {}
    exec(GRAPH_SRC, ns)
    return ns["make_inputs"](seed)


# --- attacks: each changes the cache, returns (name, whether the victim must rebuild) ----------


def _rewrite(path: str, data: bytes) -> None:
    os.chmod(path, 0o600)
    with open(path, "wb") as f:
        f.write(data)


def _reseal(h: Harness, entry: str, how: str) -> None:
    """Make meta.json agree with the files again, as an attacker can: fresh SHA-256 sums (the
    old format), a SHA-256 where the HMAC goes, or an HMAC with the attacker's own secret."""
    meta_path = os.path.join(entry, "meta.json")
    try:
        meta = json.load(open(meta_path))
    except (ValueError, OSError):
        meta = {"format": cache_mod.FORMAT, "key": os.path.basename(entry), "n_constants": 1}
    names = cache_mod._expected_files(int(meta.get("n_constants", 1)))
    blobs = {n: open(os.path.join(entry, n), "rb").read() for n in names
             if os.path.isfile(os.path.join(entry, n))}
    if how == "sha256 sums":
        meta = {"format": 1, "n_constants": meta.get("n_constants", 1),
                "files": {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()}}
    else:
        meta["files"] = {n: len(b) for n, b in blobs.items()}
        meta.pop("hmac", None)
        if how == "sha256 as hmac":
            meta["hmac"] = hashlib.sha256(b"".join(blobs[n] for n in sorted(blobs))).hexdigest()
        else:
            meta["hmac"] = cache_mod._mac(h.attacker_secret, os.path.basename(entry), meta, blobs)
    _rewrite(meta_path, json.dumps(meta).encode())


def _sign(h: Harness, entry: str) -> None:
    """Re-sign with the REAL secret: what a buggy writer (not an attacker) could leave."""
    meta_path = os.path.join(entry, "meta.json")
    meta = json.load(open(meta_path))
    blobs = {n: open(os.path.join(entry, n), "rb").read() for n in meta["files"]}
    meta["files"] = {n: len(b) for n, b in blobs.items()}
    meta["hmac"] = cache_mod._mac(cache_mod.load_secret(h.secret_file), meta["key"], meta, blobs)
    _rewrite(meta_path, json.dumps(meta).encode())


def _plan_edit(rng: np.random.Generator, plan: dict) -> str:
    kernel = next(s for s in plan["steps"] if s["op"] == "kernel")
    gemm = next(s for s in plan["steps"] if s["op"] == "gemm")
    edits = {
        "kernel n=2**40": lambda: kernel.update(n=2**40),
        "kernel n=2**63": lambda: kernel.update(n=2**63),
        "kernel n=-1": lambda: kernel.update(n=-1),
        "kernel arg out of range": lambda: kernel.update(args=[len(plan["buffers"])]),
        "kernel arg negative": lambda: kernel.update(args=[-1] + kernel["args"][1:]),
        "kernel arg to a smaller buffer": lambda: kernel.update(args=kernel["args"][:-1] + [
            min((b["nbytes"], i) for i, b in enumerate(plan["buffers"]) if b["nbytes"])[1]]),
        "kernel touches larger than the buffers": lambda: kernel.update(
            touches=[t * 4 for t in kernel["touches"]]),
        "kernel touches dropped": lambda: kernel.update(touches=[]),
        "kernel symbol of libc": lambda: kernel.update(symbol="system"),
        "gemm m too big": lambda: gemm.update(m=gemm["m"] * 100),
        "gemm offset past the end": lambda: gemm.update(a_offset=10**6),
        "gemm lda too small": lambda: gemm.update(lda=1),
        "gemm batch huge stride 0": lambda: gemm.update(batch=2**40),
        "arena 4 bytes": lambda: plan.update(arena_bytes=4),
        "buffer shape overflows int64": lambda: plan["buffers"][-1].update(shape=[2**32] * 3),
        "input shape changed": lambda: plan["buffers"][plan["inputs"][0]].update(
            shape=[5, 5], nbytes=100),
        "outputs dropped": lambda: plan.update(outputs=[]),
        "version 0": lambda: plan.update(version=0),
        "steps not a list": lambda: plan.update(steps=7),
    }
    name = sorted(edits)[int(rng.integers(len(edits)))]
    edits[name]()
    return name


def _evil_object(h: Harness, entry: str) -> bytes:
    plan = json.load(open(os.path.join(entry, "plan.json")))
    symbols = sorted({s["symbol"] for s in plan["steps"] if s["op"] == "kernel"})
    if h.evil is None:
        body = "\n".join(f"void {s}(int64_t a, int64_t b, void **c) {{ mark(); }}"
                         for s in symbols)
        src = os.path.join(h.work, "evil.c")
        open(src, "w").write(EVIL_C % {"marker": h.marker, "kernels": body})
        out = os.path.join(h.work, "evil.o")
        subprocess.run(["cc", "-c", "-O1", "-fPIC", "-o", out, src], check=True,
                       capture_output=True)
        h.evil = open(out, "rb").read()
    return h.evil


def _same_json(a: bytes, b: bytes) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def attack(h: Harness, rng: np.random.Generator, which: str) -> tuple[str, bool]:
    """One random attack on `which`'s entry (the other graph's entry is the swap source)."""
    entry, other = h.entry[which], h.entry["B" if which == "A" else "A"]
    name = FILES[int(rng.integers(len(FILES)))]
    path = os.path.join(entry, name)
    data = open(path, "rb").read()
    kind = str(rng.choice([
        "flip bytes", "truncate", "append", "reseal after flip", "plan edit resealed",
        "authentic impossible plan", "meta edit", "swap entry", "swap file", "symlink file",
        "symlink entry", "fifo", "device", "directory", "sparse huge", "remove file",
        "evil object", "entry mode 0777", "entry owner", "level symlink", "root mode 0777",
        "untouched",
    ]))
    if kind in ("flip bytes", "truncate", "append"):
        if kind == "flip bytes":
            buf = bytearray(data)
            for i in rng.integers(0, len(buf), size=int(rng.integers(1, 9))):
                buf[i] ^= int(rng.integers(1, 256))
            new = bytes(buf)
        elif kind == "truncate":
            new = data[: int(rng.integers(0, len(data)))]
        else:
            new = data + rng.bytes(int(rng.integers(1, 64)))
        _rewrite(path, new)
        if name == "meta.json" and _same_json(data, new):  # say, a space became a newline
            return f"{kind} ({name}, same JSON)", False
    elif kind == "reseal after flip":
        name = FILES[1 + int(rng.integers(3))]
        path = os.path.join(entry, name)
        buf = bytearray(open(path, "rb").read())
        buf[int(rng.integers(len(buf)))] ^= 0x10
        _rewrite(path, bytes(buf))
        how = str(rng.choice(["sha256 sums", "sha256 as hmac", "attacker hmac"]))
        _reseal(h, entry, how)
        kind += f" ({name}, {how})"
    elif kind in ("plan edit resealed", "authentic impossible plan"):
        plan = json.load(open(os.path.join(entry, "plan.json")))
        kind += f" ({_plan_edit(rng, plan)})"
        _rewrite(os.path.join(entry, "plan.json"), json.dumps(plan).encode())
        if kind.startswith("authentic"):
            _sign(h, entry)
        else:
            _reseal(h, entry, str(rng.choice(["sha256 as hmac", "attacker hmac"])))
    elif kind == "meta edit":
        meta = json.loads(data if name == "meta.json" else open(os.path.join(entry,
                                                                             "meta.json")).read())
        edits = {
            "key of the other entry": lambda: meta.update(key=os.path.basename(other)),
            "one more constant": lambda: meta.update(n_constants=meta["n_constants"] + 1),
            "path traversal": lambda: meta["files"].update({"../../../evil": 1}),
            "format 1": lambda: meta.update(format=1),
            "no hmac": lambda: meta.pop("hmac"),
            "hmac of the other entry": lambda: meta.update(hmac=json.load(open(
                os.path.join(other, "meta.json")))["hmac"]),
            "sizes huge": lambda: meta["files"].update({"kernels.o": 2**40}),
            "a list": lambda: meta.clear(),
        }
        which_edit = sorted(edits)[int(rng.integers(len(edits)))]
        edits[which_edit]()
        _rewrite(os.path.join(entry, "meta.json"), json.dumps(meta if meta else []).encode())
        kind += f" ({which_edit})"
    elif kind == "swap entry":
        shutil.rmtree(entry)
        shutil.copytree(other, entry)
        if rng.random() < 0.5:  # and claim to be this key
            meta = json.load(open(os.path.join(entry, "meta.json")))
            meta["key"] = os.path.basename(entry)
            _rewrite(os.path.join(entry, "meta.json"), json.dumps(meta).encode())
            kind += " (key rewritten)"
    elif kind == "swap file":
        theirs = open(os.path.join(other, name), "rb").read()
        _rewrite(path, theirs)
        if theirs == data:  # the two graphs share their code and plan: no change at all
            return f"{kind} ({name}, identical)", False
    elif kind == "symlink file":
        target = str(rng.choice(["copy", "other", "/dev/zero", "/etc/passwd", "dangling"]))
        dest = {"copy": os.path.join(h.work, "copy-" + name), "other": os.path.join(other, name),
                "/dev/zero": "/dev/zero", "/etc/passwd": "/etc/passwd",
                "dangling": os.path.join(h.work, "nowhere")}[target]
        if target == "copy":
            open(dest, "wb").write(data)
        os.remove(path)
        os.symlink(dest, path)
        kind += f" ({name} -> {target})"
    elif kind == "symlink entry":
        copy = os.path.join(h.work, "entry-copy")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(entry, copy)
        shutil.rmtree(entry)
        os.symlink(copy, entry)
    elif kind == "fifo":
        os.remove(path)
        os.mkfifo(path)
    elif kind == "device":
        os.remove(path)
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
        except OSError:  # not root: a FIFO instead
            os.mkfifo(path)
            kind = "fifo (no mknod)"
    elif kind == "directory":
        os.remove(path)
        os.mkdir(path)
    elif kind == "sparse huge":
        size = int(rng.choice([cache_mod.MAX_FILE_BYTES + 1, 1 << 33]))
        with open(path, "r+b") as f:
            f.truncate(size)
        kind += f" ({size} B)"
    elif kind == "remove file":
        os.remove(path)
    elif kind == "evil object":
        _rewrite(os.path.join(entry, "kernels.o"), _evil_object(h, entry))
        how = str(rng.choice(["as is", "sha256 sums", "sha256 as hmac", "attacker hmac"]))
        if how != "as is":
            _reseal(h, entry, how)
        return f"{kind} ({how})", True
    elif kind == "entry mode 0777":
        os.chmod(entry, 0o777)
    elif kind == "entry owner":
        if os.geteuid() != 0:
            return "untouched (no chown)", False
        os.chown(entry, 65534, 65534)
    elif kind == "level symlink":
        level = os.path.dirname(entry)
        copy = os.path.join(h.work, "level-copy")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(level, copy, symlinks=True)
        shutil.rmtree(level)
        os.symlink(copy, level)
    elif kind == "root mode 0777":
        os.chmod(h.root, 0o777)
    else:
        return kind, False
    return f"{kind} ({name})" if "(" not in kind else kind, True


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("fuzz"))
    secret_file = os.path.join(str(tmp_path_factory.mktemp("fuzz-secret")), "cache-secret")
    env = child_env(HYBRID_CACHE_SECRET_FILE=secret_file, OPENBLAS_NUM_THREADS="1",
                    OMP_NUM_THREADS="1")
    zygote = Zygote(env, cwd=work)
    h = Harness(work, secret_file, zygote)
    for which in SCALES:
        before = set(glob.glob(os.path.join(h.root, "v*", "*", "*")))
        report = h.victim(which, 0)
        assert report["outcome"] == "ok" and report["correct"] and not report["from_cache"]
        (h.entry[which],) = set(glob.glob(os.path.join(h.root, "v*", "*", "*"))) - before
    yield h
    zygote.close()


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler for the object")
def test_the_planted_object_would_run_code_if_loaded(harness):
    """The control: the planted object, loaded the way cached kernels are, does create the
    marker, so 'no marker' in the fuzz means the cache never ran it."""
    obj = os.path.join(harness.work, "control.o")
    open(obj, "wb").write(_evil_object(harness, harness.entry["A"]))
    steps = json.load(open(os.path.join(harness.entry["A"], "plan.json")))["steps"]
    symbol = next(s["symbol"] for s in steps if s["op"] == "kernel")
    code = ("import ctypes, sys\nfrom compiler.backend_cpu import _load_object\n"
            "e = _load_object(open(sys.argv[1], 'rb').read())\n"
            "f = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)"
            "(e.get_function_address(sys.argv[2]))\nf(0, 0, None)\n")
    subprocess.run([sys.executable, "-c", code, obj, symbol], check=True, cwd=harness.work,
                   env=child_env(), timeout=120)
    assert os.path.exists(harness.marker)
    os.remove(harness.marker)


def test_fuzz_the_cache(harness):
    rng = np.random.default_rng(SEED)
    counts = {"cases": 0, "rebuilds": 0, "hits": 0, "crashes": 0, "hangs": 0, "errors": 0,
              "wrong results": 0, "foreign code run": 0, "stale entry reused": 0,
              "rebuilt entry invalid": 0}
    failures, kinds, max_rss = [], {}, 0
    for case in range(CASES):
        which = "A" if rng.random() < 0.75 else "B"
        kind, must_rebuild = attack(harness, rng, which)
        kinds[kind.split(" (")[0]] = kinds.get(kind.split(" (")[0], 0) + 1
        report = harness.victim(which, 1000 + case)
        counts["cases"] += 1
        max_rss = max(max_rss, report["maxrss_kb"])
        bad = None
        if report["outcome"] != "ok":
            counts[{"crash": "crashes", "hang": "hangs", "error": "errors"}[report["outcome"]]] += 1
            bad = report["outcome"]
        elif not report["correct"]:
            counts["wrong results"] += 1
            bad = "wrong result"
        elif report["from_cache"]:
            counts["hits"] += 1
            if must_rebuild:
                counts["stale entry reused"] += 1
                bad = "an attacked entry was used"
        else:
            counts["rebuilds"] += 1
            if kind == "untouched":
                bad = "a valid entry was not reused"
        if os.path.exists(harness.marker):
            counts["foreign code run"] += 1
            bad = "foreign code ran"
            os.remove(harness.marker)
        if report["outcome"] == "ok" and not harness.valid(which) and "mode" not in kind \
                and "owner" not in kind and "level" not in kind:
            counts["rebuilt entry invalid"] += 1
            bad = bad or "the rebuilt entry is not valid"
        if bad:
            failures.append(f"case {case} {which} {kind}: {bad}\n{report['log']}")
        harness.restore(which)
    summary = dict(counts, seed=SEED, max_victim_rss_mib=round(max_rss / 1024, 1),
                   victim_runs=harness.runs, attacks=kinds)
    print("\ncache fuzz:", json.dumps(summary, sort_keys=True))
    if os.environ.get("CACHE_FUZZ_REPORT"):
        json.dump(summary, open(os.environ["CACHE_FUZZ_REPORT"], "w"), indent=1)
    assert not failures, "\n\n".join(failures[:5])
    assert counts["rebuilds"] > 0 and counts["cases"] == CASES
    assert max_rss < 4 << 20, "a victim held more than 4 GiB: an unbounded read"
