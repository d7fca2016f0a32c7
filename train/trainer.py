"""The shared training loop behind policy SFT, policy DPO and PPM training.

Owns:
- `TrainConfig` (+ `TRAIN_PRESETS`): every knob of a run, validated on construction.
- `TrainReport`: what a finished run reports (and what goes into edgestar.json's provenance).
- `RunDir`: the output folder's life cycle. While training, `out_dir/` holds only `.state/`
  (the resumable training state, rewritten atomically: temp file + fsync + rename). The final
  checkpoint is written into `.<name>.partial/` beside `out_dir`; then `.state` is removed and
  the finished folder is renamed onto the (now empty) `out_dir`. A run killed at any point -
  inside a step, while saving the state, while writing or committing the checkpoint - is picked
  up by `resume=True`.
- `TrainTask` + `run_training`: the loop. A task turns items into batches and batches into a
  loss; the loop does the rest: held-out split, per-epoch shuffling, gradient accumulation,
  clipping, warmup + schedule, evaluation each epoch, progress bar, state saving and resuming.

TrainConfig lives in `_train_config`, TrainReport and RunDir in `_rundir`; this module re-exports
them with the loop and model loading.

Determinism and resume (CPU): the held-out split and each epoch's order come from dedicated
`torch.Generator`s seeded from `cfg.seed` (and saved in the state); the state holds the model
weights, optimizer and scheduler state, the step, the position in the epoch, the running loss
sums and every RNG state. Given the same thread count, a run that is killed and resumed ends
with weights bitwise equal to an uninterrupted run (tests/test_train.py checks the safetensors
hash). On CUDA the loop is seeded the same way but kernels are not guaranteed bitwise
reproducible.

Precision: master weights stay float32; `dtype="bf16"` (the CUDA default when supported) runs
forward and backward under torch.autocast. A float32 master copy plus AdamW state is ~16 bytes
per parameter (~12 with adamw8bit), which is why the CUDA presets stop at 1.5B on one 80 GB GPU;
rStar-Math's 7B recipe (LR 7e-6, 2 epochs) needs sharding or a QLoRA path (quantize/bnb.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from edgestar.checkpoint import META_FILE, read_meta
from edgestar.types import InputError, ModelError

from ._rundir import (
    STATE_VERSION,
    RunDir,
    StepInfo,
    TrainReport,
    checkpoint_identity,
    file_sha256,
    fingerprint,
)
from ._train_config import (
    TRAIN_PRESETS,
    TrainConfig,
    _dtype_name,
    autocast_for,
    resolve_device,
    resolve_dtype,
)

__all__ = [
    "TRAIN_PRESETS",
    "LoadedModel",
    "RunDir",
    "StepInfo",
    "TrainConfig",
    "TrainReport",
    "TrainTask",
    "autocast_for",
    "data_sha256",
    "file_sha256",
    "fingerprint",
    "load_causal_lm",
    "pad_id",
    "resolve_device",
    "resolve_dtype",
    "run_fingerprint",
    "run_training",
    "split_eval",
]


# ------------------------------------------------------------------------------------- split


def split_eval(keys: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, eval indices). Whole groups of equal keys (problem ids) go to one side
    when there are at least two groups; otherwise single items are split. Deterministic in
    `seed`; the eval side is never empty when fraction > 0 and there are >= 2 items, and the
    train side never empty."""
    n = len(keys)
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    groups = sorted(set(keys))
    g = torch.Generator().manual_seed(1_000_003 * seed + 17)
    if len(groups) >= 2:
        perm = torch.randperm(len(groups), generator=g).tolist()
        n_eval = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        held = {groups[i] for i in perm[:n_eval]}
        ev = [i for i, k in enumerate(keys) if k in held]
    else:
        perm = torch.randperm(n, generator=g).tolist()
        n_eval = min(n - 1, max(1, round(fraction * n)))
        ev = sorted(perm[:n_eval])
    held_idx = set(ev)
    return [i for i in range(n) if i not in held_idx], ev


# -------------------------------------------------------------------------------------- loop


class TrainTask(Protocol):
    """What a trainer gives the loop. `loss` returns (mean loss of the micro-batch, real tokens
    in it); `evaluate` returns held-out metrics including 'loss' (called under no_grad, model in
    eval mode)."""

    def collate(self, items: Sequence[Any], device: torch.device) -> Any: ...

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, int]: ...

    def evaluate(self, model: nn.Module, items: Sequence[Any]) -> dict[str, float]: ...


def _rng_state() -> dict[str, Any]:
    st: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    with contextlib.suppress(ImportError):
        import numpy as np

        st["numpy"] = np.random.get_state()
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"].cpu())
    random.setstate(st["python"])
    if "numpy" in st:
        import numpy as np

        np.random.set_state(st["numpy"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["cuda"]])


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(1_000_003 * seed + 7919 * (epoch + 1))
    return torch.randperm(n, generator=g).tolist()


def _lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm = int(round(cfg.warmup * total_steps))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if cfg.lr_schedule == "constant":
            return 1.0
        span = max(1, total_steps - warm)
        progress = min(1.0, (step - warm) / span)
        if cfg.lr_schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def _make_optimizer(
    cfg: TrainConfig, params: list[nn.Parameter], device: torch.device
) -> torch.optim.Optimizer:
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "adamw8bit":
        if device.type != "cuda":
            raise InputError("optimizer 'adamw8bit' needs CUDA")
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise InputError(
                "optimizer 'adamw8bit' needs bitsandbytes (pip install 'edgestar[gpu]')"
            ) from e
        return bnb.optim.AdamW8bit(groups, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps)
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, foreach=device.type == "cuda"
    )


@contextlib.contextmanager
def _progress(total: int, initial: int, desc: str, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    show = enabled and sys.stderr.isatty()
    bar = tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="step",
        file=sys.stderr,
        disable=not show,
        dynamic_ncols=True,
        leave=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def _micro_batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run_training(
    *,
    model: nn.Module,
    params: list[nn.Parameter],
    task: TrainTask,
    train_items: Sequence[Any],
    eval_items: Sequence[Any],
    cfg: TrainConfig,
    run_dir: RunDir,
    device: torch.device,
    fp: str,
    desc: str = "train",
    progress: bool = True,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainReport:
    """Train `params` of `model` (already on `device`, float32 master weights) on `train_items`.

    Resumes from `run_dir`'s state when `run_dir.status == 'resume'` (its fingerprint must equal
    `fp`). The state is saved every `cfg.save_every_steps` optimizer steps, at each epoch end
    and at the very end, so the caller can write the final checkpoint and a kill during that is
    recoverable too. Returns the report; the model holds the final weights.
    """
    if not train_items:
        raise InputError("no training examples left after the held-out split")
    dtype = resolve_dtype(cfg, device)
    if cfg.grad_checkpointing:
        _enable_grad_checkpointing(model)
    optimizer = _make_optimizer(cfg, params, device)
    n = len(train_items)
    rows_per_step = cfg.batch_size * cfg.grad_accum
    steps_per_epoch = math.ceil(n / rows_per_step)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, total))

    st: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "step_in_epoch": 0,
        "order": _epoch_order(n, cfg.seed, 0),
        "loss_sum": 0.0,
        "loss_n": 0,
        "epoch_losses": [],
        "eval_metrics": [],
        "first_loss": None,
        "tokens": 0,
        "seconds": 0.0,
        "train_seconds": 0.0,
        "done": False,
    }
    # Frozen weights (a LoRA run's base) never change: the state keeps only what trains, so a
    # 135M-parameter base does not rewrite ~540 MB of float32 at every save.
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    partial = len(trainable) < sum(1 for _ in model.named_parameters())

    def model_state() -> dict[str, Any]:
        sd = model.state_dict()
        return {k: v for k, v in sd.items() if k in trainable} if partial else sd

    resumed = run_dir.status == "resume"
    if resumed:
        saved = run_dir.load_state(device)
        if saved.get("fingerprint") != fp:
            raise InputError(
                f"{run_dir.state_path}: the saved state belongs to a different run (other data, "
                "base checkpoint or settings); pass force=True to start over"
            )
        if partial:
            if set(saved["model"]) != trainable:
                raise ModelError(f"{run_dir.state_path}: saved weights do not match the model")
            model.load_state_dict(saved["model"], strict=False)
        else:
            model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        st = saved["loop"]
        if len(st["order"]) != n:
            raise InputError(f"{run_dir.state_path}: saved data order does not match the data")

    def save() -> None:
        run_dir.save_state(
            {
                "version": STATE_VERSION,
                "fingerprint": fp,
                "model": model_state(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
                "loop": st,
            }
        )

    def autocast() -> Any:
        return autocast_for(cfg, device)

    def evaluate() -> dict[str, float]:
        if not eval_items:
            return {}
        model.eval()
        with torch.no_grad(), autocast():
            m = task.evaluate(model, eval_items)
        model.train()
        return {k: float(v) for k, v in m.items()}

    t_start = time.perf_counter()
    seconds_before = float(st["seconds"])
    model.train()
    with _progress(total, st["step"], desc, progress) as bar:
        while not st["done"]:
            if st["step"] >= total:
                st["done"] = True
                break
            if st["step_in_epoch"] >= steps_per_epoch:  # epoch finished: evaluate, next order
                st["epoch_losses"].append(st["loss_sum"] / max(1, st["loss_n"]))
                st["eval_metrics"].append(evaluate())
                st["epoch"] += 1
                st["step_in_epoch"] = 0
                st["loss_sum"], st["loss_n"] = 0.0, 0
                st["order"] = _epoch_order(n, cfg.seed, st["epoch"])
                st["seconds"] = seconds_before + time.perf_counter() - t_start
                save()
                continue
            j = st["step_in_epoch"]
            rows = [
                train_items[i] for i in st["order"][j * rows_per_step : (j + 1) * rows_per_step]
            ]
            micros = _micro_batches(rows, cfg.batch_size)
            step_loss, step_tokens = 0.0, 0
            t_step = time.perf_counter()
            for mb in micros:
                batch = task.collate(mb, device)
                with autocast():
                    loss, ntok = task.loss(model, batch)
                (loss / len(micros)).backward()
                step_loss += float(loss.detach()) / len(micros)
                step_tokens += int(ntok)
            if not math.isfinite(step_loss):
                raise ModelError(f"training diverged: loss {step_loss} at step {st['step'] + 1}")
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            st["train_seconds"] += time.perf_counter() - t_step
            st["step"] += 1
            st["step_in_epoch"] += 1
            st["loss_sum"] += step_loss
            st["loss_n"] += 1
            st["tokens"] += step_tokens
            if st["first_loss"] is None:
                st["first_loss"] = step_loss
            st["seconds"] = seconds_before + time.perf_counter() - t_start
            saved_now = False
            if st["step"] >= total:
                # Last step: close the epoch here so the final state holds every metric.
                st["epoch_losses"].append(st["loss_sum"] / max(1, st["loss_n"]))
                st["eval_metrics"].append(evaluate())
                st["done"] = True
                st["seconds"] = seconds_before + time.perf_counter() - t_start
                save()
                saved_now = True
            elif cfg.save_every_steps and st["step"] % cfg.save_every_steps == 0:
                save()
                saved_now = True
            tok_s = st["tokens"] / max(st["train_seconds"], 1e-9)
            bar.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
            bar.update(1)
            if on_step is not None:
                on_step(
                    StepInfo(st["step"], total, st["epoch"], step_loss, st["tokens"], saved_now)
                )

    if cfg.grad_checkpointing:
        _disable_grad_checkpointing(model)
    model.eval()
    seconds = float(st["seconds"])
    evals = tuple(st["eval_metrics"])
    return TrainReport(
        steps=int(st["step"]),
        epochs=len(st["epoch_losses"]),
        n_train=n,
        n_eval=len(eval_items),
        first_loss=float(st["first_loss"] if st["first_loss"] is not None else float("nan")),
        final_loss=float(st["epoch_losses"][-1]) if st["epoch_losses"] else float("nan"),
        epoch_losses=tuple(float(x) for x in st["epoch_losses"]),
        eval_losses=tuple(float(m["loss"]) for m in evals if "loss" in m),
        eval_metrics=evals,
        tokens=int(st["tokens"]),
        tokens_per_s=float(st["tokens"] / st["train_seconds"]) if st["train_seconds"] else 0.0,
        seconds=seconds,
        device=str(device),
        dtype=_dtype_name(dtype),
        resumed=resumed,
    )


def _grad_ckpt_targets(model: nn.Module) -> list[Any]:
    """The outermost transformers model inside `model` (itself, or a PPM's backbone)."""
    for m in model.modules():
        if hasattr(m, "gradient_checkpointing_enable") and hasattr(m, "config"):
            return [m]
    return []


def _enable_grad_checkpointing(model: nn.Module) -> None:
    targets = _grad_ckpt_targets(model)
    if not targets:
        raise InputError("grad_checkpointing=True but the model does not support it")
    for m in targets:
        m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(m, "config"):
            m.config.use_cache = False


def _disable_grad_checkpointing(model: nn.Module) -> None:
    for m in _grad_ckpt_targets(model):
        m.gradient_checkpointing_disable()
        if hasattr(m, "config"):
            m.config.use_cache = True


# ---------------------------------------------------------------------------- model loading


@dataclass
class LoadedModel:
    """A causal LM loaded for training: float32 master weights on `device`, its tokenizer (with
    the step format's markers as special tokens), the checkpoint's edgestar meta (None for a
    plain HF folder) and the dtype its weights were stored in (the final save converts back)."""

    model: Any
    tokenizer: Any
    step_format: str
    special_tokens: tuple[str, ...]
    stored_dtype: torch.dtype
    added_tokens: tuple[str, ...]


def load_causal_lm(
    ckpt: str | os.PathLike[str],
    device: torch.device,
    seed: int,
    *,
    step_format: str | None = None,
    add_tokens: bool = True,
) -> LoadedModel:
    """Load `ckpt` (an edgestar checkpoint, any HF causal-LM folder, or a GGUF file, which
    transformers dequantises to float32; local files only) for training. `step_format`
    overrides the checkpoint's (default: its edgestar.json or GGUF edgestar.step_format, else
    'rstar'). Markers of the step format that the tokenizer lacks are added as special tokens
    and the embeddings resized (seeded, so deterministic); with `add_tokens=False` (LoRA: an
    adapter cannot add tokens) such a base is refused instead."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from edgestar.formats import get_format

    path = Path(ckpt)
    kw: dict[str, Any] = {"local_files_only": True}
    meta = None
    if path.is_file() and path.suffix == ".gguf":
        from edgestar.backends._llama_raw import check_gguf

        gmeta = check_gguf(path).metadata
        fmt_name = step_format or str(gmeta.get("edgestar.step_format") or "rstar")
        src, kw["gguf_file"] = path.parent, path.name
    else:
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a model folder (no config.json) nor a .gguf file")
        meta = read_meta(path) if (path / META_FILE).is_file() else None
        fmt_name = step_format or (meta.step_format if meta is not None else "rstar")
        src = path
    fmt_tokens = get_format(fmt_name).special_tokens
    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tok = AutoTokenizer.from_pretrained(src, use_fast=True, **kw)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, **kw)
    except Exception as e:
        raise ModelError(f"{path}: cannot load for training ({type(e).__name__}: {e})") from e
    finally:
        hf_logging.set_verbosity(old)
    stored = getattr(model.config, "dtype", None)
    stored_dtype = stored if isinstance(stored, torch.dtype) and stored.is_floating_point else None
    if "gguf_file" in kw:
        stored_dtype = torch.float32  # dequantised; the base itself is never rewritten
        _match_gguf_bos(tok, gmeta, path)
        _match_gguf_eos(tok, gmeta, path)
    vocab = set(tok.get_vocab())
    missing = [t for t in fmt_tokens if t not in vocab]
    if missing and not add_tokens:
        raise InputError(
            f"{path}: step format {fmt_name!r} needs tokens the base lacks ({', '.join(missing)}); "
            "a LoRA adapter cannot add tokens: use a format without special tokens (e.g. 'tir')"
        )
    if missing:
        tok.add_special_tokens(
            {"additional_special_tokens": [*tok.additional_special_tokens, *missing]},
            replace_additional_special_tokens=True,
        )
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        torch.manual_seed(seed)
        model.resize_token_embeddings(len(tok))
    for t in fmt_tokens:
        ids = tok.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            raise ModelError(f"{path}: marker {t!r} is not one token (ids {ids})")
    if tok.pad_token_id is None and tok.eos_token_id is None:
        raise ModelError(f"{path}: the tokenizer has neither a pad nor an EOS token")
    specials = tuple(dict.fromkeys([*(meta.special_tokens if meta else ()), *fmt_tokens]))
    model.to(device)
    model.config.use_cache = False
    return LoadedModel(
        model=model,
        tokenizer=tok,
        step_format=fmt_name,
        special_tokens=specials,
        stored_dtype=stored_dtype or torch.float32,
        added_tokens=tuple(missing),
    )


def _match_gguf_bos(tok: Any, gmeta: dict[str, Any], path: Path) -> None:
    """transformers' tokenizer rebuilt from a GGUF may add a BOS that llama.cpp does not (e.g.
    SmolLM2: tokenizer.ggml.add_bos_token = false, yet the rebuilt tokenizer adds
    <|im_start|>); training must see the prompts exactly as the runtime encodes them."""
    from edgestar.backends.torch_backend import tokenizer_adds_bos

    want = gmeta.get("tokenizer.ggml.add_bos_token")
    if want is None or tokenizer_adds_bos(tok) == bool(want):
        return
    if hasattr(tok, "add_bos_token"):
        tok.add_bos_token = bool(want)
    if tokenizer_adds_bos(tok) != bool(want):
        raise ModelError(f"{path}: cannot make the tokenizer's BOS match llama.cpp's ({want})")


def _match_gguf_eos(tok: Any, gmeta: dict[str, Any], path: Path) -> None:
    """transformers' tokenizer rebuilt from a GGUF may name another EOS than llama.cpp's (e.g.
    SmolLM2: <|im_start|> where the GGUF says <|im_end|>, the end of a chat turn). SFT ends
    each solution with the EOS, so it must be the token that ends generation at run time."""
    want = gmeta.get("tokenizer.ggml.eos_token_id")
    if want is None or tok.eos_token_id == int(want):
        return
    text = tok.convert_ids_to_tokens(int(want))
    if not isinstance(text, str):
        raise ModelError(f"{path}: the GGUF's EOS id {want} is not in the tokenizer")
    tok.eos_token = text
    if tok.eos_token_id != int(want):
        raise ModelError(f"{path}: cannot make the tokenizer's EOS match llama.cpp's ({want})")


def pad_id(tokenizer: Any) -> int:
    p = tokenizer.pad_token_id
    return int(p if p is not None else tokenizer.eos_token_id)


def run_fingerprint(kind: str, ckpt: Path, cfg: TrainConfig, data: Any, **extra: Any) -> str:
    """What a resumed run must share with the interrupted one: the trainer, the starting
    checkpoint, the data and every setting except how often the state is saved."""
    c = cfg.to_json()
    c.pop("save_every_steps")
    return fingerprint(kind, checkpoint_identity(ckpt), c, data, extra)


def data_sha256(items: Sequence[Any]) -> str:
    rows = [dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x for x in items]
    return fingerprint(rows)
