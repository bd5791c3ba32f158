"""Settings, read once from environment variables and changeable from Python.

    HYBRID_LOG=recompiles,graphs   log each recompile (and print each compiled graph;
                                   `kernels`: each kernel pass's program, compiler/passes)
    HYBRID_VERIFY=1                check the IR between passes and eager op types (slower)
    HYBRID_RECOMPILE_LIMIT=8       compiled variants per function before it warns
    HYBRID_BACKEND=native          'native' (LLVM kernels + C++ runtime) or 'interpreter'
    HYBRID_NUM_THREADS=N           threads of the native runtime
    HYBRID_CACHE_DIR=path          on-disk compile cache (default ~/.cache/hybrid)
    HYBRID_CACHE_SIZE_LIMIT=64     compiled variants kept per function (least recent dropped)
    HYBRID_CHECK_RETRACE=first     retrace a variant's second call and compare the programs
                                   ('first'; 'always' on every call, slow; 'off')
    HYBRID_EAGER_KERNELS=1         eager softmax, gelu, layer_norm, ... run as native kernels
                                   (hybrid/eager_kernels.py); 0: numpy composites only
"""

from __future__ import annotations

import logging
import os
import sys

from hybrid.ops.core import STATE


def _topics() -> set[str]:
    return {t.strip() for t in os.environ.get("HYBRID_LOG", "").split(",") if t.strip()}


class Config:
    """Process-wide settings (hybrid.config)."""

    def __init__(self) -> None:
        topics = _topics()
        self.log_recompiles = "recompiles" in topics or "all" in topics
        self.log_graphs = "graphs" in topics or "all" in topics
        self.recompile_limit = int(os.environ.get("HYBRID_RECOMPILE_LIMIT", "8"))
        self.backend = os.environ.get("HYBRID_BACKEND", "native")
        self.cache_size_limit = int(os.environ.get("HYBRID_CACHE_SIZE_LIMIT", "64"))
        self.check_retrace = os.environ.get("HYBRID_CHECK_RETRACE", "first")

    @property
    def eager_kernels(self) -> bool:
        """Eager composites run as native kernels once a signature is hot (eager_kernels.py)."""
        from hybrid.eager_kernels import SETTINGS

        return SETTINGS.enabled

    @eager_kernels.setter
    def eager_kernels(self, on: bool) -> None:
        from hybrid.eager_kernels import SETTINGS

        SETTINGS.enabled = bool(on)

    @property
    def verify(self) -> bool:
        return STATE.verify

    @verify.setter
    def verify(self, on: bool) -> None:
        """One switch for both checks: eager ops' result types against their IR rules, and the
        graph verifier after every compiler pass (HYBRID_VERIFY sets both at start-up)."""
        from compiler.passes.manager import set_verify_enabled
        from hybrid.ops import core

        core._VERIFY = bool(on)  # threads started later
        STATE.verify = bool(on)
        set_verify_enabled(bool(on))

    @property
    def cache_dir(self) -> str:
        """Where compiled kernels are cached ($HYBRID_CACHE_DIR, else ~/.cache/hybrid); setting
        it moves the caches opened from then on."""
        from compiler.codegen.cache import default_dir

        return default_dir()

    @cache_dir.setter
    def cache_dir(self, path: str) -> None:
        from compiler.codegen.cache import set_default_dir

        set_default_dir(path)


config = Config()

logger = logging.getLogger("hybrid")
if not logger.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("[hybrid] %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = True
