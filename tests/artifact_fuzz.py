"""Damaged exported artifacts (.hyb) for the loaders: truncations, bit flips, splices with another
artifact, inserted bytes. Used by tests/hybrid/test_export.py (the Python loader) and
tests/runtime/test_hybrid_run.py (the C loader, in process through ctypes), and runnable for a
long campaign, both loaders on every case:

    python tests/artifact_fuzz.py --cases 200000 [--seed 7]

It prints how many cases each loader refused with which kind of message, and exits 1 if any case
loaded or failed any other way than a clean refusal (a crash ends the process: that is a failure
too). In the test suite, ARTIFACT_FUZZ_CASES and ARTIFACT_FUZZ_SEED set the counts (the
HYBRID_* variables are cleared by tests/conftest.py)."""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator

CASES = int(os.environ.get("ARTIFACT_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("ARTIFACT_FUZZ_SEED", "12345"))


def mutations(data: bytes, other: bytes, n: int, seed: int, head: int) -> Iterator[bytes]:
    """Fixed truncations around the `head`-byte header, then `n` random damages of `data` (each
    different from it and from `other`): 50% one to four bit flips, 20% a truncation, 15% a splice with `other`
    (another valid artifact), 15% 1-64 inserted random bytes."""
    for cut in (0, 7, head - 1, head, head + 10, len(data) - 1):
        yield data[:cut]
    rng = random.Random(seed)
    for _ in range(n):
        choice = rng.random()
        b = bytearray(data)
        if choice < 0.5:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif choice < 0.7:
            del b[rng.randrange(len(b)):]
        elif choice < 0.85:
            cut = rng.randrange(len(b))
            b = b[:cut] + other[cut:] if cut < len(other) else b[:cut] + other
        else:
            at = rng.randrange(len(b))
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        if bytes(b) not in (data, other):  # a splice at the first bytes can give `other` whole
            yield bytes(b)


class CLoader:
    """libhybrid_rt's hybrid_load / hybrid_last_error / hybrid_free through ctypes."""

    def __init__(self, lib_path: str):
        self.lib = ctypes.CDLL(lib_path)
        self.lib.hybrid_load.restype = ctypes.c_void_p
        self.lib.hybrid_load.argtypes = [ctypes.c_char_p]
        self.lib.hybrid_free.argtypes = [ctypes.c_void_p]
        self.lib.hybrid_last_error.restype = ctypes.c_char_p

    def load(self, path: str) -> str | None:
        """None when the file loaded (and was freed), else the error message."""
        handle = self.lib.hybrid_load(os.fsencode(path))
        if handle:
            self.lib.hybrid_free(handle)
            return None
        return self.lib.hybrid_last_error().decode("utf-8", "replace")


def kind(message: str) -> str:
    """A message without its file name, numbers, quoted names and user line: what the counts
    group by."""
    message = re.sub(r" at [\w.]+\.py:\d+$", "", message.split(".hyb': ", 1)[-1])
    message = message.split(".hyb: ", 1)[-1]
    return re.sub(r"'[^']*'|\d+", "#", message)[:80]


def artifacts() -> tuple[bytes, bytes]:
    """The MLP artifact the tests fuzz, and another (a * 2) to splice in."""
    import hybrid
    from hybrid import nn

    hybrid.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    data = hybrid.export(model, hybrid.randn(4, 64)).to_bytes()
    return data, hybrid.export(lambda a: a * 2, hybrid.randn(4)).to_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    import hybrid
    from hybrid.errors import ArtifactError
    from hybrid.export_format import _HEAD

    data, other = artifacts()
    c = CLoader(os.path.join(hybrid.runtime_dir(), "lib", "libhybrid_rt.so"))
    counts = {"python": collections.Counter(), "c": collections.Counter()}
    bad = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "case.hyb")
        for i, case in enumerate(mutations(data, other, args.cases, args.seed, _HEAD.size)):
            with open(path, "wb") as f:
                f.write(case)
            try:
                hybrid.load_exported(path)
                bad.append((i, "python", "loaded"))
            except ArtifactError as e:
                counts["python"][kind(str(e))] += 1
            except Exception as e:  # noqa: BLE001 - any other failure is what this looks for
                bad.append((i, "python", f"{type(e).__name__}: {e}"))
            message = c.load(path)
            if message is None or not message:
                bad.append((i, "c", "loaded" if message is None else "no message"))
            else:
                counts["c"][kind(message)] += 1
    seconds = time.perf_counter() - t0
    total = sum(counts["python"].values()) + sum(1 for b in bad if b[1] == "python")
    print(f"{total} damaged artifacts (seed {args.seed}) in {seconds:.1f} s, "
          f"{len(data)} bytes each before damage")
    for loader, counter in counts.items():
        print(f"\n{loader} loader: {sum(counter.values())} refused")
        for k, v in counter.most_common(12):
            print(f"  {v:>7}  {k}")
    for b in bad[:20]:
        print("NOT REFUSED:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
