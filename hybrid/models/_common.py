"""Helpers shared by the model definitions: input checks and the classifier head."""

from __future__ import annotations

from typing import Any

from hybrid import errors, nn


def _t(x: Any) -> str:
    return f"{x.dtype.short}[{','.join(map(str, x.shape))}]"


def check_image(model: str, x: Any, size: int | None = None, channels: int = 3) -> None:
    """Raise a ShapeError unless x is (N, channels, H, W) (and H = W = size when given)."""
    shape = tuple(getattr(x, "shape", ()))
    ok = len(shape) == 4 and shape[1] == channels
    if ok and size is not None:
        ok = shape[2] == shape[3] == size
    if not ok:
        want = f"(N, {channels}, {size}, {size})" if size is not None else f"(N, {channels}, H, W)"
        got = _t(x) if hasattr(x, "dtype") else type(x).__name__
        raise errors.ShapeError(errors.at_user(
            f"{model}: expected an image batch of shape {want}, got {got}; "
            f"resize the input or use the other variant (ImageNet vs CIFAR size)"))


def check_classes(model: str, num_classes: int) -> None:
    """Raise a ShapeError unless num_classes is a positive int."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise errors.ShapeError(errors.at_user(
            f"{model}: num_classes must be a positive int, got {num_classes!r}"))


def classifier(in_features: int, hidden: tuple[int, ...], num_classes: int, dropout: float,
               dropout_first: bool) -> nn.Sequential:
    """Linear layers of widths `hidden` then `num_classes`, ReLU between them, Dropout before
    each hidden Linear (AlexNet: dropout_first) or after each hidden ReLU (VGG)."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        if dropout_first:
            layers += [nn.Dropout(p=dropout), nn.Linear(width, h), nn.ReLU(inplace=True)]
        else:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(p=dropout)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
