"""Model definitions with torchvision's names and layouts (`import hybrid.models`)."""

from hybrid.models import alexnet as _alexnet_module
from hybrid.models import vgg as _vgg_module
from hybrid.models.alexnet import *
from hybrid.models.vgg import *

__all__ = list(_alexnet_module.__all__) + list(_vgg_module.__all__)
