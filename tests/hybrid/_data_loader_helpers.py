"""Shared by the DataLoader tests (test_data_loader.py, test_data_loader_collate.py): the autouse
alarm fixture that bounds every test and checks that it leaves no worker processes, and a small
map-style dataset."""

from __future__ import annotations

import multiprocessing
import signal

import numpy as np
import pytest

import hybrid.utils.data as D


@pytest.fixture(autouse=True)
def _bounded():
    """Fail a test that runs past 30 s (a hang) and check it leaves no worker processes."""
    def on_alarm(signum, frame):
        raise TimeoutError("test_data_loader: test ran past its 30 s bound (a hang?)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if multiprocessing.active_children():
        import gc

        gc.collect()  # an iterator in a reference cycle
    assert multiprocessing.active_children() == []


class ArrayIntDataset(D.Dataset):
    """A map-style dataset returning (np.ndarray, int), as in PyTorch's tutorials."""

    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full(4, i, dtype=np.float32), i
