"""Datasets and batching: TensorDataset and DataLoader (batch_size, shuffle, drop_last,
generator), shuffling with hybrid.randperm so that manual_seed makes epochs reproducible."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from hybrid import errors
from hybrid.tensor import Tensor


class Dataset:
    """Anything with __getitem__(index) and __len__()."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are rows of the given tensors (all with the same first dim)."""

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise errors.ShapeError(errors.at_user("TensorDataset: give at least one tensor"))
        n = tensors[0].shape[0] if tensors[0].ndim else None
        if n is None or any(t.ndim == 0 or t.shape[0] != n for t in tensors):
            raise errors.ShapeError(
                errors.at_user("TensorDataset: all tensors need the same size in dim 0, got shapes "
                               + ", ".join(str(list(t.shape)) for t in tensors))
            )
        self.tensors = tensors

    def __getitem__(self, index: Any) -> tuple:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


def default_collate(samples: list) -> Any:
    """Stack a list of samples: tensors are stacked, numbers made tensors, tuples/dicts recursed."""
    from hybrid.ops.creation import tensor
    from hybrid.ops.shape import stack

    first = samples[0]
    if isinstance(first, Tensor):
        return stack(samples, 0)
    if isinstance(first, (int, float, bool)):
        return tensor(samples)
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(default_collate(list(col)) for col in zip(*samples)) \
            if isinstance(first, tuple) else [default_collate(list(c)) for c in zip(*samples)]
    return samples


class DataLoader:
    """Iterates over a dataset in batches. TensorDataset batches are taken with one index op per
    tensor (no per-sample Python loop)."""

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, generator: Any = None,
                 collate_fn: Callable[[list], Any] | None = None) -> None:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise errors.ShapeError(
                errors.at_user(f"DataLoader: batch_size should be a positive int, got {batch_size!r}")
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.collate_fn = collate_fn or default_collate

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> Any:
        from hybrid.ops.creation import arange
        from hybrid.random import randperm

        n = len(self.dataset)
        return randperm(n, generator=self.generator) if self.shuffle else arange(n)

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        n = len(self.dataset)
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate
        ids = None if fast else order.tolist()
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if stop - start < self.batch_size and self.drop_last:
                return
            if fast:
                idx = order[start:stop]
                yield tuple(t[idx] for t in self.dataset.tensors)
            else:
                yield self.collate_fn([self.dataset[i] for i in ids[start:stop]])
