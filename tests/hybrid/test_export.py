"""hybrid.export / hybrid.load_exported: exported programs give eager's answers, reload in a new
process without llvmlite or the original code, and every damaged file is a clear error."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from artifact_fuzz import CASES as FUZZ_CASES
from artifact_fuzz import SEED as FUZZ_SEED
from artifact_fuzz import mutations

import hybrid
from hybrid import nn
from hybrid.errors import ArtifactError, HybridIndexError
from hybrid.export_format import _HEAD, parse, to_bytes

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="exports link ELF objects")


def _mlp():
    hybrid.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 10), nn.LogSoftmax(-1)).eval()


class _Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, images):
        h = nn.functional.max_pool2d(nn.functional.relu(self.bn(self.conv(images))), 2)
        return self.fc(h.flatten(1))


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    model, x = _mlp(), hybrid.randn(4, 64)
    path = tmp_path_factory.mktemp("export") / "mlp.hyb"
    hybrid.export(model, x).save(path)
    return path, x.numpy(), model(x).detach().numpy()


def test_mlp_matches_eager_and_compiled(mlp_file):
    path, x, ref = mlp_file
    prog = hybrid.load_exported(path)
    got = prog(x).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    model = _mlp()
    compiled = hybrid.compile(model)(hybrid.tensor(x)).detach().numpy()
    np.testing.assert_array_equal(got, compiled)  # the same kernels, the same answer
    assert [n for n, _, _ in prog.inputs] == ["input"] or prog.inputs[0][2] == (4, 64)
    assert prog.outputs[0][1:] == (np.dtype(np.float32), (4, 10))


def test_cnn_eval_with_batch_norm_statistics():
    hybrid.manual_seed(1)
    model = _Cnn()
    model.bn.running_mean.copy_(hybrid.randn(8) * 0.1)
    model.bn.running_var.copy_(hybrid.rand(8) + 0.5)
    model.eval()
    x = hybrid.randn(2, 3, 8, 8)
    ep = hybrid.export(model, x)
    assert "images" in str(ep) and ep.inputs[0][0] == "images"
    np.testing.assert_allclose(ep(x).numpy(), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    keys = json.loads(json.dumps(ep.manifest["bound"]))
    assert "conv.weight" in keys and "bn.running_var" in keys


def test_output_kinds_tuple_input_repeat_constant():
    def fn(x, y):
        z = x * y + 1
        return z, x, z, hybrid.arange(3), (x - y).sum()

    x, y = hybrid.randn(3), hybrid.randn(3)
    ep = hybrid.export(fn, x, y)
    got = ep(x, y)
    want = fn(x, y)
    assert isinstance(got, tuple) and len(got) == 5
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6)
    assert not np.shares_memory(got[0].numpy(), got[2].numpy())
    assert [n for n, _, _ in ep.inputs] == ["x", "y"]


def test_index_out_of_bounds_is_an_error():
    def pick(table, idx):
        return table[idx]

    t, i = hybrid.randn(5, 2), hybrid.tensor(np.array([0, 4], np.int64))
    ep = hybrid.export(pick, t, i)
    np.testing.assert_array_equal(ep(t, i).numpy(), t.numpy()[[0, 4]])
    with pytest.raises(HybridIndexError, match="out of bounds"):
        ep(t, hybrid.tensor(np.array([0, 7], np.int64)))


def test_wrong_inputs_name_what_was_expected(mlp_file):
    prog = hybrid.load_exported(mlp_file[0])
    with pytest.raises(ArtifactError, match=r"expected float32 \(4, 64\), got float32 \(5, 64\)"):
        prog(np.zeros((5, 64), np.float32))
    with pytest.raises(ArtifactError, match="got float64"):
        prog(np.zeros((4, 64)))
    with pytest.raises(ArtifactError, match="expected 1 inputs"):
        prog()


def test_refused_exports_say_why():
    model = _Cnn()  # train mode: batch norm updates its running statistics
    with pytest.raises(ArtifactError, match="eval"):
        hybrid.export(model, hybrid.randn(2, 3, 8, 8))
    with pytest.raises(ArtifactError, match="symbolic dimensions"):
        hybrid.export(_mlp(), hybrid.randn(4, 64), dynamic_shapes={"input": {0: "batch"}})
    with pytest.raises(ArtifactError, match="argument 1 is a int"):
        hybrid.export(lambda a, b: a * b, hybrid.randn(2), 3)


def test_loads_in_a_new_process_without_llvmlite_or_the_code(mlp_file, tmp_path):
    path, x, ref = mlp_file
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["llvmlite"] = None  # importing it anywhere would fail
        import numpy as np, hybrid
        prog = hybrid.load_exported({str(path)!r})
        out = prog(np.load({str(tmp_path / 'x.npy')!r}))
        np.save({str(tmp_path / 'y.npy')!r}, out.numpy())
        assert not any(m.startswith("llvmlite") and sys.modules[m] for m in sys.modules)
        assert "compiler.passes.fuse" not in sys.modules  # nothing is compiled
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, rtol=1e-5, atol=1e-6)


def test_missing_directory_and_fifo_paths(tmp_path):
    with pytest.raises(ArtifactError, match="cannot open"):
        hybrid.load_exported(tmp_path / "nope.hyb")
    with pytest.raises(ArtifactError, match="not a regular file"):
        hybrid.load_exported(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ArtifactError, match="not a regular file"):
        hybrid.load_exported(fifo)


def _rewritten(data: bytes, edit) -> bytes:
    manifest, sections = parse(data)
    edit(manifest)
    del manifest["sections"]
    return to_bytes(manifest, sections)


def test_other_cpu_machine_and_format_version(mlp_file, tmp_path):
    data = mlp_file[0].read_bytes()
    cases = {
        "lacks": lambda m: m["target"]["features"].append("avx512fp16_not_here"),
        "compiled for linux/riscv64": lambda m: m["target"].update(machine="riscv64"),
    }
    for message, edit in cases.items():
        p = tmp_path / "edited.hyb"
        bad = _rewritten(data, edit)
        if message == "lacks":  # a feature this CPU lacks: a real name it does not have
            from compiler.export_native import CPUINFO_FLAGS
            from hybrid.export_format import cpu_features

            absent = sorted(set(CPUINFO_FLAGS) - cpu_features())
            if not absent:
                continue
            bad = _rewritten(data, lambda m, f=absent[0]: m["target"]["features"].append(f))
        p.write_bytes(bad)
        with pytest.raises(ArtifactError, match=message):
            hybrid.load_exported(p)
    newer = bytearray(data)
    struct.pack_into("<I", newer, 8, 99)
    p = tmp_path / "newer.hyb"
    p.write_bytes(bytes(newer))
    with pytest.raises(ArtifactError, match="format version 99"):
        hybrid.load_exported(p)


def test_cpu_features_read_from_x86_and_aarch64_cpuinfo():
    from hybrid.export_format import cpu_features

    x86 = ("processor\t: 0\nvendor_id\t: GenuineIntel\n"
           "flags\t\t: fpu sse2 pni ssse3 sse4_1 sse4_2 popcnt avx avx2 fma bmi1 abm\n"
           "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_features(x86) == {"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2",
                                 "fma", "bmi", "lzcnt"}
    arm = ("processor\t: 0\nBogoMIPS\t: 243.75\n"
           "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
           "asimdrdm lrcpc dcpop asimddp sve i8mm bf16\nCPU implementer\t: 0x41\n")
    assert cpu_features(arm) == {"neon", "aes", "sha2", "crc", "lse", "fullfp16", "rdm",
                                 "dotprod", "sve", "i8mm", "bf16"}
    assert cpu_features("model name\t: something\n") == set()


def test_fuzzed_files_are_errors_never_crashes(mlp_file, tmp_path):
    """Truncations, byte flips, splices and inserted bytes (tests/artifact_fuzz.py): each a
    HybridError before any kernel is mapped (the cases run in this process: a crash would fail
    the run). ARTIFACT_FUZZ_CASES / ARTIFACT_FUZZ_SEED change the count and the seed."""
    data = mlp_file[0].read_bytes()
    other = hybrid.export(lambda a: a * 2, hybrid.randn(4)).to_bytes()
    cases = list(mutations(data, other, FUZZ_CASES, FUZZ_SEED, _HEAD.size))
    assert len(cases) > FUZZ_CASES * 0.95
    p = tmp_path / "fuzz.hyb"
    for case in cases:
        p.write_bytes(case)
        with pytest.raises(ArtifactError):
            hybrid.load_exported(p)


def test_no_linker_is_a_clear_error(monkeypatch):
    import compiler.export_native as native

    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with pytest.raises(ArtifactError, match="system C compiler driver"):
        hybrid.export(_mlp(), hybrid.randn(4, 64))


def test_nothing_to_compile_is_a_clear_error():
    with pytest.raises(ArtifactError, match="nothing to compile"):
        hybrid.export(lambda x: x, hybrid.randn(3))


def test_a_captured_tensor_returned_as_it_is():
    w = hybrid.randn(3)

    def fn(x):
        return x * w, w

    x = hybrid.randn(3)
    got = hybrid.export(fn, x)(x)
    np.testing.assert_allclose(got[0].numpy(), (x * w).numpy())
    np.testing.assert_array_equal(got[1].numpy(), w.numpy())
    assert not np.shares_memory(got[1].numpy(), w.numpy())


def test_torch_export_argument_form():
    """torch.export.export(model, (x,)) passes the example arguments as one tuple."""
    model, x = _mlp(), hybrid.randn(4, 64)
    ep = hybrid.export(model, (x,))
    assert ep.inputs[0][2] == (4, 64)
    np.testing.assert_allclose(ep(x).numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
