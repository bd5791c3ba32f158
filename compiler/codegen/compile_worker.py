"""LLVM IR -> object code, in this process for the first compiles and then in a helper process.

Why: llvmlite (0.45-0.50) leaks 50-90 KiB of native memory per optimized module (its
LLVMPY_CreatePassBuilder allocates a PassInstrumentationCallbacks nothing frees, see
codegen/jit.py), so a process that keeps compiling new graphs would grow without bound. The
object code is plain bytes, so the optimization can run elsewhere: after IN_PROCESS compiles in
this process (a program that compiles a few functions never starts a helper, and first calls
pay no process start), each compile is sent to a helper process that runs the same pipeline
(`jit.optimize` + `emit_object` on the same host target) and is replaced after RESTART_AFTER
compiles, which returns its leaked memory to the system.

The helper is `python -m compiler.codegen.compile_worker`: length-prefixed IR text on stdin,
a status byte and length-prefixed object code (or an error message) on stdout. If it cannot be
started or dies, the compile runs in this process (correctness first). A forked child never uses
its parent's helper (it starts its own). HYBRID_COMPILE_WORKER=0 keeps every compile here.
"""

from __future__ import annotations

import atexit
import os
import struct
import subprocess
import sys
import threading

IN_PROCESS = 32  # compiles done here before the helper takes over
RESTART_AFTER = 256  # compiles per helper process

_HEADER = struct.Struct("<BQ")  # status (0 ok, 1 error), payload length
_LENGTH = struct.Struct("<Q")


def compile_object_here(ir_text: str) -> bytes:
    """Optimize `ir_text` with the O3 pipeline and emit object code for the host."""
    from compiler.codegen import jit

    tm = jit.target_machine()
    return tm.emit_object(jit.optimize(jit.parse(ir_text), tm))


class _Helper:
    """One helper process, owned by the process that started it."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.environ.get("PYTHONPATH", "")
        env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "compiler.codegen.compile_worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, cwd=root)
        self.owner = os.getpid()
        self.compiles = 0

    def compile(self, ir_text: str) -> bytes:
        data = ir_text.encode()
        self.proc.stdin.write(_LENGTH.pack(len(data)) + data)
        self.proc.stdin.flush()
        status, n = _HEADER.unpack(_read(self.proc.stdout, _HEADER.size))
        payload = _read(self.proc.stdout, n)
        self.compiles += 1
        if status != 0:
            raise RuntimeError(f"LLVM failed in the compile helper: {payload.decode()}")
        return payload

    def close(self) -> None:
        if self.owner != os.getpid():
            return  # a forked child's copy: the parent still uses this helper
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def _read(stream, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            raise EOFError("the compile helper exited")
        out += chunk
    return out


class Compiler:
    """`compile(ir_text) -> object bytes`, in process first, then through a helper."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._helper: _Helper | None = None
        self.here = 0  # compiles done in this process
        self.helped = 0  # compiles done by helpers
        self.helpers_started = 0

    def compile(self, ir_text: str) -> bytes:
        if self.here < IN_PROCESS or os.environ.get("HYBRID_COMPILE_WORKER", "") == "0":
            self.here += 1
            return compile_object_here(ir_text)
        with self._lock:
            try:
                helper = self._current()
                obj = helper.compile(ir_text)
            except (OSError, EOFError, struct.error):
                self._drop()  # it died or never started: compile here, try a new one next time
                self.here += 1
                return compile_object_here(ir_text)
            self.helped += 1
            if helper.compiles >= RESTART_AFTER:
                self._drop()
            return obj

    def _current(self) -> _Helper:
        if self._helper is not None and self._helper.owner != os.getpid():
            self._helper = None  # inherited through fork(): the parent's, not ours
        if self._helper is None:
            self._helper = _Helper()
            self.helpers_started += 1
        return self._helper

    def _drop(self) -> None:
        if self._helper is not None:
            self._helper.close()
        self._helper = None

    def close(self) -> None:
        with self._lock:
            self._drop()


COMPILER = Compiler()
atexit.register(COMPILER.close)


def _serve() -> None:
    """The helper's loop: IR in, object code (or the error) out, until stdin closes."""
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "wb")  # the protocol's channel; anything printed goes to stderr
    os.dup2(2, 1)
    while True:
        head = stdin.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            return
        ir_text = _read(stdin, _LENGTH.unpack(head)[0]).decode()
        try:
            status, payload = 0, compile_object_here(ir_text)
        except Exception as e:  # noqa: BLE001  (reported to the parent, which raises it)
            status, payload = 1, f"{type(e).__name__}: {e}".encode()
        stdout.write(_HEADER.pack(status, len(payload)) + payload)
        stdout.flush()


if __name__ == "__main__":
    _serve()
