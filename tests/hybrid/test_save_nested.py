"""hybrid.save / hybrid.load of nested checkpoints (no pickle): structure, values, refusal of
arbitrary objects, malformed files."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

import hybrid
from hybrid.serialization import SerializationError


def _checkpoint():
    hybrid.manual_seed(0)
    model = hybrid.nn.Sequential(hybrid.nn.Linear(3, 4), hybrid.nn.ReLU(), hybrid.nn.Linear(4, 1))
    opt = hybrid.optim.Adam(model.parameters(), lr=1e-3)
    model(hybrid.randn(5, 3)).sum().backward()
    opt.step()
    return model, opt, {
        "epoch": 7, "loss": 0.125, "best": None, "done": False, "name": "run-1",
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "history": [1.0, 0.5, (2, "x")], "mean": np.arange(6, dtype=np.float32).reshape(2, 3),
        "ids": np.array([3, 1, 2], dtype=np.int64), "step": np.int64(12),
        "nested": {"a": [{"b": hybrid.ones(2, dtype=hybrid.int64)}], 3: "int key"},
    }


def _same(a, b):
    if isinstance(a, hybrid.Tensor):
        assert isinstance(b, hybrid.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.detach().numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert type(a) is type(b) or isinstance(a, np.generic), (a, b)
        assert a == b


@pytest.mark.parametrize("target", ["path", "buffer"])
def test_checkpoint_round_trip(tmp_path, target):
    model, _, ck = _checkpoint()
    if target == "path":
        hybrid.save(ck, tmp_path / "ck.pt")
        back = hybrid.load(tmp_path / "ck.pt")
    else:
        buf = io.BytesIO()
        hybrid.save(ck, buf)
        buf.seek(0)
        back = hybrid.load(buf)
    _same(ck, back)
    fresh = hybrid.nn.Sequential(hybrid.nn.Linear(3, 4), hybrid.nn.ReLU(), hybrid.nn.Linear(4, 1))
    fresh.load_state_dict(back["model"])
    opt2 = hybrid.optim.Adam(fresh.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    x = hybrid.randn(2, 3)
    np.testing.assert_array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())


def test_file_is_plain_safetensors_without_pickle(tmp_path):
    _, _, ck = _checkpoint()
    hybrid.save(ck, tmp_path / "ck.safetensors")
    raw = (tmp_path / "ck.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert "hybrid.structure" in header["__metadata__"]
    assert b"\x80\x04" not in raw[:8 + n]  # no pickle protocol marker in the header
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return
    arrays = load_file(str(tmp_path / "ck.safetensors"))
    np.testing.assert_array_equal(arrays["mean"], ck["mean"])


class _Thing:
    pass


@pytest.mark.parametrize("bad", [_Thing(), {"f": lambda: 1}, {"s": {1, 2}}, b"bytes",
                                 np.array(["a"], dtype=object)])
def test_arbitrary_objects_are_refused_with_the_reason(tmp_path, bad):
    with pytest.raises(SerializationError, match="cannot save"):
        hybrid.save(bad, tmp_path / "x.pt")


def test_refusal_says_why_and_what_to_do(tmp_path):
    with pytest.raises(hybrid.HybridError) as info:
        hybrid.save({"model": hybrid.nn.Linear(2, 2)}, tmp_path / "x.pt")
    msg = str(info.value)
    assert "pickle" in msg and "run any code" in msg and "state_dict()" in msg


def test_torch_reads_the_tensors_too(tmp_path):
    pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    model, _, _ = _checkpoint()
    hybrid.save(model.state_dict(), tmp_path / "m.safetensors")
    loaded = st.load_file(str(tmp_path / "m.safetensors"))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())


def _with_structure(tmp_path, structure):
    from safetensors.numpy import save_file

    path = tmp_path / "evil.safetensors"
    save_file({"w": np.ones(2, np.float32)}, str(path),
              metadata={"hybrid.version": "1", "hybrid.structure": structure})
    return path


@pytest.mark.parametrize("structure", ['{"__tensor__": "missing"}', "not json",
                                       '{"__dict__": [[1]]}', '{"__tensor__": ["w"]}',
                                       '{"what": 1}', '{"__ndarray__": "nope"}'])
def test_malformed_structure_is_an_error(tmp_path, structure):
    with pytest.raises(SerializationError):
        hybrid.load(_with_structure(tmp_path, structure))


@pytest.mark.parametrize("data", [b"", b"\x00" * 3, b"\xff" * 64,
                                  struct.pack("<Q", 10) + b'{"a": 1}xx',
                                  struct.pack("<Q", 1 << 40) + b"{}"])
def test_malformed_bytes_are_an_error(tmp_path, data):
    (tmp_path / "bad.pt").write_bytes(data)
    with pytest.raises(SerializationError):
        hybrid.load(tmp_path / "bad.pt")
    with pytest.raises(SerializationError):
        hybrid.load(io.BytesIO(data))


def test_truncated_checkpoint_is_an_error(tmp_path):
    _, _, ck = _checkpoint()
    hybrid.save(ck, tmp_path / "ck.pt")
    raw = (tmp_path / "ck.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) - 7])
    with pytest.raises(SerializationError):
        hybrid.load(tmp_path / "cut.pt")


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        hybrid.load("/nonexistent/dir/ck.pt")
