"""Adversarial probes (issue 8): small programs that stress bounds, aliasing, views, in-place
updates and odd outputs, each run eagerly and compiled (both backends, three calls with fresh
inputs, the aliasing pattern changing between calls where the probe says so). A compiled
probe must give eager's outputs, leave the arguments in eager's state, share memory with
its inputs exactly where eager's outputs do, and raise where eager raises; a compiled
HybridError where eager succeeds counts as a clear error (a documented limit), never a pass
with a different answer. `test_probe_counts` prints the tally (pytest -s)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import hybrid as h
import hybrid.nn.functional as F

TALLY: collections.Counter = collections.Counter()


def _x(rng, *shape):
    return h.tensor(rng.standard_normal(shape).astype(np.float32))


def _i(values):
    return h.tensor(np.asarray(values, dtype=np.int64))


# name -> (function, make(rng, call) -> args). `call` is 0, 1, 2: probes may vary inputs.
PROBES: dict = {}


def probe(name, make):
    def register(fn):
        PROBES[name] = (fn, make)
        return fn
    return register


def one(rng, call):
    return (_x(rng, 3, 4),)


def two(rng, call):
    return (_x(rng, 3, 4), _x(rng, 3, 4))


def same_twice(rng, call):
    x = _x(rng, 3, 4)
    return (x, x)


def alias_flips(rng, call):  # (a, a) then (a, b) then (a, a)
    x = _x(rng, 3, 4)
    return (x, x) if call != 1 else (x, _x(rng, 3, 4))


def with_detach(rng, call):
    x = _x(rng, 3, 4)
    return (x, x.detach())


def detach_flips(rng, call):  # (x, x.detach()), then (x, y), then (x, x.detach())
    x = _x(rng, 3, 4)
    return (x, x.detach() if call != 1 else _x(rng, 3, 4))


def three_way(rng, call):  # [x, x, y] then [x, y, y]
    x, y = _x(rng, 2), _x(rng, 2)
    return ([x, x, y] if call != 1 else [x, y, y],)


def with_row(rng, call):
    x = _x(rng, 3, 4)
    return (x, x[0])


def with_views(rng, call):
    x = _x(rng, 3, 4)
    return (x, x[0], x.T)


def _list_sum(xs):
    return xs[0] + xs[1] * 10


def _dict_update(d):
    d["p"].add_(1)
    return d["q"] * 2


def _twice(y):
    return (y, y)


# --- bounds: every index below is probed in range, negative, and one past either end ----------
INDEX_VALUES = [[0, 3], [-1, -4], [4], [-5], [1, 100]]
for _k, _vals in enumerate(INDEX_VALUES):
    def _mk(rng, call, vals=_vals):
        return (_x(rng, 4, 3), _i(vals))

    probe(f"index_select_{_k}", _mk)(lambda x, i: h.index_select(x, 0, i))
    probe(f"getitem_tensor_{_k}", _mk)(lambda x, i: x[i] * 2)
    probe(f"take_{_k}", _mk)(lambda x, i: h.take(x, i))
    probe(f"embedding_{_k}", _mk)(lambda x, i: F.embedding(i, x))
    probe(f"index_add_{_k}", _mk)(
        lambda x, i: x.index_add(0, i, h.ones(len(i), 3)))
    probe(f"setitem_tensor_{_k}", _mk)(lambda x, i: x.__setitem__(i, 7.0) or x * 1)
    probe(f"gather_{_k}", _mk)(lambda x, i: h.gather(x, 0, i.reshape(-1, 1).expand(-1, 3)))
    probe(f"scatter_add_{_k}", _mk)(
        lambda x, i: h.zeros(4, 3).scatter_add(0, i.reshape(-1, 1).expand(-1, 3),
                                                h.ones(len(i), 3)))
for _k, _t in enumerate([[0, 2], [3, 0], [-1, 1], [-100, 0]]):
    probe(f"cross_entropy_target_{_k}", lambda rng, call, t=_t: (_x(rng, 2, 3), _i(t)))(
        lambda x, t: F.cross_entropy(x, t))
    probe(f"one_hot_{_k}", lambda rng, call, t=_t: (_i(t),))(lambda t: F.one_hot(t, 3))
probe("cross_entropy_ignore_index", lambda rng, call: (_x(rng, 2, 3), _i([-100, 2])))(
    lambda x, t: F.cross_entropy(x, t, ignore_index=-100))
probe("getitem_int_out_of_range", one)(lambda x: x[3])
probe("getitem_negative_int", one)(lambda x: x[-3] + x[-1])
probe("integer_floordiv_zero", lambda rng, call: (_i([4, 5]), _i([2, 0])))(lambda a, b: a // b)
probe("integer_remainder_zero", lambda rng, call: (_i([4, 5]), _i([0, 3])))(lambda a, b: a % b)
probe("integer_floordiv_ok", lambda rng, call: (_i([-7, 5]), _i([2, -3])))(lambda a, b: a // b)

# --- aliasing -------------------------------------------------------------------------------
for _name, _mk in [("same", same_twice), ("flips", alias_flips), ("distinct", two)]:
    probe(f"add_then_read_other_{_name}", _mk)(lambda a, b: (a.add_(1), b * 2)[1])
    probe(f"mul_both_{_name}", _mk)(lambda a, b: (a.mul_(2), b.mul_(3), a + b)[2])
    probe(f"list_sum_{_name}", _mk)(lambda a, b: _list_sum([a, b]))
    probe(f"dict_update_{_name}", _mk)(lambda a, b: _dict_update({"p": a, "q": b}))
    probe(f"copy_into_{_name}", _mk)(lambda a, b: a.copy_(b * 2) + 0)
probe("detach_alias_update", with_detach)(lambda a, b: (a.add_(1), b * 1)[1])
probe("read_alias_then_update", with_detach)(lambda a, b: (b * 1, a.add_(1))[0])
probe("alias_pattern_changes", detach_flips)(lambda a, b: (a.add_(1), b * 1)[1])
probe("nested_three_way", three_way)(lambda xs: xs[0] * 100 + xs[1] * 10 + xs[2])

# --- views and in-place ---------------------------------------------------------------------
VIEWS = {"row": lambda x: x[0], "T": lambda x: x.T, "cols": lambda x: x[:, 1:],
         "flat": lambda x: x.reshape(-1), "unsq": lambda x: x.unsqueeze(0),
         "detach": lambda x: x.detach(), "step": lambda x: x[:, ::2],
         "T_flat": lambda x: x.T.reshape(-1)}
for _name, _v in VIEWS.items():
    probe(f"view_{_name}", one)(_v)
    probe(f"update_then_view_{_name}", one)(lambda x, v=_v: (x.mul_(2), v(x))[1])
    probe(f"view_then_other_output_{_name}", one)(lambda x, v=_v: (v(x), x * 3))
probe("setitem_slice_then_return", one)(lambda x: (x.__setitem__((slice(None), 1), 0.0), x)[1])
probe("iadd_slice", one)(lambda x: (x.__setitem__(0, x[0] + 5), x.sum())[1])
probe("clamp_inplace", one)(lambda x: x.clamp_(-0.5, 0.5) * 1)
probe("zero_then_add", one)(lambda x: (x.zero_(), x.add_(3))[1] * 1)
probe("fill_returned", one)(lambda x: x.fill_(2.0))
probe("returned_input_after_update", one)(lambda x: (x.sub_(1), x)[1])

probe("update_base_read_view_argument", with_row)(lambda a, v: (a.add_(1), v * 1)[1])
probe("update_view_inside", one)(lambda x: (x[0].add_(1), x * 1)[1])
probe("view_arguments_no_update", with_views)(lambda a, v, t: a.sum() + v.sum() * 2 + t[0].sum())

# --- outputs ----------------------------------------------------------------------------------
probe("constant_output", one)(lambda x: (x * 2, h.arange(5)))
probe("same_tensor_twice", one)(lambda x: _twice(x * 2))
probe("cse_merged", one)(lambda x: (x * 2, x * 2))
probe("none_and_numbers", one)(lambda x: (None, 3, x.sum(), [x * 1, {"k": x + 1}]))
probe("input_returned_twice", one)(lambda x: (x, x))

# --- special values ---------------------------------------------------------------------------
def _special(rng, call):
    return (h.tensor(np.array([[np.nan, -1.0, 0.0, np.inf], [-np.inf, 2.0, -0.0, 1e-30]],
                              np.float32)),)
probe("relu_nan", _special)(lambda x: F.relu(x))
probe("max_nan", _special)(lambda x: (x.max(), x.amax(1), x.min(1).values))
probe("softmax_inf", _special)(lambda x: F.softmax(x, 1))
probe("clamp_nan", _special)(lambda x: h.clamp(x, -1.0, 1.0))
probe("maximum_nan", _special)(lambda x: h.maximum(x, x.flip(1)))


# --- the harness ------------------------------------------------------------------------------

def _leaves(tree):
    if isinstance(tree, (list, tuple)):
        return [x for t in tree for x in _leaves(t)]
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _leaves(tree[k])]
    return [tree]


def _state(args, out):
    """Everything a caller can observe: output values and structure, argument values, and
    which outputs share memory with which argument."""
    outs, ins = _leaves(out), [t for t in _leaves(args) if isinstance(t, h.Tensor)]
    vals = [t.numpy().copy() if isinstance(t, h.Tensor) else t for t in outs]
    shares = [[isinstance(o, h.Tensor) and np.shares_memory(o.numpy(), i.numpy()) for i in ins]
              for o in outs]
    return vals, [i.numpy().copy() for i in ins], shares


def _run(fn, args):
    try:
        out = fn(*args)
    except Exception as e:  # noqa: BLE001 - the probe compares exceptions too
        return e
    return _state(args, out)


def _same(e, c) -> bool:
    ve, ie, se = e
    vc, ic, sc = c
    if len(ve) != len(vc) or se != sc:
        return False
    for a, b in zip(ve + ie, vc + ic):
        if isinstance(a, np.ndarray) != isinstance(b, np.ndarray):
            return False
        if isinstance(a, np.ndarray):
            if a.shape != b.shape or a.dtype != b.dtype or not np.allclose(
                    a, b, rtol=1e-5, atol=1e-6, equal_nan=True):
                return False
        elif a != b:
            return False
    return True


@pytest.mark.parametrize("backend", ["native", "interpreter"])
@pytest.mark.parametrize("name", list(PROBES))
def test_probe(name, backend, monkeypatch):
    monkeypatch.setattr(h.config, "backend", backend)
    fn, make = PROBES[name]
    compiled = h.compile(fn)
    seed = sum(map(ord, name))
    for call in range(3):
        # the same arguments twice (fresh tensors, views and aliases made the same way)
        eager = _run(fn, make(np.random.default_rng([seed, call]), call))
        got = _run(compiled, make(np.random.default_rng([seed, call]), call))
        if isinstance(eager, Exception):
            assert isinstance(got, Exception), f"call {call}: eager raised {eager!r}, compiled " \
                "did not"
            assert isinstance(got, h.HybridError) or type(got) is type(eager), repr(got)
            TALLY["both raise"] += 1
            continue
        if isinstance(got, h.HybridError):
            TALLY["clear error (compiled only)"] += 1
            return
        assert not isinstance(got, Exception), f"call {call}: compiled crashed: {got!r}"
        assert _same(eager, got), f"call {call}: compiled differs from eager"
        TALLY["same"] += 1


def test_probe_counts(capsys):
    """Runs last in this file: the tally of the probes above (pytest -s shows it)."""
    with capsys.disabled():
        print(f"\nadversarial probes: {len(PROBES)} programs x 2 backends x 3 calls:",
              dict(TALLY))
