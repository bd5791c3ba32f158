"""Packed and padded sequences for the recurrent layers (PyTorch's `torch.nn.utils.rnn`).

A PackedSequence holds the steps of a batch of sequences sorted by decreasing length, time
major: `data[offset[t] + s]` is step t of the s-th longest sequence, and `batch_sizes[t]` counts
the sequences longer than t. Every conversion here is one gather (`index_select`) of rows at
indices computed in Python from the lengths, which are static (a list or a CPU tensor, as in
PyTorch), so gradients flow through packing and padding and @hybrid.compile traces them.

NOTE: the lengths are also kept in Python on each PackedSequence built here (and found again
by one rebuilt from its batch_sizes and sorted_indices tensors), because a tensor created while
tracing cannot be read back; a PackedSequence passed *into* a compiled function has only
tensors whose values the cache key does not see, and using it there raises a TraceError that
says to pack inside instead."""

from __future__ import annotations

import itertools
import weakref
from typing import Any, NamedTuple, Self

from compiler.ir.types import DType
from hybrid import errors
from hybrid.ops import creation as cr
from hybrid.ops import indexing as ix
from hybrid.ops import shape as sh
from hybrid.ops.core import STATE
from hybrid.tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pack_sequence",
           "pad_packed_sequence", "pad_sequence", "unpack_sequence", "unpad_sequence"]


def _fail(message: str) -> errors.HybridError:
    return errors.ShapeError(errors.at_user(message))


def _t(x: Any) -> str:
    return f"{x.dtype.short}[{','.join(map(str, x.shape))}]"


class _Static(NamedTuple):
    """What the conversions need in Python: batch sizes, and the sort order (sorted position
    -> caller's batch index; None when the input was already sorted)."""

    sizes: tuple[int, ...]
    order: tuple[int, ...] | None

    @property
    def lengths(self) -> list[int]:
        """Each sorted sequence's length."""
        return [sum(1 for n in self.sizes if n > s) for s in range(self.sizes[0])]

    @property
    def inverse(self) -> list[int]:
        """Caller's batch index -> sorted position."""
        batch = self.sizes[0]
        if self.order is None:
            return list(range(batch))
        inv = [0] * batch
        for s, j in enumerate(self.order):
            inv[j] = s
        return inv

    @property
    def offsets(self) -> list[int]:
        out, total = [], 0
        for n in self.sizes:
            out.append(total)
            total += n
        return out


class _Known(NamedTuple):
    """The Python sizes and order of a batch_sizes tensor made here, and the trace (None:
    eager) that made it: a PackedSequence rebuilt from the same batch_sizes and sorted_indices
    tensors, as in PackedSequence(f(seq.data), seq.batch_sizes, seq.sorted_indices), finds
    them, also inside @hybrid.compile where the tensors cannot be read."""

    sizes: weakref.ref
    order: weakref.ref | None
    meta: _Static
    tracer: Any


_KNOWN: dict[int, _Known] = {}  # id(batch_sizes) -> _Known, dropped when batch_sizes dies


def _remember(seq: Any, meta: _Static) -> None:
    key = id(seq.batch_sizes)

    def forget(ref: weakref.ref) -> None:
        if key in _KNOWN and _KNOWN[key].sizes is ref:
            del _KNOWN[key]

    order = None if seq.sorted_indices is None else weakref.ref(seq.sorted_indices)
    _KNOWN[key] = _Known(weakref.ref(seq.batch_sizes, forget), order, meta, STATE.tracer)
    seq.__dict__.update(_static=meta, _tracer=STATE.tracer)


class _PackedSequenceFields(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None
    unsorted_indices: Tensor | None


class PackedSequence(_PackedSequenceFields):
    """data (sum of lengths, *), batch_sizes (int64, CPU), sorted_indices and unsorted_indices
    (int64 permutations, or None); build it with pack_padded_sequence or pack_sequence."""

    def __new__(cls, data: Any, batch_sizes: Any = None, sorted_indices: Any = None,
                unsorted_indices: Any = None) -> Self:
        if batch_sizes is None:  # PackedSequence((data, batch_sizes), ...)
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise _fail("PackedSequence: expected data and batch_sizes, or a (data, "
                            "batch_sizes) pair as the first argument")
            data, batch_sizes = data
        if batch_sizes.device.type != "cpu":
            raise errors.DeviceError(errors.at_user(
                "PackedSequence: batch_sizes should always be on CPU; build PackedSequences "
                "with pack_padded_sequence or pack_sequence"))
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        seq = super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)
        known = _KNOWN.get(id(batch_sizes))
        if known is not None and known.sizes() is batch_sizes and (
                known.order() if known.order is not None else None) is sorted_indices:
            seq.__dict__.update(_static=known.meta, _tracer=known.tracer)
        return seq

    @classmethod
    def _make(cls, iterable: Any) -> PackedSequence:
        """As namedtuple's, through __new__ (so _replace(data=...) keeps the known sizes)."""
        return cls(*iterable)

    def to(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """data.to(...); the indices follow data's device, batch_sizes stays on the CPU."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        order, inv = self.sorted_indices, self.unsorted_indices
        out = type(self)(data, self.batch_sizes,
                         None if order is None else order.to(data.device),
                         None if inv is None else inv.to(data.device))
        out.__dict__.update(self.__dict__)  # the Python copy of the sizes and order
        return out

    def cpu(self) -> PackedSequence:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> PackedSequence:
        return self.to("cuda" if device is None else device)

    def double(self) -> PackedSequence:
        return self.to(DType.float64)

    def float(self) -> PackedSequence:
        return self.to(DType.float32)

    def half(self) -> PackedSequence:
        return self.to(DType.float16)

    def long(self) -> PackedSequence:
        return self.to(DType.int64)

    def int(self) -> PackedSequence:
        return self.to(DType.int32)

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def _ints(what: str, x: Any) -> list[int]:
    """A Python list of ints from a list or a 1-d tensor (read from its data)."""
    if isinstance(x, Tensor):
        if x.ndim != 1 or x.dtype.is_floating:
            raise _fail(f"{what}: lengths should be a 1-d integer tensor or a list of ints, got "
                        f"{_t(x)}")
        # NOTE: while tracing, even a captured tensor's values (readable: it is not lifted
        # yet) would be baked into a graph whose cache key sees only its shape
        if STATE.tracer is not None:
            raise errors.TraceError(errors.at_user(
                f"{what}: the lengths are a tensor whose values are not known inside "
                "@hybrid.compile; pass them as a list of ints (a static argument)"))
        return [int(v) for v in x.tolist()]
    try:
        return [int(v) for v in x]
    except (TypeError, ValueError):
        raise _fail(f"{what}: lengths should be a list of ints or a 1-d integer tensor, got "
                    f"{x!r}") from None


def _static(seq: PackedSequence) -> _Static:
    """The Python copy of seq's batch sizes and order (read from its tensors once)."""
    # NOTE: a PackedSequence passed into (or captured by) a compiled function still holds its
    # eager values while tracing, but the cache key sees only its tensors' shapes: reading them
    # would bake one call's batch sizes and order into the graph for every later call.
    if STATE.tracer is not None and seq.__dict__.get("_tracer") is not STATE.tracer:
        raise errors.TraceError(errors.at_user(
            "PackedSequence: its batch_sizes are not known inside @hybrid.compile (it was "
            "passed in as an argument or captured); pass the padded tensor and the lengths as a "
            "list and call pack_padded_sequence inside the compiled function"))
    meta = seq.__dict__.get("_static")
    if meta is None:
        sizes = [int(v) for v in seq.batch_sizes.tolist()]
        order = None if seq.sorted_indices is None else \
            tuple(int(v) for v in seq.sorted_indices.tolist())
        meta = _Static(tuple(sizes), order)
        seq.__dict__["_static"] = meta
    return meta


def _packed(data: Any, meta: _Static, like: PackedSequence | None = None) -> PackedSequence:
    """A PackedSequence of `data` with meta's sizes (and like's index tensors when given)."""
    if like is not None:
        seq = PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
    else:
        sizes = cr.tensor(list(meta.sizes), dtype=DType.int64, device="cpu")
        order = inv = None
        if meta.order is not None:
            order = cr.tensor(list(meta.order), dtype=DType.int64, device=data.device)
            inv = cr.tensor(meta.inverse, dtype=DType.int64, device=data.device)
        seq = PackedSequence(data, sizes, order, inv)
    _remember(seq, meta)
    return seq


def _rows(x: Any, index: list[int]) -> Any:
    """x[index] along dim 0 as one gather."""
    return ix.index_select(x, 0, cr.tensor(index, dtype=DType.int64, device=x.device))


def invert_permutation(permutation: Any) -> Any:
    """The inverse of a 1-d int64 permutation (None stays None)."""
    if permutation is None:
        return None
    n = permutation.shape[0]
    return ix.scatter_add(cr.zeros((n,), dtype=DType.int64, device=permutation.device), 0,
                          permutation, cr.arange(n, dtype=DType.int64, device=permutation.device))


def pack_padded_sequence(input: Any, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Packs a padded (T, B, *) batch (B, T, * with batch_first) of sequences of `lengths`."""
    op = "pack_padded_sequence"
    lens = _ints(op, lengths)
    if not isinstance(input, Tensor) or input.ndim < 2:
        got = _t(input) if isinstance(input, Tensor) else type(input).__name__
        raise _fail(f"{op}: expected a padded batch of at least 2 dims (T, B, *), got {got}")
    steps, batch = (input.shape[1], input.shape[0]) if batch_first else input.shape[:2]
    if len(lens) != batch:
        raise _fail(f"{op}: Expected `len(lengths)` to be equal to batch_size, but got "
                    f"{len(lens)} (batch_size={batch}; input {_t(input)}, batch_first="
                    f"{batch_first})")
    if min(lens) <= 0:
        raise _fail(f"{op}: Length of all samples has to be greater than 0, but found an element "
                    f"in 'lengths' that is <= 0 (lengths {lens})")
    if max(lens) > steps:
        raise _fail(f"{op}: a length of {max(lens)} is longer than the padded input's {steps} "
                    f"steps (input {_t(input)}, batch_first={batch_first})")
    order: tuple[int, ...] | None = None
    if enforce_sorted:
        if any(a < b for a, b in itertools.pairwise(lens)):
            raise _fail(f"{op}: `lengths` array must be sorted in decreasing order when "
                        "`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
                        "pack_padded_sequence and/or pack_sequence to sidestep this requirement "
                        f"if you do not need ONNX exportability (lengths {lens})")
    else:
        order = tuple(sorted(range(batch), key=lambda j: -lens[j]))  # stable, as torch's sort
    meta = _Static(tuple(sum(1 for n in lens if n > t) for t in range(max(lens))), order)
    rank = list(range(batch)) if order is None else list(order)
    if batch_first:
        index = [rank[s] * steps + t for t, n in enumerate(meta.sizes) for s in range(n)]
    else:
        index = [t * batch + rank[s] for t, n in enumerate(meta.sizes) for s in range(n)]
    flat = input.reshape((steps * batch,) + tuple(input.shape[2:]))
    return _packed(_rows(flat, index), meta)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Any, Any]:
    """(padded (T, B, *) in the caller's batch order, lengths int64) of a PackedSequence."""
    meta = _static(sequence)
    data = sequence.data
    steps, batch = len(meta.sizes), meta.sizes[0]
    if total_length is not None:
        if total_length < steps:
            raise _fail("pad_packed_sequence: Expected total_length to be at least the length of "
                        f"the longest sequence in input, but got total_length={total_length} and "
                        f"max sequence length being {steps}")
        steps = total_length
    lengths, inverse, offsets = meta.lengths, meta.inverse, meta.offsets
    pad_row = data.shape[0]

    def source(t: int, j: int) -> int:
        s = inverse[j]
        return offsets[t] + s if t < lengths[s] else pad_row

    if batch_first:
        index = [source(t, j) for j in range(batch) for t in range(steps)]
    else:
        index = [source(t, j) for t in range(steps) for j in range(batch)]
    rest = tuple(data.shape[1:])
    fill = cr.full((1,) + rest, padding_value, dtype=data.dtype, device=data.device)
    padded = _rows(sh.cat([data, fill], 0), index)
    shape = (batch, steps) if batch_first else (steps, batch)
    out_lengths = cr.tensor([lengths[inverse[j]] for j in range(batch)], dtype=DType.int64,
                            device="cpu")
    return padded.reshape(shape + rest), out_lengths


def _sequences(op: str, sequences: Any) -> list[Any]:
    items = list(sh.unbind(sequences, 0)) if isinstance(sequences, Tensor) else list(sequences)
    if not items:
        raise _fail(f"{op}: received an empty list of sequences")
    for i, s in enumerate(items):
        if not isinstance(s, Tensor) or s.ndim < 1:
            got = _t(s) if isinstance(s, Tensor) else type(s).__name__
            raise _fail(f"{op}: sequence {i} must be a tensor of at least 1 dim (L, *), got {got}")
        if tuple(s.shape[1:]) != tuple(items[0].shape[1:]):
            raise _fail(f"{op}: every sequence must have the same trailing dims as the first, "
                        f"{_t(items[0])}, but sequence {i} is {_t(s)}")
    return items


def pad_sequence(sequences: Any, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Any:
    """Stacks sequences (L_i, *) into (T, B, *) ((B, T, *) with batch_first), padding each to
    the longest with padding_value on `padding_side` ("right" or "left")."""
    op = "pad_sequence"
    if padding_side not in ("left", "right"):
        raise _fail(f"{op}: Expected padding_side to be one of left or right, but got "
                    f"{padding_side}.")
    items = _sequences(op, sequences)
    steps = max(s.shape[0] for s in items)
    dtype = items[0].dtype
    padded = []
    for s in items:
        s = s if s.dtype == dtype else s.to(dtype)
        extra = steps - s.shape[0]
        if extra:
            side = (0, extra) if padding_side == "right" else (extra, 0)
            s = sh.pad(s, (0, 0) * (s.ndim - 1) + side, value=padding_value)
        padded.append(s)
    return sh.stack(padded, 0 if batch_first else 1)


def pack_sequence(sequences: Any, enforce_sorted: bool = True) -> PackedSequence:
    """Packs a list of sequences (L_i, *) (by decreasing length unless enforce_sorted=False)."""
    items = _sequences("pack_sequence", sequences)
    return pack_padded_sequence(pad_sequence(items), [s.shape[0] for s in items],
                                enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Any, lengths: Any, batch_first: bool = False) -> list[Any]:
    """The list of sequences (L_i, *) in a padded batch. (PyTorch transposes a seq-first input
    in place here; hybrid leaves it unchanged.)"""
    lens = _ints("unpad_sequence", lengths)
    x = padded_sequences if batch_first else sh.transpose(padded_sequences, 0, 1)
    if len(lens) != x.shape[0]:
        raise _fail(f"unpad_sequence: got {len(lens)} lengths for a batch of {x.shape[0]} "
                    f"(input {_t(padded_sequences)}, batch_first={batch_first})")
    return [sh.narrow(seq, 0, 0, n) for seq, n in zip(sh.unbind(x, 0), lens)]


def unpack_sequence(packed_sequences: PackedSequence) -> list[Any]:
    """The list of sequences (L_i, *) in a PackedSequence, in the caller's order."""
    meta = _static(packed_sequences)
    lengths, inverse, offsets = meta.lengths, meta.inverse, meta.offsets
    out = []
    for j in range(meta.sizes[0]):
        s = inverse[j]
        out.append(_rows(packed_sequences.data, [offsets[t] + s for t in range(lengths[s])]))
    return out


# -- for hybrid/nn/rnn.py --------------------------------------------------------------------


def _unpack(seq: PackedSequence) -> tuple[Any, list[int]]:
    """(padded (T, B, *) in the caller's batch order, the caller's lengths as ints)."""
    meta = _static(seq)
    padded, _ = pad_packed_sequence(seq)
    lengths, inverse = meta.lengths, meta.inverse
    return padded, [lengths[inverse[j]] for j in range(meta.sizes[0])]


def _pack_like(padded: Any, like: PackedSequence) -> PackedSequence:
    """Packs (T, B, *) in the caller's batch order as `like` is packed (same batch sizes and
    index tensors)."""
    meta = _static(like)
    batch = padded.shape[1]
    rank = list(range(batch)) if meta.order is None else list(meta.order)
    index = [t * batch + rank[s] for t, n in enumerate(meta.sizes) for s in range(n)]
    flat = padded.reshape((padded.shape[0] * batch,) + tuple(padded.shape[2:]))
    return _packed(_rows(flat, index), meta, like)
