"""hybrid.functional: the same functions as hybrid.nn.functional (softmax, cross_entropy, ...)."""

from hybrid.nn.functional import *  # noqa: F401,F403
from hybrid.nn.functional import __all__  # noqa: F401
