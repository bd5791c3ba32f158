"""VGG-11/13/16/19 with and without batch norm: torchvision's layout (configs A/B/D/E,
`make_layers`, 224x224 ImageNet head) and 32x32 CIFAR heads, plus the small `vgg_style_cifar`
network of the CNN benchmark.

Module names and indices are torchvision's (`features`, `avgpool`, `classifier`), so a
torchvision `vgg*` state_dict loads; weights get torchvision's VGG init (convolutions
kaiming_normal_ fan_out/relu, linear N(0, 0.01), biases 0, batch norm weight 1)."""

from __future__ import annotations

from typing import Any

import hybrid
from hybrid import errors, nn
from hybrid.models._common import check_classes, check_image, classifier
from hybrid.nn import init

__all__ = [
    "VGG", "cfgs", "make_layers", "vgg11", "vgg11_bn", "vgg11_cifar", "vgg13", "vgg13_bn",
    "vgg13_cifar", "vgg16", "vgg16_bn", "vgg16_cifar", "vgg19", "vgg19_bn", "vgg19_cifar",
    "vgg_style_cifar",
]

# torchvision's configurations: output channels of each 3x3 convolution, "M" a 2x2 max pool.
cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
          512, 512, "M"],
    # vgg_style_cifar: three blocks of two convolutions (32, 64, 128 channels)
    "S": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
}


def make_layers(cfg: list[int | str], batch_norm: bool = False,
                in_channels: int = 3) -> nn.Sequential:
    """torchvision's make_layers: Conv2d(3x3, padding 1) [+ BatchNorm2d] + ReLU per number,
    MaxPool2d(2, 2) per "M"."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif isinstance(v, int) and not isinstance(v, bool) and v > 0:
            layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            in_channels = v
        else:
            raise errors.ShapeError(errors.at_user(
                f"make_layers: each cfg entry must be a positive channel count or 'M', got "
                f"{v!r} in {cfg}"))
    return nn.Sequential(*layers)


def _last_channels(features: nn.Module) -> int:
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise errors.ShapeError(errors.at_user("VGG: features has no Conv2d layer"))
    return convs[-1].out_channels


class VGG(nn.Module):
    """torchvision.models.VGG: `features`, adaptive average pool, 3-layer classifier.

    The keyword-only arguments size the head: `pool_size` (7 in torchvision; None: no pool,
    an Identity, for inputs whose features already have the size the classifier expects) and
    `hidden` (the hidden linear widths, (4096, 4096) in torchvision)."""

    def __init__(self, features: nn.Module, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5, *, pool_size: int | None = 7,
                 hidden: tuple[int, ...] = (4096, 4096)) -> None:
        super().__init__()
        check_classes(type(self).__name__, num_classes)
        self.features = features
        self.pool_size = pool_size
        if pool_size is None:
            self.avgpool: nn.Module = nn.Identity()
            self.image_size: int | None = 32
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
            self.image_size = None
        if pool_size is None:  # each "M" halves 32x32 input
            pools = sum(isinstance(m, nn.MaxPool2d) for m in features.modules())
            spatial = (32 >> pools) ** 2
        else:
            spatial = pool_size * pool_size
        in_features = _last_channels(features) * spatial
        self.classifier = classifier(in_features, tuple(hidden), num_classes, dropout, False)
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, 0, 0.01)
                init.constant_(m.bias, 0)

    def forward(self, x: Any) -> Any:
        check_image(type(self).__name__, x, self.image_size)
        x = self.avgpool(self.features(x))
        return self.classifier(hybrid.flatten(x, 1))


_DEPTH = {11: "A", 13: "B", 16: "D", 19: "E"}


def _vgg(depth: int, batch_norm: bool, num_classes: int, init_weights: bool, dropout: float,
         cifar: bool) -> VGG:
    features = make_layers(cfgs[_DEPTH[depth]], batch_norm=batch_norm)
    if cifar:  # 32 -> 1 after five pools: 512 features, 512-wide hidden layers
        return VGG(features, num_classes, init_weights, dropout, pool_size=None, hidden=(512, 512))
    return VGG(features, num_classes, init_weights, dropout)


def vgg11(batch_norm: bool = False, num_classes: int = 1000, init_weights: bool = True,
          dropout: float = 0.5) -> VGG:
    """VGG-11 (config A) for 224x224 input; 132,863,336 parameters (batch_norm: 132,868,840)."""
    return _vgg(11, batch_norm, num_classes, init_weights, dropout, False)


def vgg13(batch_norm: bool = False, num_classes: int = 1000, init_weights: bool = True,
          dropout: float = 0.5) -> VGG:
    """VGG-13 (config B) for 224x224 input; 133,047,848 parameters (batch_norm: 133,053,736)."""
    return _vgg(13, batch_norm, num_classes, init_weights, dropout, False)


def vgg16(batch_norm: bool = False, num_classes: int = 1000, init_weights: bool = True,
          dropout: float = 0.5) -> VGG:
    """VGG-16 (config D) for 224x224 input; 138,357,544 parameters (batch_norm: 138,365,992)."""
    return _vgg(16, batch_norm, num_classes, init_weights, dropout, False)


def vgg19(batch_norm: bool = False, num_classes: int = 1000, init_weights: bool = True,
          dropout: float = 0.5) -> VGG:
    """VGG-19 (config E) for 224x224 input; 143,667,240 parameters (batch_norm: 143,678,248)."""
    return _vgg(19, batch_norm, num_classes, init_weights, dropout, False)


def vgg11_bn(num_classes: int = 1000, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """torchvision's name for vgg11(batch_norm=True)."""
    return vgg11(True, num_classes, init_weights, dropout)


def vgg13_bn(num_classes: int = 1000, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """torchvision's name for vgg13(batch_norm=True)."""
    return vgg13(True, num_classes, init_weights, dropout)


def vgg16_bn(num_classes: int = 1000, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """torchvision's name for vgg16(batch_norm=True)."""
    return vgg16(True, num_classes, init_weights, dropout)


def vgg19_bn(num_classes: int = 1000, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """torchvision's name for vgg19(batch_norm=True)."""
    return vgg19(True, num_classes, init_weights, dropout)


def vgg11_cifar(batch_norm: bool = False, num_classes: int = 10, init_weights: bool = True,
                dropout: float = 0.5) -> VGG:
    """VGG-11 features for 32x32 input, classifier 512-512-512-num_classes, no average pool."""
    return _vgg(11, batch_norm, num_classes, init_weights, dropout, True)


def vgg13_cifar(batch_norm: bool = False, num_classes: int = 10, init_weights: bool = True,
                dropout: float = 0.5) -> VGG:
    """VGG-13 features for 32x32 input, classifier 512-512-512-num_classes, no average pool."""
    return _vgg(13, batch_norm, num_classes, init_weights, dropout, True)


def vgg16_cifar(batch_norm: bool = False, num_classes: int = 10, init_weights: bool = True,
                dropout: float = 0.5) -> VGG:
    """VGG-16 features for 32x32 input, classifier 512-512-512-num_classes, no average pool."""
    return _vgg(16, batch_norm, num_classes, init_weights, dropout, True)


def vgg19_cifar(batch_norm: bool = False, num_classes: int = 10, init_weights: bool = True,
                dropout: float = 0.5) -> VGG:
    """VGG-19 features for 32x32 input, classifier 512-512-512-num_classes, no average pool."""
    return _vgg(19, batch_norm, num_classes, init_weights, dropout, True)


def vgg_style_cifar(num_classes: int = 10, init_weights: bool = True,
                    dropout: float = 0.5) -> VGG:
    """The CNN benchmark's network for 3x32x32 input: conv blocks 32-32 / 64-64 / 128-128, each
    convolution followed by BatchNorm2d and ReLU, a 2x2 max pool per block, then
    Linear(2048, 256), ReLU, Dropout, Linear(256, num_classes)."""
    features = make_layers(cfgs["S"], batch_norm=True)
    return VGG(features, num_classes, init_weights, dropout, pool_size=None, hidden=(256,))
