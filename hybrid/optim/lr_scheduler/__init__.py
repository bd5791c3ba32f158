"""Learning-rate schedulers with PyTorch's API and values (`torch.optim.lr_scheduler`)."""

from hybrid.optim.lr_scheduler.base import LRScheduler
from hybrid.optim.lr_scheduler.composite import ChainedScheduler, SequentialLR
from hybrid.optim.lr_scheduler.cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from hybrid.optim.lr_scheduler.plateau import ReduceLROnPlateau
from hybrid.optim.lr_scheduler.schedules import (
                                                 ConstantLR,
                                                 CosineAnnealingLR,
                                                 ExponentialLR,
                                                 LambdaLR,
                                                 LinearLR,
                                                 MultiplicativeLR,
                                                 MultiStepLR,
                                                 PolynomialLR,
                                                 StepLR,
)

__all__ = [
                                                 "ChainedScheduler",
                                                 "ConstantLR",
                                                 "CosineAnnealingLR",
                                                 "CosineAnnealingWarmRestarts",
                                                 "CyclicLR",
                                                 "ExponentialLR",
                                                 "LRScheduler",
                                                 "LambdaLR",
                                                 "LinearLR",
                                                 "MultiStepLR",
                                                 "MultiplicativeLR",
                                                 "OneCycleLR",
                                                 "PolynomialLR",
                                                 "ReduceLROnPlateau",
                                                 "SequentialLR",
                                                 "StepLR",
]
