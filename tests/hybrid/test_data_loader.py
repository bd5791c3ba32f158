"""hybrid.data's DataLoader with worker processes, as PyTorch users expect: iterable datasets
sharded by worker, seeds, worker_init_fn, persistent workers, errors with the worker's traceback,
dead workers, timeouts, prefetching, batch transfer, clean shutdown, and training and compiled
functions with workers. Collation, samplers and datasets are in test_data_loader_collate.py.
Every test is bounded by an alarm (_data_loader_helpers._bounded), so a hang fails the test instead
of the session.
NOTE: some tests check that an error names this file (test_data_loader.py): keep its name."""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import signal
import textwrap
import time

import numpy as np
import pytest
from _data_loader_helpers import ArrayIntDataset, _bounded  # noqa: F401  (_bounded: autouse)
from subproc import run_python

import hybrid
import hybrid.utils.data as D
from hybrid.data import transfer


class Shards(D.IterableDataset):
    """range(start, stop), split between workers with get_worker_info()."""

    def __init__(self, start, stop):
        self.start, self.stop = start, stop

    def __len__(self):
        return self.stop - self.start

    def __iter__(self):
        info = D.get_worker_info()
        if info is None:
            return iter(range(self.start, self.stop))
        per = -(-(self.stop - self.start) // info.num_workers)
        lo = self.start + info.id * per
        return iter(range(lo, min(lo + per, self.stop)))


@pytest.mark.parametrize("num_workers", [0, 3])
def test_iterable_dataset_sharded_by_worker(num_workers):
    loader = D.DataLoader(Shards(0, 20), batch_size=4, num_workers=num_workers)
    seen = [v for b in loader for v in b.tolist()]
    assert sorted(seen) == list(range(20))
    assert len(loader) == 5
    dropped = D.DataLoader(Shards(0, 10), batch_size=4, drop_last=True, num_workers=num_workers)
    assert all(len(b) == 4 for b in dropped)
    with pytest.raises(hybrid.ShapeError, match="IterableDataset gives its own order"):
        D.DataLoader(Shards(0, 4), shuffle=True)
    chained = Shards(0, 3) + Shards(10, 12)
    assert isinstance(chained, D.ChainDataset) and len(chained) == 5
    assert list(chained) == [0, 1, 2, 10, 11]
    with pytest.raises(hybrid.HybridError, match="use ChainDataset"):
        D.ConcatDataset([Shards(0, 3)])


def test_persistent_workers_restart_an_iterable_dataset_each_epoch():
    loader = D.DataLoader(Shards(0, 12), batch_size=2, num_workers=3, persistent_workers=True)
    for _ in range(2):
        assert sorted(v for b in loader for v in b.tolist()) == list(range(12))
    pids = set(loader._iterator.worker_pids())
    next(iter(loader))  # an epoch stopped early
    assert sorted(v for b in loader for v in b.tolist()) == list(range(12))
    assert set(loader._iterator.worker_pids()) == pids
    del loader


def _failing_init(worker_id):
    raise RuntimeError(f"no database for worker {worker_id}")


def test_worker_init_fn_error_and_spawn_pickling_error():
    loader = D.DataLoader(ArrayIntDataset(), num_workers=1, worker_init_fn=_failing_init)
    with pytest.raises(RuntimeError, match=r"(?s)worker process 0.*_failing_init.*no database"):
        next(iter(loader))
    ds = ArrayIntDataset()
    ds.fn = lambda: 0
    with pytest.raises(D.DataLoaderError, match=r"'spawn' start method.*module level"):
        iter(D.DataLoader(ds, num_workers=1, multiprocessing_context="spawn"))


class Seeds(D.Dataset):
    """Each sample reports its worker's id, seed and a draw from every RNG the worker seeds."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = D.get_worker_info()
        return (info.id, info.seed, hybrid.rand(1).item(), float(np.random.rand()),
                random.random(), os.environ.get("HYBRID_TEST_INIT", ""))


def _init(worker_id):
    os.environ["HYBRID_TEST_INIT"] = f"init{worker_id}"


def _seed_rows(seed):
    hybrid.manual_seed(seed)
    loader = D.DataLoader(Seeds(), batch_size=2, num_workers=2, worker_init_fn=_init)
    return [tuple(zip(*[c.tolist() if isinstance(c, hybrid.Tensor) else c for c in b]))
            for b in loader]


def test_worker_seeds_distinct_and_reproducible():
    first = _seed_rows(0)
    rows = [r for b in first for r in b]
    by_worker = {r[0]: r for r in rows}
    assert set(by_worker) == {0, 1}
    s0, s1 = by_worker[0][1], by_worker[1][1]
    assert s1 == s0 + 1  # base_seed + worker_id
    for k in (2, 3, 4):  # hybrid, numpy and random streams differ between workers
        assert by_worker[0][k] != by_worker[1][k]
    assert {r[5] for r in rows} == {"init0", "init1"}  # worker_init_fn ran in each worker
    assert all(r[5] == f"init{r[0]}" for r in rows)
    assert _seed_rows(0) == first
    assert _seed_rows(1) != first
    assert "HYBRID_TEST_INIT" not in os.environ  # it ran in the workers, not here


class Failing(D.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        if i == 7:
            raise ValueError(f"bad sample {i}")
        return i


def test_worker_exception_shows_the_worker_traceback():
    loader = D.DataLoader(Failing(), batch_size=2, num_workers=2)
    got = []
    with pytest.raises(ValueError) as info:
        for b in loader:
            got.append(b.tolist())
    msg = str(info.value)
    assert msg.startswith("Caught ValueError in DataLoader worker process 1.")
    assert "Original Traceback (most recent call last)" in msg
    assert "in __getitem__" in msg and "bad sample 7" in msg and "test_data_loader.py" in msg
    assert got == [[0, 1], [2, 3], [4, 5]]  # batches before the failing one, in order
    del info
    assert multiprocessing.active_children() == []  # freed with the exception, no gc needed


class Ragged(D.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"image": np.zeros((3, 4 + i % 2), np.float32)}


def test_collate_error_in_a_worker_names_the_users_line():
    with pytest.raises(hybrid.ShapeError) as info:
        list(D.DataLoader(Ragged(), batch_size=2, num_workers=1))
    msg = str(info.value)
    assert msg.startswith("Caught ShapeError in DataLoader worker process 0.")
    assert "sample['image']: shape [3, 4] in sample 0 and [3, 5] in sample 1" in msg
    assert re.search(r" at test_data_loader\.py:\d+$", msg) and "process.py" not in msg
    del info  # the traceback holds the iterator: dropping it shuts the workers down


class Dies(D.Dataset):
    def __init__(self, how):
        self.how = how

    def __len__(self):
        return 64

    def __getitem__(self, i):
        if i == 10 and D.get_worker_info() is not None:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(3)
        return i


@pytest.mark.parametrize("how,reason", [("kill", "was killed by signal SIGKILL"),
                                        ("exit", "exited with code 3")])
def test_dead_worker_errors_without_hanging(how, reason):
    loader = D.DataLoader(Dies(how), batch_size=2, num_workers=2)  # a hang: the 30 s alarm
    it = iter(loader)
    with pytest.raises(D.DataLoaderError, match=rf"worker 1 \(pid \d+\) {reason} unexpectedly"
                                                r".*num_workers=0") as info:
        for _ in it:
            pass
    assert isinstance(info.value, hybrid.HybridError)
    with pytest.raises(D.DataLoaderError):  # the iterator stays failed, it does not hang
        next(it)
    persistent = D.DataLoader(Dies(how), batch_size=2, num_workers=2, persistent_workers=True)
    with pytest.raises(D.DataLoaderError, match=reason):
        list(persistent)
    first = persistent._iterator
    with pytest.raises(D.DataLoaderError, match=reason):  # a new epoch starts new workers
        list(persistent)
    assert persistent._iterator is not first and first.closed


class Slow(D.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(0.1 if i == 0 else 5)
        return i


def test_timeout():
    loader = D.DataLoader(Slow(), batch_size=1, num_workers=1, timeout=1.0)
    it = iter(loader)
    assert next(it).tolist() == [0]
    # item 1 takes 5 s: without the timeout, next() would return it instead of raising
    with pytest.raises(D.DataLoaderError, match="timed out after 1.0 seconds"):
        next(it)


class Pids(D.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return i, os.getpid()


def _epoch(loader):
    idx, pids = [], set()
    for i, p in loader:
        idx += i.tolist()
        pids |= set(p.tolist())
    return idx, pids


def test_persistent_workers_reuse_processes():
    loader = D.DataLoader(Pids(), batch_size=2, num_workers=2, persistent_workers=True)
    idx1, pids1 = _epoch(loader)
    idx2, pids2 = _epoch(loader)
    assert idx1 == idx2 == list(range(6))
    assert pids1 == pids2 and os.getpid() not in pids1 and len(pids1) == 2
    assert set(loader._iterator.worker_pids()) == pids1
    it = iter(loader)  # stop an epoch early: the next one is complete and in order
    next(it)
    assert _epoch(loader)[0] == list(range(6))
    del loader, it


def test_fresh_workers_each_epoch_and_iterating_twice():
    loader = D.DataLoader(Pids(), batch_size=2, num_workers=2)
    idx1, pids1 = _epoch(loader)
    assert multiprocessing.active_children() == []  # shut down at the end of the epoch
    idx2, pids2 = _epoch(loader)
    assert idx1 == idx2 == list(range(6)) and not pids1 & pids2
    it = iter(loader)
    next(it)
    assert len(multiprocessing.active_children()) == 2
    del it  # dropping a half-read iterator shuts its workers down
    assert multiprocessing.active_children() == []


def test_prefetch_in_order_false_and_options():
    loader = D.DataLoader(ArrayIntDataset(20), batch_size=3, num_workers=2, prefetch_factor=1,
                          pin_memory=True, in_order=False)
    assert sorted(v for _, y in loader for v in y.tolist()) == list(range(20))
    for kwargs, match in [({"num_workers": -1}, "non-negative"),
                          ({"prefetch_factor": 2}, "prefetch_factor needs num_workers > 0"),
                          ({"persistent_workers": True}, "persistent_workers=True needs"),
                          ({"timeout": -1}, "timeout should be"),
                          ({"sampler": D.SequentialSampler(range(3)), "shuffle": True},
                           "sampler= and shuffle=True"),
                          ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler="),
                          ({"batch_size": None, "drop_last": True}, "batch_size=None")]:
        with pytest.raises(hybrid.HybridError, match=match):
            D.DataLoader(ArrayIntDataset(), **kwargs)
    loader = D.DataLoader(ArrayIntDataset())
    with pytest.raises(hybrid.HybridError, match="batch_size cannot be changed"):
        loader.batch_size = 4


class Counted(D.Dataset):
    """Counts the items the workers have fetched, in shared memory (fork)."""

    def __init__(self, n, counter):
        self.n, self.counter = n, counter

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self.counter.get_lock():
            self.counter.value += 1
        return i


@pytest.mark.parametrize("prefetch_factor", [1, 3])
def test_prefetch_factor_bounds_the_batches_fetched_ahead(prefetch_factor):
    """While the loop holds its first batch, the workers fetch at most prefetch_factor batches
    each ahead of it (PyTorch's meaning), and then wait: 2 workers, batches of 2 items."""
    counter = multiprocessing.get_context("fork").Value("i", 0)
    loader = D.DataLoader(Counted(40, counter), batch_size=2, num_workers=2,
                          prefetch_factor=prefetch_factor)
    it = iter(loader)
    assert next(it).tolist() == [0, 1]
    bound = (prefetch_factor * 2 + 1) * 2  # the batch taken, its replacement, the rest ahead
    for _ in range(100):  # let the workers run as far as they are allowed to (at most 2 s)
        time.sleep(0.02)
        if counter.value >= bound:
            break
    time.sleep(0.2)
    fetched = counter.value
    assert prefetch_factor * 2 * 2 <= fetched <= bound, (fetched, bound)
    assert [b.tolist() for b in it] == [[i, i + 1] for i in range(2, 40, 2)]


def test_batch_size_none_and_batch_sampler():
    x, y = next(iter(D.DataLoader(ArrayIntDataset(), batch_size=None)))
    assert x.shape == (4,) and y == 0  # default_convert: no batch dim, ints stay ints
    loader = D.DataLoader(ArrayIntDataset(), batch_sampler=[[3, 1], [0]], num_workers=1)
    assert [y.tolist() for _, y in loader] == [[3, 1], [0]]


def test_batches_travel_as_numpy_arrays():
    meta, buffers = transfer.encode({"x": hybrid.ones(2, 3), "y": [hybrid.arange(3), "s"]})
    assert b"hybrid.tensor" not in meta and b"Tensor" not in meta
    assert [b.nbytes for b in buffers] == [24, 24]  # the arrays' bytes, out of band
    back = transfer.decode(meta, [np.frombuffer(b, np.uint8).copy() for b in buffers])
    assert isinstance(back["x"], hybrid.Tensor) and back["x"].tolist() == [[1.0] * 3] * 2
    assert back["y"][0].dtype == hybrid.int64 and back["y"][1] == "s"


class Big(D.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return np.full(40000, i, np.float32)  # 160 KB: through the reused receive buffers


def test_received_buffers_are_reused_only_when_free():
    pool = transfer.BufferPool(limit=4)
    a = pool.take(1 << 20)
    assert pool.take(1 << 20) is not a  # still held here
    a_id = id(a)
    del a
    assert id(pool.take(1 << 20)) == a_id  # dropped: its pages are reused
    kept = list(D.DataLoader(Big(), batch_size=1, num_workers=2, persistent_workers=True))
    views = [b[0, ::1000] for b in D.DataLoader(Big(), batch_size=2, num_workers=2)]
    assert [float(b.numpy().min()) for b in kept] == list(range(12))
    assert [float(b.numpy().max()) for b in kept] == list(range(12))
    assert [v.tolist() for v in views] == [[float(2 * i)] * 40 for i in range(6)]


def test_unsendable_batch_is_an_error_not_a_hang():
    loader = D.DataLoader(ArrayIntDataset(), batch_size=2, num_workers=1,
                          collate_fn=lambda b: {"fn": lambda: 0})
    with pytest.raises(D.DataLoaderError, match=r"(?s)Caught \w+ in DataLoader worker process 0 "
                       r"while sending its batch.*cannot be sent.*a builtins\.function"
                       r".*at test_data_loader\.py"):
        next(iter(loader))


def test_spawn_context_with_tensor_dataset():
    ds = D.TensorDataset(hybrid.arange(6), hybrid.arange(6) * 2.0)
    loader = D.DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    out = [(x.tolist(), y.tolist()) for x, y in loader]
    assert out == [([0, 1, 2, 3], [0.0, 2.0, 4.0, 6.0]), ([4, 5], [8.0, 10.0])]


def test_interpreter_exit_with_live_workers():
    script = textwrap.dedent("""
        import hybrid, hybrid.utils.data as D
        loader = D.DataLoader(D.TensorDataset(hybrid.arange(100)), batch_size=2, num_workers=2,
                              persistent_workers=True)
        it = iter(loader)
        next(it)
        print(*it.worker_pids())
    """)
    out = run_python(script, timeout=25)  # TimeoutExpired if the exit hangs on the workers
    assert out.returncode == 0, out.stderr
    for pid in map(int, out.stdout.split()):
        with pytest.raises(ProcessLookupError):  # exited, and reaped
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.05)


class Regression(D.Dataset):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((64, 3)).astype(np.float32)
        self.y = (self.x @ np.array([1.0, -2.0, 0.5], np.float32) + 0.1).astype(np.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _train(num_workers, persistent=False, compiled=False):
    hybrid.manual_seed(0)
    model = hybrid.nn.Linear(3, 1)
    opt = hybrid.optim.SGD(model.parameters(), lr=0.1)
    loader = D.DataLoader(Regression(), batch_size=8, shuffle=True, num_workers=num_workers,
                          persistent_workers=persistent)

    def step(x, y):
        opt.zero_grad()
        loss = ((model(x).reshape(-1) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    step = hybrid.compile(step) if compiled else step
    losses = []
    for _ in range(3):
        for x, y in loader:  # with compiled=True, workers fork after native code ran
            losses.append(step(x, y).item())
    return losses, model.weight.detach().numpy().copy()


def test_training_with_workers_matches_single_process():
    losses0, w0 = _train(0)
    losses2, w2 = _train(2)
    assert len(losses0) == 24
    np.testing.assert_allclose(losses2, losses0, rtol=1e-6)  # the same batches, in order
    np.testing.assert_allclose(w2, w0, rtol=1e-6)
    assert losses2[-1] < 0.1 * losses2[0]
    np.testing.assert_allclose(w2, [[1.0, -2.0, 0.5]], atol=0.1)
    # Persistent workers draw their base seed once (as PyTorch), so only the first epoch's
    # random stream lines up with the single-process loader's.
    losses_p, w_p = _train(2, persistent=True)
    np.testing.assert_allclose(losses_p[:8], losses0[:8], rtol=1e-6)
    np.testing.assert_allclose(w_p, [[1.0, -2.0, 0.5]], atol=0.1)
    losses_c, w_c = _train(2, compiled=True)
    np.testing.assert_allclose(losses_c, losses0, rtol=1e-4)
    np.testing.assert_allclose(w_c, w0, rtol=1e-4)


@hybrid.compile
def _compiled_transform(x):
    return (x * 2.0 + 1.0).exp()


class CompiledItems(D.Dataset):
    """Each item is computed by a compiled function, inside the worker process."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return _compiled_transform(hybrid.full((64,), i * 0.01)).numpy()


def test_workers_call_compiled_functions_while_a_parent_thread_runs_one():
    """Workers fork while another parent thread is inside the same compiled function (its
    executor's locks may be held at the fork) and then call it: three epochs, no hang, the
    values of float64 numpy."""
    import threading

    _compiled_transform(hybrid.ones(64))  # compiled (native code, pools, locks) before the fork
    stop = threading.Event()

    def loop():
        x = hybrid.ones(64)
        while not stop.is_set():
            _compiled_transform(x)

    t = threading.Thread(target=loop)
    t.start()
    try:
        epochs = [np.concatenate([b.numpy() for b in D.DataLoader(
            CompiledItems(), batch_size=4, num_workers=2, timeout=60)]) for _ in range(3)]
    finally:
        stop.set()
        t.join(60)
    want = np.exp(np.arange(16)[:, None] * 0.02 + 1.0) * np.ones((1, 64))
    for got in epochs:
        np.testing.assert_allclose(got, want, rtol=1e-5)
