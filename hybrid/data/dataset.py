"""Datasets: map-style Dataset and IterableDataset, TensorDataset, Subset, ConcatDataset,
ChainDataset and random_split, with torch.utils.data's semantics."""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from hybrid import errors
from hybrid.tensor import Tensor


class Dataset:
    """A map-style dataset: __getitem__(index) and __len__(); `a + b` concatenates."""

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: __iter__(). In a worker, get_worker_info() tells which shard to
    yield (each worker iterates its own copy of the dataset)."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other: Any) -> ChainDataset:
        return ChainDataset([self, other])


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

    def __getstate__(self) -> dict:
        # NOTE: sent to spawned workers as numpy arrays, never as pickled Tensor objects.
        return {"arrays": [t.detach().numpy(force=True) for t in self.tensors]}

    def __setstate__(self, state: dict) -> None:
        from hybrid.ops.creation import from_numpy

        self.tensors = tuple(from_numpy(a) for a in state["arrays"])


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list) -> list:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Map-style datasets one after the other."""

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise errors.ShapeError(errors.at_user("ConcatDataset: datasets should not be empty"))
        for i, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset):
                raise errors.DTypeError(errors.at_user(
                    f"ConcatDataset: datasets[{i}] is an IterableDataset, which has no indices; "
                    "use ChainDataset to chain iterable datasets"))
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise errors.HybridIndexError(errors.at_user(
                    f"ConcatDataset: index {idx} is out of range for length {n}"))
            idx += n
        if idx >= n:
            raise errors.HybridIndexError(errors.at_user(
                f"ConcatDataset: index {idx} is out of range for length {n}"))
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """Iterable datasets one after the other."""

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)

    def __iter__(self) -> Iterator[Any]:
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


def _split_lengths(n: int, lengths: Sequence[float]) -> list[int]:
    """Fractions that sum to 1 become counts (the remainder dealt round-robin, as PyTorch)."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, f in enumerate(lengths):
            if not 0 <= f <= 1:
                raise errors.ShapeError(errors.at_user(
                    f"random_split: fraction at index {i} is {f}, not between 0 and 1"))
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this split "
                              "will be empty", stacklevel=3)
        return counts
    if any(not isinstance(x, int) or x < 0 for x in lengths):
        raise errors.ShapeError(errors.at_user(
            f"random_split: lengths should be non-negative ints or fractions summing to 1, got "
            f"{list(lengths)}"))
    return list(lengths)


def random_split(dataset: Any, lengths: Sequence[float], generator: Any = None) -> list[Subset]:
    """Split into non-overlapping random Subsets of the given lengths (or fractions)."""
    from hybrid.random import randperm

    n = len(dataset)
    counts = _split_lengths(n, list(lengths))
    if sum(counts) != n:
        raise errors.ShapeError(errors.at_user(
            f"random_split: lengths {counts} sum to {sum(counts)}, but the dataset has {n} "
            "samples; give lengths that sum to the dataset's length, or fractions that sum to 1"))
    order = randperm(n, generator=generator, device="cpu").tolist()
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, order[start:start + c]))
        start += c
    return out
