"""Optimizers with PyTorch's param_groups, state and state_dict format, and learning-rate
schedulers (`hybrid.optim.lr_scheduler`). See `optimizer.py` for the rules that let
`optimizer.step()` trace into a compiled training step."""

from hybrid.optim import lr_scheduler
from hybrid.optim.adadelta import Adadelta
from hybrid.optim.adagrad import Adagrad
from hybrid.optim.adam import Adam, AdamW
from hybrid.optim.lbfgs import LBFGS
from hybrid.optim.optimizer import Optimizer, required
from hybrid.optim.rmsprop import RMSprop
from hybrid.optim.sgd import SGD

__all__ = [
           "LBFGS",
           "SGD",
           "Adadelta",
           "Adagrad",
           "Adam",
           "AdamW",
           "Optimizer",
           "RMSprop",
           "lr_scheduler",
           "required",
]
