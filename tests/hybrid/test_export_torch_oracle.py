"""hybrid.export against torch.export as the oracle: the same models with the same weights, exported
by both, give the same outputs (hybrid's loaded back from its file, as a deployment would), and
bind the same parameters (hybrid's manifest names them by state_dict key, torch's signature by
target)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hybrid
from hybrid import nn


def _mlp(h):
    return h.Sequential(h.Linear(16, 32), h.ReLU(), h.Linear(32, 32), h.GELU(), h.Linear(32, 4),
                        h.LogSoftmax(dim=-1))


def _cnn(h):
    return h.Sequential(h.Conv2d(3, 8, 3, padding=1), h.BatchNorm2d(8), h.ReLU(),
                        h.MaxPool2d(2), h.Conv2d(8, 8, 3, stride=2, padding=1, groups=2),
                        h.ReLU(), h.Flatten(), h.Linear(8 * 2 * 2, 5))


def _encoder(h):
    return h.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True)


def _twins(make, seed):
    hybrid.manual_seed(seed)
    hm = make(nn)
    tm = make(torch.nn)
    state = hm.state_dict()
    if any("running_var" in k for k in state):  # eval batch norm with non-trivial statistics
        rng = np.random.default_rng(seed)
        for k, v in state.items():
            if k.endswith(("running_mean", "running_var")):
                shift = 0.5 if k.endswith("var") else 0.0
                v.copy_(hybrid.tensor(np.abs(rng.standard_normal(v.shape)).astype(np.float32)
                                      * 0.2 + shift))
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in hm.state_dict().items()})
    return hm.eval(), tm.eval()


@pytest.mark.parametrize("make, shape", [(_mlp, (5, 16)), (_cnn, (2, 3, 8, 8)),
                                         (_encoder, (3, 7, 16))],
                         ids=["mlp", "cnn", "transformer_encoder"])
def test_outputs_and_parameters_match_torch_export(tmp_path, make, shape):
    hm, tm = _twins(make, 4)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    tep = torch.export.export(tm, (torch.tensor(x),))
    path = tmp_path / "m.hyb"
    hybrid.export(hm, (hybrid.tensor(x),)).save(path)
    loaded = hybrid.load_exported(path)
    for data in (x, np.random.default_rng(2).standard_normal(shape).astype(np.float32)):
        want = tep.module()(torch.tensor(data)).detach().numpy()
        got = loaded(data).numpy()
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    params = {s.target for s in tep.graph_signature.input_specs
              if s.kind.name == "PARAMETER"}
    assert params and params <= set(loaded.manifest["bound"])
    assert len(tep.graph_signature.user_outputs) == len(loaded.outputs) == 1


@pytest.mark.parametrize("make, shape, axes, sizes", [
    (_cnn, (2, 3, 8, 8), {0: "batch"}, [(1, 3, 8, 8), (7, 3, 8, 8)]),
    (_encoder, (2, 5, 16), {0: "batch", 1: "seq"}, [(1, 2, 16), (4, 11, 16)]),
], ids=["cnn", "transformer_encoder"])
def test_onnx_with_dynamic_axes_matches_torch(tmp_path, make, shape, axes, sizes):
    """hybrid.onnx.export with dynamic axes, run by onnxruntime at sizes never traced, against
    the torch twin of the model (torch's own ONNX exporter fails on this encoder layer in
    torch 2.13, so eager torch is the reference)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import hybrid.onnx

    hm, tm = _twins(make, 5)
    path = tmp_path / "m.onnx"
    hybrid.onnx.export(hm, (hybrid.randn(*shape),), path, input_names=["x"],
                       dynamic_axes={"x": axes})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in sizes:
        data = np.random.default_rng(sum(size)).standard_normal(size).astype(np.float32)
        want = tm(torch.tensor(data)).detach().numpy()
        np.testing.assert_allclose(sess.run(None, {"x": data})[0], want, rtol=2e-4, atol=2e-5)
