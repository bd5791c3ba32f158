"""Graph IR: dtypes and tensor types, the primitive op table, graphs, printing, checks."""

from compiler.ir.ops import ELEMENTWISE, OPS, Kind, Literal, Op, OpDef, impls, infer_type
from compiler.ir.types import DType, OpError, TensorType, broadcast_shapes

__all__ = [
    "DType", "TensorType", "OpError", "broadcast_shapes",
    "Op", "Kind", "OpDef", "OPS", "ELEMENTWISE", "infer_type", "impls", "Literal",
]

from compiler.ir.interpret import interpret  # noqa: E402
from compiler.ir.verify import VerifyError, verify  # noqa: E402

__all__ += ["verify", "VerifyError", "interpret"]
