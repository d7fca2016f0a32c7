"""TrainConfig: every knob of a training run (policy SFT, DPO, PPM), validated on construction,
with named presets (TRAIN_PRESETS), and the device, dtype and autocast it resolves to."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from edgestar.types import InputError

from .lora import LoraSpec

_DEVICES = ("auto", "cpu", "cuda")
_DTYPES = {"auto": None, "fp32": torch.float32, "float32": torch.float32}
_DTYPES.update({"bf16": torch.bfloat16, "bfloat16": torch.bfloat16})
_OPTIMIZERS = ("adamw", "adamw8bit")
_SCHEDULES = ("cosine", "linear", "constant")


# ------------------------------------------------------------------------------------ config


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings. `TrainConfig.preset(name, **overrides)` starts from a
    named preset (`TRAIN_PRESETS`)."""

    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 16
    """Rows per micro-batch (a PPM pair counts as one row: two sequences)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_len: int = 512
    """Longest sequence in tokens (SFT: truncated on the right; PPM/DPO: see the trainers)."""
    warmup: float = 0.05
    """Linear warmup, as a fraction of all optimizer steps, in [0, 1)."""
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    dtype: str = "auto"
    """Compute dtype: 'auto' (bf16 on CUDA when supported, else fp32), 'fp32', 'bf16'."""
    grad_checkpointing: bool = False
    optimizer: str = "adamw"
    """'adamw' (torch) or 'adamw8bit' (bitsandbytes; CUDA only)."""
    save_every_steps: int = 50
    """Save the resumable state every N optimizer steps (0: only at epoch ends). The state is
    also saved at the end of each epoch and before the final checkpoint is written."""
    eval_fraction: float = 0.1
    """Share of the data held out for evaluation (split by problem_id when there are several
    problems), in [0, 0.5]. 0: no evaluation."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm; 0 turns it off."""
    lr_schedule: str = "cosine"
    """After warmup: 'cosine' (to 0), 'linear' (to 0) or 'constant'."""
    max_steps: int | None = None
    """Stop after this many optimizer steps in all (None: run every epoch)."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    lora: LoraSpec | None = None
    """Train LoRA adapters (train/lora.py) instead of every weight: None, a LoraSpec or a
    mapping {r, alpha, dropout, target_modules} (converted on construction). The finished
    checkpoint is then the adapter folder."""

    def __post_init__(self) -> None:
        for name in ("lr", "warmup", "weight_decay", "eval_fraction", "max_grad_norm"):
            v = getattr(self, name)
            if not _is_num(v):
                raise InputError(f"TrainConfig.{name} must be a finite number, got {v!r}")
        if not self.lr > 0:
            raise InputError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        for name in ("epochs", "batch_size", "grad_accum"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise InputError(f"TrainConfig.{name} must be a positive whole number, got {v!r}")
        if not _is_int(self.max_len) or self.max_len < 2:
            raise InputError(
                f"TrainConfig.max_len must be a whole number >= 2, got {self.max_len!r}"
            )
        for name in ("seed", "save_every_steps"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise InputError(f"TrainConfig.{name} must be a whole number >= 0, got {v!r}")
        if self.max_steps is not None and (not _is_int(self.max_steps) or self.max_steps < 1):
            raise InputError(
                f"TrainConfig.max_steps must be None or a positive whole number, got {self.max_steps!r}"
            )
        if not 0 <= self.warmup < 1:
            raise InputError(f"TrainConfig.warmup is a fraction in [0, 1), got {self.warmup!r}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise InputError("TrainConfig.weight_decay and max_grad_norm must be >= 0")
        if not 0 <= self.eval_fraction <= 0.5:
            raise InputError(
                f"TrainConfig.eval_fraction must be in [0, 0.5], got {self.eval_fraction!r}"
            )
        dev = self.device
        if not isinstance(dev, str) or not (
            dev in _DEVICES or (dev.startswith("cuda:") and dev[5:].isdigit())
        ):
            raise InputError(f"TrainConfig.device must be 'auto', 'cpu' or 'cuda[:N]', got {dev!r}")
        if self.dtype not in _DTYPES:
            raise InputError(
                f"TrainConfig.dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}"
            )
        if self.optimizer not in _OPTIMIZERS:
            raise InputError(
                f"TrainConfig.optimizer must be one of {', '.join(_OPTIMIZERS)}, "
                f"got {self.optimizer!r}"
            )
        if self.optimizer == "adamw8bit" and dev == "cpu":
            raise InputError(
                "optimizer 'adamw8bit' (bitsandbytes) is for CUDA training; use 'adamw' on CPU"
            )
        if self.lr_schedule not in _SCHEDULES:
            raise InputError(
                f"TrainConfig.lr_schedule must be one of {', '.join(_SCHEDULES)}, "
                f"got {self.lr_schedule!r}"
            )
        if not isinstance(self.grad_checkpointing, bool):
            raise InputError("TrainConfig.grad_checkpointing must be True or False")
        betas = tuple(self.adam_betas)
        if len(betas) != 2 or not all(_is_num(b) and 0 <= b < 1 for b in betas):
            raise InputError(f"TrainConfig.adam_betas must be two numbers in [0, 1), got {betas}")
        object.__setattr__(self, "adam_betas", (float(betas[0]), float(betas[1])))
        if not _is_num(self.adam_eps) or self.adam_eps <= 0:
            raise InputError(f"TrainConfig.adam_eps must be positive, got {self.adam_eps!r}")
        if self.lora is not None:
            object.__setattr__(self, "lora", LoraSpec.from_value(self.lora))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        try:
            base = TRAIN_PRESETS[name]
        except KeyError:
            raise InputError(
                f"unknown training preset {name!r}; choose from {', '.join(TRAIN_PRESETS)}"
            ) from None
        return dataclasses.replace(base, **overrides) if overrides else base

    def replace(self, **overrides: Any) -> TrainConfig:
        return dataclasses.replace(self, **overrides)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        if self.lora is None:
            d.pop("lora")  # runs without LoRA keep the fingerprints they had before the field
        else:
            d["lora"] = self.lora.to_json()
        return d


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Tiny random-init models (train/tiny.py) learn from scratch: high LR, fp32, CPU.
    "cpu-tiny": TrainConfig(
        lr=1e-3, epochs=3, batch_size=16, max_len=512, warmup=0.05, device="cpu", dtype="fp32"
    ),
    "cpu-small": TrainConfig(
        lr=5e-4, epochs=3, batch_size=16, max_len=1024, warmup=0.05, device="cpu", dtype="fp32"
    ),
    # Pretrained 0.5B-1.5B models (Qwen2.5 class) on one GPU: rStar-Math's SFT recipe is
    # LR 7e-6 for 2 epochs at 7B; smaller models take a somewhat higher LR.
    "cuda-0.5b": TrainConfig(
        lr=1e-5,
        epochs=2,
        batch_size=8,
        grad_accum=4,
        max_len=2048,
        warmup=0.03,
        device="cuda",
        dtype="auto",
        grad_checkpointing=True,
        save_every_steps=200,
        eval_fraction=0.05,
    ),
    "cuda-1.5b": TrainConfig(
        lr=7e-6,
        epochs=2,
        batch_size=4,
        grad_accum=8,
        max_len=2048,
        warmup=0.03,
        device="cuda",
        dtype="auto",
        grad_checkpointing=True,
        optimizer="adamw8bit",
        save_every_steps=200,
        eval_fraction=0.05,
    ),
}
"""Named starting points; override fields with `TrainConfig.preset(name, lr=..., ...)`."""


def resolve_device(cfg: TrainConfig) -> torch.device:
    """The torch device `cfg.device` names; InputError for CUDA without CUDA and for adamw8bit
    off CUDA."""
    if cfg.device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {cfg.device!r} requested but CUDA is not available")
        dev = torch.device(cfg.device)
    if cfg.optimizer == "adamw8bit" and dev.type != "cuda":
        raise InputError(
            "optimizer 'adamw8bit' (bitsandbytes) needs CUDA; this run is on CPU - use 'adamw'"
        )
    return dev


def resolve_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    """Compute dtype: 'auto' -> bf16 on a CUDA device that supports it, else fp32."""
    dt = _DTYPES[cfg.dtype]
    if dt is not None:
        return dt
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def autocast_for(cfg: TrainConfig, device: torch.device) -> Any:
    """The autocast context the loop runs forward passes under (a no-op for fp32)."""
    dtype = resolve_dtype(cfg, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _dtype_name(dt: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dt, str(dt))
