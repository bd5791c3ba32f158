"""Recurrent layers of hybrid.nn (RNN, LSTM, GRU and their cells; PyTorch's names, parameter
layout and semantics), written as compositions of hybrid's ops.

The time loop is a Python loop: eager mode runs it step by step with autograd, and
@hybrid.compile unrolls it into the traced graph (one copy of the cell per time step).
Packed sequences (hybrid.nn.utils.rnn.PackedSequence) run padded in the caller's batch order,
with a per-step mask that holds each sequence's state once its length is reached (so h_n is the
state at each sequence's own last step); the reverse direction starts at each sequence's own
last element because the masked steps before it keep the initial state. An LSTM with proj_size
projects each step's hidden state by weight_hr (h_t = W_hr (o_t * tanh(c_t))), as PyTorch."""

from __future__ import annotations

import math
from typing import Any

from hybrid import errors
from hybrid.control_flow import scan
from hybrid.nn import functional as F
from hybrid.nn import init
from hybrid.nn.module import Module, Parameter
from hybrid.nn.utils.rnn import PackedSequence, _pack_like, _unpack
from hybrid.ops import creation as cr
from hybrid.ops import elementwise as ew
from hybrid.ops import shape as sh

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell", "RNNCellBase"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _shape(x: Any) -> list[int]:
    return list(x.shape)


def _fail(message: str) -> errors.HybridError:
    return errors.ShapeError(errors.at_user(message))


# ---------------------------------------------------------------------------------------------
# one step of each cell; `xw` is the input projection x @ w_ih.T + b_ih, already computed


def _hh(h: Any, w_hh: Any, b_hh: Any) -> Any:
    return F.linear(h, w_hh, b_hh)


def _rnn_step(xw: Any, h: Any, w_hh: Any, b_hh: Any, relu: bool) -> Any:
    pre = xw + _hh(h, w_hh, b_hh)
    return ew.relu(pre) if relu else pre.tanh()


def _lstm_step(xw: Any, state: tuple[Any, Any], w_hh: Any, b_hh: Any,
               w_hr: Any = None) -> tuple[Any, Any]:
    h, c = state
    gates = xw + _hh(h, w_hh, b_hh)
    i, f, g, o = sh.chunk(gates, 4, dim=-1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_new = o.sigmoid() * c_new.tanh()
    if w_hr is not None:  # LSTM with projections
        h_new = F.linear(h_new, w_hr)
    return h_new, c_new


def _gru_step(xw: Any, h: Any, w_hh: Any, b_hh: Any) -> Any:
    gh = _hh(h, w_hh, b_hh)
    x_r, x_z, x_n = sh.chunk(xw, 3, dim=-1)
    h_r, h_z, h_n = sh.chunk(gh, 3, dim=-1)
    r = (x_r + h_r).sigmoid()
    z = (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    return (1 - z) * n + z * h


def _step(mode: str, xw: Any, state: Any, w_hh: Any, b_hh: Any, w_hr: Any = None) -> Any:
    if mode == "LSTM":
        return _lstm_step(xw, state, w_hh, b_hh, w_hr)
    if mode == "GRU":
        return _gru_step(xw, state, w_hh, b_hh)
    return _rnn_step(xw, state, w_hh, b_hh, relu=mode == "RNN_RELU")


# ---------------------------------------------------------------------------------------------
# cells


class RNNCellBase(Module):
    """weight_ih (gates*hidden, input), weight_hh (gates*hidden, hidden), bias_ih, bias_hh."""

    _mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        rows = num_chunks * hidden_size
        self.weight_ih = Parameter(cr.empty((rows, input_size), dtype=dtype, device=device))
        self.weight_hh = Parameter(cr.empty((rows, hidden_size), dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(cr.empty((rows,), dtype=dtype, device=device))
            self.bias_hh = Parameter(cr.empty((rows,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s

    def _check(self, x: Any, hx: Any) -> bool:
        """Checks shapes; True when the input has no batch dim."""
        name = type(self).__name__
        if x.ndim not in (1, 2):
            raise _fail(f"{name}: expected input to be 1-D or 2-D, got {x.ndim}-D input of "
                        f"shape {_shape(x)}")
        if x.shape[-1] != self.input_size:
            raise _fail(f"{name}: input has inconsistent input_size: got {x.shape[-1]} "
                        f"(input shape {_shape(x)}), expected {self.input_size}")
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        want = list(x.shape[:-1]) + [self.hidden_size]
        for h in states:
            if h is not None and _shape(h) != want:
                raise _fail(f"{name}: hidden state has shape {_shape(h)} but input of shape "
                            f"{_shape(x)} needs {want}")
        return x.ndim == 1

    def _zeros(self, x: Any) -> Any:
        return cr.zeros((x.shape[0], self.hidden_size), dtype=x.dtype, device=x.device)

    def forward(self, x: Any, hx: Any = None) -> Any:
        unbatched = self._check(x, hx)
        if unbatched:
            x = x.unsqueeze(0)
            if hx is not None:
                hx = tuple(h.unsqueeze(0) for h in hx) if self._mode == "LSTM" \
                    else hx.unsqueeze(0)
        if hx is None:
            hx = (self._zeros(x), self._zeros(x)) if self._mode == "LSTM" else self._zeros(x)
        out = _step(self._mode, F.linear(x, self.weight_ih, self.bias_ih), hx, self.weight_hh,
                    self.bias_hh)
        if unbatched:
            out = tuple(o.squeeze(0) for o in out) if self._mode == "LSTM" else out.squeeze(0)
        return out


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise _fail(f"RNNCell: unknown nonlinearity {nonlinearity!r} (use 'tanh' or 'relu')")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class LSTMCell(RNNCellBase):
    """One LSTM step; gates i, f, g, o stacked in that order in weight_ih / weight_hh.
    forward(input, (h, c)) -> (h', c')."""

    _mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)


class GRUCell(RNNCellBase):
    """One GRU step; gates r, z, n stacked in that order. forward(input, h) -> h'."""

    _mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)


# ---------------------------------------------------------------------------------------------
# multi-layer, optionally bidirectional layers


class RNNBase(Module):
    """The layers' shared parameters (weight_ih_l{k}[_reverse], ...) and their forward loop."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        name = _NAMES[mode]
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise _fail(f"{name}: dropout should be a number in range [0, 1], got {dropout}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise _fail(f"{name}: num_layers must be a positive int, got {num_layers!r}")
        if not isinstance(proj_size, int) or proj_size < 0:
            raise _fail(f"{name}: proj_size should be a positive integer or zero to disable "
                        f"projections, got {proj_size!r}")
        if proj_size and mode != "LSTM":
            raise _fail(f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size and proj_size >= hidden_size:
            raise _fail(f"{name}: proj_size has to be smaller than hidden_size (got proj_size="
                        f"{proj_size}, hidden_size={hidden_size})")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        rows = _GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        out_size = proj_size or hidden_size  # the size of h_t
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else out_size * dirs
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [("weight_ih", (rows, in_size)), ("weight_hh", (rows, out_size))]
                if bias:
                    shapes += [("bias_ih", (rows,)), ("bias_hh", (rows,))]
                if proj_size:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                for pname, shape in shapes:
                    p = Parameter(cr.empty(shape, dtype=dtype, device=device))
                    setattr(self, pname + sfx, p)
                    self._flat_weights_names.append(pname + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """A no-op (PyTorch compacts cuDNN weights here)."""

    @property
    def all_weights(self) -> list[list[Any]]:
        per = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        ws = [getattr(self, n) for n in self._flat_weights_names]
        return [ws[i:i + per] for i in range(0, len(ws), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    # -- argument checks ------------------------------------------------------------------

    def _check_input(self, x: Any, packed: bool) -> None:
        name = _NAMES[self.mode]
        if packed and x.ndim != 2:
            raise _fail(f"{name}: input must have 2 dimensions, got {x.ndim} (the data of a "
                        f"PackedSequence, shape {_shape(x)})")
        if not packed and x.ndim not in (2, 3):
            raise _fail(f"{name}: Expected input to be 2D or 3D, got {x.ndim}D instead (input "
                        f"shape {_shape(x)})")
        if x.shape[-1] != self.input_size:
            raise _fail(f"{name}: input.size(-1) must be equal to input_size. Expected "
                        f"{self.input_size}, got {x.shape[-1]} (input shape {_shape(x)})")
        w = self.weight_ih_l0
        if x.dtype != w.dtype:
            raise errors.DTypeError(errors.at_user(
                f"{name}: input dtype ({x.dtype}) does not match weight dtype ({w.dtype}). "
                f"Convert input: input.to({w.dtype}), or convert model: model.to({x.dtype})"))

    def _initial_states(self, hx: Any, x: Any, unbatched: bool) -> Any:
        """h_0 (and c_0) as (num_layers * D, B, size) tensors: zeros, or hx checked as PyTorch
        checks it (unbatched hx gains the batch dim)."""
        name = _NAMES[self.mode]
        is_lstm = self.mode == "LSTM"
        layers = self.num_layers * (2 if self.bidirectional else 1)
        wants = [[layers, x.shape[1], self.proj_size or self.hidden_size]]
        if is_lstm:
            wants.append([layers, x.shape[1], self.hidden_size])
        if hx is None:
            zeros = [cr.zeros(tuple(w), dtype=x.dtype, device=x.device) for w in wants]
            return tuple(zeros) if is_lstm else zeros[0]
        if is_lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            got = f"{len(hx)} tensors" if isinstance(hx, (tuple, list)) else type(hx).__name__
            raise _fail(f"LSTM: hx must be a tuple (h_0, c_0), got {got}")
        if not is_lstm and isinstance(hx, (tuple, list)):
            raise _fail(f"{name}: hx must be one tensor h_0, got a {type(hx).__name__}")
        parts = tuple(hx) if is_lstm else (hx,)
        dims = 2 if unbatched else 3
        if any(h.ndim != dims for h in parts):
            kind = "unbatched 2-D" if unbatched else "batched 3-D"
            what = "hx and cx" if is_lstm else "hx"
            got = ", ".join(f"{h.ndim}-D" for h in parts)
            raise _fail(f"{name}: For {kind} input, {what} should also be {dims}-D but got "
                        f"({got}) (shapes {[_shape(h) for h in parts]})")
        if unbatched:
            parts = tuple(h.unsqueeze(1) for h in parts)
        labels = ("hidden[0]", "hidden[1]") if is_lstm else ("hidden",)
        for label, h, want in zip(labels, parts, wants):
            if _shape(h) != want:
                raise _fail(f"{name}: Expected {label} size {tuple(want)}, got {_shape(h)}")
        return parts if is_lstm else parts[0]

    # -- forward --------------------------------------------------------------------------

    def forward(self, input: Any, hx: Any = None) -> Any:
        is_lstm = self.mode == "LSTM"
        packed = isinstance(input, PackedSequence)
        unbatched = False
        lengths = None
        if packed:
            self._check_input(input.data, packed=True)
            x, lengths = _unpack(input)  # (T, B, I), batch in the caller's order
        else:
            self._check_input(input, packed=False)
            x = input
            if x.ndim == 2:
                unbatched = True
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
        states = self._initial_states(hx, x, unbatched)
        out, h_n = self._layers(x, states, lengths)
        if packed:
            return _pack_like(out, input), h_n
        if unbatched:
            out = out.squeeze(1)
            h_n = tuple(h.squeeze(1) for h in h_n) if is_lstm else h_n.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, h_n

    def _layers(self, x: Any, states: Any, lengths: list[int] | None) -> tuple[Any, Any]:
        is_lstm = self.mode == "LSTM"
        dirs = 2 if self.bidirectional else 1
        steps = x.shape[0]
        masks = None
        if lengths is not None and min(lengths) < steps:
            masks = cr.tensor([[[t < n] for n in lengths] for t in range(steps)],
                              device=x.device)
        h_all = sh.unbind(states[0] if is_lstm else states, 0)
        c_all = sh.unbind(states[1], 0) if is_lstm else None
        h_out, c_out = [], []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout and self.training:
                x = F.dropout(x, self.dropout, training=True)
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                state = (h_all[k], c_all[k]) if is_lstm else h_all[k]
                seq, state = self._direction(x, state, layer, d == 1, masks)
                outs.append(seq)
                if is_lstm:
                    h_out.append(state[0])
                    c_out.append(state[1])
                else:
                    h_out.append(state)
            x = outs[0] if dirs == 1 else sh.cat(outs, dim=2)
        h_n = sh.stack(h_out, 0)
        return x, ((h_n, sh.stack(c_out, 0)) if is_lstm else h_n)

    def _direction(self, x: Any, state: Any, layer: int, reverse: bool,
                   masks: Any) -> tuple[Any, Any]:
        sfx = f"_l{layer}" + ("_reverse" if reverse else "")
        w_ih = getattr(self, "weight_ih" + sfx)
        w_hh = getattr(self, "weight_hh" + sfx)
        b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
        b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
        w_hr = getattr(self, "weight_hr" + sfx) if self.proj_size else None
        xw = F.linear(x, w_ih, b_ih)  # the input projection of all steps at once
        mode = self.mode

        def step(state: Any, xm: tuple) -> tuple:
            new = _step(mode, xm[0], state, w_hh, b_hh, w_hr)
            if len(xm) > 1:  # packed input: a sequence past its length keeps its state
                m = xm[1]
                new = (tuple(ew.where(m, a, b) for a, b in zip(new, state)) if mode == "LSTM"
                       else ew.where(m, new, state))
            return new, (new[0] if mode == "LSTM" else new)

        xs = (xw,) if masks is None else (xw, masks)
        # NOTE: hybrid.scan is the plain loop eagerly; compiled, one loop node whose body is
        # traced once, so compile time does not grow with the sequence length
        state, outs = scan(step, tuple(state) if mode == "LSTM" else state, xs, reverse=reverse)
        return outs, state

_NAMES = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


class RNN(RNNBase):
    """Elman RNN, h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), stacked
    num_layers deep; forward(input, h_0=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Any = None, proj_size: int = 0) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise _fail(f"RNN: unknown nonlinearity {nonlinearity!r} (use 'tanh' or 'relu')")
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        # NOTE: proj_size is accepted only to raise PyTorch's error for it (LSTM only)
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Multi-layer LSTM; forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    """Multi-layer GRU; forward(input, h_0=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None, proj_size: int = 0) -> None:
        # NOTE: proj_size is accepted only to raise PyTorch's error for it (LSTM only)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)
