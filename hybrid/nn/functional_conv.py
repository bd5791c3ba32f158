"""Convolution, pooling, normalization and resizing functions of hybrid.nn.functional (PyTorch's
names and signatures), written as compositions of hybrid's primitive ops so they run eagerly and
compile through the existing lowering."""

from __future__ import annotations

__all__: list[str] = []
