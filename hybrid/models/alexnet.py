"""AlexNet: torchvision's layout (224x224 ImageNet input) and a 32x32 CIFAR-size variant.

`AlexNet` has torchvision's module names (`features`, `avgpool`, `classifier`) and indices, so
a torchvision `alexnet` state_dict loads; parameters keep the layers' default init, as in
torchvision."""

from __future__ import annotations

from typing import Any

import hybrid
from hybrid import nn
from hybrid.models._common import check_classes, check_image, classifier

__all__ = ["AlexNet", "AlexNetCifar", "alexnet", "alexnet_cifar"]


class AlexNet(nn.Module):
    """torchvision.models.AlexNet: 5 convolutions, adaptive average pool to 6x6, 3 linear layers
    (61,100,840 parameters for 1000 classes)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        check_classes(type(self).__name__, num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = classifier(256 * 6 * 6, (4096, 4096), num_classes, dropout, True)

    def forward(self, x: Any) -> Any:
        check_image(type(self).__name__, x)
        x = self.avgpool(self.features(x))
        return self.classifier(hybrid.flatten(x, 1))


class AlexNetCifar(nn.Module):
    """AlexNet's five convolutions sized for 3x32x32 input: a 3x3 stride-2 first convolution,
    2x2 max pools (32 -> 16 -> 8 -> 4 -> 2), and 1024-wide hidden linear layers.

    Same module names and indices as AlexNet; `avgpool` is an Identity (the features end at
    256x2x2 for 32x32 input)."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        check_classes(type(self).__name__, num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.avgpool = nn.Identity()
        self.classifier = classifier(256 * 2 * 2, (1024, 1024), num_classes, dropout, True)

    def forward(self, x: Any) -> Any:
        check_image(type(self).__name__, x, 32)
        x = self.avgpool(self.features(x))
        return self.classifier(hybrid.flatten(x, 1))


def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """torchvision's AlexNet for 224x224 input (no pretrained weights: load a state_dict)."""
    return AlexNet(num_classes=num_classes, dropout=dropout)


def alexnet_cifar(num_classes: int = 10, dropout: float = 0.5) -> AlexNetCifar:
    """The AlexNet-style network for 32x32 input (AlexNetCifar)."""
    return AlexNetCifar(num_classes=num_classes, dropout=dropout)
