"""hybrid.nn: Module, Parameter, layers, containers and losses (PyTorch's names)."""

from hybrid.nn import functional, init, utils
from hybrid.nn.containers import ModuleDict, ModuleList, Sequential
from hybrid.nn.layers import (
    GELU,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from hybrid.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from hybrid.nn.loss import (
    BCELoss, CosineEmbeddingLoss, CosineSimilarity, HingeEmbeddingLoss, HuberLoss, KLDivLoss,
    MarginRankingLoss, PairwiseDistance, PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss,
)
from hybrid.nn.module import Module, Parameter, structure_epoch

__all__ = [
    "GELU",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "Identity",
    "L1Loss",
    "LayerNorm",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "BCELoss",
    "CosineEmbeddingLoss",
    "CosineSimilarity",
    "HingeEmbeddingLoss",
    "HuberLoss",
    "KLDivLoss",
    "MarginRankingLoss",
    "PairwiseDistance",
    "PoissonNLLLoss",
    "SmoothL1Loss",
    "SoftMarginLoss",
    "functional",
    "init",
    "utils",
    "structure_epoch",
]

# conv/pool (conv.py), normalization (norm.py), padding (padding.py), resizing (resize.py), recurrent (rnn.py) and
# attention/transformer (transformer.py) layers
from hybrid.nn import conv as _conv  # noqa: E402
from hybrid.nn import norm as _norm  # noqa: E402
from hybrid.nn import padding as _padding  # noqa: E402
from hybrid.nn import resize as _resize  # noqa: E402
from hybrid.nn import rnn as _rnn  # noqa: E402
from hybrid.nn import transformer as _transformer  # noqa: E402
from hybrid.nn.conv import *  # noqa: E402, F403
from hybrid.nn.norm import *  # noqa: E402, F403
from hybrid.nn.padding import *  # noqa: E402, F403
from hybrid.nn.resize import *  # noqa: E402, F403
from hybrid.nn.rnn import *  # noqa: E402, F403
from hybrid.nn.transformer import *  # noqa: E402, F403

__all__ += (_conv.__all__ + _norm.__all__ + _padding.__all__ + _resize.__all__ + _rnn.__all__
            + _transformer.__all__)
