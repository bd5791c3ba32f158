"""hybrid.data as PyTorch users expect, without the worker machinery: default_collate and
default_convert against torch.utils.data (and their errors), samplers, random_split, Subset and
ConcatDataset, and the hybrid.utils.data alias. Worker processes are in test_data_loader.py.
Every test is bounded by the alarm of _data_loader_helpers._bounded."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from _data_loader_helpers import ArrayIntDataset, _bounded  # noqa: F401  (_bounded: autouse)

import hybrid
import hybrid.utils.data as D
from hybrid.data import transfer

Point = collections.namedtuple("Point", ["x", "y"])


def _to_py(x, lib):
    """Nested structure -> comparable plain data: tensors become (dtype name, shape, values)."""
    if lib == "torch":
        import torch

        if isinstance(x, torch.Tensor):
            return ("T", str(x.dtype).replace("torch.", ""), tuple(x.shape), x.tolist())
    elif isinstance(x, hybrid.Tensor):
        return ("T", x.dtype.name, tuple(x.shape), x.tolist())
    if isinstance(x, dict):
        return (type(x).__name__, {k: _to_py(v, lib) for k, v in x.items()})
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_to_py(v, lib) for v in x])
    return x


def _samples(make):
    """Nested samples built with `make` (hybrid.tensor or torch.tensor) for tensor leaves."""
    out = []
    for i in range(3):
        out.append({
            "image": np.arange(6, dtype=np.float32).reshape(2, 3) + i,
            "label": i,
            "weight": 0.5 * i,
            "flag": i % 2 == 0,
            "name": f"s{i}",
            "np_scalar": np.float64(i) / 3,
            "np_int": np.int32(i),
            "t": make([float(i), 1.0]),
            "ti": make([i, 2 * i]),
            "pair": (i, [np.int64(i), 1.5]),
            "point": Point(np.ones(2, np.float64) * i, i),
            "nested": collections.OrderedDict(a=[i, i + 1], b={"c": np.float16(i)}),
        })
    return out


def test_default_collate_matches_torch_on_nested_samples():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    ours = _to_py(D.default_collate(_samples(hybrid.tensor)), "hybrid")
    theirs = _to_py(torch_collate(_samples(torch.tensor)), "torch")
    assert ours == theirs
    assert ours[1]["weight"][1] == "float64" and ours[1]["label"][1] == "int64"
    assert ours[1]["pair"][0] == "list"  # a tuple becomes a list, as in PyTorch


@pytest.mark.parametrize("batch", [
    [1, 2.5], [True, False], [1.0, 2], [np.float32(1), np.float32(2)], [(1, "a"), (2, "b")],
    [[1, 2], [3, 4]], [Point(1, 2.0), Point(3, 4.0)],
])
def test_default_collate_matches_torch_on_small_batches(batch):
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    assert _to_py(D.default_collate(batch), "hybrid") == _to_py(torch_collate(batch), "torch")


def test_default_convert_matches_torch():
    pytest.importorskip("torch")
    from torch.utils.data import default_convert as torch_convert

    data = {"a": np.zeros((2, 2)), "b": (np.int64(3), "s", [np.ones(1, np.float32)]),
            "p": Point(np.float64(1.0), 2)}
    assert _to_py(D.default_convert(data), "hybrid") == _to_py(torch_convert(data), "torch")
    arr = np.arange(3.0)
    assert np.shares_memory(D.default_convert(arr).numpy(), arr)  # as_tensor, no copy


def test_collate_errors_name_the_element_and_shapes():
    ragged = [{"image": np.zeros((3, 4))}, {"image": np.zeros((3, 4))},
              {"image": np.zeros((3, 5))}]
    with pytest.raises(hybrid.HybridError,
                       match=r"sample\['image'\].*\[3, 4\] in sample 0 and \[3, 5\] in sample 2"
                             r".*collate_fn="):
        D.default_collate(ragged)
    with pytest.raises(hybrid.ShapeError, match=r"sample\[1\].*\[2\].*\[3\].*collate_fn="):
        D.default_collate([(0, hybrid.zeros(2)), (1, hybrid.zeros(3))])
    with pytest.raises(hybrid.DTypeError, match=r"sample\[0\] is a set.*collate_fn="):
        D.default_collate([({1},), ({2},)])
    with pytest.raises(hybrid.DTypeError, match=r"dtype complex64.*astype"):
        D.default_collate([np.zeros(2, np.complex64)] * 2)
    with pytest.raises(hybrid.DTypeError, match=r"dtype <U1.*collate_fn="):
        D.default_collate([np.array(["a"])] * 2)
    with pytest.raises(hybrid.DTypeError, match=r"mixes types"):
        D.default_collate([np.zeros(2), hybrid.zeros(2)])
    with pytest.raises(hybrid.ShapeError, match=r"keys \['x'\] in sample 0 but \['y'\]"):
        D.default_collate([{"x": 1}, {"y": 2}])
    with pytest.raises(hybrid.ShapeError, match="equal size"):
        D.default_collate([[1, 2], [1]])
    with pytest.raises(hybrid.ShapeError, match="non-empty list of samples"):
        D.default_collate([])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_numpy_and_int_samples(num_workers):
    batches = list(D.DataLoader(ArrayIntDataset(), batch_size=4, num_workers=num_workers))
    assert len(batches) == 3
    x, y = batches[0]
    assert isinstance(x, hybrid.Tensor) and x.dtype == hybrid.float32 and x.shape == (4, 4)
    assert y.dtype == hybrid.int64 and y.tolist() == [0, 1, 2, 3]
    assert batches[2][1].tolist() == [8, 9]
    np.testing.assert_array_equal(batches[1][0].numpy()[:, 0], [4, 5, 6, 7])


def test_samplers_give_permutations_of_the_right_size():
    data = list(range(10))
    assert list(D.SequentialSampler(data)) == data
    hybrid.manual_seed(1)
    a = list(D.RandomSampler(data))
    b = list(D.RandomSampler(data))
    assert sorted(a) == data and a != b
    hybrid.manual_seed(1)
    assert list(D.RandomSampler(data)) == a
    long = list(D.RandomSampler(data, num_samples=25))
    assert len(long) == 25 and sorted(long[:10]) == data and sorted(long[10:20]) == data
    assert len(set(long[20:])) == 5
    rep = list(D.RandomSampler(data, replacement=True, num_samples=200))
    assert len(rep) == 200 and set(rep) <= set(data) and len(set(rep)) == 10
    g = hybrid.Generator(3)
    sub = list(D.SubsetRandomSampler([5, 7, 9, 11], generator=g))
    assert sorted(sub) == [5, 7, 9, 11]
    assert sub == list(D.SubsetRandomSampler([5, 7, 9, 11], generator=hybrid.Generator(3)))
    with pytest.raises(hybrid.ShapeError, match="num_samples should be a positive int"):
        D.RandomSampler(data, num_samples=0)


def test_weighted_sampler():
    w = [0.0, 1.0, 3.0, 0.0]
    draws = list(D.WeightedRandomSampler(w, 4000, generator=hybrid.Generator(0)))
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == 0 and counts[3] == 0
    assert abs(counts[2] / 4000 - 0.75) < 0.03  # ~7 standard deviations
    no_rep = list(D.WeightedRandomSampler([1, 1, 1, 5], 3, replacement=False))
    assert len(set(no_rep)) == 3
    with pytest.raises(hybrid.ShapeError, match="without replacement from 2 non-zero weights"):
        D.WeightedRandomSampler(w, 3, replacement=False)
    with pytest.raises(hybrid.ShapeError, match="non-negative"):
        D.WeightedRandomSampler([1.0, -1.0], 2)


def test_batch_sampler_matches_torch():
    pytest.importorskip("torch")
    from torch.utils.data import BatchSampler as TorchBatchSampler

    for n, bs, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False)]:
        ours = D.BatchSampler(range(n), bs, drop)
        theirs = TorchBatchSampler(range(n), bs, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_random_split_sizes_and_reproducibility():
    torch = pytest.importorskip("torch")
    from torch.utils.data import random_split as torch_split

    for n, lengths in [(11, [0.3, 0.3, 0.4]), (5, [0.5, 0.5]), (10, [3, 7]), (7, [1.0])]:
        ours = D.random_split(list(range(n)), lengths, generator=hybrid.Generator(0))
        theirs = torch_split(list(range(n)), lengths, generator=torch.Generator().manual_seed(0))
        assert [len(s) for s in ours] == [len(s) for s in theirs]
        assert sorted(i for s in ours for i in s) == list(range(n))  # disjoint, complete
    a = D.random_split(range(20), [5, 15], generator=hybrid.Generator(4))
    b = D.random_split(range(20), [5, 15], generator=hybrid.Generator(4))
    assert list(a[0]) == list(b[0]) and list(a[0]) != list(range(5))
    with pytest.raises(hybrid.ShapeError, match="sum to 9, but the dataset has 10"):
        D.random_split(range(10), [4, 5])


def test_subset_and_concat():
    pytest.importorskip("torch")
    from torch.utils.data import ConcatDataset as TorchConcat

    parts = [list(range(3)), list(range(10, 15)), list(range(20, 22))]
    ours, theirs = D.ConcatDataset(parts), TorchConcat(parts)
    assert len(ours) == len(theirs) == 10
    assert [ours[i] for i in range(-10, 10)] == [theirs[i] for i in range(-10, 10)]
    with pytest.raises(hybrid.HybridIndexError):
        ours[10]
    both = D.Subset(ArrayIntDataset(), [9, 2]) + D.Subset(ArrayIntDataset(), [5])
    assert [y for _, y in both] == [9, 2, 5]
    loader = D.DataLoader(D.Subset(ArrayIntDataset(), [7, 3, 1]), batch_size=2)
    assert [y.tolist() for _, y in loader] == [[7, 3], [1]]


def test_utils_data_is_an_alias():
    import hybrid.data
    from hybrid.utils.data import DataLoader

    assert hybrid.utils.data is hybrid.data and DataLoader is hybrid.data.DataLoader
    import hybrid.utils.data.sampler as sampler_mod

    assert sampler_mod is hybrid.data.sampler
    import hybrid.utils.data.transfer as transfer_mod

    assert transfer_mod is transfer
