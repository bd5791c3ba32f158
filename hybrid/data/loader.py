"""DataLoader: batches from a dataset through a sampler, in the main process or in workers,
with torch.utils.data.DataLoader's arguments and semantics."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from hybrid import errors
from hybrid.data.collate import default_collate, default_convert
from hybrid.data.dataset import IterableDataset
from hybrid.data.sampler import (
    BatchSampler, RandomSampler, SequentialSampler, _InfiniteConstantSampler,
)
from hybrid.data.worker import Fetcher

_FROZEN = ("dataset", "batch_size", "batch_sampler", "sampler", "drop_last",
           "persistent_workers")


def _bad(message: str) -> errors.HybridError:
    return errors.ShapeError(errors.at_user(f"DataLoader: {message}"))


class _SingleProcessIter:
    """Iterates a DataLoader in the calling process (num_workers=0)."""

    def __init__(self, loader: DataLoader) -> None:
        from hybrid.data.multiprocess import _base_seed

        self._sampler_iter = iter(loader._index_sampler)
        # NOTE: drawn as PyTorch does, so that the sampler's order with a given seed is the
        # same for every num_workers.
        self._base_seed = _base_seed(loader.generator)
        self._fetcher = Fetcher(loader.dataset, loader._iterable, loader._auto_collation,
                                loader.collate_fn, loader.drop_last)
        self._len = loader._length_or_none()

    def __iter__(self) -> _SingleProcessIter:
        return self

    def __len__(self) -> int:
        if self._len is None:
            raise TypeError("this DataLoader's dataset has no len()")
        return self._len

    def __next__(self) -> Any:
        return self._fetcher.fetch(next(self._sampler_iter))


class DataLoader:
    """Iterates over a dataset in batches, optionally with worker processes (num_workers > 0).

    pin_memory is accepted and does nothing: batches are numpy-backed CPU tensors."""

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Any = None, batch_sampler: Any = None, num_workers: int = 0,
                 collate_fn: Callable[[list], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Any = None,
                 multiprocessing_context: Any = None, generator: Any = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise _bad(f"num_workers should be a non-negative int, got {num_workers!r}; use "
                       "num_workers=0 to load in the main process")
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise _bad(f"timeout should be a non-negative number of seconds, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise _bad("prefetch_factor needs num_workers > 0 (it is how many batches each "
                       "worker loads ahead); leave it None or set num_workers")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int)
                                            or prefetch_factor < 1):
            raise _bad(f"prefetch_factor should be a positive int, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise _bad("persistent_workers=True needs num_workers > 0")
        if multiprocessing_context is not None and num_workers == 0:
            raise _bad("multiprocessing_context needs num_workers > 0")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            for name, value in (("shuffle", shuffle not in (None, False)), ("sampler", sampler),
                                ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise _bad(f"an IterableDataset gives its own order; {name}= cannot be used "
                               "with it (shuffle or shard inside the dataset's __iter__)")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise _bad("sampler= and shuffle=True cannot be used together (the sampler decides "
                       "the order; use RandomSampler for a shuffled one)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise _bad("batch_sampler= cannot be used with batch_size, shuffle, sampler or "
                           "drop_last (the batch sampler decides them)")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise _bad("batch_size=None turns batching off, so drop_last=True means nothing")
        elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise _bad(f"batch_size should be a positive int, got {batch_size!r}")
        if sampler is None:
            if iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.multiprocessing_context = multiprocessing_context
        self._iterable = iterable
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        self.collate_fn = collate_fn
        self._iterator: Any = None
        self.__initialized = True

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FROZEN and getattr(self, "_DataLoader__initialized", False):
            raise _bad(f"{name} cannot be changed after the DataLoader is created; make a new "
                       "DataLoader")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self) -> Any:
        return self.batch_sampler if self._auto_collation else self.sampler

    def _mp_context(self) -> Any:
        import multiprocessing

        ctx = self.multiprocessing_context
        if ctx is None:
            # NOTE: fork on Linux as PyTorch (workers share the dataset's memory, start fast);
            # the platform's default elsewhere.
            if sys.platform.startswith("linux"):
                return multiprocessing.get_context("fork")
            return multiprocessing.get_context()
        if isinstance(ctx, str):
            try:
                return multiprocessing.get_context(ctx)
            except ValueError:
                raise _bad(f"multiprocessing_context={ctx!r} is not one of "
                           f"{multiprocessing.get_all_start_methods()}") from None
        return ctx

    def _length_or_none(self) -> int | None:
        try:
            return len(self)
        except TypeError:
            return None

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError when the dataset has no len(), as PyTorch
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        from hybrid.data.multiprocess import MultiProcessIter

        if not self.persistent_workers:
            return MultiProcessIter(self)
        if self._iterator is None or self._iterator.closed:  # first epoch, or after a failure
            self._iterator = MultiProcessIter(self)
        else:
            self._iterator._reset(self)
        return self._iterator
