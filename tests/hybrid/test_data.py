"""hybrid.data: TensorDataset and DataLoader batching, drop_last, and reproducible shuffling."""

from __future__ import annotations

import pytest

import hybrid
from hybrid.data import DataLoader, Dataset, TensorDataset


def dataset(n=10):
    return TensorDataset(hybrid.arange(n), hybrid.arange(n) * 10.0)


def batches(loader):
    return [(x.tolist(), y.tolist()) for x, y in loader]


def test_tensor_dataset():
    ds = dataset()
    assert len(ds) == 10
    x, y = ds[3]
    assert x.item() == 3 and y.item() == 30.0
    with pytest.raises(hybrid.ShapeError, match=r"same size in dim 0.*\[3\], \[4\]"):
        TensorDataset(hybrid.zeros(3), hybrid.zeros(4))


def test_batching_in_order():
    loader = DataLoader(dataset(), batch_size=4)
    assert len(loader) == 3
    assert [x for x, _ in batches(loader)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches(loader)[0][1] == [0.0, 10.0, 20.0, 30.0]


def test_drop_last():
    loader = DataLoader(dataset(), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [x for x, _ in batches(loader)] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_shuffle_is_a_permutation_and_reproducible():
    loader = DataLoader(dataset(), batch_size=3, shuffle=True)
    hybrid.manual_seed(0)
    first = batches(loader)
    second = batches(loader)
    assert sorted(i for x, _ in first for i in x) == list(range(10))
    assert all(y == [10.0 * i for i in x] for x, y in first)  # rows stay paired
    assert first != second  # a new order each epoch
    hybrid.manual_seed(0)
    assert batches(loader) == first


def test_shuffle_with_generator():
    g1, g2 = hybrid.Generator(5), hybrid.Generator(5)
    a = batches(DataLoader(dataset(), batch_size=4, shuffle=True, generator=g1))
    b = batches(DataLoader(dataset(), batch_size=4, shuffle=True, generator=g2))
    assert a == b
    assert a != batches(DataLoader(dataset(), batch_size=4, shuffle=True,
                                   generator=hybrid.Generator(6)))


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": hybrid.tensor([float(i)]), "y": i * i}


def test_generic_dataset_collate():
    out = list(DataLoader(Squares(), batch_size=2))
    assert len(out) == 3
    assert out[0]["x"].shape == (2, 1) and out[0]["y"].tolist() == [0, 1]
    assert out[2]["y"].tolist() == [16]


def test_bad_batch_size():
    with pytest.raises(hybrid.ShapeError, match="batch_size should be a positive int"):
        DataLoader(dataset(), batch_size=0)
