"""Process preference model (PPM) training: pairwise Bradley-Terry on step preference pairs.

Owns:
- `train_ppm`: a `ValueHeadModel` initialised from the CURRENT policy checkpoint with a fresh
  (zero) value head - rStar-Math re-initialises the PPM from the policy every round - trained on
  `PreferencePair`s with loss -log sigmoid(r_chosen - r_rejected), where r is the raw reward of
  prefix + chosen step and prefix + rejected step (the text is encoded as one prefix with
  `encode_prefix`, exactly as `TorchReward` encodes it at inference; sequences longer than
  `cfg.max_len` keep their last max_len tokens - the step being judged). The held-out split
  (by problem_id) reports loss and pairwise accuracy each epoch. The result is a PPM checkpoint
  (causal-LM backbone + value_head.safetensors + edgestar.json role 'ppm', score_scale 5:
  tanh(r / 5) at inference), written atomically like the policy's (train/trainer.py).
- `pairwise_accuracy`: share of pairs a PPM checkpoint orders correctly (ties count one half),
  computed through the runtime's `TorchReward`.

The LM head the backbone carries is not trained (the PPM never runs it) and is saved as it came
from the policy, so exporters can treat the backbone as a causal LM.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgestar.backends.torch_backend import (
    TorchReward,
    ValueHeadModel,
    encode_prefix,
    tokenizer_adds_bos,
)
from edgestar.types import InputError

from .datasets import PreferencePair
from .trainer import (
    RunDir,
    StepInfo,
    TrainConfig,
    TrainReport,
    data_sha256,
    load_causal_lm,
    pad_id,
    resolve_device,
    run_fingerprint,
    run_training,
    split_eval,
)

__all__ = ["PairFeature", "build_pair_features", "pairwise_accuracy", "train_ppm"]


@dataclass(frozen=True)
class PairFeature:
    problem_id: str
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    truncated: bool
    kind: str = "ppm"


def build_pair_features(
    tokenizer: Any, pairs: Sequence[PreferencePair], max_len: int
) -> list[PairFeature]:
    add_bos = tokenizer_adds_bos(tokenizer)
    out: list[PairFeature] = []
    for pr in pairs:
        if not isinstance(pr, PreferencePair):
            raise InputError(f"expected PreferencePair items, got {type(pr).__name__}")
        c = encode_prefix(tokenizer, pr.prefix + pr.chosen, add_bos)
        r = encode_prefix(tokenizer, pr.prefix + pr.rejected, add_bos)
        trunc = len(c) > max_len or len(r) > max_len
        out.append(
            PairFeature(pr.problem_id, tuple(c[-max_len:]), tuple(r[-max_len:]), trunc, pr.kind)
        )
    return out


def _pad(rows: Sequence[Sequence[int]], value: int, device: torch.device) -> torch.Tensor:
    width = max(len(r) for r in rows)
    t = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return t.to(device)


class _PPMTask:
    def __init__(self, pad: int, batch_size: int) -> None:
        self.pad = pad
        self.batch_size = batch_size

    def collate(self, items: Sequence[PairFeature], device: torch.device) -> dict[str, Any]:
        seqs = [f.chosen_ids for f in items] + [f.rejected_ids for f in items]
        return {
            "input_ids": _pad(seqs, self.pad, device),
            "attention_mask": _pad([[1] * len(s) for s in seqs], 0, device),
            "n": len(items),
        }

    @staticmethod
    def _diff(model: nn.Module, b: dict[str, Any]) -> torch.Tensor:
        r = model(b["input_ids"], b["attention_mask"]).float()
        return r[: b["n"]] - r[b["n"] :]

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        d = self._diff(model, batch)
        return -F.logsigmoid(d).mean(), int(batch["attention_mask"].sum())

    def evaluate(self, model: nn.Module, items: Sequence[PairFeature]) -> dict[str, float]:
        device = next(model.parameters()).device
        ds = [
            self._diff(model, self.collate(items[i : i + self.batch_size], device))
            for i in range(0, len(items), self.batch_size)
        ]
        d = torch.cat(ds)
        wins = (d > 0).float() + 0.5 * (d == 0).float()
        out = {
            "loss": float(-F.logsigmoid(d).mean()),
            "pairwise_accuracy": float(wins.mean()),
            "margin": float(d.mean()),
        }
        # Per pair kind (tree pairs vs perturbed steps are not equally hard): held_KIND is the
        # count, pairwise_accuracy_KIND the accuracy on those pairs.
        for kind in sorted({f.kind for f in items}):
            mask = torch.tensor([f.kind == kind for f in items])
            out[f"held_{kind}"] = float(mask.sum())
            out[f"pairwise_accuracy_{kind}"] = float(wins[mask].mean())
        return out


def train_ppm(
    policy_ckpt: str | os.PathLike[str],
    pairs: Sequence[PreferencePair],
    out_dir: str | os.PathLike[str],
    cfg: TrainConfig,
    resume: bool = False,
    force: bool = False,
    *,
    score_scale: float = 5.0,
    progress: bool = True,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainReport:
    """Train a PPM from `policy_ckpt` on `pairs`; write the PPM checkpoint to `out_dir`.

    `report.eval_metrics[i]['pairwise_accuracy']` is epoch i's held-out accuracy (empty when
    `cfg.eval_fraction` is 0), with `pairwise_accuracy_KIND` / `held_KIND` per pair kind. `resume` / `force` as in `train_policy`.
    """
    if not pairs:
        raise InputError("no preference pairs")
    if not isinstance(cfg, TrainConfig):
        raise InputError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if cfg.lora is not None:
        raise InputError(
            "TrainConfig.lora is for policy SFT only; PPM training trains full weights"
        )
    if not (isinstance(score_scale, (int, float)) and score_scale > 0):
        raise InputError(f"score_scale must be positive, got {score_scale!r}")
    start = Path(policy_ckpt)
    device = resolve_device(cfg)
    run_dir = RunDir(out_dir, resume=resume, force=force)
    if run_dir.status == "complete":
        return run_dir.stored_report()
    torch.manual_seed(cfg.seed)
    lm = load_causal_lm(start, device, cfg.seed)
    model = ValueHeadModel(lm.model, score_scale=float(score_scale)).to(device)
    # The base model and the head; not an untied LM head (the PPM never runs it).
    trainable = [*model.base.parameters(), *model.head.parameters()]
    feats = build_pair_features(lm.tokenizer, pairs, cfg.max_len)
    train_idx, eval_idx = split_eval([f.problem_id for f in feats], cfg.eval_fraction, cfg.seed)
    data_hash = data_sha256(pairs)
    fp = run_fingerprint("ppm", start, cfg, data_hash, score_scale=float(score_scale))
    report = run_training(
        model=model,
        params=list({id(p): p for p in trainable if p.requires_grad}.values()),
        task=_PPMTask(pad_id(lm.tokenizer), cfg.batch_size),
        train_items=[feats[i] for i in train_idx],
        eval_items=[feats[i] for i in eval_idx],
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        fp=fp,
        desc="ppm",
        progress=progress,
        on_step=on_step,
    )
    kinds: dict[str, int] = {}
    for pr in pairs:
        kinds[pr.kind] = kinds.get(pr.kind, 0) + 1
    provenance = {
        "created_by": "edgestar.train.ppm_train.train_ppm",
        "method": "bradley-terry",
        "base": str(start.resolve()),
        "n_pairs": len(pairs),
        "pair_kinds": kinds,
        "n_truncated": sum(f.truncated for f in feats),
        "n_problems": len({pr.problem_id for pr in pairs}),
        "data_sha256": data_hash,
        "added_special_tokens": list(lm.added_tokens),
        "config": cfg.to_json(),
        "report": report.to_json(),
    }

    def write(folder: Path) -> None:
        lm.model.config.use_cache = True
        if lm.stored_dtype != torch.float32:
            model.backbone.to(lm.stored_dtype)  # the head stays float32
        model.save_checkpoint(
            folder,
            lm.tokenizer,
            provenance=provenance,
            step_format=lm.step_format,
            special_tokens=lm.special_tokens,
        )

    run_dir.commit(write)
    return report


def pairwise_accuracy(
    ppm_ckpt: str | os.PathLike[str],
    pairs: Sequence[PreferencePair],
    *,
    device: str = "cpu",
    batch_size: int = 16,
) -> float:
    """Share of `pairs` whose chosen continuation the PPM scores above the rejected one (raw
    rewards through `TorchReward`; ties count one half)."""
    if not pairs:
        raise InputError("no preference pairs")
    rm = TorchReward(ppm_ckpt, device=device, batch_size=batch_size)
    try:
        texts = [p.prefix + p.chosen for p in pairs] + [p.prefix + p.rejected for p in pairs]
        r = rm.raw_rewards(texts)
    finally:
        rm.close()
    n = len(pairs)
    wins = sum(1.0 if r[i] > r[n + i] else 0.5 if r[i] == r[n + i] else 0.0 for i in range(n))
    return wins / n
