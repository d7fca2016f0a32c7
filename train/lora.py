"""LoRA for policy training: `LoraSpec` (the `lora:` settings of a TrainConfig), wrapping a loaded
base with peft adapters, saving the adapter folder, and merging an adapter back into a base.

A LoRA run trains only the adapters (peft `LoraConfig`, biases frozen); the base stays as it
was loaded (an HF folder, or a GGUF file that transformers dequantises to float32). What a
finished run writes (`save_adapter`) is the ADAPTER, not a model:

    adapter_config.json, adapter_model.safetensors   peft's own files
    base_config.json                                 the base's HF config (for the GGUF export)
    edgestar.json                                    role policy, step format, provenance
                                                     (including `lora_base`: the base's path)

`quantize/lora_gguf.py` turns that folder into a GGUF LoRA adapter that the llama.cpp backend
applies at load time (`LlamaCppPolicy(..., lora=FILE)`, `edgestar solve --lora FILE`), and
`adapter_from_gguf` turns such a file back into an adapter folder, so training can continue from
an adapter that shipped without its folder (`edgestar train evolve --round0-adapter`).

A LoRA adapter cannot add tokens (llama.cpp's adapters change matrices, not the vocabulary), so
a LoRA run refuses a base whose vocabulary lacks the step format's marker tokens instead of
resizing the embeddings (use a format without special tokens, e.g. 'tir', on such a base).

peft is checked at 0.21.0 with transformers 4.57 and torch 2.13 (the `[train]` extra pins it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgestar.types import InputError, ModelError

__all__ = [
    "LORA_TARGETS",
    "LoraSpec",
    "adapter_from_gguf",
    "apply_lora",
    "load_adapter_weights",
    "merge_adapter",
    "save_adapter",
]

LORA_TARGETS: tuple[str, ...] = (
    # the linear layers of the llama/qwen2 graphs that llama.cpp's adapters can change
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class LoraSpec:
    """LoRA settings: rank `r`, `alpha` (peft scaling = alpha / r), `dropout` on the adapter
    input, the `target_modules` (names from `LORA_TARGETS`; 'attention' and 'all' are
    shorthands), and `top_layers`: adapt only the last N transformer blocks (None: all).

    `top_layers` is a CPU speed lever: backward then stops at the lowest adapted block. On
    SmolLM2-135M (30 blocks), a training step with the top 10 blocks adapted took 13-16 s
    against 23 s with all 30 (batch 8 x 160 tokens, 2 threads, shared machine)."""

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = _ATTENTION
    top_layers: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise InputError(f"lora.r must be a positive whole number, got {self.r!r}")
        if not _num(self.alpha) or self.alpha <= 0:
            raise InputError(f"lora.alpha must be a positive number, got {self.alpha!r}")
        if not _num(self.dropout) or not 0 <= self.dropout < 1:
            raise InputError(f"lora.dropout must be in [0, 1), got {self.dropout!r}")
        tm = self.target_modules
        if isinstance(tm, str):
            tm = {"attention": _ATTENTION, "all": LORA_TARGETS}.get(tm, (tm,))
        if not isinstance(tm, (list, tuple)) or not tm:
            raise InputError("lora.target_modules must be a non-empty list of module names")
        bad = [m for m in tm if m not in LORA_TARGETS]
        if bad:
            raise InputError(
                f"lora.target_modules: {', '.join(map(repr, bad))} not supported; choose from "
                f"{', '.join(LORA_TARGETS)} (or 'attention', 'all')"
            )
        n = self.top_layers
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InputError(f"lora.top_layers must be a positive whole number, got {n!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "dropout", float(self.dropout))
        object.__setattr__(self, "target_modules", tuple(dict.fromkeys(tm)))

    @classmethod
    def from_value(cls, v: Any) -> LoraSpec:
        """A LoraSpec from itself or a mapping (a recipe's `lora: {r: 16, ...}`)."""
        if isinstance(v, LoraSpec):
            return v
        if not isinstance(v, dict):
            raise InputError(f"lora must be a mapping of r/alpha/dropout/target_modules, got {v!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(v) - known)
        if extra:
            raise InputError(f"lora: unknown keys {', '.join(extra)}; known: {', '.join(known)}")
        return cls(**v)

    def to_json(self) -> dict[str, Any]:
        d = {**dataclasses.asdict(self), "target_modules": list(self.target_modules)}
        if self.top_layers is None:
            del d["top_layers"]  # runs from before the field keep their fingerprints
        return d

    def peft_config(self, n_layers: int | None = None) -> Any:
        from peft import LoraConfig

        layers = None
        if self.top_layers is not None:
            if n_layers is None:
                raise ModelError("lora.top_layers needs the model's number of layers")
            if self.top_layers > n_layers:
                raise InputError(
                    f"lora.top_layers={self.top_layers} but the model has {n_layers} layers"
                )
            layers = list(range(n_layers - self.top_layers, n_layers))
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            layers_to_transform=layers,
            bias="none",
            task_type="CAUSAL_LM",
        )


def _peft() -> Any:
    try:
        import peft
    except ImportError as e:
        raise InputError(
            f"LoRA training needs peft ({e.name} is missing): pip install 'edgestar[train]'"
        ) from None
    return peft


def apply_lora(model: Any, spec: LoraSpec, seed: int) -> Any:
    """`model` wrapped with fresh LoRA adapters (peft's init: A random, seeded; B zero), base
    weights frozen. Returns the PeftModel."""
    import torch

    peft = _peft()
    torch.manual_seed(seed)
    n_layers = getattr(model.config, "num_hidden_layers", None)
    pm = peft.get_peft_model(model, spec.peft_config(n_layers))
    n = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    if n == 0:
        raise ModelError("LoRA found none of its target modules in this model")
    return pm


def load_adapter_weights(peft_model: Any, adapter_dir: str | os.PathLike[str]) -> None:
    """Start `peft_model`'s adapters from a finished adapter folder (a previous round's policy):
    its rank, alpha and targets must equal this run's, else a clear ModelError."""
    peft = _peft()
    from safetensors.torch import load_file

    path = Path(adapter_dir)
    cfg_file, weights = path / "adapter_config.json", path / "adapter_model.safetensors"
    if not (cfg_file.is_file() and weights.is_file()):
        raise ModelError(f"{path}: not a LoRA adapter folder (no adapter_config.json/weights)")
    theirs = json.loads(cfg_file.read_text("utf-8"))
    ours = peft_model.peft_config["default"]
    for key in ("r", "lora_alpha", "target_modules", "layers_to_transform"):
        a, b = theirs.get(key), getattr(ours, key, None)
        if isinstance(a, list) or isinstance(b, (set, list, tuple)):
            a, b = sorted(a or []), sorted(b or [])
        if a != b:
            raise ModelError(f"{path}: adapter {key} is {a!r}, this run's is {b!r}")
    state = load_file(str(weights))
    res = peft.set_peft_model_state_dict(peft_model, state)
    unexpected = list(getattr(res, "unexpected_keys", []) or [])
    if unexpected:
        raise ModelError(f"{path}: adapter tensors this model lacks: {unexpected[:3]}")


def save_adapter(
    peft_model: Any, folder: Path, meta: Any, base_config: dict[str, Any] | None = None
) -> None:
    """Write the adapter folder (see the module docstring); edgestar.json last, as it marks the
    folder complete."""
    from edgestar.checkpoint import write_meta

    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # peft looks for the base's config.json to see whether the
        # vocabulary changed; a GGUF base has none, and a LoRA run never changes the vocabulary
        warnings.filterwarnings("ignore", message="Could not find a config file")
        peft_model.save_pretrained(folder, safe_serialization=True)
    cfg = base_config if base_config is not None else peft_model.get_base_model().config.to_dict()
    (folder / "base_config.json").write_text(json.dumps(cfg, indent=2, default=str) + "\n")
    write_meta(folder, meta)


def merge_adapter(base_model: Any, adapter_dir: str | os.PathLike[str]) -> Any:
    """`base_model` (a transformers causal LM, float32) with the adapter in `adapter_dir`
    merged into its weights (W += scaling * B @ A); returns the plain merged model."""
    peft = _peft()
    path = Path(adapter_dir)
    if not (path / "adapter_config.json").is_file():
        raise ModelError(f"{path}: not a LoRA adapter folder (no adapter_config.json)")
    pm = peft.PeftModel.from_pretrained(base_model, path)
    return pm.merge_and_unload()


def adapter_from_gguf(
    base: str | os.PathLike[str],
    lora_gguf: str | os.PathLike[str],
    spec: LoraSpec,
    out_dir: str | os.PathLike[str],
    *,
    step_format: str | None = None,
    seed: int = 0,
) -> Path:
    """Write the adapter folder (as `save_adapter`) that `lora_gguf`, a GGUF LoRA adapter for
    `base`, was exported from: peft adapters of `spec` on `base`, their weights read from the
    file (quantize/lora_gguf.py `read_lora_gguf`). The file's scale must equal `spec`'s
    (alpha / r) and its tensors must fill exactly `spec`'s adapters, else a ModelError. The
    folder appears whole or not at all."""
    import shutil

    import numpy as np
    import torch

    from edgestar.checkpoint import CheckpointMeta
    from edgestar.head import file_sha256
    from edgestar.quantize.lora_gguf import read_lora_gguf

    from .trainer import load_causal_lm

    peft = _peft()
    src, out = Path(lora_gguf), Path(out_dir)
    lm = load_causal_lm(base, torch.device("cpu"), seed, step_format=step_format, add_tokens=False)
    pm = apply_lora(lm.model, spec, seed)
    state = peft.get_peft_model_state_dict(pm)
    cfg = pm.get_base_model().config.to_dict()
    scaling, arrays = read_lora_gguf(src, cfg, list(state))
    want = spec.alpha / spec.r
    if not math.isclose(scaling, want, rel_tol=1e-6):
        raise ModelError(
            f"{src}: its scale alpha/r is {scaling:g}, the LoRA settings give {want:g}"
        )
    new = {}
    for k, v in state.items():
        a = arrays[k]
        if tuple(a.shape) != tuple(v.shape):
            raise ModelError(f"{src}: {k} has shape {a.shape}, the adapter's is {tuple(v.shape)}")
        new[k] = torch.from_numpy(np.ascontiguousarray(a)).to(v.dtype)
    peft.set_peft_model_state_dict(pm, new)
    meta = CheckpointMeta(
        role="policy",
        step_format=lm.step_format,
        special_tokens=lm.special_tokens,
        provenance={
            "created_by": "edgestar.train.lora.adapter_from_gguf",
            "lora_gguf": str(src.resolve()),
            "lora_gguf_sha256": file_sha256(src),
            "base": str(Path(base).resolve()),
            "lora": spec.to_json(),
        },
    )
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    save_adapter(pm, partial, meta, base_config=cfg)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out
