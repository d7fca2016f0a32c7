"""A peft LoRA adapter folder -> a GGUF LoRA adapter that llama.cpp applies at load time:
`export_lora_gguf`; and back: `read_lora_gguf` (the tensors of such a file under peft's names,
so training can continue from a shipped adapter: train/lora.py `adapter_from_gguf`).

The file is what llama.cpp's own `convert_lora_to_gguf.py` writes and what
`llama_adapter_lora_init` (src/llama-adapter.cpp) reads:

- metadata: `general.architecture` (the base's llama.cpp graph; llama.cpp refuses an adapter
  whose architecture differs from the model's), `general.type = "adapter"`,
  `adapter.type = "lora"`, `adapter.lora.alpha` (float32), `general.file_type`, plus a few
  edgestar.* strings (rank, target modules, the base config's width and depth) for humans.
- tensors: for every adapted linear `W` (a base tensor named `<gguf name>`, e.g.
  `blk.0.attn_q.weight`), `<gguf name>.lora_a` with numpy shape [r, in] (ggml ne = [in, r]) and
  `<gguf name>.lora_b` with numpy shape [out, r] (ggml ne = [r, out]): exactly peft's
  `lora_A.weight` and `lora_B.weight`, untransposed. llama.cpp checks W.ne[0] == A.ne[0],
  W.ne[1] == B.ne[1], A.ne[1] == B.ne[0] and computes y += scale * B(A x) with
  scale = adapter.lora.alpha / r (times the user scale).
- names: HF module names map to GGUF names through the same gguf-py `TensorNameMap` and
  `ARCHS` table as the model export (quantize/gguf_export.py); no second table here.
- rotary layout: the model export permutes the q/k ROWS of Llama weights (HF rotate-half ->
  llama.cpp interleaved pairs). Rows of W = B A are rows of B, so B of q_proj/k_proj gets the same
  permutation and A is left alone (what convert_lora_to_gguf.py does through its LoraTorchTensor).
- scale: peft's scaling is lora_alpha / r (or lora_alpha / sqrt(r) with use_rslora); the file
  stores alpha = scaling * r so that llama.cpp's alpha / r reproduces it exactly.

Refused with a one-line ModelError (llama.cpp cannot represent them): DoRA, bias training,
per-module rank/alpha patterns, `modules_to_save`, adapters on embeddings or lm_head, non-LoRA
peft types. Needs numpy and gguf (the `[quantize]` extra), not torch.

Why the adapter travels on its own (applied by llama.cpp at load time) rather than merged into
the base and requantized - measured on SmolLM2-135M-Instruct Q4_1 with a random rank-16 adapter
on attention q/k/v/o, 1 thread, shared 2-core Xeon (benchmarks/lora/, reproduce with
`python benchmarks/lora/lora_vs_merge.py OUT --threads 1 --reps 7`):
- size: the adapter is 7,389,536 bytes in F32 (3,703,136 in F16); a merged model is another
  98,362,432-byte file per adapter, and the pinned base stays byte-identical (its sha256 is the
  package's).
- parity: base + adapter on llama.cpp vs torch's float32 merged model: mean |logit diff| 0.0276
  x ref std, top-1 99.3% (F16 adapter: 0.0300, 96.8%) - the same as the bare Q4_1 base vs the
  bare torch model (0.0275, 96.1%: llama.cpp's activation quantization is the whole error).
  Merged and requantized to Q4_1: 0.1767 x std, top-1 86.7% - re-rounding the adapted matrices
  loses part of the adapter in Q4_1's step.
- speed: load 0.245 s vs 0.194 s for the bare base (medians of 7); prompt and decode tok/s of
  base + adapter, bare base and merged model agree within this machine's noise (decode medians
  43.4-45.5 tok/s per CPU second; single runs spread 35-50). With the adapter on all seven
  linears (MLP too, 19.6 MB in F32) it does cost: decode 42.6 vs 50.3 tok/s per CPU second
  (-15%; F16 -22%), while the merged model keeps 47.3 but drifts 8x more (0.281 x std, top-1
  70%) than the adapter (0.035, 97%).
So: adapter at load time, exported in F32 by default (F16 on request: half the size, no faster).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgestar.types import ModelError

from .gguf_export import (
    DTYPES,
    _check_config,
    _permute,
    _read_safetensors,
    _to_f32,
    check_export_target,
    gguf_writer,
)

__all__ = ["ADAPTER_FILE", "ADAPTER_CONFIG", "BASE_CONFIG", "export_lora_gguf", "read_lora_gguf"]

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
BASE_CONFIG = "base_config.json"
"""The base model's HF config.json, written beside the adapter by train/lora.py (an adapter
trained on a GGUF base has no config folder to point at)."""

_PEFT_PREFIX = "base_model.model."
_A, _B = ".lora_A.weight", ".lora_B.weight"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path}: missing ({what})")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable {what} ({e})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{path}: {what} is not a JSON object")
    return d


def _scaling(lc: dict[str, Any], where: Path) -> tuple[int, float]:
    """(rank, peft's scaling factor) after refusing what llama.cpp cannot represent."""
    if lc.get("peft_type", "LORA") != "LORA":
        raise ModelError(f"{where}: peft_type {lc.get('peft_type')!r} is not a LoRA adapter")
    if lc.get("use_dora"):
        raise ModelError(f"{where}: DoRA adapters are not supported by llama.cpp")
    if lc.get("bias", "none") != "none":
        raise ModelError(f"{where}: adapters that train biases (bias={lc['bias']!r}) are refused")
    if lc.get("rank_pattern") or lc.get("alpha_pattern"):
        raise ModelError(f"{where}: per-module rank_pattern/alpha_pattern are not supported")
    if lc.get("modules_to_save"):
        raise ModelError(f"{where}: modules_to_save {lc['modules_to_save']} cannot travel as LoRA")
    if lc.get("fan_in_fan_out"):
        raise ModelError(f"{where}: fan_in_fan_out adapters (GPT-2 Conv1D) are not supported")
    r, alpha = lc.get("r"), lc.get("lora_alpha")
    if not isinstance(r, int) or r < 1 or not isinstance(alpha, (int, float)):
        raise ModelError(f"{where}: needs a positive integer r and a number lora_alpha")
    return r, float(alpha) / (math.sqrt(r) if lc.get("use_rslora") else r)


def _pairs(
    weights: dict[str, tuple[str, np.ndarray]], where: Path
) -> dict[str, dict[str, np.ndarray]]:
    """HF module weight name (`model.layers.0.self_attn.q_proj.weight`) -> {"a": A, "b": B}."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, (dt, arr) in weights.items():
        name = key.removeprefix(_PEFT_PREFIX)
        if name.endswith(_A):
            part, base = "a", name[: -len(_A)] + ".weight"
        elif name.endswith(_B):
            part, base = "b", name[: -len(_B)] + ".weight"
        elif "lora_embedding" in name or name.startswith("lm_head"):
            raise ModelError(f"{where}: {key}: adapters on embeddings or lm_head are not supported")
        else:
            raise ModelError(f"{where}: tensor {key} is neither lora_A nor lora_B")
        if arr.ndim != 2:
            raise ModelError(f"{where}: {key} is not a matrix (shape {arr.shape})")
        out.setdefault(base, {})[part] = _to_f32(dt, arr)
    for base, ab in out.items():
        if set(ab) != {"a", "b"}:
            raise ModelError(f"{where}: {base} has only lora_{'A' if 'a' in ab else 'B'}")
        if ab["a"].shape[0] != ab["b"].shape[1]:
            raise ModelError(
                f"{where}: {base}: lora_A {ab['a'].shape} and lora_B {ab['b'].shape} disagree on r"
            )
    if not out:
        raise ModelError(f"{where}: the adapter holds no LoRA tensors")
    return out


def export_lora_gguf(
    adapter_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    dtype: str = "f32",
    *,
    base_config: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Write the peft adapter in `adapter_dir` (adapter_config.json + adapter_model.safetensors)
    as a GGUF LoRA adapter at `out_path`; return its path.

    `base_config`: the base's HF config.json (default: `adapter_dir/base_config.json`, which
    train/lora.py writes). dtype: "f32", "f16" or "bf16" (A and B both). InputError for a bad
    argument or an existing `out_path` without `force`; ModelError for an adapter that cannot
    be exported."""
    src = Path(adapter_dir)
    out = Path(out_path)
    check_export_target(out, dtype, force)
    if not src.is_dir():
        raise ModelError(f"{src}: no such adapter folder")
    lc = _read_json(src / ADAPTER_CONFIG, "peft adapter config")
    cfg_path = Path(base_config) if base_config is not None else src / BASE_CONFIG
    if cfg_path.is_dir():
        cfg_path = cfg_path / "config.json"
    cfg = _read_json(cfg_path, "base model config")
    spec = _check_config(cfg, cfg_path)
    r, scaling = _scaling(lc, src / ADAPTER_CONFIG)
    pairs = _pairs(_read_safetensors(src / ADAPTER_FILE), src / ADAPTER_FILE)

    n_layers = int(cfg["num_hidden_layers"])
    n_head = int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_head)
    tmap = gguf.get_tensor_name_map(spec.arch, n_layers)
    qtype, ftype = DTYPES[dtype]
    tensors: list[tuple[str, np.ndarray]] = []
    for name, ab in sorted(pairs.items()):
        new = tmap.get_name(name, try_suffixes=(".weight",))
        if new is None:
            raise ModelError(f"{src}: {name} has no llama.cpp equivalent")
        if new.startswith(("token_embd", "output.")):
            raise ModelError(f"{src}: {name}: adapters on embeddings or lm_head are not supported")
        a, b = ab["a"], ab["b"]
        if a.shape[0] != r:
            raise ModelError(f"{src}: {name} has rank {a.shape[0]}, adapter_config says r={r}")
        if spec.permute_qk and name.endswith("q_proj.weight"):
            b = _permute(b, n_head)
        elif spec.permute_qk and name.endswith("k_proj.weight"):
            b = _permute(b, n_kv)
        tensors += [(new + ".lora_a", a), (new + ".lora_b", b)]

    arch_name = gguf.MODEL_ARCH_NAMES[spec.arch]
    with gguf_writer(out, arch_name) as w:
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(scaling * r))
        w.add_name(src.resolve().name)
        w.add_file_type(ftype)
        w.add_string("edgestar.lora.rank", str(r))
        w.add_string("edgestar.lora.scaling", repr(scaling))
        w.add_string("edgestar.lora.base_hidden_size", str(int(cfg["hidden_size"])))
        w.add_string("edgestar.lora.base_layers", str(n_layers))
        for name, x in tensors:
            if qtype == gguf.GGMLQuantizationType.F16:
                w.add_tensor(name, x.astype(np.float16))
            elif qtype == gguf.GGMLQuantizationType.BF16:
                w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
            else:
                w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))
    return out


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of gguf_export._permute: llama.cpp interleaved pairs -> HF rotate-half rows."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_lora_gguf(
    path: str | os.PathLike[str], base_config: dict[str, Any], names: list[str]
) -> tuple[float, dict[str, np.ndarray]]:
    """The GGUF LoRA adapter at `path` under peft's tensor names: (alpha / r as llama.cpp
    applies it, {name: float32 array}) for every name in `names` (peft state-dict keys such as
    `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`).

    The inverse of `export_lora_gguf` for the base whose HF config is `base_config`: the same
    name table maps each module to its GGUF tensor, and lora_b of q/k gets the inverse rotary
    permutation. ModelError (one line) for a file that is not a LoRA adapter, was made for
    another architecture or depth, lacks one of `names`, or holds a tensor `names` does not
    ask for (an adapter on more modules than the caller's would be silently cut)."""
    from edgestar.gguf_meta import read_kv

    src = Path(path)
    kv = read_kv(src)
    if kv.get("general.type") != "adapter" or kv.get("adapter.type") != "lora":
        raise ModelError(f"{src}: not a GGUF LoRA adapter (general.type/adapter.type)")
    spec = _check_config(base_config, src)
    arch_name = gguf.MODEL_ARCH_NAMES[spec.arch]
    if kv.get("general.architecture") != arch_name:
        raise ModelError(
            f"{src}: an adapter for {kv.get('general.architecture')!r}, the base is {arch_name!r}"
        )
    n_layers = int(base_config["num_hidden_layers"])
    layers = kv.get("edgestar.lora.base_layers")
    if layers is not None and str(layers) != str(n_layers):
        raise ModelError(f"{src}: made for a base of {layers} layers, this one has {n_layers}")
    n_head = int(base_config["num_attention_heads"])
    n_kv = int(base_config.get("num_key_value_heads") or n_head)
    reader = gguf.GGUFReader(src, "r")
    tensors: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        if t.tensor_type == gguf.GGMLQuantizationType.F32:
            a = np.array(t.data, dtype=np.float32)
        elif t.tensor_type == gguf.GGMLQuantizationType.F16:
            a = np.array(t.data, dtype=np.float16).astype(np.float32)
        elif t.tensor_type == gguf.GGMLQuantizationType.BF16:
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        else:
            raise ModelError(f"{src}: {t.name} is {t.tensor_type.name}; F32, F16 or BF16 expected")
        tensors[t.name] = a
    alpha = kv.get("adapter.lora.alpha")
    tmap = gguf.get_tensor_name_map(spec.arch, n_layers)
    out: dict[str, np.ndarray] = {}
    ranks: set[int] = set()
    for key in names:
        name = key.removeprefix(_PEFT_PREFIX)
        if name.endswith(_A):
            module, part = name[: -len(_A)] + ".weight", "lora_a"
        elif name.endswith(_B):
            module, part = name[: -len(_B)] + ".weight", "lora_b"
        else:
            raise ModelError(f"{key} is neither a lora_A nor a lora_B weight")
        new = tmap.get_name(module, try_suffixes=(".weight",))
        if new is None or f"{new}.{part}" not in tensors:
            raise ModelError(f"{src}: no tensor for {module} ({new}.{part})")
        a = tensors.pop(f"{new}.{part}")
        if part == "lora_b" and spec.permute_qk and module.endswith("q_proj.weight"):
            a = _unpermute(a, n_head)
        elif part == "lora_b" and spec.permute_qk and module.endswith("k_proj.weight"):
            a = _unpermute(a, n_kv)
        ranks.add(a.shape[0] if part == "lora_a" else a.shape[1])
        out[key] = a
    if tensors:
        raise ModelError(
            f"{src}: {len(tensors)} tensors the adapter to fill has no place for, e.g. "
            f"{sorted(tensors)[0]} (its rank, targets or layers differ)"
        )
    if len(ranks) != 1 or not isinstance(alpha, (int, float)):
        raise ModelError(f"{src}: needs one rank for all tensors and adapter.lora.alpha")
    return float(alpha) / ranks.pop(), out
