"""bitsandbytes loading for GPU training: 8-bit (LLM.int8) or 4-bit NF4 (QLoRA-style) models.

Owns:
- `bnb_available()`: whether bitsandbytes is installed (found, not imported: importing it on a
  CPU-only machine prints warnings and costs time).
- `load_quantized_for_training(ckpt, bits, device)`: a causal LM folder loaded through
  transformers' `BitsAndBytesConfig` (4-bit: NF4 with double quantization, bf16 compute; 8-bit:
  LLM.int8), plus its tokenizer. With `prepare=True` (default) the model is made ready for
  adapter training the way QLoRA does it, without depending on peft: every quantized weight is
  frozen, the remaining small float weights (norms, embeddings) are cast to float32, input
  embeddings are made to require grad (so gradient checkpointing has a graph to follow) and
  gradient checkpointing is switched on. Adapters (LoRA) are left to the caller.

Quantized training is a CUDA path: on a machine without CUDA (or with `device='cpu'`) the loader
raises `InputError` rather than falling back (bitsandbytes does run some kernels on CPU, but
edgestar's CPU training uses plain float32 models - train/trainer.py). Nothing here is needed
on CPU, and nothing imports bitsandbytes at module import time.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from edgestar.types import InputError, ModelError

__all__ = ["bnb_available", "load_quantized_for_training"]


def bnb_available() -> bool:
    """True when bitsandbytes is installed (it may still lack a usable CUDA build)."""
    try:
        return importlib.util.find_spec("bitsandbytes") is not None
    except (ImportError, ValueError):
        return False


def _cuda_index(device: str) -> int:
    if device == "cuda":
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise InputError(
        f"bitsandbytes quantized training needs CUDA: device must be 'cuda' or 'cuda:N', "
        f"got {device!r}"
    )


def load_quantized_for_training(
    ckpt: str | os.PathLike[str],
    bits: int = 4,
    device: str = "cuda",
    *,
    compute_dtype: str = "bf16",
    prepare: bool = True,
) -> tuple[Any, Any]:
    """(model, tokenizer) for `ckpt` with its linear layers quantized to `bits` (4: NF4, 8:
    LLM.int8) on one CUDA device. Raises InputError on a machine without CUDA."""
    if isinstance(bits, bool) or bits not in (4, 8):
        raise InputError(f"bits must be 4 or 8, got {bits!r}")
    if compute_dtype not in ("bf16", "fp16", "fp32"):
        raise InputError(f"compute_dtype must be 'bf16', 'fp16' or 'fp32', got {compute_dtype!r}")
    index = _cuda_index(str(device))
    import torch

    if not torch.cuda.is_available():
        raise InputError(
            "bitsandbytes quantized training needs CUDA, and no CUDA device is available; "
            "train in float32 on CPU instead (edgestar.train.trainer, optimizer='adamw')"
        )
    if index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if not bnb_available():
        raise InputError(
            "bitsandbytes is not installed; pip install 'edgestar[gpu]' for quantized training"
        )
    path = Path(ckpt)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a model folder (no config.json)")
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    cdt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[compute_dtype]
    if cdt == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise InputError("this GPU has no bf16 support; pass compute_dtype='fp16'")
    if bits == 4:
        qcfg = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=cdt,
        )
    else:
        qcfg = BitsAndBytesConfig(load_in_8bit=True)
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            local_files_only=True,
            quantization_config=qcfg,
            device_map={"": index},
            dtype=cdt,
        )
    except Exception as e:
        raise ModelError(f"{path}: cannot load {bits}-bit ({type(e).__name__}: {e})") from e
    if prepare:
        _prepare_for_kbit_training(model)
    return model, tok


def _prepare_for_kbit_training(model: Any) -> None:
    """QLoRA's preparation (after peft.prepare_model_for_kbit_training), minus peft."""
    import torch

    for p in model.parameters():
        p.requires_grad_(False)
        if p.dtype in (torch.float16, torch.bfloat16) and p.__class__.__name__ == "Parameter":
            p.data = p.data.float()
    model.enable_input_require_grads()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
