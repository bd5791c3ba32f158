"""Convolution, pooling and normalization layers of hybrid.nn (PyTorch's names)."""

from __future__ import annotations

__all__: list[str] = []
