"""Policy training: supervised fine-tuning on correct trajectories, and step-level DPO.

Owns:
- `train_policy`: SFT of the policy on `SFTExample`s (rStar-Math: the top-2 correct trajectories
  per solved problem, by mean Q). Always starts from the BASE checkpoint it is given - rStar-Math
  retrains from the base model every round rather than continuing from the last round's policy.
  Each example is tokenized as prompt + solution + EOS (prompt with `encode_prefix`, exactly as
  the runtime encodes a prefix; the solution on its own, its markers as single special-token
  ids); the loss covers the solution and the EOS only (prompt and padding labels are -100).
  Sequences longer than `cfg.max_len` lose their tail; an example whose prompt alone fills
  `max_len` is dropped (both counted in the provenance).
- `train_policy_dpo`: step-level DPO on `PreferencePair`s (Phi-4's pivotal pairs at step
  granularity): loss -log sigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r))), with log-probs
  summed over the continuation tokens and the reference = the frozen starting checkpoint (its
  log-probs are computed once, before training). Departure from Phi-4: pairs are whole steps,
  not single tokens.
- `build_sft_features`, `sequence_nll`: the tokenization and the per-token NLL used by the
  evaluation (and the tests).

Both write the final checkpoint atomically (a `.<name>.partial` folder beside `out_dir`,
renamed at the end), resume from `out_dir/.state` with `resume=True`, and refuse an existing
`out_dir` unless `force` or `resume` (see train/trainer.py).
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

from edgestar.backends.torch_backend import encode_prefix, tokenizer_adds_bos
from edgestar.checkpoint import CheckpointMeta, write_meta
from edgestar.types import InputError

from ._rundir import checkpoint_identity
from .datasets import PreferencePair, SFTExample
from .lora import apply_lora, load_adapter_weights, save_adapter
from .trainer import (
    LoadedModel,
    RunDir,
    StepInfo,
    TrainConfig,
    TrainReport,
    autocast_for,
    data_sha256,
    load_causal_lm,
    pad_id,
    resolve_device,
    run_fingerprint,
    run_training,
    split_eval,
)

__all__ = [
    "DPOFeature",
    "SFTFeature",
    "build_dpo_features",
    "build_sft_features",
    "sequence_nll",
    "train_policy",
    "train_policy_dpo",
]

IGNORE = -100


# --------------------------------------------------------------------------------- features


@dataclass(frozen=True)
class SFTFeature:
    problem_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    """-100 on prompt tokens; the token id itself on solution tokens (and the EOS)."""
    n_prompt: int
    truncated: bool


def build_sft_features(
    tokenizer: Any, examples: Sequence[SFTExample], max_len: int, add_eos: bool = True
) -> tuple[list[SFTFeature], int]:
    """(features, number of examples dropped because the prompt alone fills max_len)."""
    add_bos = tokenizer_adds_bos(tokenizer)
    eos = tokenizer.eos_token_id
    out: list[SFTFeature] = []
    dropped = 0
    for ex in examples:
        if not isinstance(ex, SFTExample):
            raise InputError(f"expected SFTExample items, got {type(ex).__name__}")
        if not ex.solution:
            raise InputError(f"problem {ex.problem_id!r}: empty solution")
        p = encode_prefix(tokenizer, ex.prompt, add_bos)
        s: list[int] = tokenizer.encode(ex.solution, add_special_tokens=False)
        if add_eos and eos is not None:
            s = [*s, int(eos)]
        ids = p + s
        truncated = len(ids) > max_len
        ids = ids[:max_len]
        if len(p) >= len(ids):
            dropped += 1
            continue
        labels = [IGNORE] * len(p) + ids[len(p) :]
        out.append(SFTFeature(ex.problem_id, tuple(ids), tuple(labels), len(p), truncated))
    return out, dropped


def _pad(rows: Sequence[Sequence[int]], value: int, device: torch.device) -> torch.Tensor:
    width = max(len(r) for r in rows)
    t = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return t.to(device)


def _token_nll_sum(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).logits
    labels = batch["labels"][:, 1:]
    n = int((labels != IGNORE).sum())
    nll = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return nll, n


class _SFTTask:
    def __init__(self, pad: int, batch_size: int) -> None:
        self.pad = pad
        self.batch_size = batch_size

    def collate(self, items: Sequence[SFTFeature], device: torch.device) -> dict[str, Any]:
        ids = _pad([f.input_ids for f in items], self.pad, device)
        mask = _pad([[1] * len(f.input_ids) for f in items], 0, device)
        labels = _pad([f.labels for f in items], IGNORE, device)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        nll, n = _token_nll_sum(model, batch)
        return nll / max(1, n), int(batch["attention_mask"].sum())

    def evaluate(self, model: nn.Module, items: Sequence[SFTFeature]) -> dict[str, float]:
        device = next(model.parameters()).device
        total, n = 0.0, 0
        for i in range(0, len(items), self.batch_size):
            nll, k = _token_nll_sum(model, self.collate(items[i : i + self.batch_size], device))
            total += float(nll)
            n += k
        return {"loss": total / max(1, n)}


def sequence_nll(
    model: nn.Module, features: Sequence[SFTFeature], pad: int, batch_size: int = 16
) -> float:
    """Mean per-token NLL of the labelled (solution) tokens of `features` under `model`."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = _SFTTask(pad, batch_size).evaluate(model, features)["loss"]
    model.train(was_training)
    return out


# ----------------------------------------------------------------------------- final writes


def _save_policy(folder: Path, lm: LoadedModel, provenance: dict[str, Any], method: str) -> None:
    model = lm.model
    if provenance.get("lora") is not None:  # a LoRA run: the checkpoint is the adapter
        meta = CheckpointMeta(
            role="policy",
            step_format=lm.step_format,
            special_tokens=lm.special_tokens,
            provenance={"created_by": f"edgestar.train.sft.{method}", **provenance},
        )
        save_adapter(model, folder, meta)
        return
    model.config.use_cache = True
    if lm.stored_dtype != torch.float32:
        model.to(lm.stored_dtype)
    model.save_pretrained(folder, safe_serialization=True)
    lm.tokenizer.save_pretrained(folder)
    write_meta(  # last: its presence marks the folder complete
        folder,
        CheckpointMeta(
            role="policy",
            step_format=lm.step_format,
            special_tokens=lm.special_tokens,
            provenance={"created_by": f"edgestar.train.sft.{method}", **provenance},
        ),
    )


def _finish(
    run_dir: RunDir, lm: LoadedModel, report: TrainReport, provenance: dict[str, Any], method: str
) -> TrainReport:
    provenance = {**provenance, "report": report.to_json()}
    run_dir.commit(lambda folder: _save_policy(folder, lm, provenance, method))
    return report


# ---------------------------------------------------------------------------------------- SFT


def train_policy(
    base_ckpt: str | os.PathLike[str],
    examples: Sequence[SFTExample],
    out_dir: str | os.PathLike[str],
    cfg: TrainConfig,
    resume: bool = False,
    force: bool = False,
    *,
    progress: bool = True,
    on_step: Callable[[StepInfo], None] | None = None,
    step_format: str | None = None,
    init_adapter: str | os.PathLike[str] | None = None,
) -> TrainReport:
    """SFT the policy from `base_ckpt` on `examples`; write the checkpoint to `out_dir`.

    `resume=True` continues an interrupted run (or returns the stored report when `out_dir`
    is already finished); `force=True` deletes `out_dir` first. The held-out split is by
    problem_id (`cfg.eval_fraction`); its token NLL is evaluated each epoch.

    With `cfg.lora` only LoRA adapters are trained on the frozen base (`base_ckpt` may then be
    a GGUF file: train/lora.py) and `out_dir` is the adapter folder. `step_format` overrides
    the base's (needed for a base without edgestar metadata, e.g. a third-party GGUF).
    `init_adapter` (with `cfg.lora`): start the adapters from that finished adapter folder
    instead of peft's fresh init (a round continuing the previous round's adapter).
    """
    if not examples:
        raise InputError("no SFT examples")
    if not isinstance(cfg, TrainConfig):
        raise InputError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    base = Path(base_ckpt)
    device = resolve_device(cfg)
    run_dir = RunDir(out_dir, resume=resume, force=force)
    if run_dir.status == "complete":
        return run_dir.stored_report()
    torch.manual_seed(cfg.seed)
    lm = load_causal_lm(
        base, device, cfg.seed, step_format=step_format, add_tokens=cfg.lora is None
    )
    if init_adapter is not None and cfg.lora is None:
        raise InputError("init_adapter continues a LoRA adapter: cfg.lora must be set")
    if cfg.lora is not None:
        lm.model = apply_lora(lm.model, cfg.lora, cfg.seed)
        if init_adapter is not None:
            load_adapter_weights(lm.model, init_adapter)
    features, dropped = build_sft_features(lm.tokenizer, examples, cfg.max_len)
    if not features:
        raise InputError(f"every example's prompt is at least max_len={cfg.max_len} tokens")
    train_idx, eval_idx = split_eval([f.problem_id for f in features], cfg.eval_fraction, cfg.seed)
    data_hash = data_sha256(examples)
    extra: dict[str, Any] = {"step_format": lm.step_format} if step_format else {}
    if init_adapter is not None:
        extra["init_adapter"] = checkpoint_identity(Path(init_adapter))
    fp = run_fingerprint("sft", base, cfg, data_hash, **extra)
    report = run_training(
        model=lm.model,
        params=[p for p in lm.model.parameters() if p.requires_grad],
        task=_SFTTask(pad_id(lm.tokenizer), cfg.batch_size),
        train_items=[features[i] for i in train_idx],
        eval_items=[features[i] for i in eval_idx],
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        fp=fp,
        desc="sft",
        progress=progress,
        on_step=on_step,
    )
    provenance = {
        "method": "sft",
        "base": str(base.resolve()),
        "n_examples": len(examples),
        "n_features": len(features),
        "n_dropped_too_long": dropped,
        "n_truncated": sum(f.truncated for f in features),
        "n_problems": len({ex.problem_id for ex in examples}),
        "data_sha256": data_hash,
        "added_special_tokens": list(lm.added_tokens),
        "config": cfg.to_json(),
        "lora": cfg.lora.to_json() if cfg.lora is not None else None,
        **({"init_adapter": str(Path(init_adapter).resolve())} if init_adapter else {}),
    }
    return _finish(run_dir, lm, report, provenance, "train_policy")


# ---------------------------------------------------------------------------------------- DPO


@dataclass(frozen=True)
class DPOFeature:
    problem_id: str
    chosen_ids: tuple[int, ...]
    chosen_labels: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    rejected_labels: tuple[int, ...]
    ref_chosen: float = 0.0
    ref_rejected: float = 0.0


def _prefix_plus(
    tokenizer: Any, prefix: str, cont: str, max_len: int, add_bos: bool
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    p = encode_prefix(tokenizer, prefix, add_bos)
    c: list[int] = tokenizer.encode(cont, add_special_tokens=False)
    if not c:
        return None
    c = c[: max_len - 1]
    p = p[-(max_len - len(c)) :]  # keep the end of the prefix: it is what the step follows
    return tuple(p + c), tuple([IGNORE] * len(p) + c)


def build_dpo_features(
    tokenizer: Any, pairs: Sequence[PreferencePair], max_len: int
) -> list[DPOFeature]:
    add_bos = tokenizer_adds_bos(tokenizer)
    out: list[DPOFeature] = []
    for pr in pairs:
        if not isinstance(pr, PreferencePair):
            raise InputError(f"expected PreferencePair items, got {type(pr).__name__}")
        c = _prefix_plus(tokenizer, pr.prefix, pr.chosen, max_len, add_bos)
        r = _prefix_plus(tokenizer, pr.prefix, pr.rejected, max_len, add_bos)
        if c is None or r is None:
            raise InputError(f"problem {pr.problem_id!r}: a pair with an empty continuation")
        out.append(DPOFeature(pr.problem_id, c[0], c[1], r[0], r[1]))
    return out


def _seq_logps(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
    tgt = labels[:, 1:]
    keep = tgt != IGNORE
    lp = torch.log_softmax(logits, dim=-1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * keep).sum(-1)


class _DPOTask:
    def __init__(self, pad: int, batch_size: int, beta: float) -> None:
        self.pad = pad
        self.batch_size = batch_size
        self.beta = beta

    def collate(self, items: Sequence[DPOFeature], device: torch.device) -> dict[str, Any]:
        seqs = [f.chosen_ids for f in items] + [f.rejected_ids for f in items]
        labels = [f.chosen_labels for f in items] + [f.rejected_labels for f in items]
        ref = [f.ref_chosen for f in items] + [f.ref_rejected for f in items]
        return {
            "input_ids": _pad(seqs, self.pad, device),
            "attention_mask": _pad([[1] * len(s) for s in seqs], 0, device),
            "labels": _pad(labels, IGNORE, device),
            "ref": torch.tensor(ref, dtype=torch.float32, device=device),
            "n": len(items),
        }

    def _margins(self, model: nn.Module, b: dict[str, Any]) -> torch.Tensor:
        lp = _seq_logps(model, b["input_ids"], b["attention_mask"], b["labels"])
        d = lp - b["ref"]
        n = b["n"]
        return self.beta * (d[:n] - d[n:])

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        m = self._margins(model, batch)
        return -F.logsigmoid(m).mean(), int(batch["attention_mask"].sum())

    def evaluate(self, model: nn.Module, items: Sequence[DPOFeature]) -> dict[str, float]:
        device = next(model.parameters()).device
        ms = []
        for i in range(0, len(items), self.batch_size):
            ms.append(self._margins(model, self.collate(items[i : i + self.batch_size], device)))
        m = torch.cat(ms)
        acc = ((m > 0).float() + 0.5 * (m == 0).float()).mean()
        return {
            "loss": float(-F.logsigmoid(m).mean()),
            "pref_accuracy": float(acc),
            "margin": float(m.mean()),
        }


def _reference_logps(
    model: nn.Module, feats: list[DPOFeature], pad: int, cfg: TrainConfig
) -> list[DPOFeature]:
    """The reference model's summed log-probs of each pair's two continuations, computed under
    the same autocast as training (so that at step 0 the policy's margins are ~0)."""
    batch_size = cfg.batch_size
    task = _DPOTask(pad, batch_size, 1.0)
    device = next(model.parameters()).device
    out: list[DPOFeature] = []
    model.eval()
    with torch.no_grad(), autocast_for(cfg, device):
        for i in range(0, len(feats), batch_size):
            chunk = feats[i : i + batch_size]
            b = task.collate(chunk, device)
            lp = _seq_logps(model, b["input_ids"], b["attention_mask"], b["labels"]).tolist()
            n = len(chunk)
            out += [
                DPOFeature(
                    f.problem_id,
                    f.chosen_ids,
                    f.chosen_labels,
                    f.rejected_ids,
                    f.rejected_labels,
                    float(lp[j]),
                    float(lp[n + j]),
                )
                for j, f in enumerate(chunk)
            ]
    return out


def train_policy_dpo(
    policy_ckpt: str | os.PathLike[str],
    pairs: Sequence[PreferencePair],
    out_dir: str | os.PathLike[str],
    cfg: TrainConfig,
    resume: bool = False,
    force: bool = False,
    *,
    beta: float = 0.1,
    ref_ckpt: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainReport:
    """Step-level DPO of the policy at `policy_ckpt` (normally the round's SFT policy) on
    preference pairs (normally `kind == 'pivotal'`; other kinds are accepted and counted).
    The reference model is `ref_ckpt` (default: `policy_ckpt` itself, frozen). Held-out metrics
    per epoch: loss, pref_accuracy (share of pairs with a positive implicit-reward margin),
    margin."""
    if not pairs:
        raise InputError("no preference pairs")
    if not isinstance(cfg, TrainConfig):
        raise InputError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if cfg.lora is not None:
        raise InputError("TrainConfig.lora is for policy SFT only; DPO trains full weights")
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise InputError(f"beta must be positive, got {beta!r}")
    start = Path(policy_ckpt)
    ref = Path(ref_ckpt) if ref_ckpt is not None else start
    device = resolve_device(cfg)
    run_dir = RunDir(out_dir, resume=resume, force=force)
    if run_dir.status == "complete":
        return run_dir.stored_report()
    torch.manual_seed(cfg.seed)
    lm = load_causal_lm(start, device, cfg.seed)
    pad = pad_id(lm.tokenizer)
    feats = build_dpo_features(lm.tokenizer, pairs, cfg.max_len)
    if ref.resolve() == start.resolve():
        feats = _reference_logps(lm.model, feats, pad, cfg)
    else:
        ref_lm = load_causal_lm(ref, device, cfg.seed)
        if ref_lm.tokenizer.get_vocab() != lm.tokenizer.get_vocab():
            raise InputError(f"{ref}: the reference model's tokenizer differs from the policy's")
        feats = _reference_logps(ref_lm.model, feats, pad, cfg)
        del ref_lm
    train_idx, eval_idx = split_eval([f.problem_id for f in feats], cfg.eval_fraction, cfg.seed)
    data_hash = data_sha256(pairs)
    fp = run_fingerprint("dpo", start, cfg, data_hash, beta=float(beta), ref=str(ref.resolve()))
    report = run_training(
        model=lm.model,
        params=[p for p in lm.model.parameters() if p.requires_grad],
        task=_DPOTask(pad, cfg.batch_size, float(beta)),
        train_items=[feats[i] for i in train_idx],
        eval_items=[feats[i] for i in eval_idx],
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        fp=fp,
        desc="dpo",
        progress=progress,
        on_step=on_step,
    )
    kinds: dict[str, int] = {}
    for pr in pairs:
        kinds[pr.kind] = kinds.get(pr.kind, 0) + 1
    provenance = {
        "method": "dpo",
        "base": str(start.resolve()),
        "reference": str(ref.resolve()),
        "beta": float(beta),
        "n_pairs": len(pairs),
        "pair_kinds": kinds,
        "data_sha256": data_hash,
        "added_special_tokens": list(lm.added_tokens),
        "config": cfg.to_json(),
    }
    return _finish(run_dir, lm, report, provenance, "train_policy_dpo")
