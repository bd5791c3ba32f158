"""Graph passes: each a named pure function Graph -> Graph, run in the order of DEFAULT_PIPELINE.

    dce                        drop what no output needs (less work for what follows)
    cse                        merge repeated computations
    fold+simplify+cse          to a fixed point: folding makes constants that rules match, rules
                               make nodes equal that cse merges, and so on
    batch_matmuls              x[t] @ w for consecutive t: one matmul over the rows of x
    dce                        drop what folding and rewriting left unused
"""

from compiler.passes.batch_matmul import batch_matmuls
from compiler.passes.cse import cse
from compiler.passes.dce import dce
from compiler.passes.fold import fold
from compiler.passes.manager import Pass, PassRecord, fixed_point, run_passes
from compiler.passes.simplify import RULES, simplify

DEFAULT_PIPELINE: list[Pass] = [
    Pass("dce", dce),
    Pass("cse", cse),
    fixed_point("fold+simplify+cse", [Pass("fold", fold), Pass("simplify", simplify),
                                      Pass("cse", cse)]),
    Pass("batch_matmuls", batch_matmuls),
    Pass("dce", dce),
]

__all__ = ["DEFAULT_PIPELINE", "Pass", "PassRecord", "run_passes", "fixed_point",
           "batch_matmuls", "dce", "cse", "fold", "simplify", "RULES"]
