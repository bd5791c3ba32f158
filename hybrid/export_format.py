"""The exported-program file (`.hyb`) and its loader, which needs neither tracing nor LLVM.

Layout (little-endian): an 8-byte magic `HYBRIDEX`, the format version (u32), flags (u32, 0),
the manifest's length (u64) and its SHA-256 (32 bytes), the manifest (UTF-8 JSON), then the
sections at the 64-byte-aligned offsets the manifest gives, each with its SHA-256:
`plan` (the runtime's plan JSON, docs/architecture.md), `kernels` (a shared object linked at
export time) and `weights` (safetensors: parameters, plan constants, constant outputs).

Everything is checked before anything is mapped or run: the magic, the version, the manifest's
hash and schema, every section's bounds and hash, the CPU (machine and instruction-set
extensions the kernels use), then the plan by the runtime. A hash catches a damaged or edited
file, not a malicious one: like a shared library, an artifact is code; load only artifacts you
would run. No pickle anywhere."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import stat
import struct
import sys
import tempfile
from typing import Any

import numpy as np

from hybrid import errors

MAGIC = b"HYBRIDEX"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sIIQ32s")
_ALIGN = 64
_MAX_BYTES = 1 << 36  # 64 GiB: past this a length field is damage, not a model
_SECTIONS = ("plan", "kernels", "weights")
_DTYPES = ("bool", "int32", "int64", "float16", "float32", "float64")


def _fail(message: str) -> errors.ArtifactError:
    return errors.error(errors.ArtifactError, message)


# --- writing ---------------------------------------------------------------------------------

def to_bytes(manifest: dict, sections: dict[str, bytes]) -> bytes:
    """The file: `manifest` gets each section's offset, size and hash."""
    body = dict(manifest)
    body["sections"] = {}
    # the offsets depend on the manifest's length, which depends on the offsets: fix the width
    placeholder = {n: {"offset": 10 ** 15, "size": len(b), "sha256": "0" * 64}
                   for n, b in sections.items()}
    start = _align(_HEAD.size + len(json.dumps({**body, "sections": placeholder}).encode()) + 64)
    offset = start
    for name, data in sections.items():
        body["sections"][name] = {"offset": offset, "size": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()}
        offset = _align(offset + len(data))
    text = json.dumps(body).encode()
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, len(text), hashlib.sha256(text).digest())
    out = bytearray(head + text)
    out += b"\0" * (start - len(out))
    for name, data in sections.items():
        out += b"\0" * (body["sections"][name]["offset"] - len(out))
        out += data
    return bytes(out)


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


# --- reading ---------------------------------------------------------------------------------

def read_file(path: Any) -> bytes:
    """The bytes of a regular file (a directory, FIFO or device is refused without blocking)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise _fail(f"load_exported: cannot open {path!r}: {e.strerror}; give the path of a "
                    "file written by ExportedProgram.save") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _fail(f"load_exported: {path!r} is not a regular file (a directory, FIFO or "
                        "device); give the path of a file written by ExportedProgram.save")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(min(info.st_size, _MAX_BYTES) + 1)
    finally:
        os.close(fd)


def parse(data: bytes, where: str = "artifact") -> tuple[dict, dict[str, bytes]]:
    """(manifest, sections) of a file's bytes, every hash and bound checked."""
    if len(data) < _HEAD.size:
        raise _fail(f"{where}: {len(data)} bytes is too short for an exported program "
                    f"(truncated, or not written by ExportedProgram.save)")
    magic, version, flags, n, digest = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise _fail(f"{where}: not an exported hybrid program (magic {magic!r}, expected "
                    f"{MAGIC!r})")
    if version != FORMAT_VERSION:
        raise _fail(f"{where}: format version {version}; this hybrid reads version "
                    f"{FORMAT_VERSION}: export the model again with this hybrid")
    if flags != 0 or n > len(data) - _HEAD.size:
        raise _fail(f"{where}: the header is damaged (flags {flags}, manifest of {n} bytes in a "
                    f"file of {len(data)}): the file is truncated or was modified")
    text = data[_HEAD.size:_HEAD.size + n]
    if hashlib.sha256(text).digest() != digest:
        raise _fail(f"{where}: the manifest does not match its hash: the file was modified or "
                    "damaged")
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(f"{where}: the manifest is not valid JSON ({e})") from None
    _check_manifest(manifest, where)
    sections = {}
    for name in _SECTIONS:
        s = manifest["sections"][name]
        off, size = s["offset"], s["size"]
        if off < _HEAD.size + n or size > len(data) or off > len(data) - size:
            raise _fail(f"{where}: section '{name}' ({size} bytes at {off}) lies outside the "
                        f"file of {len(data)} bytes: truncated or modified")
        blob = data[off:off + size]
        if hashlib.sha256(blob).hexdigest() != s["sha256"]:
            raise _fail(f"{where}: section '{name}' does not match its hash: the file was "
                        "modified or damaged")
        sections[name] = blob
    # nothing outside the hashed parts: the padding is zeros and the file ends with a section
    spans = sorted((s["offset"], s["offset"] + s["size"]) for s in manifest["sections"].values())
    at = _HEAD.size + n
    for lo, hi in spans:
        if lo < at or data[at:lo].count(0) != lo - at:
            raise _fail(f"{where}: bytes outside the hashed sections were modified or sections "
                        "overlap")
        at = hi
    if at != len(data):
        raise _fail(f"{where}: {len(data) - at} bytes follow the last section: the file was "
                    "modified")
    return manifest, sections


def _need(d: Any, key: str, kind: Any, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise _fail(f"{where}: malformed manifest: '{key}' is missing")
    v = d[key]
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise _fail(f"{where}: malformed manifest: '{key}' has the wrong type")
    if kind is int and not 0 <= v <= _MAX_BYTES:
        raise _fail(f"{where}: malformed manifest: '{key}' is out of range ({v})")
    return v


def _check_manifest(m: Any, where: str) -> None:
    if not isinstance(m, dict):
        raise _fail(f"{where}: malformed manifest: not an object")
    sections = _need(m, "sections", dict, where)
    if set(sections) != set(_SECTIONS):
        raise _fail(f"{where}: malformed manifest: sections {sorted(sections)}")
    for name in _SECTIONS:
        s = _need(sections, name, dict, where)
        _need(s, "offset", int, where)
        _need(s, "size", int, where)
        h = _need(s, "sha256", str, where)
        if len(h) != 64:
            raise _fail(f"{where}: malformed manifest: section '{name}' hash")
    target = _need(m, "target", dict, where)
    for key in ("machine", "platform", "cpu"):
        _need(target, key, str, where)
    if not all(isinstance(f, str) for f in _need(target, "features", list, where)):
        raise _fail(f"{where}: malformed manifest: 'features'")
    for side in ("inputs", "outputs"):
        for t in _need(m, side, list, where):
            _need(t, "name", str, where)
            if _need(t, "dtype", str, where) not in _DTYPES:
                raise _fail(f"{where}: malformed manifest: dtype {t['dtype']!r}")
            shape = _need(t, "shape", list, where)
            if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= _MAX_BYTES
                       for d in shape):
                raise _fail(f"{where}: malformed manifest: shape of '{t['name']}'")
    for o in m["outputs"]:
        if _need(o, "kind", str, where) not in ("run", "input", "const", "copy"):
            raise _fail(f"{where}: malformed manifest: output kind {o['kind']!r}")
        _need(o, "index", int, where)
        if o["kind"] == "const":
            _need(o, "weight", str, where)
        elif o["kind"] == "copy" and o["index"] >= len(m["outputs"]):
            raise _fail(f"{where}: malformed manifest: output index {o['index']}")
    for key in ("bound", "constants"):
        if not all(isinstance(x, str) for x in _need(m, key, list, where)):
            raise _fail(f"{where}: malformed manifest: '{key}'")
    _need(m, "errors", dict, where)
    _need(m, "symbols", list, where)
    _need(m, "single", bool, where)
    _need(m, "hybrid_version", str, where)


def check_target(target: dict, where: str = "artifact") -> None:
    """ArtifactError unless this machine runs code compiled for `target`."""
    here = platform.machine()
    if target["machine"] != here or target["platform"] != sys.platform:
        raise _fail(f"{where}: compiled for {target['platform']}/{target['machine']}, this is "
                    f"{sys.platform}/{here}: export it on (or for) this kind of machine")
    missing = sorted(set(target["features"]) - cpu_features())
    if missing:
        raise _fail(f"{where}: compiled for a CPU with {', '.join(missing)}, which this CPU "
                    f"({target['cpu']} was the exporter's) lacks: export it again on this "
                    "machine or one without those extensions")


def cpu_features(cpuinfo: str | None = None) -> set[str]:
    """The LLVM names of the checked instruction-set extensions this CPU has (or the CPU that
    `cpuinfo`, a /proc/cpuinfo text, describes): its first "flags" (x86) or "Features"
    (AArch64) line."""
    from compiler.export_native import CPUINFO_FLAGS

    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith(("flags", "Features")) and ":" in line), [])
    have = set(flags)
    return {name for name, flag in CPUINFO_FLAGS.items() if flag in have}


# --- running ---------------------------------------------------------------------------------

class LoadedProgram:
    """A callable exported program: `prog(*inputs)` with arrays or tensors of the signature's
    dtypes and shapes; returns a tensor, or a tuple of them as the exported function did."""

    def __init__(self, data: bytes, where: str = "artifact"):
        import hybrid_runtime

        self.manifest, sections = parse(data, where)
        m = self.manifest
        check_target(m["target"], where)
        self.inputs = [(t["name"], np.dtype(t["dtype"]), tuple(t["shape"])) for t in m["inputs"]]
        self.outputs = [(t["name"], np.dtype(t["dtype"]), tuple(t["shape"]))
                        for t in m["outputs"]]
        self._weights = _weights(sections["weights"], where)
        names = m["bound"] + m["constants"] + [o["weight"] for o in m["outputs"]
                                               if o["kind"] == "const"]
        absent = [n for n in names if n not in self._weights]
        if absent:
            raise _fail(f"{where}: the weights section lacks {absent[:3]}")
        self._bound = [self._weights[n] for n in m["bound"]]
        self._lib, self._dir = _open_kernels(sections["kernels"], where)
        addresses = {}
        for sym in m["symbols"]:
            if not isinstance(sym, str) or not sym.isidentifier():
                raise _fail(f"{where}: malformed manifest: symbol {sym!r}")
            try:
                addresses[sym] = ctypes.cast(getattr(self._lib, sym), ctypes.c_void_p).value
            except AttributeError:
                raise _fail(f"{where}: the kernels lack symbol {sym!r}") from None
        plan = sections["plan"]
        try:
            steps = json.loads(plan.decode("utf-8")).get("steps", [])
            self._flag = json.loads(plan.decode("utf-8")).get("error_flag", -1) >= 0
        except (UnicodeDecodeError, ValueError, AttributeError):
            raise _fail(f"{where}: the plan is not valid JSON") from None
        blas = None
        if any(isinstance(s, dict) and s.get("op") == "gemm" for s in steps):
            from compiler.blas import blas_library

            blas = blas_library()
        try:
            self._exec = hybrid_runtime.Executor(plan, addresses,
                                                 [self._weights[n] for n in m["constants"]],
                                                 blas=blas, keepalive=self._lib)
        except (ValueError, TypeError) as e:
            raise _fail(f"{where}: the runtime refused the plan: {e}") from None
        expect = len(self.inputs) + len(self._bound) + self._flag
        if self._exec.num_inputs != expect:
            raise _fail(f"{where}: the plan takes {self._exec.num_inputs} inputs, the manifest "
                        f"says {expect}")
        for k, o in enumerate(m["outputs"]):
            bound = {"run": self._exec.num_outputs, "input": len(self.inputs), "copy": k,
                     "const": 1}[o["kind"]]
            if o["index"] >= bound:
                raise _fail(f"{where}: malformed manifest: output {k} ({o['kind']} "
                            f"{o['index']})")

    def __call__(self, *args: Any) -> Any:
        from hybrid.tensor import _TENSOR_CLASSES, Tensor

        if len(args) != len(self.inputs):
            raise _fail(f"exported program: expected {len(self.inputs)} inputs "
                        f"({', '.join(n for n, _, _ in self.inputs)}), got {len(args)}")
        arrays = []
        for (name, dtype, shape), a in zip(self.inputs, args):
            a = a.numpy() if a.__class__ in _TENSOR_CLASSES else a
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
                got = (f"{a.dtype} {tuple(a.shape)}" if isinstance(a, np.ndarray)
                       else type(a).__name__)
                raise _fail(f"exported program: input '{name}': expected {dtype} {shape}, got "
                            f"{got}; the program was exported for these sizes")
            arrays.append(np.ascontiguousarray(a))
        flag = [np.zeros(2, np.int64)] if self._flag else []
        outs = self._exec.run(arrays + self._bound + flag)
        if flag and flag[0][0]:
            code = str(int(flag[0][0]))
            raise errors.error(errors.HybridIndexError, self.manifest["errors"].get(
                code, "exported program: an index is out of bounds"))
        result: list = []
        for o in self.manifest["outputs"]:
            kind, i = o["kind"], o["index"]
            if kind == "run":
                result.append(outs[i])
            elif kind == "input":
                result.append(arrays[i].copy())
            elif kind == "copy":
                result.append(result[i].copy())
            else:
                result.append(self._weights[o["weight"]].copy())
        tensors = [Tensor(r) for r in result]
        return tensors[0] if self.manifest["single"] else tuple(tensors)

    def __repr__(self) -> str:
        sig = ", ".join(f"{n}: {d} {list(s)}" for n, d, s in self.inputs)
        out = ", ".join(f"{n}: {d} {list(s)}" for n, d, s in self.outputs)
        return f"LoadedProgram({sig}) -> ({out})"


def _weights(blob: bytes, where: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        return {k: np.ascontiguousarray(v) for k, v in load(blob).items()}
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise _fail(f"{where}: the weights section is not valid safetensors ({e})") from None


def _open_kernels(blob: bytes, where: str) -> tuple[Any, str]:
    """The kernels' shared object, opened from a private temporary file (removed at once)."""
    if not blob.startswith(b"\x7fELF"):
        raise _fail(f"{where}: the kernels section is not a shared object")
    d = tempfile.mkdtemp(prefix="hybrid-kernels-")
    path = os.path.join(d, "kernels.so")
    try:
        with open(path, "wb") as f:
            f.write(blob)
        return ctypes.CDLL(path, mode=getattr(os, "RTLD_LOCAL", 0) | os.RTLD_NOW), d
    except OSError as e:
        raise _fail(f"{where}: the kernels could not be loaded ({e})") from None
    finally:
        os.unlink(path) if os.path.exists(path) else None
        os.rmdir(d)


def runtime_dir() -> str:
    """The folder holding the C runtime for exported programs: `include/hybrid/runtime.h` and
    `lib/libhybrid_rt.so` (installed by `pip install` beside the package)."""
    import site

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for root in [here, *site.getsitepackages(), site.getusersitepackages(), *sys.path]:
        d = os.path.join(root, "hybrid", "_runtime")
        if os.path.isfile(os.path.join(d, "include", "hybrid", "runtime.h")):
            return d
    raise _fail("the C runtime (hybrid/_runtime) is not installed: reinstall hybrid with pip")


def load_exported(path: Any) -> LoadedProgram:
    """The program `ExportedProgram.save` wrote to `path`, ready to call: no tracing, no LLVM,
    no original Python code; see this module's docstring for what is checked (and trusted)."""
    return LoadedProgram(read_file(path), where=f"load_exported: {os.fspath(path)!r}")
