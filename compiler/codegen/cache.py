"""On-disk compile cache: a compiled graph's plan (JSON), constants (raw .npy, no pickle) and
kernels (object code), keyed by a hash of the graph, the target CPU and the tool versions.

What an entry is trusted for, and why (README: "What the compile cache trusts"):
- Every entry carries an HMAC-SHA256, made with a per-user secret kept outside the cache
  directory (`secret_path()`), over the full cache key and every file of the entry. Whoever can
  write the cache but not read the secret cannot forge an entry, re-seal an edited one, or move
  one entry under another key. An entry that fails the check is removed and rebuilt.
- Files are read only when they are regular files of bounded size (opened with O_NOFOLLOW and
  O_NONBLOCK, checked with fstat, read to exactly their size): a symlink, FIFO, device or
  directory in an entry's place is a rebuild, never a hang or an unbounded read.
- A cache root, level or secret owned by another user, or writable by group or others, is refused
  with one warning: functions are then compiled in every process, nothing is read or written.
Entries are written to a temporary directory and renamed into place, so concurrent writers of the
same key never expose a half-written entry."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import stat
import tempfile
import warnings
from typing import Any

import numpy as np

FORMAT = 2
MAX_FILE_BYTES = 256 << 20  # a file larger than this is never read (nor written)
_MAX_META_BYTES = 1 << 20
_MAX_CONSTANTS = 1 << 16
_SECRET_BYTES = 32
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_READ = (os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
           | getattr(os, "O_CLOEXEC", 0))
_O_DIR = os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_WARNED: set[str] = set()


class CacheWarning(UserWarning):
    """The compile cache is not used (an unsafe directory or secret); compiling still works."""


class _Refused(Exception):
    """The cache (root, level or secret) must not be used: the message says why."""


class _Bad(Exception):
    """One entry is damaged, forged or not a set of regular files: remove and rebuild it."""


_DIR_SET: list[str] = []  # a directory set by the frontend (hybrid.config.cache_dir = ...)


def set_default_dir(path: str | None) -> None:
    """Use `path` for caches opened from now on (None: back to $HYBRID_CACHE_DIR / default)."""
    _DIR_SET[:] = [os.fspath(path)] if path is not None else []


def default_dir() -> str:
    """The directory set with `set_default_dir`, else $HYBRID_CACHE_DIR, else ~/.cache/hybrid."""
    if _DIR_SET:
        return _DIR_SET[0]
    return os.environ.get("HYBRID_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "hybrid")


def secret_path() -> str:
    """$HYBRID_CACHE_SECRET_FILE, else $XDG_CONFIG_HOME (or ~/.config)/hybrid/cache-secret."""
    explicit = os.environ.get("HYBRID_CACHE_SECRET_FILE")
    if explicit:
        return explicit
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "hybrid", "cache-secret")


def key_of(*parts: str) -> str:
    """A hex SHA-256 of the parts, each terminated by a NUL."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def _warn_once(reason: str) -> None:
    if reason in _WARNED:
        return
    _WARNED.add(reason)
    warnings.warn(f"hybrid: the compile cache is not used: {reason}. Compiled functions still "
                  "work but are compiled again in every process; fix the permissions, or set "
                  "HYBRID_CACHE_DIR to a directory only you can write.", CacheWarning,
                  stacklevel=4)


def _check_private(st: os.stat_result, what: str, path: str, modes: int = 0o022) -> None:
    """_Refused unless `st` is owned by this user and has none of `modes` (group/other bits)."""
    if st.st_uid != os.geteuid():
        raise _Refused(f"{what} {path} is owned by uid {st.st_uid}, not by you "
                       f"(uid {os.geteuid()})")
    if st.st_mode & modes:
        raise _Refused(f"{what} {path} has mode {stat.filemode(st.st_mode)}: it must not be "
                       f"{'readable or writable' if modes & 0o044 else 'writable'} by group or "
                       "others")


def _read_regular(name: str, limit: int, dir_fd: int | None = None) -> tuple[bytes, os.stat_result]:
    """The bytes of regular file `name` (at most `limit`), never following a symlink, never
    blocking on a FIFO or device; _Bad otherwise."""
    try:
        fd = os.open(name, _O_READ, dir_fd=dir_fd)
    except OSError as err:
        raise _Bad(f"{name}: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Bad(f"{name}: not a regular file")
        if st.st_size > limit:
            raise _Bad(f"{name}: {st.st_size} bytes, more than {limit}")
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                raise _Bad(f"{name}: shorter than its size")
            chunks.append(chunk)
            left -= len(chunk)
        if os.read(fd, 1):
            raise _Bad(f"{name}: longer than its size")
        return b"".join(chunks), st
    except OSError as err:
        raise _Bad(f"{name}: {err.strerror}") from None
    finally:
        os.close(fd)


def _create_secret(path: str) -> None:
    """Write a fresh random secret (0600) to `path` atomically; an existing one is kept."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cache-secret-", dir=folder)  # mode 0600
    try:
        os.write(fd, os.urandom(_SECRET_BYTES))
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)  # NOTE: link, not rename: never replaces a concurrent writer's
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not os.path.lexists(path):
                os.rename(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def load_secret(path: str | None = None) -> bytes:
    """The per-user cache secret, created on first use; _Refused when it is not private."""
    path = path or secret_path()
    if not os.path.lexists(path):
        try:
            _create_secret(path)
        except OSError as err:
            raise _Refused(f"cannot create the cache secret {path}: {err.strerror}") from None
    try:
        data, st = _read_regular(path, 4096)
    except _Bad as err:
        raise _Refused(f"cannot read the cache secret: {err}") from None
    # NOTE: a secret others can read lets them forge entries, so read access is refused too
    _check_private(st, "the cache secret", path, modes=0o077)
    folder = os.path.dirname(os.path.abspath(path))
    _check_private(os.stat(folder), "the directory of the cache secret", folder)
    if len(data) < 16:
        raise _Refused(f"the cache secret {path} holds {len(data)} bytes, fewer than 16 (delete "
                       "it and a new one is made)")
    return data


def _mac(secret: bytes, key: str, meta: dict[str, Any], blobs: dict[str, bytes]) -> str:
    h = hmac.new(secret, digestmod=hashlib.sha256)
    h.update(b"hybrid compile cache entry\0")
    h.update(key.encode() + b"\0")
    h.update(json.dumps({k: v for k, v in meta.items() if k != "hmac"}, sort_keys=True).encode())
    for name in sorted(blobs):
        data = blobs[name]
        h.update(b"\0" + name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _expected_files(n_constants: int) -> list[str]:
    return ["kernels.o", "plan.json"] + [f"const{i}.npy" for i in range(n_constants)]


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


class DiskCache:
    """get/put of authenticated (plan_json, constants, object_code) entries under `root`."""

    def __init__(self, root: str | None = None, secret_file: str | None = None):
        self.root = root or default_dir()
        self.secret_file = secret_file

    def _dir(self, key: str) -> str:
        return os.path.join(self.root, f"v{FORMAT}", key[:2], key)

    def _levels(self, key: str) -> list[str]:
        top = os.path.join(self.root, f"v{FORMAT}")
        return [top, os.path.join(top, key[:2])]

    def _secret(self) -> bytes | None:
        try:
            return load_secret(self.secret_file)
        except _Refused as err:
            _warn_once(str(err))
            return None

    def _check_levels(self, key: str, create: bool) -> bool:
        """The root and the levels above the entry are private directories (made when
        `create`); False (nothing to read, nothing written) otherwise, with one warning."""
        try:
            if create:
                os.makedirs(self.root, mode=0o700, exist_ok=True)
            _check_private(os.stat(self.root), "the cache directory", self.root)
            for level in self._levels(key):
                if create and not os.path.lexists(level):
                    try:
                        os.mkdir(level, 0o700)
                    except FileExistsError:
                        pass
                st = os.lstat(level)
                if not stat.S_ISDIR(st.st_mode):
                    raise _Refused(f"{level} is not a directory")
                _check_private(st, "the cache directory", level)
            return True
        except FileNotFoundError:
            return False
        except _Refused as err:
            _warn_once(str(err))
            return False
        except OSError:  # NOTE: an unusable cache only costs the next process a compile
            return False

    def get(self, key: str) -> tuple[str, list[np.ndarray], bytes] | None:
        """The entry, or None when missing or unusable (a damaged or forged one is removed)."""
        secret = self._secret()
        if secret is None or not self._check_levels(key, create=False):
            return None
        path = self._dir(key)
        try:
            dir_fd = os.open(path, _O_DIR)
        except FileNotFoundError:
            return None
        except OSError:  # a symlink or a file in the entry's place
            self.discard(key)
            return None
        try:
            _check_private(os.fstat(dir_fd), "the cache entry", path)
            entry = self._read_entry(key, dir_fd, secret)
        except _Refused as err:
            _warn_once(str(err))
            entry = None
        except _Bad:
            entry = None
        finally:
            os.close(dir_fd)
        if entry is None:
            self.discard(key)
        return entry

    def _read_entry(self, key: str, dir_fd: int, secret: bytes):
        raw, _ = _read_regular("meta.json", _MAX_META_BYTES, dir_fd)
        try:
            meta = json.loads(raw)
            n = meta["n_constants"]
            files = meta["files"]
            ok = (meta["format"] == FORMAT and meta["key"] == key and isinstance(n, int)
                  and 0 <= n <= _MAX_CONSTANTS and isinstance(files, dict)
                  and sorted(files) == sorted(_expected_files(n))
                  and all(isinstance(s, int) and 0 <= s <= MAX_FILE_BYTES
                          for s in files.values())
                  and isinstance(meta["hmac"], str))
        except (ValueError, KeyError, TypeError) as err:
            raise _Bad(f"meta.json: {err}") from None
        if not ok:
            raise _Bad("meta.json: not an entry of this format for this key")
        blobs = {}
        for name in _expected_files(n):
            data, _ = _read_regular(name, files[name], dir_fd)
            if len(data) != files[name]:
                raise _Bad(f"{name}: {len(data)} bytes, meta.json says {files[name]}")
            blobs[name] = data
        if not hmac.compare_digest(_mac(secret, key, meta, blobs), meta["hmac"]):
            raise _Bad("the entry's HMAC does not match (forged, damaged or another key's)")
        try:
            consts = [np.load(io.BytesIO(blobs[f"const{i}.npy"]), allow_pickle=False)
                      for i in range(n)]
            plan_json = blobs["plan.json"].decode()
        except (ValueError, OSError, UnicodeDecodeError) as err:
            raise _Bad(f"constants or plan: {err}") from None
        return plan_json, consts, blobs["kernels.o"]

    def discard(self, key: str) -> None:
        """Remove the entry of `key` whatever is in its place (a later put rebuilds it)."""
        path = self._dir(key)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(path)
                return
            # NOTE: renamed away first, so no reader sees a half-removed entry
            dead = tempfile.mkdtemp(prefix=".tmp-dead-", dir=os.path.dirname(path))
            os.rename(path, os.path.join(dead, "entry"))
            shutil.rmtree(dead, ignore_errors=True)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)

    def put(self, key: str, plan_json: str, constants: list[np.ndarray], obj: bytes) -> None:
        """Write an authenticated entry atomically (a concurrent writer of the key may win)."""
        secret = self._secret()
        if secret is None:
            return
        blobs = {"plan.json": plan_json.encode(), "kernels.o": obj}
        for i, c in enumerate(constants):
            blobs[f"const{i}.npy"] = _npy(c)
        if len(constants) > _MAX_CONSTANTS or max(map(len, blobs.values())) > MAX_FILE_BYTES:
            return  # it would never be read back
        final = self._dir(key)
        if os.path.lexists(final) or not self._check_levels(key, create=True):
            return
        try:
            tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(final))  # mode 0700
        except OSError:
            return
        try:
            meta: dict[str, Any] = {"format": FORMAT, "key": key, "n_constants": len(constants),
                                    "files": {name: len(data) for name, data in blobs.items()}}
            meta["hmac"] = _mac(secret, key, meta, blobs)
            blobs["meta.json"] = json.dumps(meta).encode()  # written last
            for name, data in blobs.items():
                fd = os.open(os.path.join(tmp, name),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)

