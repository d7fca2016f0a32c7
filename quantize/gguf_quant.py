"""GGUF -> quantized GGUF through llama.cpp: `quantize_gguf` and its `QuantReport`.

Owns the quant registry (`QUANTS`: edgestar's names -> llama.cpp file types) and the check of
what llama.cpp actually wrote. llama.cpp quantizes tensor by tensor; a tensor whose rows do not
fit the wanted type's block (k-quants need rows divisible by 256) silently gets a fallback type
(e.g. Q5_0 or Q8_0), and the _M mixtures deliberately give some tensors (output, attn_v,
ffn_down) a higher type. The report reads the output back with `gguf.GGUFReader` and lists
every 2-D weight whose type differs from the requested one: as a `fallback` when its row length
is not a multiple of 256 (the shape forced it), otherwise as a `mixture` choice.

The output is written under a temporary name beside `out` and renamed into place. Needs
llama-cpp-python and gguf (the `[quantize]` extra).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgestar.backends.llamacpp import check_gguf, llama_lib
from edgestar.types import InputError, ModelError


@dataclass(frozen=True)
class QuantSpec:
    ftype: str
    """llama_cpp LLAMA_FTYPE_* constant name."""
    main_type: str
    """ggml type most 2-D weights get (gguf.GGMLQuantizationType name)."""


QUANTS: dict[str, QuantSpec] = {
    # edgestar name -> llama.cpp file type, main weight type
    "q8_0": QuantSpec("LLAMA_FTYPE_MOSTLY_Q8_0", "Q8_0"),  # 8.5 bits/weight, ~lossless
    "q6_k": QuantSpec("LLAMA_FTYPE_MOSTLY_Q6_K", "Q6_K"),  # 6.56 bpw, rows % 256
    "q5_k_m": QuantSpec("LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q5_K"),  # 5.5 bpw mix (some Q6_K)
    "q4_k_m": QuantSpec("LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q4_K"),  # 4.5 bpw mix (some Q6_K)
    "q4_0": QuantSpec("LLAMA_FTYPE_MOSTLY_Q4_0", "Q4_0"),  # 4.5 bpw, rows % 32
    "f16": QuantSpec("LLAMA_FTYPE_MOSTLY_F16", "F16"),
}

_K_BLOCK = 256
_SOURCE_FILE_TYPES = (0, 1, 32)  # general.file_type of F32, F16, BF16 files


@dataclass(frozen=True)
class TensorType:
    name: str
    shape: tuple[int, ...]
    """ggml order: row length first."""
    type: str


@dataclass(frozen=True)
class QuantReport:
    src: Path
    out: Path
    quant: str
    src_bytes: int
    out_bytes: int
    type_counts: tuple[tuple[str, int], ...]
    """(ggml type name, number of tensors), most common first."""
    fallbacks: tuple[TensorType, ...]
    """2-D weights not of the requested type because their rows are not a multiple of 256."""
    mixture: tuple[TensorType, ...]
    """2-D weights given another type by llama.cpp's quant mixture (not a shape problem)."""
    requantized_from: int | None = None
    """The source's llama.cpp file type when it was already quantized (a requantization:
    the output cannot be more accurate than the source)."""

    @property
    def ratio(self) -> float:
        return self.out_bytes / self.src_bytes if self.src_bytes else 0.0


def quantize_gguf(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    quant: str = "q8_0",
    force: bool = False,
    n_threads: int | None = None,
    allow_requantize: bool = True,
) -> QuantReport:
    """Quantize the GGUF `src` to `out` with llama.cpp; report what it wrote.

    A source that is already quantized (a third-party Q4_1 file, say) is requantized, and the
    report says so in `requantized_from`; pass allow_requantize=False to refuse that."""
    if quant not in QUANTS:
        raise InputError(f"unknown quant {quant!r}; choose from {', '.join(QUANTS)}")
    src_p, out_p = Path(src), Path(out)
    if out_p.exists() and not force:
        raise InputError(f"{out_p} exists; pass force=True to overwrite")
    if out_p.resolve() == src_p.resolve():
        raise InputError("quantize_gguf: src and out are the same file")
    info = check_gguf(src_p)
    ft = info.metadata.get("general.file_type")
    requant = ft if ft is not None and ft not in _SOURCE_FILE_TYPES else None
    if requant is not None and not allow_requantize:
        raise InputError(f"{src_p} is already quantized (file type {ft}); start from F32/F16")
    if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 1):
        raise InputError(f"n_threads must be a positive integer, got {n_threads!r}")

    L = llama_lib()
    spec = QUANTS[quant]
    params = L.llama_model_quantize_default_params()
    params.ftype = getattr(L, spec.ftype)
    params.allow_requantize = requant is not None
    params.nthread = n_threads or 0  # 0: llama.cpp picks the hardware thread count
    out_p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_p.name}.", suffix=".tmp", dir=out_p.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        rc = L.llama_model_quantize(str(src_p).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            raise ModelError(f"{src_p}: llama.cpp quantization to {quant} failed (code {rc})")
        check_gguf(tmp)
        report = _inspect(src_p, tmp, quant)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out_p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return QuantReport(
        src=src_p,
        out=out_p,
        quant=quant,
        src_bytes=src_p.stat().st_size,
        out_bytes=out_p.stat().st_size,
        type_counts=report[0],
        fallbacks=report[1],
        mixture=report[2],
        requantized_from=requant,
    )


def tensor_types(path: str | os.PathLike[str]) -> list[TensorType]:
    """Every tensor of a GGUF file with its shape and ggml type."""
    import gguf

    r = gguf.GGUFReader(path)
    return [
        TensorType(t.name, tuple(int(x) for x in t.shape), t.tensor_type.name) for t in r.tensors
    ]


def _inspect(
    src: Path, out: Path, quant: str
) -> tuple[tuple[tuple[str, int], ...], tuple[TensorType, ...], tuple[TensorType, ...]]:
    want = QUANTS[quant].main_type
    tensors = tensor_types(out)
    counts = tuple(Counter(t.type for t in tensors).most_common())
    fallbacks: list[TensorType] = []
    mixture: list[TensorType] = []
    for t in tensors:
        if len(t.shape) < 2 or t.type == want:
            continue  # 1-D tensors (norms, biases) stay F32 by design
        (fallbacks if t.shape[0] % _K_BLOCK else mixture).append(t)
    return counts, tuple(fallbacks), tuple(mixture)
