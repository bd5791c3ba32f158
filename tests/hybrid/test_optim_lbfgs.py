"""optim.LBFGS: converges on Rosenbrock's function and a least-squares problem (known minima),
matches torch.optim.LBFGS iterate for iterate (plain and strong-Wolfe line search), its state
round-trips, and it refuses to run inside @hybrid.compile with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from hybrid import optim


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def make_problem(start=(-1.5, 2.0)):
    # two parameters, so the flat-vector packing is exercised
    x = hybrid.tensor([start[0]], dtype=hybrid.float64, requires_grad=True)
    y = hybrid.tensor([start[1]], dtype=hybrid.float64, requires_grad=True)
    return x, y


def closure_for(opt, x, y, counter=None):
    def closure():
        opt.zero_grad()
        loss = rosenbrock(x, y).sum()
        loss.backward()
        if counter is not None:
            counter.append(loss.item())
        return loss
    return closure


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_converges_on_rosenbrock(line_search_fn):
    x, y = make_problem()
    lr = 1.0 if line_search_fn else 0.5
    opt = optim.LBFGS([x, y], lr=lr, max_iter=20, history_size=10,
                      line_search_fn=line_search_fn)
    first = rosenbrock(-1.5, 2.0)
    for _ in range(50 if line_search_fn else 200):
        loss = opt.step(closure_for(opt, x, y))
    assert isinstance(loss, hybrid.Tensor) and loss.item() < first
    if line_search_fn:  # the line search reaches the minimum at (1, 1)
        np.testing.assert_allclose([x.item(), y.item()], [1.0, 1.0], atol=1e-4)
    assert rosenbrock(x.item(), y.item()) < 1e-3
    state = opt.state[x]
    assert state["n_iter"] > 0 and state["func_evals"] >= state["n_iter"]
    assert len(state["old_dirs"]) <= 10


def test_least_squares_in_one_step(rng):
    """A quadratic: L-BFGS with a line search solves A w = b to the normal-equations answer."""
    a, b = rng.standard_normal((20, 5)), rng.standard_normal(20)
    w = hybrid.zeros(5, dtype=hybrid.float64, requires_grad=True)
    opt = optim.LBFGS([w], max_iter=100, line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                      tolerance_change=1e-14)
    at, bt = hybrid.tensor(a), hybrid.tensor(b)

    def closure():
        opt.zero_grad()
        loss = ((at @ w - bt) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    want = np.linalg.lstsq(a, b, rcond=None)[0]
    np.testing.assert_allclose(w.detach().numpy(), want, rtol=1e-7, atol=1e-9)


@pytest.mark.torch_oracle
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("kw", [{"lr": 0.5, "max_iter": 4}, {"lr": 1.0, "max_iter": 7,
                                                             "history_size": 3}], ids=str)
def test_matches_torch(line_search_fn, kw):
    torch = pytest.importorskip("torch")
    x, y = make_problem()
    opt = optim.LBFGS([x, y], line_search_fn=line_search_fn, **kw)
    tx = torch.tensor([-1.5], dtype=torch.float64, requires_grad=True)
    ty = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    topt = torch.optim.LBFGS([tx, ty], line_search_fn=line_search_fn, **kw)
    mine, theirs = [], []

    def tclosure():
        topt.zero_grad()
        loss = rosenbrock(tx, ty).sum()
        loss.backward()
        theirs.append(loss.item())
        return loss

    for _ in range(6):
        opt.step(closure_for(opt, x, y, mine))
        topt.step(tclosure)
        # NOTE: Rosenbrock's valley amplifies last-bit differences (summation order) from
        # ~1e-16 to ~1e-7 over these steps: the tolerance allows that, not a different iterate
        np.testing.assert_allclose([x.item(), y.item()], [tx.item(), ty.item()], rtol=1e-5,
                                   atol=1e-6)
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)  # the same evaluations
    ts = topt.state[tx]
    assert opt.state[x]["func_evals"] == ts["func_evals"]
    assert opt.state[x]["n_iter"] == ts["n_iter"]
    assert set(ts) <= set(opt.state[x])  # PyTorch's state names


def test_state_dict_roundtrip():
    x, y = make_problem()
    opt = optim.LBFGS([x, y], lr=1.0, max_iter=3, line_search_fn="strong_wolfe")
    for _ in range(2):
        opt.step(closure_for(opt, x, y))
    x2, y2 = make_problem((x.item(), y.item()))
    opt2 = optim.LBFGS([x2, y2], lr=1.0, max_iter=3, line_search_fn="strong_wolfe")
    opt2.load_state_dict(opt.state_dict())
    assert opt2.state[x2]["old_dirs"][0] is not opt.state[x]["old_dirs"][0]  # copied
    for _ in range(2):
        opt.step(closure_for(opt, x, y))
        opt2.step(closure_for(opt2, x2, y2))
    np.testing.assert_array_equal([x2.item(), y2.item()], [x.item(), y.item()])


def test_bad_input():
    x, y = make_problem()
    with pytest.raises(hybrid.HybridError, match="per-parameter options"):
        optim.LBFGS([{"params": [x]}, {"params": [y]}])
    with pytest.raises(hybrid.HybridError, match="line_search_fn must be None or 'strong_wolfe'"):
        optim.LBFGS([x], line_search_fn="armijo")
    with pytest.raises(hybrid.HybridError, match="requires a closure"):
        optim.LBFGS([x]).step()


def test_inside_compile_is_a_clear_error():
    x, y = make_problem()
    opt = optim.LBFGS([x, y])

    @hybrid.compile
    def train_step():
        return opt.step(closure_for(opt, x, y))

    with pytest.raises(hybrid.TraceError, match="LBFGS.step cannot run inside @hybrid.compile"
                                                ".*eagerly"):
        train_step()
