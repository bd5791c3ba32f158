"""(being written) functions of hybrid.nn.functional; see hybrid/nn/functional.py for the wiring."""

from __future__ import annotations

__all__: list[str] = []
