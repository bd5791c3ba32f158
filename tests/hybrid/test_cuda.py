"""CUDA: a few ops and a backward on 'cuda' equal the CPU results (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid

pytestmark = pytest.mark.skipif(not hybrid.cuda_is_available(), reason="no CUDA GPU / CuPy")


def test_ops_match_cpu() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    for dev in ("cpu", "cuda"):
        x = hybrid.tensor(a, device=dev)
        y = hybrid.tensor(b, device=dev)
        out = [(x @ y).relu(), x.exp().sum(1), x[1:, ::2] * 2, hybrid.cat([x, x], 0).amax(0),
               hybrid.where(x > 0, x, -x), x.gather(1, hybrid.tensor([[0], [1], [3]], device=dev))]
        if dev == "cpu":
            want = [o.numpy() for o in out]
        else:
            assert out[0].device == hybrid.device("cuda:0")
            for o, w in zip(out, want):
                np.testing.assert_allclose(o.cpu().numpy(), w, rtol=1e-5, atol=1e-6)


def test_backward_matches_cpu() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4))
    grads = []
    for dev in ("cpu", "cuda"):
        x = hybrid.tensor(a, device=dev, requires_grad=True)
        ((x.tanh() @ x.T).sum() + x[0].sigmoid().sum()).backward()
        grads.append(x.grad.cpu().numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_device_mixing_raises() -> None:
    with pytest.raises(hybrid.DeviceError, match="device"):
        hybrid.ones(2) + hybrid.ones(2, device="cuda")
