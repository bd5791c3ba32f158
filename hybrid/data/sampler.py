"""Samplers: which indices a DataLoader reads, in what order, and how they group into batches.

Random orders come from hybrid's generator (the default one or `generator=`), so
hybrid.manual_seed makes every epoch reproducible."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hybrid import errors


def _positive_int(name: str, owner: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise errors.ShapeError(errors.at_user(
            f"{owner}: {name} should be a positive int, got {name}={value!r}"))
    return value


def _uniform(n: int, generator: Any) -> np.ndarray:
    """n float64 draws in [0, 1) from hybrid's generator (the default one when None)."""
    from hybrid.dtypes import float64
    from hybrid.random import rand

    return rand(n, dtype=float64, generator=generator, device="cpu").numpy()


class Sampler:
    """Yields dataset indices (or, for a batch sampler, lists of them)."""

    def __init__(self, data_source: Any = None) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random permutation each epoch; with replacement, num_samples uniform draws."""

    def __init__(self, data_source: Any, replacement: bool = False,
                 num_samples: int | None = None, generator: Any = None) -> None:
        if not isinstance(replacement, bool):
            raise errors.DTypeError(errors.at_user(
                f"RandomSampler: replacement should be a bool, got {replacement!r}"))
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if num_samples is not None:
            _positive_int("num_samples", "RandomSampler", num_samples)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        from hybrid.random import randint, randperm

        n, k = len(self.data_source), self.num_samples
        if self.replacement:
            yield from randint(0, n, (k,), generator=self.generator, device="cpu").tolist()
            return
        for _ in range(k // n):
            yield from randperm(n, generator=self.generator, device="cpu").tolist()
        if k % n:
            yield from randperm(n, generator=self.generator, device="cpu").tolist()[:k % n]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order (a new one each epoch)."""

    def __init__(self, indices: Sequence[int], generator: Any = None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        from hybrid.random import randperm

        for i in randperm(len(self.indices), generator=self.generator, device="cpu").tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices drawn with probability proportional to `weights`."""

    def __init__(self, weights: Any, num_samples: int, replacement: bool = True,
                 generator: Any = None) -> None:
        _positive_int("num_samples", "WeightedRandomSampler", num_samples)
        if not isinstance(replacement, bool):
            raise errors.DTypeError(errors.at_user(
                f"WeightedRandomSampler: replacement should be a bool, got {replacement!r}"))
        w = np.asarray(weights.numpy(force=True) if hasattr(weights, "numpy") else weights,
                       dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or \
                w.sum() <= 0:
            raise errors.ShapeError(errors.at_user(
                f"WeightedRandomSampler: weights should be a non-empty 1-D sequence of finite, "
                f"non-negative numbers with a positive sum, got shape {list(w.shape)}"))
        if not replacement and num_samples > int(np.count_nonzero(w)):
            raise errors.ShapeError(errors.at_user(
                f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement "
                f"from {int(np.count_nonzero(w))} non-zero weights; lower num_samples or set "
                "replacement=True"))
        self.weights = w
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        u = _uniform(self.num_samples if self.replacement else len(self.weights), self.generator)
        if self.replacement:
            cdf = np.cumsum(self.weights)
            idx = np.searchsorted(cdf, u * cdf[-1], side="right")
            # NOTE: u * total can round up to total; the last positive weight takes it.
            idx = np.minimum(idx, int(np.flatnonzero(self.weights)[-1]))
        else:  # Efraimidis-Spirakis: the k largest log(u) / w
            with np.errstate(divide="ignore"):
                keys = np.log(u) / self.weights
            idx = np.argsort(-keys, kind="stable")[:self.num_samples]
        yield from idx.tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of batch_size (the last may be short)."""

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        _positive_int("batch_size", "BatchSampler", batch_size)
        if not isinstance(drop_last, bool):
            raise errors.DTypeError(errors.at_user(
                f"BatchSampler: drop_last should be a bool, got {drop_last!r}"))
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list]:
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class _InfiniteConstantSampler(Sampler):
    """None forever: an IterableDataset's loader asks for 'the next sample' each time."""

    def __iter__(self) -> Iterator[None]:
        while True:
            yield None
