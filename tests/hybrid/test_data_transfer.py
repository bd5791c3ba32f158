"""The worker-to-main-process batch codec (hybrid/data/transfer.py): JSON structure plus raw
buffers, no pickle. Round trips of everything a batch may hold, and refusals of what it may
not (in the worker) or of a message naming a class of the wrong kind (in the main process)."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

import hybrid
from hybrid.data import transfer

Point = collections.namedtuple("Point", "x y")


def _round_trip(obj):
    meta, raws = transfer.encode(obj)
    json.loads(meta)  # the structure is plain JSON
    buffers = [np.frombuffer(bytes(r), np.uint8).copy() for r in raws]
    return transfer.decode(meta, buffers)


def test_everything_a_batch_may_hold_round_trips():
    import ml_dtypes

    t32 = hybrid.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    batch = {
        "x": t32, "ids": hybrid.tensor([3, 1, 2]), "mask": hybrid.tensor([True, False]),
        "bf": hybrid.tensor(np.ones(3, np.float32)).bfloat16(),
        "np": np.arange(12.0).reshape(3, 4)[:, ::2], "zero_d": np.array(2.5),
        "empty": np.zeros((0, 4), np.int32), "scalar": np.float32(1.5), "i": np.int64(7),
        "plain": [None, True, 3, -2.5, float("inf"), "text", b"\x00\xffbytes"],
        "tuple": (1, (2, 3)), "point": Point(hybrid.tensor([1.0]), "y"),
        5: "int key", (1, 2): "tuple key",
        "ordered": collections.OrderedDict(b=1, a=2),
    }
    out = _round_trip(batch)
    assert list(out) == list(batch)
    np.testing.assert_array_equal(out["x"].numpy(), t32.numpy())
    assert isinstance(out["x"], hybrid.Tensor) and out["x"].dtype == hybrid.float32
    assert out["ids"].dtype == hybrid.int64 and out["ids"].tolist() == [3, 1, 2]
    assert out["mask"].dtype == hybrid.bool and out["mask"].tolist() == [True, False]
    assert out["bf"].dtype == hybrid.bfloat16 and out["bf"].numpy().dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out["np"], batch["np"])
    assert isinstance(out["np"], np.ndarray) and out["zero_d"].shape == () and out["zero_d"] == 2.5
    assert out["empty"].shape == (0, 4) and out["empty"].dtype == np.int32
    assert out["scalar"] == np.float32(1.5) and out["scalar"].dtype == np.float32
    assert out["i"] == 7 and out["i"].dtype == np.int64
    assert out["plain"] == batch["plain"] and type(out["tuple"]) is tuple
    assert out["tuple"] == (1, (2, 3))
    assert type(out["point"]) is Point and out["point"].y == "y"
    assert out[5] == "int key" and out[(1, 2)] == "tuple key"
    assert type(out["ordered"]) is collections.OrderedDict and list(out["ordered"]) == ["b", "a"]
    nan = _round_trip([float("nan")])[0]
    assert nan != nan


@pytest.mark.parametrize("bad", [lambda: 0, object(), np.array([1, "a"], dtype=object), {1, 2}])
def test_what_cannot_be_sent_is_refused_in_the_worker(bad):
    with pytest.raises(transfer.TransferError):
        transfer.encode({"x": [bad]})


def test_a_message_naming_another_kind_of_class_is_refused():
    """A class reference is looked up as a namedtuple / dict subclass / exception type only:
    a message naming os.system never calls it."""
    for meta in ({"N": [["os", "system"], ["echo hacked"]]}, {"D": [], "cls": ["os", "system"]},
                 {"N": [["builtins", "eval"], ["1"]]}, {"Q": 1}):
        with pytest.raises(transfer.TransferError):
            transfer.decode(json.dumps(meta).encode(), [])


def test_a_worker_exception_keeps_its_type():
    import hybrid.data as D

    class Broken(D.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            raise KeyError(f"no item {i}")

    with pytest.raises(KeyError, match="no item 0"):
        next(iter(D.DataLoader(Broken(), batch_size=2, num_workers=1)))
