"""hybrid.functional: the same functions as hybrid.nn.functional (softmax, cross_entropy, ...)."""

from hybrid.nn.functional import *
from hybrid.nn.functional import __all__  # noqa: F401
