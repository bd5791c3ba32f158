"""The native runner `hybrid-run` and the C API (hybrid/runtime.h) run exported programs with no
Python: outputs equal the Python loader's, bad input and damaged files are errors, never crashes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hybrid
from hybrid import nn

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="exports link ELF objects")
HERE = os.path.dirname(os.path.abspath(__file__))


def _runner() -> str:
    path = os.path.join(sysconfig.get_path("scripts"), "hybrid-run")
    assert os.access(path, os.X_OK), "pip install . installs the hybrid-run executable"
    with open(path, "rb") as f:
        assert f.read(4) == b"\x7fELF"  # a native program, not a Python script
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    hybrid.manual_seed(3)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).eval()
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    hybrid.export(model, hybrid.tensor(x)).save(d / "m.hyb")
    save_file({"x": x}, d / "in.safetensors")
    ref = hybrid.load_exported(d / "m.hyb")(x).numpy()
    return d, ref


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([_runner(), *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False, **kw)


def test_outputs_match_python(exported):
    d, ref = exported
    done = _run(d / "m.hyb", "--input", d / "in.safetensors", "--output", d / "out.safetensors",
                "--bench", "20")
    assert done.returncode == 0, done.stderr
    assert "median of 20 runs" in done.stdout
    np.testing.assert_array_equal(load_file(d / "out.safetensors")["output"], ref)
    sig = _run(d / "m.hyb")
    assert "input  x: float32 [5, 16]" in sig.stdout and "output output: float32 [5, 4]" in sig.stdout


def test_bad_inputs_and_files_are_messages(exported, tmp_path):
    d, _ = exported
    save_file({"y": np.zeros((5, 16), np.float32)}, tmp_path / "wrong_name.safetensors")
    save_file({"x": np.zeros((4, 16), np.float32)}, tmp_path / "wrong_shape.safetensors")
    cases = {
        "no tensor named 'x'": (d / "m.hyb", "--input", tmp_path / "wrong_name.safetensors"),
        "expects float32 [5, 16]": (d / "m.hyb", "--input", tmp_path / "wrong_shape.safetensors"),
        "cannot open": (tmp_path / "missing.hyb",),
        "not a regular file": (tmp_path,),
    }
    data = (d / "m.hyb").read_bytes()
    for i, cut in enumerate([10, 100, len(data) // 2, len(data) - 3]):
        (tmp_path / f"cut{i}.hyb").write_bytes(data[:cut])
        cases[f"cut{i}"] = (tmp_path / f"cut{i}.hyb",)
    rng = np.random.default_rng(1)
    for i in range(40):
        b = bytearray(data)
        b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        (tmp_path / f"flip{i}.hyb").write_bytes(bytes(b))
        cases[f"flip{i}"] = (tmp_path / f"flip{i}.hyb",)
    for message, args in cases.items():
        done = _run(*args)
        assert done.returncode == 1, (message, done.returncode, done.stderr)  # not a signal
        assert done.stderr.startswith("hybrid-run: ")
        if not message.startswith(("cut", "flip")):
            assert message in done.stderr, done.stderr


def test_c_loader_refuses_fuzzed_files_in_process(exported, tmp_path):
    """The C API's hybrid_load on truncated, flipped, spliced and padded artifacts (the same
    generator as the Python loader's fuzz test, tests/artifact_fuzz.py), in this process through
    ctypes: NULL and a message every time; a crash would end the run."""
    from artifact_fuzz import CASES, SEED, CLoader, mutations

    from hybrid.export_format import _HEAD

    d, _ = exported
    data = (d / "m.hyb").read_bytes()
    other = hybrid.export(lambda a: a * 2, hybrid.randn(4)).to_bytes()
    c = CLoader(os.path.join(hybrid.runtime_dir(), "lib", "libhybrid_rt.so"))
    assert c.load(str(d / "m.hyb")) is None  # the undamaged file loads
    p = str(tmp_path / "case.hyb")
    n = 0
    for case in mutations(data, other, CASES, SEED + 1, _HEAD.size):
        with open(p, "wb") as f:
            f.write(case)
        message = c.load(p)
        assert message, (n, len(case))  # refused, with a message
        n += 1
    assert n > CASES * 0.95


def test_c_program_through_the_installed_library(exported, tmp_path):
    d, _ = exported
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    root = hybrid.runtime_dir()
    exe = tmp_path / "run_model"
    src = os.path.join(HERE, "..", "..", "examples", "cpp", "run_model.c")
    subprocess.run([cc, "-O2", "-o", exe, src, f"-I{root}/include", f"-L{root}/lib",
                    "-lhybrid_rt", f"-Wl,-rpath,{root}/lib"], check=True, timeout=120)
    done = subprocess.run([exe, d / "m.hyb"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    want = hybrid.load_exported(d / "m.hyb")(np.full((5, 16), 0.5, np.float32)).numpy()
    got = float(done.stdout.split("output output sum ")[1].split()[0])
    assert abs(got - want.astype(np.float64).sum()) < 1e-4 * max(1.0, abs(want).sum())
    bad = subprocess.run([exe, tmp_path / "nope.hyb"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 1 and "load failed" in bad.stderr and "cannot open" in bad.stderr


def test_the_library_exports_only_the_c_api():
    """libhybrid_rt's dynamic symbols are the functions of runtime.h, nothing of the static
    core (its C++ classes, parsers and SHA-256 would clash with a host program's)."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm")
    lib = os.path.join(hybrid.runtime_dir(), "lib", "libhybrid_rt.so")
    out = subprocess.run([nm, "-D", "--defined-only", lib], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    header = open(os.path.join(hybrid.runtime_dir(), "include", "hybrid", "runtime.h")).read()
    declared = {n for n in names if f"{n}(" in header}
    assert names == declared and len(names) >= 10, sorted(names - declared)[:10]


def test_other_format_version_and_cpu_are_refused_natively(exported, tmp_path):
    import struct

    from compiler.export_native import CPUINFO_FLAGS
    from hybrid.export_format import cpu_features, parse, to_bytes

    d, _ = exported
    data = (d / "m.hyb").read_bytes()
    newer = bytearray(data)
    struct.pack_into("<I", newer, 8, 7)
    (tmp_path / "v7.hyb").write_bytes(bytes(newer))
    done = _run(tmp_path / "v7.hyb")
    assert done.returncode == 1 and "format version 7" in done.stderr
    manifest, sections = parse(data)
    del manifest["sections"]
    manifest["target"]["machine"] = "riscv64"
    (tmp_path / "rv.hyb").write_bytes(to_bytes(manifest, sections))
    done = _run(tmp_path / "rv.hyb")
    assert done.returncode == 1 and "compiled for linux/riscv64" in done.stderr
    absent = sorted(set(CPUINFO_FLAGS) - cpu_features())
    if absent:
        manifest["target"]["machine"] = parse(data)[0]["target"]["machine"]
        manifest["target"]["features"].append(absent[0])
        (tmp_path / "cpu.hyb").write_bytes(to_bytes(manifest, sections))
        done = _run(tmp_path / "cpu.hyb")
        assert done.returncode == 1 and f"a CPU with {absent[0]}" in done.stderr, done.stderr


def test_cpu_feature_tables_agree():
    """The C++ loader's feature table (artifact.cc) is the Python one (export_native.py)."""
    import re

    from compiler.export_native import CPUINFO_FLAGS

    with open(os.path.join(HERE, "..", "..", "runtime_cpp", "src", "artifact.cc")) as f:
        src = f.read()
    table = src[src.index("std::set<std::string> cpu_features()"):]
    table = table[:table.index("};")]
    assert dict(re.findall(r'\{"([\w.]+)", "(\w+)"\}', table)) == CPUINFO_FLAGS
