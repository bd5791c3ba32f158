"""Padding layers of hybrid.nn with PyTorch's names and reprs: ReflectionPad1d/2d/3d,
ReplicationPad1d/2d/3d, CircularPad1d/2d/3d, ZeroPad1d/2d/3d, ConstantPad1d/2d/3d. Each holds
`padding` as the (left, right, top, bottom, front, back) tuple F.pad takes and calls F.pad in
forward() (hybrid/ops/shape.py `pad`, where the modes and their checks live)."""

from __future__ import annotations

from typing import Any

from hybrid import errors
from hybrid.nn.module import Module
from hybrid.ops import shape as sh

__all__ = [f"{kind}Pad{n}d" for kind in ("Reflection", "Replication", "Circular", "Zero",
                                          "Constant") for n in (1, 2, 3)]


class _PadNd(Module):
    _n = 2
    _mode = "constant"

    def __init__(self, padding: Any, value: float = 0.0) -> None:
        super().__init__()
        n = type(self)._n
        pads = (padding,) * (2 * n) if isinstance(padding, int) else tuple(padding)
        if len(pads) != 2 * n or not all(isinstance(p, int) for p in pads):
            raise errors.ShapeError(errors.at_user(
                f"{type(self).__name__}: padding must be an int or {2 * n} ints (left, right"
                f"{', top, bottom' if n > 1 else ''}{', front, back' if n > 2 else ''}), got "
                f"{padding!r}"))
        self.padding, self.value = pads, float(value)

    def forward(self, x: Any) -> Any:
        mode = type(self)._mode
        return sh.pad(x, self.padding, mode, self.value if mode == "constant" else None)

    def extra_repr(self) -> str:
        return str(self.padding)


class _ConstantPadNd(_PadNd):
    def __init__(self, padding: Any, value: float) -> None:
        super().__init__(padding, value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


def _layer(name: str, base: type, n: int, mode: str) -> type:
    doc = (f"F.pad of the last {n} dim{'s' if n > 1 else ''} with mode={mode!r}"
           + (" and `value`" if base is _ConstantPadNd else "") + ".")
    return type(name, (base,), {"_n": n, "_mode": mode, "__doc__": doc, "__module__": __name__})


for _kind, _mode in (("Reflection", "reflect"), ("Replication", "replicate"),
                     ("Circular", "circular"), ("Zero", "constant")):
    for _n in (1, 2, 3):
        globals()[f"{_kind}Pad{_n}d"] = _layer(f"{_kind}Pad{_n}d", _PadNd, _n, _mode)
for _n in (1, 2, 3):
    globals()[f"ConstantPad{_n}d"] = _layer(f"ConstantPad{_n}d", _ConstantPadNd, _n, "constant")
