"""(being written) layers of hybrid.nn; see hybrid/nn/__init__.py for the wiring."""

from __future__ import annotations

__all__: list[str] = []
