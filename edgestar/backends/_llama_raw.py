"""llama.cpp through llama-cpp-python's LOW-LEVEL API: file validation and resource-owning
wrappers, shared by `edgestar.backends.llamacpp` (policy, reward) and the benchmark.

Owns:
- `check_gguf`: validates a file BEFORE llama.cpp sees it (llama.cpp may abort the process on
  garbage): it exists, starts with the GGUF magic, has a sane version, its header (metadata and
  tensor table) parses inside the file, and every tensor of a known type ends inside the file.
  Anything else is a one-line `ModelError`.
- `llama_lib`: the llama_cpp module, imported on first use with its logging silenced.
- `cpu_has_amx`: on CPUs with Intel AMX, llama.cpp's AMX kernels (an "extra buffer type") crash
  on quantized models; `extra_bufts=None` everywhere here means "off on such CPUs".
- `_Model`, `_Adapter`, `_Context`, `_Batch`, `_Runtime`: small wrappers around the raw
  pointers, each with an idempotent `close()`. `_Adapter` is a GGUF LoRA adapter loaded for a
  model (before its context is made) and set on the context (`llama_set_adapters_lora`);
  llama.cpp's reason for refusing one is read from its error log (`_capture_errors`). `_Context` always has a unified KV cache (`kv_unified=True`: one pool
  of n_ctx cells shared by all sequences, so `seq_cp` of a prefix is free), counts the time spent
  inside `llama_decode` and the rows it decoded, and hands out the logits of a decode as one
  [rows, vocab] view (and, with `set_hidden`, the final hidden states of those rows).
  `_Batch` rows may belong to several sequences at once (one cell shared by
  sequences with identical history).

Prompts are tokenized like `torch_backend.encode_prefix` does: special tokens written in the
text (the rStar markers) become single ids, the vocabulary's add_bos decides the BOS, and an
empty text becomes [EOS].

Import cost: importing this module does not import llama_cpp (that happens on first use). No
torch, transformers or gguf here (a runtime install has none of them).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..types import InputError, ModelError

__all__ = [
    "VALUE_HEAD_KEYS",
    "GGUFInfo",
    "check_gguf",
    "cpu_has_amx",
    "llama_lib",
    "read_value_head",
    "render_chat_template",
]

# --------------------------------------------------------------------------------------------
# GGUF validation (pure Python, before llama.cpp is touched)

GGUF_MAGIC = b"GGUF"
_MAX_COUNT = 1 << 24  # more tensors or metadata entries than any real model: corrupt header
# fmt: off
_SCALARS: dict[int, str] = {
    # GGUF value type -> struct format
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}
_STRING, _ARRAY = 8, 9
_GGML_SIZES: dict[int, tuple[int, int]] = {
    # ggml type id -> (block size in elements, bytes per block); = gguf-py's GGML_QUANT_SIZES
    # (a test checks); a type not listed is left to llama.cpp's own bounds check
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
    39: (32, 17),
}
# fmt: on


@dataclass(frozen=True)
class GGUFInfo:
    """What `check_gguf` learned from a file's header."""

    path: Path
    version: int
    n_tensors: int
    metadata: dict[str, Any]
    """Scalar and string metadata (arrays are left out)."""
    size: int


class _Reader:
    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.pos, self.path, self.size = buf, 0, path, len(buf)

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise ModelError(f"{self.path}: truncated GGUF header (at byte {self.pos})")

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize("<" + fmt)
        self.need(n)
        (v,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += n
        return v

    def string(self) -> str:
        n = self.unpack("Q")
        self.need(n)
        s = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return s.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.unpack("Q")
        self.need(n)
        self.pos += n

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            if keep:
                return self.string()
            self.skip_string()
            return None
        if vtype == _ARRAY:
            itype, n = self.unpack("I"), self.unpack("Q")
            if itype in _SCALARS:
                nbytes = struct.calcsize("<" + _SCALARS[itype]) * n
                self.need(nbytes)
                self.pos += nbytes
            elif itype == _STRING:
                self.need(8 * n)
                for _ in range(n):
                    self.skip_string()
            else:
                raise ModelError(f"{self.path}: corrupt GGUF header (array of type {itype})")
            return None
        raise ModelError(f"{self.path}: corrupt GGUF header (value type {vtype})")


def check_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Validate a GGUF file without llama.cpp; raise ModelError (one line) if it is not sound."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such model file")
    if not p.is_file():
        raise ModelError(f"{p}: not a file")
    try:
        size = p.stat().st_size
        if size < 24:
            raise ModelError(f"{p}: not a GGUF file ({size} bytes)")
        with open(p, "rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise ModelError(f"{p}: not a GGUF file (bad magic)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _parse_header(mm, p, size)
    except OSError as e:
        raise ModelError(f"{p}: unreadable ({e.strerror or e})") from None


def _parse_header(mm: Any, p: Path, size: int) -> GGUFInfo:
    r = _Reader(mm, p)
    r.pos = 4
    version = r.unpack("I")
    if version not in (2, 3):
        raise ModelError(f"{p}: unsupported GGUF version {version}")
    n_tensors, n_kv = r.unpack("Q"), r.unpack("Q")
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise ModelError(f"{p}: corrupt GGUF header ({n_tensors} tensors, {n_kv} keys)")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.unpack("I")
        v = r.value(vtype, keep=True)
        if v is not None:
            meta[key] = v
    tensors: list[tuple[str, int, int, int]] = []  # name, n_elements, type, offset
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("I")
        if n_dims > 8:
            raise ModelError(f"{p}: corrupt GGUF tensor info for {name}")
        n_el = 1
        for _ in range(n_dims):
            n_el *= r.unpack("Q")
        tensors.append((name, n_el, r.unpack("I"), r.unpack("Q")))
    align = int(meta.get("general.alignment", 32)) or 32
    start = (r.pos + align - 1) // align * align
    for name, n_el, ttype, off in tensors:
        if ttype not in _GGML_SIZES:
            continue  # unknown to this table; llama.cpp bounds-checks it itself
        blk, nbytes = _GGML_SIZES[ttype]
        end = start + off + (n_el + blk - 1) // blk * nbytes
        if end > size:
            raise ModelError(
                f"{p}: truncated GGUF file (tensor {name} ends at byte {end}, file has {size})"
            )
    return GGUFInfo(p, version, n_tensors, meta, size)


# --------------------------------------------------------------------------------------------
# llama.cpp, loaded lazily; log output silenced

_lib_lock = threading.Lock()
_lib: Any = None
_log_cb: Any = None  # keep a reference: llama.cpp calls it for the life of the process
_capture_lock = threading.Lock()
_captured: list[str] | None = None  # while not None, llama.cpp's log lines are kept here
_GGML_LOG_LEVEL_ERROR = 4


def _on_log(level: int, text: bytes | None, data: Any) -> None:
    if _captured is not None and level == _GGML_LOG_LEVEL_ERROR and text:
        _captured.append(text.decode("utf-8", errors="replace"))


@contextlib.contextmanager
def _capture_errors() -> Any:
    """Keep llama.cpp's error log lines (otherwise silenced) for the duration: the only place
    llama.cpp says WHY it refused something (e.g. a LoRA adapter's shape)."""
    global _captured
    with _capture_lock:
        _captured = []
        try:
            yield _captured
        finally:
            _captured = None


def llama_lib() -> Any:
    """The llama_cpp module, imported on first use with its log output silenced."""
    global _lib, _log_cb
    with _lib_lock:
        if _lib is None:
            try:
                import llama_cpp
            except ImportError as e:  # pragma: no cover - depends on the install
                raise ModelError(f"llama-cpp-python is not installed ({e})") from None
            _log_cb = llama_cpp.llama_log_callback(_on_log)
            llama_cpp.llama_log_set(_log_cb, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _lib = llama_cpp
        return _lib


def cpu_has_amx() -> bool:
    """Whether llama.cpp's CPU backend uses Intel AMX here.

    Measured with llama-cpp-python 0.3.36 on a Xeon with AMX_INT8: every quantized model
    (Q8_0, Q4_0, Q4_K...) segfaults inside ggml_backend_amx_mul_mat on the first decode when
    the model's "extra buffer types" are on (llama.cpp's default). With
    `use_extra_bufts=False` (no AMX, no CPU repacking) they run. So `extra_bufts=None` means
    off on AMX machines, on elsewhere.
    """
    info = llama_lib().llama_print_system_info()
    return b"AMX_INT8 = 1" in (info or b"")


_MAX_SEQ = 256  # LLAMA_MAX_SEQ


def _default_threads() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


class _Model:
    """A loaded llama_model and its vocabulary."""

    def __init__(self, path: Path, n_gpu_layers: int, extra_bufts: bool | None) -> None:
        L = llama_lib()
        self.L = L
        params = L.llama_model_default_params()
        params.n_gpu_layers = int(n_gpu_layers)
        params.use_extra_bufts = (not cpu_has_amx()) if extra_bufts is None else bool(extra_bufts)
        self.ptr = L.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise ModelError(f"{path}: llama.cpp could not load this model")
        self.vocab = L.llama_model_get_vocab(self.ptr)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(L.llama_model_n_embd(self.ptr))
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(L.llama_vocab_bos(self.vocab))
        self.eos = int(L.llama_vocab_eos(self.vocab))
        self._pieces: dict[int, bytes] = {}

    def meta(self, key: str) -> str | None:
        """A scalar metadata value as llama.cpp prints it, or None."""
        n = 256
        while True:
            buf = ctypes.create_string_buffer(n)
            got = self.L.llama_model_meta_val_str(self.ptr, key.encode(), buf, n)
            if got < 0:
                return None
            if got < n:
                return buf.value.decode("utf-8", errors="replace")
            n = got + 1

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        """Prompt ids, as `edgestar.backends.torch_backend.encode_prefix` makes them: special
        tokens written in the text as single ids; BOS in front when the vocabulary adds one and
        the text does not start with it; an empty text without BOS -> [EOS] (GPT-2 convention:
        the model needs one token to predict from). `add_bos=False`: the text's own ids only
        (a piece of a prompt; empty text -> [])."""
        b = text.encode("utf-8")
        cap = len(b) + 8
        while True:
            arr = (self.L.llama_token * cap)()
            n = self.L.llama_tokenize(self.vocab, b, len(b), arr, cap, False, True)
            if n >= 0:
                ids = list(arr[:n])
                break
            cap = -n
        if not add_bos:
            return ids
        if self.add_bos and self.bos >= 0 and (not ids or ids[0] != self.bos):
            ids.insert(0, self.bos)
        if not ids and self.eos >= 0:
            ids = [self.eos]
        return ids

    def piece(self, tok: int) -> bytes:
        """The token's bytes, special tokens rendered as their text."""
        got = self._pieces.get(tok)
        if got is None:
            buf = ctypes.create_string_buffer(64)
            n = self.L.llama_token_to_piece(self.vocab, tok, buf, 64, 0, True)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self.L.llama_token_to_piece(self.vocab, tok, buf, -n, 0, True)
            got = buf.raw[:n]
            self._pieces[tok] = got
        return got

    def token_text(self, tok: int) -> str:
        if tok < 0 or tok >= self.n_vocab:
            return ""
        return self.piece(tok).decode("utf-8", errors="replace")

    def is_eog(self, tok: int) -> bool:
        return bool(self.L.llama_vocab_is_eog(self.vocab, tok))

    def close(self) -> None:
        if getattr(self, "ptr", None):
            self.L.llama_model_free(self.ptr)
            self.ptr = None


class _Adapter:
    """A GGUF LoRA adapter (quantize/lora_gguf.py; llama.cpp's convert_lora_to_gguf.py format)
    loaded for one model. The file is checked in Python first (GGUF soundness, general.type,
    adapter.type, architecture); what llama.cpp still refuses (a tensor the model lacks, a
    shape of another width) becomes a one-line ModelError carrying llama.cpp's own reason."""

    def __init__(self, model: _Model, path: str | os.PathLike[str], model_path: Path) -> None:
        self.L = model.L
        self.ptr: Any = None
        if not Path(path).is_file():
            raise ModelError(f"{path}: no such LoRA adapter file")
        info = check_gguf(path)
        self.path = info.path
        meta = info.metadata
        if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
            raise ModelError(
                f"{self.path}: not a GGUF LoRA adapter (general.type="
                f"{meta.get('general.type')!r}, adapter.type={meta.get('adapter.type')!r})"
            )
        arch, want = meta.get("general.architecture"), model.meta("general.architecture")
        if arch != want:
            raise ModelError(
                f"{self.path}: a LoRA adapter for architecture {arch!r}; {model_path.name} is "
                f"{want!r}"
            )
        with _capture_errors() as errors:
            self.ptr = self.L.llama_adapter_lora_init(model.ptr, str(self.path).encode())
        if not self.ptr:
            why = " ".join(e.strip() for e in errors).split("failed to apply lora adapter: ")[-1]
            raise ModelError(
                f"{self.path}: does not fit {model_path.name}: {why or 'llama.cpp refused it'}"
            )
        self.alpha = float(meta.get("adapter.lora.alpha", 0.0))

    def close(self) -> None:
        if getattr(self, "ptr", None):
            self.L.llama_adapter_lora_free(self.ptr)
            self.ptr = None


class _Context:
    """A llama_context with a unified KV cache, its memory handle, and decode counters."""

    def __init__(
        self,
        model: _Model,
        *,
        n_ctx: int,
        n_batch: int,
        n_seq_max: int,
        n_threads: int,
        kv_f32: bool,
        embeddings: bool = False,
        flash_attn: bool | None = None,
        adapter: _Adapter | None = None,
        adapter_scale: float = 1.0,
    ) -> None:
        L = model.L
        self.L = L
        p = L.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = n_batch
        p.n_seq_max = n_seq_max
        p.n_threads = n_threads
        p.n_threads_batch = n_threads
        p.kv_unified = True
        p.no_perf = True
        if kv_f32:  # exact parity with torch (STACK.md): F32 cache, no flash attention
            p.type_k = L.GGML_TYPE_F32
            p.type_v = L.GGML_TYPE_F32
            flash_attn = False
        if flash_attn is not None:
            p.flash_attn_type = (
                L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
            )
        if embeddings:
            p.embeddings = True
            p.pooling_type = L.LLAMA_POOLING_TYPE_LAST
        self.ptr = L.llama_init_from_model(model.ptr, p)
        if not self.ptr:
            raise ModelError("llama.cpp could not create a context (out of memory?)")
        if adapter is not None:
            arr = (L.llama_adapter_lora_p_ctypes * 1)(adapter.ptr)
            scales = (ctypes.c_float * 1)(float(adapter_scale))
            if L.llama_set_adapters_lora(self.ptr, arr, 1, scales) != 0:
                L.llama_free(self.ptr)
                self.ptr = None
                raise ModelError(f"{adapter.path}: llama.cpp could not apply the LoRA adapter")
        self.mem = L.llama_get_memory(self.ptr)
        self.n_ctx = int(L.llama_n_ctx(self.ptr))
        self.n_vocab = model.n_vocab
        self.decode_seconds = 0.0
        """Wall time spent inside llama_decode (the rest of a search is Python overhead)."""
        self.decode_calls = 0
        self.rows_decoded = 0
        self.hidden_on = False

    def try_decode(self, batch: _Batch) -> int:
        """llama_decode; returns its code (0 ok, 1 no KV slot; the state is unchanged then)."""
        t = time.perf_counter()
        rc = int(self.L.llama_decode(self.ptr, batch.raw))
        self.decode_seconds += time.perf_counter() - t
        self.decode_calls += 1
        if rc == 0:
            self.rows_decoded += batch.n
        return rc

    def decode(self, batch: _Batch) -> None:
        rc = self.try_decode(batch)
        if rc != 0:
            raise ModelError(f"llama_decode failed ({rc}; 1 means the KV cache is full)")

    def logits(self, i: int) -> np.ndarray:
        """A copy of the logits of batch row i."""
        ptr = self.L.llama_get_logits_ith(self.ptr, i)
        if not ptr:
            raise ModelError(f"llama.cpp returned no logits for batch row {i}")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def logits_rows(self, n: int) -> np.ndarray:
        """[n, vocab] logits of the n rows that asked for them in the last decode, in batch
        order: a VIEW into llama.cpp's buffer, valid until the next decode."""
        ptr = self.L.llama_get_logits(self.ptr)
        if not ptr:
            raise ModelError("llama.cpp returned no logits")
        return np.ctypeslib.as_array(ptr, shape=(n, self.n_vocab))

    def set_hidden(self, on: bool) -> None:
        """Whether the next decodes also output the final hidden state (after the last norm)
        beside the logits (llama.cpp PR #14208: embeddings on a generative model, pooling
        NONE). Logits are unchanged (measured: identical), but while it is on llama.cpp outputs
        EVERY row of a batch (logits and states), so callers turn it on only for decodes whose
        rows all want output, and off again for prompt chunks."""
        on = bool(on)
        if on == self.hidden_on:
            return
        if on:
            pooling = int(self.L.llama_pooling_type(self.ptr))
            if pooling != self.L.LLAMA_POOLING_TYPE_NONE:
                raise ModelError(f"this context pools its embeddings (type {pooling})")
        self.L.llama_set_embeddings(self.ptr, on)
        self.hidden_on = on

    def hidden_rows(self, n: int, n_embd: int) -> np.ndarray:
        """[n, n_embd] hidden states of the n rows that asked for output in the last decode, in
        batch order: a VIEW into llama.cpp's buffer, valid until the next decode."""
        ptr = self.L.llama_get_embeddings(self.ptr)
        if not ptr:
            raise ModelError("llama.cpp returned no hidden states (set_hidden first)")
        return np.ctypeslib.as_array(ptr, shape=(n, n_embd))

    def hidden(self, i: int, n_embd: int) -> np.ndarray:
        """A copy of the hidden state of batch row i (which asked for output)."""
        ptr = self.L.llama_get_embeddings_ith(self.ptr, i)
        if not ptr:
            raise ModelError(f"llama.cpp returned no hidden state for batch row {i}")
        return np.ctypeslib.as_array(ptr, shape=(n_embd,)).copy()

    def seq_embedding(self, seq: int, n_embd: int) -> np.ndarray:
        ptr = self.L.llama_get_embeddings_seq(self.ptr, seq)
        if not ptr:
            raise ModelError(f"llama.cpp returned no pooled embedding for sequence {seq}")
        return np.ctypeslib.as_array(ptr, shape=(n_embd,)).copy()

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self.L.llama_memory_seq_cp(self.mem, src, dst, p0, p1)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        if not self.L.llama_memory_seq_rm(self.mem, seq, p0, p1):
            raise ModelError(f"llama.cpp could not remove positions {p0}.. of sequence {seq}")

    def seq_pos_max(self, seq: int) -> int:
        return int(self.L.llama_memory_seq_pos_max(self.mem, seq))

    def clear(self) -> None:
        self.L.llama_memory_clear(self.mem, True)

    def close(self) -> None:
        if getattr(self, "ptr", None):
            self.L.llama_free(self.ptr)
            self.ptr = None


class _Batch:
    """A llama_batch of up to `capacity` rows; a row may belong to up to `n_seq_max`
    sequences (its cell is then shared by all of them)."""

    def __init__(self, L: Any, capacity: int, n_seq_max: int) -> None:
        self.L = L
        self.capacity = capacity
        self.n_seq_max = n_seq_max
        self.raw = L.llama_batch_init(capacity, 0, n_seq_max)
        self._alive = True
        b = self.raw
        self._tok = np.ctypeslib.as_array(b.token, shape=(capacity,))
        self._pos = np.ctypeslib.as_array(b.pos, shape=(capacity,))
        self._nseq = np.ctypeslib.as_array(b.n_seq_id, shape=(capacity,))
        self._out = np.ctypeslib.as_array(b.logits, shape=(capacity,))
        self._seq = [b.seq_id[i] for i in range(capacity)]
        self.n = 0

    def fill(self, rows: Sequence[tuple[int, int, int, bool]]) -> None:
        """rows: (token, position, sequence, want_logits)."""
        self.clear()
        for tok, pos, seq, out in rows:
            self.add(tok, pos, (seq,), out)

    def clear(self) -> None:
        self.n = 0
        self.raw.n_tokens = 0

    def add(self, tok: int, pos: int, seqs: Sequence[int], out: bool) -> None:
        i = self.n
        if i >= self.capacity:
            raise ValueError("batch overflow")
        self._tok[i] = tok
        self._pos[i] = pos
        self._nseq[i] = len(seqs)
        ids = self._seq[i]
        for j, s in enumerate(seqs):
            ids[j] = s
        self._out[i] = 1 if out else 0
        self.n = i + 1
        self.raw.n_tokens = self.n

    def add_run(self, toks: Sequence[int], pos0: int, seqs: Sequence[int], last_out: bool) -> None:
        """Consecutive tokens of the same sequences; logits only for the last if asked."""
        i, n = self.n, len(toks)
        if i + n > self.capacity:
            raise ValueError("batch overflow")
        self._tok[i : i + n] = toks
        self._pos[i : i + n] = np.arange(pos0, pos0 + n)
        self._nseq[i : i + n] = len(seqs)
        self._out[i : i + n] = 0
        if last_out and n:
            self._out[i + n - 1] = 1
        for r in range(i, i + n):
            ids = self._seq[r]
            for j, s in enumerate(seqs):
                ids[j] = s
        self.n = i + n
        self.raw.n_tokens = self.n

    def close(self) -> None:
        if self._alive:
            self.L.llama_batch_free(self.raw)
            self._alive = False


class _Runtime:
    """Model + context + batch, with the shared life cycle of both backends."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_ctx: int,
        n_threads: int | None,
        n_gpu_layers: int,
        n_seq_max: int,
        kv_f32: bool,
        embeddings: bool,
        extra_bufts: bool | None,
        n_batch: int = 512,
        flash_attn: bool | None = None,
        lora: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        for name, v in (("n_ctx", n_ctx), ("n_seq_max", n_seq_max), ("n_batch", n_batch)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if n_seq_max > _MAX_SEQ:
            raise InputError(f"n_seq_max must be at most {_MAX_SEQ} (llama.cpp's limit)")
        if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 1):
            raise InputError(f"n_threads must be a positive integer, got {n_threads!r}")
        if isinstance(lora_scale, bool) or not isinstance(lora_scale, (int, float)):
            raise InputError(f"lora_scale must be a number, got {lora_scale!r}")
        if not math.isfinite(lora_scale):
            raise InputError(f"lora_scale must be finite, got {lora_scale!r}")
        self.info = check_gguf(model_path)
        self.path = self.info.path
        self.lock = threading.RLock()
        self.model: _Model | None = None
        self.adapter: _Adapter | None = None
        self.ctx: _Context | None = None
        self.batch: _Batch | None = None
        try:
            self.model = _Model(self.path, n_gpu_layers, extra_bufts)
            if lora is not None:  # before the context: llama.cpp sizes graphs by its adapters
                self.adapter = _Adapter(self.model, lora, self.path)
            # a batch holds prompt chunks and one token per live group of sequences
            n_batch = max(min(n_ctx, n_batch), min(n_seq_max, n_ctx))
            self.ctx = _Context(
                self.model,
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_seq_max=n_seq_max,
                n_threads=n_threads or _default_threads(),
                kv_f32=kv_f32,
                embeddings=embeddings,
                flash_attn=flash_attn,
                adapter=self.adapter,
                adapter_scale=float(lora_scale),
            )
            self.batch = _Batch(self.model.L, n_batch, n_seq_max)
        except BaseException:
            self.close()
            raise
        self.n_seq_max = n_seq_max

    def parts(self) -> tuple[_Model, _Context, _Batch]:
        if self.model is None or self.ctx is None or self.batch is None:
            raise ModelError(f"{self.path}: backend is closed")
        return self.model, self.ctx, self.batch

    def close(self) -> None:
        # the adapter after every context that uses it, before the model it belongs to
        for part in (self.batch, self.ctx, self.adapter, self.model):
            if part is not None:
                part.close()
        self.batch = self.ctx = self.adapter = self.model = None

    def __del__(self) -> None:  # a forgotten close(); never raise from a finalizer
        with contextlib.suppress(Exception):
            self.close()


# --------------------------------------------------------------------------------------------
# Metadata the backends read: chat template, PPM value head


def render_chat_template(
    template: str,
    messages: Sequence[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render a Hugging Face chat template the way transformers does (sandboxed Jinja2,
    trim_blocks, lstrip_blocks, loop controls), as llama-cpp-python's Jinja2ChatFormatter."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise InputError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
    )
    try:
        return env.from_string(template).render(
            messages=list(messages),
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            raise_exception=raise_exception,
        )
    except jinja2.TemplateError as e:
        raise ModelError(f"chat template failed: {e}") from None


VALUE_HEAD_KEYS = {
    # mirrors edgestar.quantize.gguf_export.VALUE_HEAD_KEYS (the runtime cannot import it)
    "role": "edgestar.role",
    "hidden_size": "edgestar.value_head.hidden_size",
    "weight": "edgestar.value_head.weight",
    "weight_encoding": "edgestar.value_head.weight_encoding",
    "bias": "edgestar.value_head.bias",
    "score_scale": "edgestar.value_head.score_scale",
    "squash": "edgestar.value_head.squash",
}


def read_value_head(model: _Model, path: Path) -> tuple[np.ndarray, float, float]:
    """(w, b, score_scale) of a PPM GGUF's value head, validated; ModelError otherwise."""
    p = path
    role = model.meta(VALUE_HEAD_KEYS["role"])
    if role != "ppm":
        raise ModelError(f"{p}: not a PPM (edgestar.role is {role!r}, expected 'ppm')")
    raw = {k: model.meta(v) for k, v in VALUE_HEAD_KEYS.items()}
    missing = [VALUE_HEAD_KEYS[k] for k, v in raw.items() if v is None]
    if missing:
        raise ModelError(f"{p}: PPM metadata missing {', '.join(missing)}")
    if raw["weight_encoding"] != "base64-f32le":
        raise ModelError(f"{p}: unknown value head encoding {raw['weight_encoding']!r}")
    if raw["squash"] != "tanh":
        raise ModelError(f"{p}: unknown value head squash {raw['squash']!r}")
    try:
        w = np.frombuffer(base64.b64decode(raw["weight"], validate=True), dtype="<f4")
        bias, scale, hidden = (
            float(raw["bias"]),
            float(raw["score_scale"]),
            int(raw["hidden_size"]),
        )
    except (ValueError, TypeError) as e:
        raise ModelError(f"{p}: malformed value head metadata ({e})") from None
    if w.size != hidden or hidden != model.n_embd:
        raise ModelError(
            f"{p}: value head has {w.size} weights, model hidden size is {model.n_embd}"
        )
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(bias)):
        raise ModelError(f"{p}: value head bias/score_scale not finite positive")
    return w.astype(np.float64), bias, scale
