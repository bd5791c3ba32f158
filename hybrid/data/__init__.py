"""hybrid.data (also hybrid.utils.data): datasets, samplers, default_collate and a DataLoader
with worker processes, with torch.utils.data's names and semantics.

Shuffling draws from hybrid's generator, so hybrid.manual_seed makes epochs reproducible."""

from hybrid.data.collate import default_collate, default_convert
from hybrid.data.dataset import (
    ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split,
)
from hybrid.data.loader import DataLoader
from hybrid.data.sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
    WeightedRandomSampler,
)
from hybrid.data.worker import DataLoaderError, WorkerInfo, get_worker_info

__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "DataLoaderError", "Dataset",
    "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset",
    "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "WorkerInfo",
    "default_collate", "default_convert", "get_worker_info", "random_split",
]
