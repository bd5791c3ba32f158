"""On-disk compile cache: a compiled graph's plan (JSON), constants (raw .npy, no pickle) and
kernels (object code), keyed by a hash of the graph, the target CPU and the tool versions.

Entries are written to a temporary directory and renamed into place, so two processes compiling
the same graph never see a half-written entry; every file's SHA-256 is recorded and checked on
load, and an entry that fails the check is removed and rebuilt."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

FORMAT = 1


def default_dir() -> str:
    return os.environ.get("HYBRID_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "hybrid")


def key_of(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


class DiskCache:
    """get/put of (plan_json, constants, object_code) entries under `root`."""

    def __init__(self, root: str | None = None):
        self.root = root or default_dir()

    def _dir(self, key: str) -> str:
        return os.path.join(self.root, f"v{FORMAT}", key[:2], key)

    def get(self, key: str) -> tuple[str, list[np.ndarray], bytes] | None:
        """The entry, or None when missing or damaged (a damaged entry is removed)."""
        d = self._dir(key)
        meta_path = os.path.join(d, "meta.json")
        if not os.path.exists(meta_path):
            if os.path.isdir(d):  # complete entries are renamed into place with their meta.json
                shutil.rmtree(d, ignore_errors=True)
            return None
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            files = meta["files"]
            blobs = {}
            for name, digest in files.items():
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
                if _sha(data) != digest:
                    raise ValueError(f"{name}: checksum mismatch")
                blobs[name] = data
            consts = [np.load(io.BytesIO(blobs[f"const{i}.npy"]), allow_pickle=False)
                      for i in range(meta["n_constants"])]
            return blobs["plan.json"].decode(), consts, blobs["kernels.o"]
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            shutil.rmtree(d, ignore_errors=True)
            return None

    def put(self, key: str, plan_json: str, constants: list[np.ndarray], obj: bytes) -> None:
        """Write an entry atomically (a concurrent writer of the same key may win; that is fine)."""
        final = self._dir(key)
        if os.path.exists(os.path.join(final, "meta.json")):
            return
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(final))
        except OSError:  # NOTE: an unwritable cache only costs the next process a compile
            return
        try:
            blobs = {"plan.json": plan_json.encode(), "kernels.o": obj}
            for i, c in enumerate(constants):
                blobs[f"const{i}.npy"] = _npy(c)
            for name, data in blobs.items():
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
            meta = {"format": FORMAT, "n_constants": len(constants),
                    "files": {name: _sha(data) for name, data in blobs.items()}}
            with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f)
            if os.path.isdir(final) and not os.path.exists(os.path.join(final, "meta.json")):
                shutil.rmtree(final, ignore_errors=True)  # a damaged entry without its meta
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)


def describe_entry(path: str) -> dict[str, Any]:  # pragma: no cover  (debugging aid)
    with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
        return json.load(f)
