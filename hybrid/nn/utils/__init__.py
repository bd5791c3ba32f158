"""hybrid.nn.utils: gradient clipping, flat parameter vectors and packed sequences (PyTorch's
`torch.nn.utils`; `hybrid.nn.utils.rnn` is `torch.nn.utils.rnn`)."""

from hybrid.nn.utils import rnn
from hybrid.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm
from hybrid.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "parameters_to_vector",
           "rnn", "vector_to_parameters"]
