"""One compiled variant of a function (an Entry) and one call of it.

An entry is found by its cache key (hybrid.compile_key) and then checked by its guards: what
the key cannot say without running the trace. The guards are the metadata of the tensors the
trace read other than through the arguments (parameters, optimizer state, the original
`.grad` of a tensor), which of those `.grad`s were None, and the optimizer hyperparameters the
trace baked in as constants. A call gathers the input tensors (arguments, then captured
tensors; a captured `.grad` is read from its owner on every call), runs the executable, writes
back the effects (in-place updates, new `.grad`s, RNG draws) and rebuilds the outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.ir.graph import Graph
from compiler.passes.manager import PassRecord
from hybrid.compile_backward import attach
from hybrid.compile_tree import tensor_meta, unflatten
from hybrid.ops.core import STATE, wrap
from hybrid.tensor import _TENSOR_CLASSES
from hybrid.tracing import Effects

# How each tensor output of the function is made from the executable's outputs.
NEW, TARGET, SAME = 0, 1, 2


@dataclass
class Entry:
    """A compiled variant: the graph, how to run it, and how to map Python objects to its I/O."""

    graph: Graph
    stages: list[PassRecord]
    run: Any  # list of arrays -> list of arrays
    captured: list  # tensors reached outside the arguments, read on every call
    captured_meta: list[tuple]
    effects: Effects
    out_spec: Any
    n_out: int
    n_args: int = 0  # distinct tensor arguments (the graph's leading inputs)
    out_requires_grad: list[bool] = field(default_factory=list)
    out_kinds: list[tuple[int, int]] = field(default_factory=list)  # (NEW/TARGET/SAME, index)
    grad_sources: list[tuple[int, int]] = field(default_factory=list)  # (input, owner input)
    grad_guards: list[tuple[int, bool]] = field(default_factory=list)  # (input, grad was None)
    hypers: list = field(default_factory=list)  # tracing.Hyper, refreshed before each call
    hyper_guards: list[tuple[dict, str, Any]] = field(default_factory=list)  # baked values
    backward: Any = None  # compiled on the first backward through a call (compile_backward)
    backend: str = "interpreter"  # the backend that runs `run`; the backward runs there too
    checked: bool = False  # retraced once and compared (compile_stability)
    # constant per entry, precomputed for the hit path (see run_entry)
    simple_args: bool = False  # no keywords, every argument a distinct tensor
    any_out_rg: bool = False
    has_effects: bool = False
    single_out: bool = False  # the function returns one new tensor
    guarded: bool = False

    def __post_init__(self) -> None:
        self.captured = tuple(self.captured)
        self.any_out_rg = any(self.out_requires_grad)
        fx = self.effects
        self.has_effects = bool(fx.writes or fx.grads or fx.rng)
        self.single_out = self.out_spec == ("T",) and self.out_kinds == [(NEW, 0)]
        self.guarded = bool(self.captured or self.grad_guards or self.hyper_guards)

    def targets(self, tensors: list) -> tuple:
        """The tensors a call reads, in the graph's input order, from the tensor leaves of its
        arguments (the key builder's walk: `KeyBuilder.key`)."""
        if self.simple_args:
            targets = tuple(tensors) + self.captured if self.captured else tuple(tensors)
        else:
            targets = tuple(unique_tensors(tensors)) + self.captured
        if self.grad_sources:
            targets = list(targets)
            for pos, owner in self.grad_sources:
                targets[pos] = targets[owner]._grad
            targets = tuple(targets)
        return targets

    def mismatch(self, targets: tuple) -> str | None:
        """Why this entry does not fit the call (None when every guard holds)."""
        n = self.n_args
        for i, meta in enumerate(self.captured_meta):
            t = targets[n + i]
            now = None if t is None else meta_of(t)
            if now != meta:
                return explain_meta(meta, now)
        for i, was_none in self.grad_guards:
            if (targets[i]._grad is None) != was_none:
                return f"a tensor's .grad (grad is None: {was_none} -> {not was_none})"
        for group, key, value in self.hyper_guards:
            now = _baked(group.get(key), value)
            if now != value:
                return f"optimizer hyperparameter '{key}': {_show(value)} -> {_show(now)}"
        return None


meta_of = tensor_meta  # the guard of a captured tensor: the key's test of an argument


def explain_meta(old: tuple, new: tuple | None) -> str:
    if new is None:
        return "a tensor it reads (a .grad that was a tensor is now None)"
    labels = ("device", "shape", "dtype", "requires_grad")
    for label, a, b in zip(labels, old, new):
        if a != b:
            return f"a tensor it reads ({label}: {a} -> {b})"
    return "a tensor it reads"


def _baked(now: Any, value: Any) -> Any:
    """The part of hyperparameter value `now` a guard compares: the indices `value` keeps."""
    if isinstance(value, tuple) and value and value[0] == "indices":
        return ("indices", value[1], tuple(now[i] for i in value[1]))
    return now


def hyper_guards(optimizers: list, runtime: set[tuple[int, str, int | None]]) -> list:
    """Guards on the numeric hyperparameters of `optimizers` the trace did not read at run time
    (it baked them in as constants): the cache key keeps only whether they are zero."""
    guards = []
    for opt in optimizers:
        for group in opt.param_groups:
            for key, v in group.items():
                if key == "params" or v.__class__ is bool:
                    continue
                if v.__class__ in (int, float):
                    if (id(group), key, None) not in runtime:
                        guards.append((group, key, v))
                elif isinstance(v, tuple) and all(x.__class__ in (int, float) for x in v):
                    keep = tuple(i for i in range(len(v)) if (id(group), key, i) not in runtime)
                    if keep:
                        guards.append((group, key, ("indices", keep, tuple(v[i] for i in keep))))
    return guards


def unique_tensors(leaves: Any) -> list:
    seen: set[int] = set()
    out = []
    for t in leaves:
        if t.__class__ in _TENSOR_CLASSES and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def run_entry(entry: Entry, targets: tuple) -> Any:
    """One compiled call: run, apply effects, rebuild the outputs."""
    for h in entry.hypers:
        h.refresh()
    primals = [t._value for t in targets]
    outs = entry.run(primals)
    if entry.single_out and not entry.has_effects and not (STATE.grad and entry.any_out_rg):
        return wrap(outs[0])
    n = entry.n_out
    results = []
    for kind, i in entry.out_kinds:
        if kind == NEW:
            results.append(wrap(outs[i]))
        elif kind == TARGET:
            results.append(targets[i])
        else:
            results.append(results[i])
    if entry.any_out_rg and STATE.grad:
        attach(entry, targets, primals, [results[p] for p, (k, _) in enumerate(entry.out_kinds)
                                         if k == NEW])
    if entry.has_effects:
        fx = entry.effects
        for li, oi in fx.writes:
            t = targets[li]
            out = outs[n + oi]
            if out is not t._value:  # the native backend may have updated it in place
                t._value[...] = out
            t._version += 1
        for li, oi in fx.grads:
            targets[li]._grad = None if oi is None else wrap(outs[n + oi])
        for gen, draws in fx.rng:
            gen._state._value[1] += draws
    return results[0] if entry.out_spec == ("T",) else unflatten(entry.out_spec, results)


def _show(v: Any) -> str:
    if isinstance(v, tuple) and v and v[0] == "indices":
        return repr(v[2])
    return repr(v)
