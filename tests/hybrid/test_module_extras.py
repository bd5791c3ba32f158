"""nn.Module extras against PyTorch: traversal, hooks (forward, full backward), get_parameter,
to_empty, non-persistent buffers, load_state_dict(strict=False), requires_grad_, zero_grad."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid


def _net(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.register_buffer("scale", torch.ones(3))
            self.register_buffer("scratch", torch.zeros(3), persistent=False)

        def forward(self, x):
            return self.lin(x) * self.scale

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Block()
            self.shared = self.a  # the same module under two names
            self.seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))

        def forward(self, x):
            return self.seq(self.a(x))

    torch.manual_seed(0)
    return Net()


def test_traversal_matches_pytorch():
    torch = pytest.importorskip("torch")

    def names(t):
        net = _net(t)
        return ([n for n, _ in net.named_modules()],
                [n for n, _ in net.named_modules(remove_duplicate=False)],
                [n for n, _ in net.named_modules(prefix="top")],
                [n for n, _ in net.named_children()], len(list(net.modules())),
                list(net.state_dict().keys()), [n for n, _ in net.named_buffers()],
                tuple(net.get_parameter("seq.2.weight").shape),
                tuple(net.get_buffer("a.scale").shape), type(net.get_submodule("seq.1")).__name__)

    assert names(hybrid) == names(torch)


def test_apply_requires_grad_zero_grad_dtype():
    net = _net(hybrid)
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 3
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_(True)
    net(hybrid.ones(2, 3)).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and float(p.grad.abs().sum()) == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert all(p.dtype == hybrid.float64 for p in net.double().parameters())
    assert all(p.dtype == hybrid.float16 for p in net.half().parameters())
    assert all(p.dtype == hybrid.float32 for p in net.float().parameters())


def test_load_state_dict_strict_false_reports_keys():
    torch = pytest.importorskip("torch")

    def run(t):
        net = _net(t)
        sd = dict(net.state_dict())
        sd.pop("a.lin.bias")
        sd["extra.weight"] = t.zeros(1)
        res = net.load_state_dict(sd, strict=False)
        return sorted(res.missing_keys), sorted(res.unexpected_keys)

    assert run(hybrid) == run(torch)
    with pytest.raises(hybrid.StateDictError, match="missing keys"):
        net = _net(hybrid)
        sd = net.state_dict()
        sd.pop("a.lin.bias")
        net.load_state_dict(sd)


def test_to_empty_keeps_shapes():
    net = _net(hybrid)
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    params = list(net.parameters())
    net.to_empty(device="cpu")
    assert {n: tuple(p.shape) for n, p in net.named_parameters()} == shapes
    assert list(net.parameters()) == params  # the same Parameter objects, new storage


def _hook_log(torch, x_requires_grad):
    net = _net(torch)
    log = []
    lin = net.seq[0]
    h = [lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,)),
         lin.register_forward_hook(lambda m, args, out: out + 1),
         lin.register_forward_pre_hook(lambda m, args, kwargs: log.append(("kw", kwargs)),
                                       with_kwargs=True),
         net.a.register_full_backward_pre_hook(
             lambda m, go: log.append(("pre", [tuple(g.shape) for g in go]))),
         net.a.register_full_backward_hook(
             lambda m, gi, go: log.append(("bwd", [None if g is None else tuple(g.shape)
                                                   for g in gi],
                                           [tuple(g.shape) for g in go]))),
         net.seq.register_full_backward_hook(lambda m, gi, go: tuple(g * 10 for g in gi))]
    x = torch.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=torch.float32,
                     requires_grad=x_requires_grad)
    out = net(x)
    out.sum().backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()]
    for handle in h:
        handle.remove()
    plain = net(x.detach())
    return net, log, out.detach().numpy(), grads, plain.detach().numpy()


@pytest.mark.parametrize("x_requires_grad", [True, False])
def test_hooks_match_pytorch(x_requires_grad):
    torch = pytest.importorskip("torch")
    hnet, hlog, hout, _, hplain = _hook_log(hybrid, x_requires_grad)
    _, tlog, tout, _, tplain = _hook_log(torch, x_requires_grad)
    assert hlog == tlog
    assert hout.shape == tout.shape and hplain.shape == tplain.shape
    assert not np.allclose(hplain, hout)  # the forward hooks changed the output, removed now
    assert "_hooks" not in hnet.seq[0].__dict__  # removed: back to the fast path


def test_hooks_numerics_match_pytorch():
    torch = pytest.importorskip("torch")

    def run(t, weights=None):
        net = t.nn.Sequential(t.nn.Linear(3, 4), t.nn.Tanh(), t.nn.Linear(4, 2))
        with t.no_grad():
            for p, w in zip(net.parameters(), weights):
                p.copy_(t.tensor(w))
        net[0].register_forward_hook(lambda m, a, o: o * 3)
        net[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0.5,))
        net[2].register_full_backward_pre_hook(lambda m, go: (go[0] + 1,))
        x = t.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=t.float32, requires_grad=True)
        out = net(x)
        out.sum().backward()
        return [out.detach().numpy(), x.grad.numpy()] + [p.grad.numpy() for p in net.parameters()]

    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in [(4, 3), (4,), (2, 4), (2,)]]
    for a, b in zip(run(hybrid, weights), run(torch, weights)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_hooks_in_a_compiled_step_match_eager():
    def make():
        hybrid.manual_seed(1)
        net = hybrid.nn.Sequential(hybrid.nn.Linear(3, 4), hybrid.nn.Tanh(),
                                   hybrid.nn.Linear(4, 1))
        net[0].register_forward_hook(lambda m, a, o: o * 2)
        net[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0.5,))
        return net

    x = hybrid.randn(5, 3)
    eager, comp = make(), make()

    def step(net, x):
        loss = net(x).square().mean()
        loss.backward()
        return loss

    step(eager, x)
    compiled = hybrid.compile(lambda x: step(comp, x))
    compiled(x)
    for p, q in zip(eager.parameters(), comp.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_extra_repr_and_structure_epoch():
    from hybrid.nn.module import structure_epoch

    class M(hybrid.nn.Module):
        def extra_repr(self):
            return "k=3"

    m = M()
    assert repr(m) == "M(k=3)"
    before = structure_epoch()
    m.register_forward_hook(lambda *a: None).remove()
    assert structure_epoch() > before
