"""Recurrent layers of hybrid.nn (RNN, LSTM, GRU and their cells; PyTorch's names, parameter
layout and semantics), written as compositions of hybrid's ops."""

from __future__ import annotations

__all__: list[str] = []
