"""hybrid: PyTorch's way of writing code, TensorFlow's way of running it.

Eager tensors on numpy (CPU) or CuPy (GPU) with autograd, nn and optim; `@hybrid.compile` traces
a function into a graph that is optimized and run natively."""

from hybrid import _native  # noqa: F401  (fails clearly when the extension is not built)
from hybrid._native import get_num_threads, set_num_threads
from hybrid import tensor as _tensor_module  # noqa: F401  (binds Tensor into the dispatcher)
from hybrid.autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from hybrid.device import cuda_is_available, device
from hybrid.dlpack import from_dlpack, to_dlpack
from hybrid.dtypes import (
    bfloat16, bool_, double, float, float16, float32, float64, get_default_dtype, half, int,
    int32, int64, long, promote_types, result_type, set_default_dtype,
)
from hybrid.errors import (
    AutogradError, DeviceError, DTypeError, HybridError, HybridIndexError, ShapeError,
    StateDictError, TraceError,
)
from hybrid.errors import HybridMemoryError, HybridZeroDivisionError  # noqa: E402
from hybrid.ops.creation import (
    arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace, ones,
    ones_like, tensor, zeros, zeros_like,
)
from hybrid.ops.elementwise import (  # exp, log, erf, ...: made from the op table (api_extra)
    abs, add, atan2, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, ceil, clamp, div, eq, exp2,
    floor, floor_divide, ge, gt, isfinite, isinf, isnan, le, lerp, log2, log10, logical_and,
    logical_not, logical_or, logical_xor, lt, maximum, minimum, mul, nan_to_num, ne, neg, pow,
    relu, remainder, round, sign, square, sub, tan, trunc, where,
)
from hybrid.ops.indexing import gather, index_add, index_select, masked_fill, scatter_add, take
from hybrid.ops.linalg import bmm, dot, matmul, mm, outer
from hybrid.ops.reduce import (
    all, amax, amin, any, argmax, argmin, count_nonzero, logsumexp, max, mean, min, prod, std, sum,
    var,
)
from hybrid.ops.shape import (
    broadcast_tensors, broadcast_to, cat, chunk, clone, concat, flatten, flip, narrow, permute,
    repeat, reshape, split, squeeze, stack, transpose, unbind, unflatten, unsqueeze,
)
from hybrid.random import (
    Generator, initial_seed, manual_seed, normal, rand, rand_like, randint, randint_like, randn,
    randn_like, randperm, seed,
)
from hybrid.tensor import Tensor
from hybrid import autograd  # noqa: E402

bool = bool_  # noqa: A001  (hybrid.bool, as torch.bool)
clip = clamp
is_tensor = lambda x: isinstance(x, Tensor)  # noqa: E731
numel = Tensor.numel
from hybrid.compile import RecompileWarning, compile  # noqa: E402
from hybrid.control_flow import cond, scan, while_loop  # noqa: E402
from hybrid.export import ExportedProgram, export  # noqa: E402
from hybrid.export_format import load_exported, runtime_dir  # noqa: E402
from hybrid import onnx  # noqa: E402  (ONNX export: the onnx package is imported on use)
from hybrid.compile_trace import TraceStabilityWarning  # noqa: E402
from hybrid.memory import empty_cache, memory_stats, reset_peak_memory_stats  # noqa: E402
from hybrid.config import config  # noqa: E402
from hybrid import nn, optim, functional, data  # noqa: E402,F401
from hybrid import utils  # noqa: E402,F401  (hybrid.utils.data is hybrid.data)
from hybrid.serialization import save, load  # noqa: E402,F401
from hybrid import cuda  # noqa: E402,F401
from hybrid.device import get_default_device, set_default_device  # noqa: E402,F401
from hybrid.legacy import (  # noqa: E402,F401
    BoolTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor, LongTensor,
)
from hybrid.api_extra import *  # noqa: E402,F401,F403  (extra ops, out= keywords)
from hybrid import accelerator  # noqa: E402,F401
from hybrid.accelerator import backends  # noqa: E402,F401
