"""HF-format checkpoint -> GGUF file that llama.cpp loads: `export_gguf`.

Owns the translation of an edgestar checkpoint (see `edgestar.checkpoint`) into GGUF:

- architectures: Llama (GGUF arch "llama") and Qwen2 (GGUF arch "qwen2": the llama graph with
  q/k/v biases and NEOX-style rotary). Tensor names come from gguf-py's `TensorNameMap`, arch
  names and metadata keys from gguf-py's constants; the only hand-written table is `ARCHS`.
- weights: read straight from safetensors (single file or sharded with an index) by a small
  reader that checks every tensor lies inside the file, so a truncated file is a one-line
  ModelError, not a crash. dtype "f32" keeps everything F32 (exact parity with torch); "f16" and
  "bf16" convert 2-D matrices and keep 1-D tensors (norms, biases) in F32, as llama.cpp's own
  converter does.
- tokenizer: byte-level BPE from tokenizer.json -> tokenizer.ggml.model "gpt2" with the
  pre-tokenizer named by `PRE_TOKENIZERS` (GPT-2 splitting -> "gpt-2"), every token with its type
  (added special tokens CONTROL, other added tokens USER_DEFINED, holes UNUSED), merges as "a b",
  bos/eos/pad ids, add_bos/add_eos, and the chat template (tokenizer.chat_template).
  SentencePiece-style tokenizers are refused with a ModelError (not supported yet).
- PPM checkpoints: llama.cpp refuses tensors its graph does not know, so the value head travels
  as metadata (see `VALUE_HEAD_KEYS`). llama.cpp's metadata API (`llama_model_meta_val_str`)
  skips array values and prints floats with 6 decimals, so every edgestar.* value is a STRING:
  the weight row is base64 of little-endian float32 bytes (exact), bias and scale are decimal
  strings that round-trip a float64. `edgestar.backends.llamacpp.LlamaCppReward` reads them.

The file is written under a temporary name beside `out_path` and renamed into place, so a
crash never leaves a half-written file under the final name. Needs numpy and gguf (the
`[quantize]` extra), not torch.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgestar.checkpoint import VALUE_HEAD_FILE, CheckpointMeta, read_meta
from edgestar.types import InputError, ModelError

# --------------------------------------------------------------------------------------------
# Tables (data, not code)


@dataclass(frozen=True)
class ArchSpec:
    """How one HF architecture maps onto a llama.cpp graph."""

    arch: gguf.MODEL_ARCH
    permute_qk: bool
    """llama.cpp's "llama" graph uses interleaved ("normal") rotary pairs while HF Llama rotates
    halves, so q/k rows are permuted on export. "qwen2" uses NEOX rotary = HF layout: no permute."""


ARCHS: dict[str, ArchSpec] = {
    # HF config.model_type -> llama.cpp graph
    "llama": ArchSpec(gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "qwen2": ArchSpec(gguf.MODEL_ARCH.QWEN2, permute_qk=False),
}

PRE_TOKENIZERS: dict[str, str] = {
    # splitting regex of a byte-level BPE tokenizer -> llama.cpp tokenizer.ggml.pre
    # ByteLevel(use_regex=True) is GPT-2's own regex:
    "<gpt2-bytelevel>": "gpt-2",
    # Qwen2 / Qwen2.5 (Split regex before ByteLevel(use_regex=False)):
    (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    ): "qwen2",
    # Llama 3:
    (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
        r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ): "llama-bpe",
}

DTYPES: dict[str, tuple[gguf.GGMLQuantizationType, gguf.LlamaFileType]] = {
    # export dtype -> (type of 2-D weight matrices, general.file_type)
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
}

VALUE_HEAD_KEYS = {
    # all values are strings (see module docstring)
    "role": "edgestar.role",  # "policy" | "ppm"
    "step_format": "edgestar.step_format",  # e.g. "rstar"
    "hidden_size": "edgestar.value_head.hidden_size",  # decimal int
    "weight": "edgestar.value_head.weight",  # base64 of float32 little-endian, hidden_size values
    "weight_encoding": "edgestar.value_head.weight_encoding",  # "base64-f32le"
    "bias": "edgestar.value_head.bias",  # decimal float
    "score_scale": "edgestar.value_head.score_scale",  # decimal float; score = tanh((w.h+b)/s)
    "squash": "edgestar.value_head.squash",  # "tanh"
}
WEIGHT_ENCODING = "base64-f32le"

# HF tensors that carry no weights llama.cpp needs.
_SKIP_SUFFIXES = ("rotary_emb.inv_freq",)


# --------------------------------------------------------------------------------------------
# safetensors reading, with truncation checks


_ST_DTYPES: dict[str, Any] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # widened to float32 by _to_f32
}
_MAX_HEADER = 100 * 1024 * 1024


def _read_safetensors(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (safetensors dtype, array view into a memory map) for one file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelError(f"{path}: truncated safetensors file ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _MAX_HEADER):
                raise ModelError(f"{path}: truncated or not a safetensors file (header {n} bytes)")
            header = json.loads(f.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path}: not a safetensors file")
    start = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r") if size > start else np.zeros(0, np.uint8)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dt, shape, (b, e) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: malformed safetensors entry {name!r}") from None
        if dt not in _ST_DTYPES:
            raise ModelError(f"{path}: tensor {name} has unsupported dtype {dt}")
        item = np.dtype(_ST_DTYPES[dt]).itemsize
        if e - b != int(np.prod(shape)) * item or b < 0:
            raise ModelError(f"{path}: tensor {name} has inconsistent offsets")
        if start + e > size:
            raise ModelError(
                f"{path}: truncated safetensors file (tensor {name} ends at byte {start + e}, "
                f"file has {size})"
            )
        out[name] = (dt, mm[start + b : start + e].view(_ST_DTYPES[dt]).reshape(shape))
    return out


def _to_f32(dt: str, a: np.ndarray) -> np.ndarray:
    if dt == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(a, dtype=np.float32)


def _load_weights(ckpt: Path) -> dict[str, tuple[str, np.ndarray]]:
    single = ckpt / "model.safetensors"
    index = ckpt / "model.safetensors.index.json"
    if single.is_file():
        return _read_safetensors(single)
    if index.is_file():
        try:
            wmap = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{index}: unreadable ({e})") from None
        out: dict[str, tuple[str, np.ndarray]] = {}
        for shard in sorted(set(wmap.values())):
            if not (ckpt / shard).is_file():
                raise ModelError(f"{ckpt}: shard {shard} named in the index is missing")
            out.update(_read_safetensors(ckpt / shard))
        missing = set(wmap) - set(out)
        if missing:
            raise ModelError(f"{ckpt}: tensors missing from shards: {sorted(missing)[:3]}")
        return out
    if (ckpt / "pytorch_model.bin").is_file():
        raise ModelError(f"{ckpt}: pytorch_model.bin only; re-save the model with safetensors")
    raise ModelError(f"{ckpt}: no model.safetensors")


# --------------------------------------------------------------------------------------------
# config and tokenizer


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path.parent}: missing {path.name} ({what})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable ({e})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return d


@dataclass(frozen=True)
class _Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    special_ids: dict[str, int]
    add_bos: bool
    add_eos: bool
    chat_template: str | None


def _token_content(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def _pre_tokenizer_key(tj: dict[str, Any], where: Path) -> str:
    """Return the PRE_TOKENIZERS key that describes tokenizer.json's splitting."""
    pre = tj.get("pre_tokenizer") or {}
    items = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    regex = None
    bytelevel = None
    for p in items:
        if p.get("type") == "ByteLevel":
            bytelevel = p
        elif p.get("type") == "Split" and isinstance(p.get("pattern"), dict):
            regex = p["pattern"].get("Regex")
        else:
            raise ModelError(f"{where}: unsupported pre-tokenizer step {p.get('type')!r}")
    if bytelevel is None:
        raise ModelError(
            f"{where}: not a byte-level BPE tokenizer (SentencePiece-style tokenizers are not "
            "supported yet)"
        )
    if bytelevel.get("add_prefix_space"):
        raise ModelError(f"{where}: ByteLevel add_prefix_space=True has no llama.cpp equivalent")
    if bytelevel.get("use_regex", True):
        if regex is not None:
            raise ModelError(f"{where}: both a Split regex and ByteLevel's regex; unsupported")
        return "<gpt2-bytelevel>"
    if regex is None:
        raise ModelError(f"{where}: byte-level BPE without any splitting regex; unsupported")
    return regex


def _read_tokenizer(ckpt: Path, n_vocab: int) -> _Vocab:
    tj_path = ckpt / "tokenizer.json"
    if not tj_path.is_file():
        if (ckpt / "tokenizer.model").is_file():
            raise ModelError(
                f"{ckpt}: SentencePiece tokenizer (tokenizer.model) without tokenizer.json is not "
                "supported yet"
            )
        raise ModelError(f"{ckpt}: missing tokenizer (no tokenizer.json)")
    tj = _read_json(tj_path, "tokenizer")
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise ModelError(f"{tj_path}: tokenizer model {model.get('type')!r} is not BPE")
    norm = tj.get("normalizer")
    if norm is not None and norm.get("type") != "NFC":
        raise ModelError(f"{tj_path}: normalizer {norm.get('type')!r} is not supported")
    key = _pre_tokenizer_key(tj, tj_path)
    if key not in PRE_TOKENIZERS:
        raise ModelError(f"{tj_path}: unknown pre-tokenizer regex; add it to PRE_TOKENIZERS")

    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {int(t["id"]): t for t in tj.get("added_tokens", [])}
    by_id: dict[int, str] = {i: s for s, i in vocab.items()}
    for i, t in added.items():
        by_id[i] = t["content"]
    if not by_id:
        raise ModelError(f"{tj_path}: empty vocabulary")
    if max(by_id) >= n_vocab:
        raise ModelError(
            f"{tj_path}: token id {max(by_id)} does not fit the model's {n_vocab} embeddings"
        )
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            special = bool(added[i].get("special"))
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)

    merges: list[str] = []
    for m in model.get("merges") or []:
        if isinstance(m, str):
            merges.append(m)
        elif isinstance(m, list) and len(m) == 2:
            # pair format (tokenizers >= 0.20): a space inside a part is written as U+0120 + ...
            # the way llama.cpp's converter does, so "a b" stays splittable.
            merges.append(
                " ".join("".join(chr(ord(c) + 256) if c == " " else c for c in p) for p in m)
            )
        else:
            raise ModelError(f"{tj_path}: unknown merges format")

    tc_path = ckpt / "tokenizer_config.json"
    tc = _read_json(tc_path, "tokenizer config") if tc_path.is_file() else {}
    ids = {s: i for i, s in by_id.items()}
    special_ids: dict[str, int] = {}
    for kind in ("bos", "eos", "unk", "pad"):
        s = _token_content(tc.get(f"{kind}_token"))
        if s is not None and s in ids:
            special_ids[kind] = ids[s]
    if "eos" not in special_ids:
        raise ModelError(f"{ckpt}: tokenizer has no eos_token")
    add_bos = bool(tc.get("add_bos_token", False))
    add_eos = bool(tc.get("add_eos_token", False))
    post = tj.get("post_processor") or {}
    if post.get("type") == "TemplateProcessing" and "add_bos_token" not in tc:
        single = post.get("single") or []
        add_bos = bool(single) and "SpecialToken" in single[0]
    if add_bos and "bos" not in special_ids:
        raise ModelError(f"{ckpt}: tokenizer adds a bos token but names none")

    chat: Any = tc.get("chat_template")
    jinja = ckpt / "chat_template.jinja"
    if jinja.is_file():
        chat = jinja.read_text(encoding="utf-8")
    if isinstance(chat, list):  # named templates: keep the default one
        chat = next((c.get("template") for c in chat if c.get("name") == "default"), None)
    return _Vocab(
        tokens=tokens,
        types=[int(t) for t in types],
        merges=merges,
        pre=PRE_TOKENIZERS[key],
        special_ids=special_ids,
        add_bos=add_bos,
        add_eos=add_eos,
        chat_template=chat if isinstance(chat, str) and chat else None,
    )


# --------------------------------------------------------------------------------------------
# tensors


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half q/k rows -> llama.cpp interleaved pairs (works on weights and biases)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(
    weights: dict[str, tuple[str, np.ndarray]],
    cfg: dict[str, Any],
    spec: ArchSpec,
    dtype: str,
) -> Iterator[tuple[str, np.ndarray, gguf.GGMLQuantizationType]]:
    n_layers = int(cfg["num_hidden_layers"])
    n_head = int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_head)
    tied = bool(cfg.get("tie_word_embeddings", False))
    tmap = gguf.get_tensor_name_map(spec.arch, n_layers)
    target = DTYPES[dtype][0]
    for name, (dt, arr) in weights.items():
        if name.endswith(_SKIP_SUFFIXES) or (tied and name == "lm_head.weight"):
            continue
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ModelError(
                f"tensor {name} has no {gguf.MODEL_ARCH_NAMES[spec.arch]} equivalent in llama.cpp"
            )
        x = _to_f32(dt, arr)
        if spec.permute_qk and name.endswith(("q_proj.weight", "q_proj.bias")):
            x = _permute(x, n_head)
        elif spec.permute_qk and name.endswith(("k_proj.weight", "k_proj.bias")):
            x = _permute(x, n_kv)
        qtype = target if x.ndim >= 2 else gguf.GGMLQuantizationType.F32
        if qtype == gguf.GGMLQuantizationType.F16:
            x = x.astype(np.float16)
        elif qtype == gguf.GGMLQuantizationType.BF16:
            x = gguf.quants.quantize(x, qtype)
        else:
            x = np.ascontiguousarray(x, dtype=np.float32)
        yield new, x, qtype


def _check_config(cfg: dict[str, Any], where: Path) -> ArchSpec:
    mt = cfg.get("model_type")
    if mt not in ARCHS:
        raise ModelError(f"{where}: unsupported architecture {mt!r}; supported: {', '.join(ARCHS)}")
    for k in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
    ):
        if not isinstance(cfg.get(k), int) or cfg[k] <= 0:
            raise ModelError(f"{where}: config.json lacks a positive integer {k}")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ModelError(f"{where}: hidden_act {act!r} is not supported (llama graphs use silu)")
    if cfg.get("mlp_bias"):
        raise ModelError(f"{where}: mlp_bias=True is not supported")
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) not in ("default", "linear"):
        raise ModelError(f"{where}: rope_scaling {rs!r} is not supported")
    if mt == "qwen2" and cfg.get("use_sliding_window"):
        raise ModelError(f"{where}: Qwen2 sliding-window attention is not supported")
    return ARCHS[mt]


def _value_head(ckpt: Path, meta: CheckpointMeta, hidden: int) -> tuple[np.ndarray, float]:
    path = ckpt / VALUE_HEAD_FILE
    if not path.is_file():
        raise ModelError(f"{ckpt}: ppm checkpoint without {VALUE_HEAD_FILE}")
    t = _read_safetensors(path)
    if "weight" not in t or "bias" not in t:
        raise ModelError(f"{path}: needs tensors 'weight' and 'bias'")
    w = _to_f32(*t["weight"]).reshape(-1)
    b = _to_f32(*t["bias"]).reshape(-1)
    if w.size != hidden or b.size != 1:
        raise ModelError(
            f"{path}: value head shapes {t['weight'][1].shape}/{t['bias'][1].shape} do not fit "
            f"hidden size {hidden}"
        )
    head_h = (meta.value_head or {}).get("hidden_size", hidden)
    if head_h != hidden:
        raise ModelError(f"{ckpt}: edgestar.json value_head.hidden_size {head_h} != {hidden}")
    return np.ascontiguousarray(w, dtype="<f4"), float(b[0])


# --------------------------------------------------------------------------------------------
# the export


def check_export_target(out: Path, dtype: str, force: bool) -> None:
    """InputError, before any work, for an unknown dtype or an `out` that must not be written."""
    if dtype not in DTYPES:
        raise InputError(f"unknown GGUF dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass force=True to overwrite")
    if out.is_dir():
        raise InputError(f"{out} is a directory")


@contextlib.contextmanager
def gguf_writer(out: Path, arch_name: str) -> Iterator[gguf.GGUFWriter]:
    """A GGUFWriter on a temporary file beside `out`. On a clean exit the file is written,
    fsynced and renamed over `out`, so no reader ever sees a half-written GGUF; on any error the
    temporary file is removed and `out` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        w = gguf.GGUFWriter(tmp, arch=arch_name)
        yield w
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def export_gguf(
    ckpt_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    dtype: str = "f32",
    force: bool = False,
    *,
    meta: CheckpointMeta | None = None,
    drop_prefixes: tuple[str, ...] = (),
    extra_kv: dict[str, str] | None = None,
    need_lm_head: bool = True,
) -> Path:
    """Write the checkpoint at `ckpt_dir` as one GGUF file at `out_path`; return its path.

    dtype: "f32" (exact), "f16" or "bf16" (2-D weights only). Raises InputError for a bad
    argument or an existing `out_path` without `force`, ModelError for a checkpoint that cannot
    be exported (unsupported architecture or tokenizer, missing or truncated files).

    For a checkpoint that is not edgestar's own (an off-the-shelf PRM, `prm_export`): `meta`
    replaces edgestar.json, tensors named `drop_prefixes*` (its head) are left out, `extra_kv`
    adds string metadata (overriding edgestar.role), and `need_lm_head=False` lets llama.cpp fall
    back to the token embeddings for a model saved without an LM head (its logits are unused).
    """
    ckpt = Path(ckpt_dir)
    out = Path(out_path)
    check_export_target(out, dtype, force)
    if not ckpt.is_dir():
        raise ModelError(f"{ckpt}: no such checkpoint folder")
    meta = meta or read_meta(ckpt)
    cfg = _read_json(ckpt / "config.json", "model config")
    spec = _check_config(cfg, ckpt)
    hidden = int(cfg["hidden_size"])
    n_head = int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_head)
    head_dim = int(cfg.get("head_dim") or hidden // n_head)
    n_vocab = int(cfg["vocab_size"])
    vocab = _read_tokenizer(ckpt, n_vocab)
    weights = _load_weights(ckpt)
    if drop_prefixes:
        weights = {k: v for k, v in weights.items() if not k.startswith(drop_prefixes)}
    emb = weights.get("model.embed_tokens.weight")
    if emb is None or tuple(emb[1].shape) != (n_vocab, hidden):
        raise ModelError(f"{ckpt}: model.embed_tokens.weight missing or not [{n_vocab}, {hidden}]")
    if (
        need_lm_head
        and not cfg.get("tie_word_embeddings", False)
        and "lm_head.weight" not in weights
    ):
        raise ModelError(f"{ckpt}: lm_head.weight missing and embeddings are not tied")
    head = _value_head(ckpt, meta, hidden) if meta.role == "ppm" else None

    arch_name = gguf.MODEL_ARCH_NAMES[spec.arch]
    with gguf_writer(out, arch_name) as w:
        w.add_name(ckpt.resolve().name)
        w.add_file_type(DTYPES[dtype][1])
        w.add_context_length(int(cfg.get("max_position_embeddings", 2048)))
        w.add_embedding_length(hidden)
        w.add_block_count(int(cfg["num_hidden_layers"]))
        w.add_feed_forward_length(int(cfg["intermediate_size"]))
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_rope_dimension_count(head_dim)
        if head_dim != hidden // n_head:
            w.add_key_length(head_dim)
            w.add_value_length(head_dim)
        w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
        w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
        rs = cfg.get("rope_scaling")
        if rs and rs.get("rope_type", rs.get("type")) == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(rs["factor"]))
        w.add_vocab_size(n_vocab)

        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(vocab.pre)
        w.add_token_list(vocab.tokens)
        w.add_token_types(vocab.types)
        w.add_token_merges(vocab.merges)
        # llama.cpp's gpt2 default bos/eos is id 11: always name both (bos falls back to eos,
        # as in GPT-2 itself; it is only added to prompts when add_bos is true).
        w.add_bos_token_id(vocab.special_ids.get("bos", vocab.special_ids["eos"]))
        w.add_eos_token_id(vocab.special_ids["eos"])
        if "pad" in vocab.special_ids:
            w.add_pad_token_id(vocab.special_ids["pad"])
        if "unk" in vocab.special_ids:
            w.add_unk_token_id(vocab.special_ids["unk"])
        w.add_add_bos_token(vocab.add_bos)
        w.add_add_eos_token(vocab.add_eos)
        if vocab.chat_template:
            w.add_chat_template(vocab.chat_template)

        kv = {VALUE_HEAD_KEYS["role"]: meta.role, VALUE_HEAD_KEYS["step_format"]: meta.step_format}
        for k, v in {**kv, **(extra_kv or {})}.items():
            w.add_string(k, v)
        if head is not None:
            hw, hb = head
            w.add_string(VALUE_HEAD_KEYS["hidden_size"], str(hidden))
            w.add_string(VALUE_HEAD_KEYS["weight"], base64.b64encode(hw.tobytes()).decode())
            w.add_string(VALUE_HEAD_KEYS["weight_encoding"], WEIGHT_ENCODING)
            w.add_string(VALUE_HEAD_KEYS["bias"], repr(hb))
            w.add_string(VALUE_HEAD_KEYS["score_scale"], repr(meta.score_scale))
            w.add_string(
                VALUE_HEAD_KEYS["squash"], str((meta.value_head or {}).get("squash", "tanh"))
            )

        for name, x, qtype in _tensors(weights, cfg, spec, dtype):
            if qtype == gguf.GGMLQuantizationType.BF16:
                w.add_tensor(name, x, raw_dtype=qtype)
            else:
                w.add_tensor(name, x)
    return out
