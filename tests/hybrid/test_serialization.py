"""hybrid.save / hybrid.load: safetensors round trips of state dicts and nested structures, and
clear errors for files that are not valid."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hybrid
from hybrid import nn, optim
from hybrid.serialization import CheckpointNotFoundError, SerializationError


def model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_model_state_dict_roundtrip(tmp_path):
    path = tmp_path / "model.safetensors"
    m = model()
    m.register_buffer("count", hybrid.tensor(7))
    hybrid.save(m.state_dict(), path)
    sd = hybrid.load(path)
    assert list(sd) == list(m.state_dict())  # order preserved
    for k, v in m.state_dict().items():
        assert sd[k].dtype is v.dtype
        np.testing.assert_array_equal(sd[k].numpy(), v.numpy())
    m2 = model()
    m2.register_buffer("count", hybrid.tensor(0))
    m2.load_state_dict(sd)
    assert m2.count.item() == 7


def test_flat_file_is_plain_safetensors(tmp_path):
    path = str(tmp_path / "m.safetensors")
    m = model()
    hybrid.save(m.state_dict(), path)
    arrays = load_file(path)
    assert sorted(arrays) == sorted(m.state_dict())
    np.testing.assert_array_equal(arrays["0.weight"], m[0].weight.detach().numpy())
    # and a file written by another tool loads as a dict of tensors
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(tmp_path / "other.st"))
    other = hybrid.load(tmp_path / "other.st")
    assert list(other) == ["w"] and other["w"].shape == (2, 3)


def test_optimizer_state_dict_roundtrip(tmp_path):
    m = model()
    opt = optim.AdamW(m.parameters(), lr=0.01, betas=(0.8, 0.9))
    m(hybrid.randn(5, 3)).sum().backward()
    opt.step()
    path = tmp_path / "opt.safetensors"
    hybrid.save(opt.state_dict(), path)
    sd = hybrid.load(path)
    assert sd["param_groups"][0]["betas"] == (0.8, 0.9)
    assert sd["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert set(sd["state"]) == {0, 1, 2, 3}  # int keys stay ints
    np.testing.assert_array_equal(sd["state"][1]["exp_avg"].numpy(),
                                  opt.state[m[0].bias]["exp_avg"].numpy())
    assert sd["state"][0]["step"].dtype is hybrid.float32 and sd["state"][0]["step"].item() == 1
    opt2 = optim.AdamW(model().parameters())
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01


def test_nested_values(tmp_path):
    obj = {"epoch": 3, "loss": 0.25, "name": "run", "flag": True, "nothing": None,
           "nan": float("inf"), "list": [1, hybrid.ones(2), (2, "x")],
           "model": {"w": hybrid.zeros(2, 2, dtype=hybrid.float64), "b": hybrid.tensor([True])}}
    hybrid.save(obj, tmp_path / "ckpt")
    out = hybrid.load(str(tmp_path / "ckpt"))
    assert out["epoch"] == 3 and out["loss"] == 0.25 and out["name"] == "run"
    assert out["flag"] is True and out["nothing"] is None and out["nan"] == float("inf")
    assert out["list"][0] == 1 and out["list"][2] == (2, "x")
    assert out["list"][1].tolist() == [1.0, 1.0]
    assert out["model"]["w"].dtype is hybrid.float64 and out["model"]["b"].dtype is hybrid.bool
    single = tmp_path / "t"
    hybrid.save(hybrid.arange(3), single)
    assert hybrid.load(single).tolist() == [0, 1, 2]


def test_map_location(tmp_path):
    hybrid.save({"a": hybrid.ones(2)}, tmp_path / "f")
    assert hybrid.load(tmp_path / "f", map_location="cpu")["a"].device == hybrid.device("cpu")


def test_unsaveable_objects(tmp_path):
    with pytest.raises(SerializationError, match="cannot save a object .*no pickle"):
        hybrid.save({"x": object()}, tmp_path / "f")
    with pytest.raises(SerializationError, match="dict keys"):
        hybrid.save({(1, 2): 3}, tmp_path / "f")


def _valid_file(tmp_path):
    path = tmp_path / "good.safetensors"
    hybrid.save(model().state_dict(), path)
    return path


def test_truncated_file(tmp_path):
    data = _valid_file(tmp_path).read_bytes()
    bad = tmp_path / "truncated"
    bad.write_bytes(data[: len(data) - 10])
    with pytest.raises(SerializationError, match="not a valid safetensors file"):
        hybrid.load(bad)
    bad.write_bytes(data[:5])
    with pytest.raises(SerializationError, match="not a valid safetensors file"):
        hybrid.load(bad)


def test_random_bytes_and_empty(tmp_path):
    bad = tmp_path / "random"
    bad.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(SerializationError, match="not a valid safetensors file"):
        hybrid.load(bad)
    bad.write_bytes(b"")
    with pytest.raises(SerializationError):
        hybrid.load(bad)


def test_wrong_json_header(tmp_path):
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'  # not closed
    bad = tmp_path / "badjson"
    bad.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(SerializationError, match="not a valid safetensors file"):
        hybrid.load(bad)
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    bad.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)  # shape/size disagree
    with pytest.raises(SerializationError):
        hybrid.load(bad)


def test_corrupt_structure_metadata(tmp_path):
    path = str(tmp_path / "meta")
    save_file({"a": np.zeros(1, np.float32)}, path, metadata={"hybrid.structure": "{nope"})
    with pytest.raises(SerializationError, match="malformed 'hybrid.structure' metadata"):
        hybrid.load(path)
    save_file({"a": np.zeros(1, np.float32)}, path,
              metadata={"hybrid.structure": json.dumps({"__tensor__": "missing"})})
    with pytest.raises(SerializationError, match="tensor 'missing'"):
        hybrid.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no such file"):
        hybrid.load(os.path.join(tmp_path, "absent.safetensors"))
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)
    assert issubclass(SerializationError, hybrid.HybridError)


def test_a_dtype_hybrid_does_not_hold_is_a_clear_error(tmp_path):
    path = tmp_path / "u16.safetensors"
    save_file({"ok": np.ones(2, np.float32), "counts": np.arange(3, dtype=np.uint16)}, str(path))
    with pytest.raises(SerializationError, match=r"tensor 'counts' .* has dtype U16"):
        hybrid.load(path)


def test_a_directory_or_fifo_is_an_error_not_a_hang(tmp_path):
    with pytest.raises(SerializationError, match="not a regular file"):
        hybrid.load(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # nobody writes it: a blocking read would never return
    with pytest.raises(SerializationError, match="not a regular file"):
        hybrid.load(fifo)
