"""hybrid.cuda, default device, Tensor.to in PyTorch's forms, legacy constructors and Variable."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid

NO_GPU = not hybrid.cuda.is_available()


def test_cuda_queries_without_gpu():
    if not NO_GPU:
        pytest.skip("a GPU is present")
    assert hybrid.cuda.is_available() is False
    assert hybrid.cuda.device_count() == 0
    hybrid.cuda.synchronize()
    hybrid.cuda.empty_cache()
    assert hybrid.cuda.memory_allocated() == 0
    for name in ("get_device_name", "current_device"):
        with pytest.raises(hybrid.DeviceError, match="no NVIDIA GPU"):
            getattr(hybrid.cuda, name)()


def test_cuda_manual_seed_without_gpu_leaves_cpu_stream_alone():
    if not NO_GPU:
        pytest.skip("a GPU is present: cuda.manual_seed seeds the shared generator")
    hybrid.manual_seed(3)
    a = hybrid.rand(4)
    hybrid.manual_seed(3)
    hybrid.cuda.manual_seed(99)
    hybrid.cuda.manual_seed_all(99)
    np.testing.assert_array_equal(hybrid.rand(4).numpy(), a.numpy())


def test_tensor_cuda_is_a_clear_device_error():
    if not NO_GPU:
        pytest.skip("a GPU is present")
    x = hybrid.ones(2)
    for move in (lambda: x.cuda(), lambda: x.to("cuda"), lambda: x.to("cuda:0", hybrid.float64),
                 lambda: hybrid.zeros(2, device="cuda")):
        with pytest.raises(hybrid.DeviceError, match="cuda"):
            move()


def test_default_device_round_trip():
    assert hybrid.get_default_device() == hybrid.device("cpu")
    hybrid.set_default_device("cpu")
    try:
        assert hybrid.zeros(2).device == hybrid.device("cpu")
        if NO_GPU:
            hybrid.set_default_device("cuda")
            assert hybrid.get_default_device() == hybrid.device("cuda:0")
            with pytest.raises(hybrid.DeviceError):
                hybrid.ones(3)
    finally:
        hybrid.set_default_device(None)
    assert hybrid.get_default_device().type == "cpu" and hybrid.ones(1).device.type == "cpu"


@pytest.mark.parametrize("form", ["dtype", "device", "tensor", "device_dtype", "kwargs", "copy"])
def test_to_forms_match_pytorch(form):
    torch = pytest.importorskip("torch")

    def run(t):
        x = t.arange(6).reshape(2, 3)
        other = t.zeros(1, dtype=t.float16)
        y = {"dtype": lambda: x.to(t.float64), "device": lambda: x.to(t.device("cpu")),
             "tensor": lambda: x.to(other), "device_dtype": lambda: x.to("cpu", t.float32),
             "kwargs": lambda: x.to(device="cpu", dtype=t.float64, non_blocking=True),
             "copy": lambda: x.to(x.dtype, copy=True)}[form]()
        return str(y.dtype).split(".")[-1], y.device.type, y is x, y.numpy().tolist()

    assert run(hybrid) == run(torch)


def test_cpu_and_device_kwargs():
    x = hybrid.ones(2, device="cpu")
    assert x.cpu() is x or x.cpu().device.type == "cpu"
    assert hybrid.randn(2, device=hybrid.device("cpu")).device.type == "cpu"


def test_legacy_constructors_match_pytorch():
    torch = pytest.importorskip("torch")

    def run(t):
        out = []
        for make in (lambda: t.Tensor(2, 3), lambda: t.Tensor([[1, 2], [3, 4]]),
                     lambda: t.FloatTensor([1.5, 2]), lambda: t.DoubleTensor(3),
                     lambda: t.LongTensor([1, 2, 3]), lambda: t.IntTensor([4]),
                     lambda: t.BoolTensor([True, False]), lambda: t.Tensor()):
            y = make()
            out.append((str(y.dtype).split(".")[-1], tuple(y.shape)))
        out.append(isinstance(t.ones(2).long(), t.LongTensor))
        out.append(isinstance(t.ones(2), t.LongTensor))
        out.append(str(t.ones(2).type(t.LongTensor).dtype).split(".")[-1])
        return out

    assert run(hybrid) == run(torch)
    np.testing.assert_array_equal(hybrid.Tensor([[1, 2], [3, 4]]).numpy(), [[1, 2], [3, 4]])
    with pytest.raises(hybrid.ShapeError, match="negative"):
        hybrid.Tensor(2, -1)


def test_variable_is_a_thin_alias():
    torch = pytest.importorskip("torch")
    from hybrid.autograd import Variable

    x = hybrid.tensor([1.0, 2.0])
    v = Variable(x, requires_grad=True)
    assert v.requires_grad and v.is_leaf and isinstance(v, Variable) and not x.requires_grad
    (v * v).sum().backward()
    tv = torch.autograd.Variable(torch.tensor([1.0, 2.0]), requires_grad=True)
    (tv * tv).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), tv.grad.numpy())


def test_accelerator_and_backends():
    assert hybrid.accelerator.is_available() == hybrid.cuda.is_available()
    if NO_GPU:
        assert hybrid.accelerator.current_accelerator() is None
        assert hybrid.accelerator.device_count() == 0
    device = (hybrid.accelerator.current_accelerator().type
              if hybrid.accelerator.is_available() else "cpu")
    assert hybrid.zeros(2, device=device).device.type == device
    assert hybrid.backends.mps.is_available() is False
    hybrid.backends.cudnn.deterministic = True  # accepted, as scripts set it
