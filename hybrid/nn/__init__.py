"""hybrid.nn: Module, Parameter, layers, containers and losses (PyTorch's names)."""

from hybrid.nn import functional, init  # noqa: F401
from hybrid.nn.containers import ModuleDict, ModuleList, Sequential  # noqa: F401
from hybrid.nn.layers import (  # noqa: F401
    GELU, Dropout, Embedding, Flatten, Identity, LayerNorm, Linear, LogSoftmax, ReLU, Sigmoid,
    SiLU, Softmax, Tanh,
)
from hybrid.nn.loss import (  # noqa: F401
    BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss,
)
from hybrid.nn.module import Module, Parameter, structure_epoch  # noqa: F401
