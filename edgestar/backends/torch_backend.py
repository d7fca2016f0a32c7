"""Reference backend on torch + transformers: `TorchPolicy`, `TorchReward`, `ValueHeadModel`.

Owns:
- `TorchPolicy`: the `Policy` protocol on a transformers causal LM. Each request's prefix is
  evaluated once; its KV cache is then repeated to k rows and the k candidates are decoded
  together, token by token, with the shared sampler (`sampling.candidate_rngs`, `sample_token`,
  `StopMatcher`), so a seed picks the same tokens here as in every other backend given the same
  logits. Finished rows leave the batch (their cache rows are dropped).
- `TorchReward`: the `Reward` protocol on a PPM checkpoint (edgestar.checkpoint's contract): the
  backbone's last-token final hidden state (after the final norm) -> r = w . h + b ->
  tanh(r / score_scale).
- `ValueHeadModel`: the PPM as a trainable nn.Module (backbone + Linear(hidden, 1)), with the
  value-head file's reader and writer (`save_value_head`, `load_value_head`). Training
  (train/) and inference (`TorchReward`) run this same module, so they compute the same score.
- `encode_prefix`: how a text prefix becomes token ids (shared by policy and reward).
- `TorchPolicy.hidden_states`: `hidden_states[-1]` for a reward head on the policy's own state
  (edgestar.head), the same tensor llama.cpp records while generating.

This is the only module under edgestar/ that imports torch; nothing imports it at package import
time (load it lazily). It is the reference the llama.cpp and ONNX backends are checked against,
and the training stack's model code; it is not the fast path on a CPU.

Threads: instances are not meant to be shared between threads. Each holds one lock, so
concurrent calls are serialised rather than corrupted. `threads=` calls torch.set_num_threads,
which is process-wide.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import (
    META_FILE,
    VALUE_HEAD_FILE,
    CheckpointMeta,
    atomic_write_bytes,
    read_meta,
    write_meta,
)
from ..types import InputError, ModelError, one_line
from .base import Candidate, Proposal, StepRequest
from .sampling import StopMatcher, candidate_rngs, sample_token

__all__ = [
    "TorchPolicy",
    "TorchReward",
    "ValueHeadModel",
    "encode_prefix",
    "tokenizer_adds_bos",
    "load_value_head",
    "save_value_head",
]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


# ----------------------------------------------------------------------------- loading helpers


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise InputError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}") from None


def _check_folder(ckpt_dir: str | os.PathLike[str]) -> Path:
    path = Path(ckpt_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: no such checkpoint folder")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a model folder (no config.json)")
    return path


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time chatter (e.g. 'unused weights: lm_head' when a PPM
    backbone is loaded from a causal-LM folder), restoring the previous verbosity."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
    except Exception as e:  # transformers raises OSError, ValueError, TypeError, KeyError...
        raise ModelError(f"{path}: cannot load the tokenizer ({one_line(e)})") from e


def _load_model(auto_cls: Any, path: Path, dtype: torch.dtype, device: torch.device) -> Any:
    try:
        with _quiet_transformers():
            model = auto_cls.from_pretrained(path, local_files_only=True, dtype=dtype)
    except Exception as e:
        raise ModelError(f"{path}: cannot load the model ({one_line(e)})") from e
    return model.to(device).eval()


def _read_meta_optional(path: Path) -> CheckpointMeta | None:
    return read_meta(path) if (path / META_FILE).exists() else None


def _check_tokenizer(path: Path, tokenizer: Any, config: Any, meta: CheckpointMeta | None) -> None:
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise ModelError(
            f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
            f"is {vocab}"
        )
    for s in meta.special_tokens if meta else ():
        ids = tokenizer.encode(s, add_special_tokens=False)
        if len(ids) != 1:
            raise ModelError(f"{path}: special token {s!r} is not one token (ids {ids})")


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts a BOS token in front of a text by default."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer.encode("0", add_special_tokens=True)[:1] == [bos]


def encode_prefix(tokenizer: Any, text: str, add_bos: bool | None = None) -> list[int]:
    """Token ids of a prefix: special tokens (markers) as their single ids; a BOS id in front
    when the tokenizer adds one by default (`add_bos=None`: ask it) and the text does not
    already start with it; the EOS id alone for an empty text when there is no BOS (GPT-2
    convention: a model needs at least one token to predict from). edgestar's own tokenizers
    have no BOS, so their prefixes are encoded as they are."""
    ids: list[int] = tokenizer.encode(text, add_special_tokens=False)
    if add_bos is None:
        add_bos = tokenizer_adds_bos(tokenizer)
    bos = tokenizer.bos_token_id
    if add_bos and bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    if not ids:
        if tokenizer.eos_token_id is None:
            raise InputError("empty prefix and the tokenizer has no BOS or EOS token")
        ids = [tokenizer.eos_token_id]
    return ids


def _max_positions(config: Any) -> int | None:
    v = getattr(config, "max_position_embeddings", None)
    return int(v) if v else None


# ----------------------------------------------------------------------------------- policy


class TorchPolicy:
    """`Policy` on a transformers causal LM folder (local files only).

    Requests are served one after another; the k candidates of one request are decoded as one
    batch sharing the prefix's KV cache. `Proposal.tokens_evaluated` = prefix tokens + generated
    tokens (an EOS counts as generated: the model produced it). Works for edgestar checkpoints
    (edgestar.json is validated when present: each special token must be one token id) and for
    any HF causal LM with a chat template (the 'plain' format).
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike[str],
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        path = _check_folder(ckpt_dir)
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise InputError(f"threads must be a positive whole number, got {threads!r}")
            torch.set_num_threads(threads)
        from transformers import AutoModelForCausalLM

        self.path = path
        self.meta = _read_meta_optional(path)
        self.device = _resolve_device(device)
        self.tokenizer = _load_tokenizer(path)
        self._add_bos = tokenizer_adds_bos(self.tokenizer)
        self.model: Any = _load_model(
            AutoModelForCausalLM, path, _resolve_dtype(dtype), self.device
        )
        _check_tokenizer(path, self.tokenizer, self.model.config, self.meta)
        self.name = name or f"torch:{path.name}"
        self.max_positions = _max_positions(self.model.config)
        eos: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            eos.add(int(self.tokenizer.eos_token_id))
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if gen_eos is not None:
            eos.update(
                int(t) for t in (gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
            )
        self.eos_ids = frozenset(eos)
        self._lock = threading.Lock()

    # -- Policy protocol

    def propose(self, requests: Sequence[StepRequest]) -> list[Proposal]:
        with self._lock, torch.inference_mode():
            if self.model is None:
                raise ModelError(f"{self.name}: policy is closed")
            return [self._propose_one(r) for r in requests]

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str | None:
        if not getattr(self.tokenizer, "chat_template", None):
            return None
        try:
            out = self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        except Exception as e:  # jinja2 errors, bad message dicts
            raise ModelError(f"{self.name}: chat template failed ({one_line(e)})") from e
        return str(out)

    def close(self) -> None:
        with self._lock:
            self.model = None

    # -- hidden states (HiddenStates protocol: a reward head on this policy's own state)

    def enable_hidden(self) -> None:
        """Nothing to switch on: candidates carry no state here, so a head scores each step
        through `hidden_states` (one prefix pass each; the llama.cpp backend records them)."""

    @property
    def n_embd(self) -> int:
        return int(self.model.config.hidden_size)

    def hidden_states(self, prefixes: Sequence[str]) -> np.ndarray:
        """[len(prefixes), hidden] `hidden_states[-1]` (after the final norm) at each prefix's
        second-to-last token: the position that predicts its last one (as llama.cpp's)."""
        with self._lock, torch.inference_mode():
            if self.model is None:
                raise ModelError(f"{self.name}: policy is closed")
            out = np.zeros((len(prefixes), self.n_embd), dtype=np.float32)
            for i, p in enumerate(prefixes):
                ids = self.encode(p)
                ids = ids[:-1] if len(ids) > 1 else ids
                o = self.model(
                    input_ids=torch.tensor([ids], device=self.device), output_hidden_states=True
                )
                out[i] = o.hidden_states[-1][0, -1].float().cpu().numpy()
            return out

    # -- internals

    def encode(self, text: str) -> list[int]:
        return encode_prefix(self.tokenizer, text, self._add_bos)

    def _decode(self, ids: list[int]) -> str:
        return str(
            self.tokenizer.decode(
                ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        )

    def _propose_one(self, req: StepRequest) -> Proposal:
        k = req.k
        ids = self.encode(req.prefix)
        n_prompt = len(ids)
        budget = req.max_tokens
        if self.max_positions is not None:
            if n_prompt > self.max_positions:
                raise InputError(
                    f"prefix is {n_prompt} tokens; the model's context holds {self.max_positions}"
                )
            # The last generated token is never fed back, hence the + 1.
            budget = min(budget, self.max_positions - n_prompt + 1)

        out = self.model(
            input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1
        )
        cache = out.past_key_values
        if k > 1:
            cache.batch_repeat_interleave(k)
        logits = out.logits[:, -1, :].float().expand(k, -1)

        rngs = candidate_rngs(req.seed, k)
        matcher = StopMatcher(req.stop)
        toks: list[list[int]] = [[] for _ in range(k)]
        logprobs = [0.0] * k
        results: list[Candidate | None] = [None] * k
        active = list(range(k))  # candidate index of each batch row
        while active:
            lg = logits.cpu().numpy()
            keep_rows: list[int] = []
            feed: list[int] = []
            for row, ci in enumerate(active):
                tok, lp = sample_token(lg[row], req.temperature, req.top_p, rngs[ci])
                logprobs[ci] += lp
                if tok in self.eos_ids:
                    results[ci] = Candidate(
                        self._decode(toks[ci]), len(toks[ci]) + 1, "eos", None, logprobs[ci]
                    )
                    continue
                toks[ci].append(tok)
                text = self._decode(toks[ci])
                hit = matcher.check(text) if matcher.stops else None
                if hit is not None:
                    results[ci] = Candidate(hit[0], len(toks[ci]), "stop", hit[1], logprobs[ci])
                elif len(toks[ci]) >= budget:
                    results[ci] = Candidate(text, len(toks[ci]), "length", None, logprobs[ci])
                else:
                    keep_rows.append(row)
                    feed.append(tok)
            if not keep_rows:
                break
            if len(keep_rows) < len(active):
                cache.batch_select_indices(torch.tensor(keep_rows, device=self.device))
            active = [active[r] for r in keep_rows]
            out = self.model(
                input_ids=torch.tensor(feed, device=self.device).view(-1, 1),
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()

        cands = tuple(c for c in results if c is not None)
        assert len(cands) == k
        return Proposal(cands, n_prompt + sum(c.n_tokens for c in cands))


# ------------------------------------------------------------------------------- value head


def save_value_head(
    ckpt_dir: str | os.PathLike[str], weight: torch.Tensor, bias: torch.Tensor
) -> Path:
    """Write value_head.safetensors ({"weight": [1, H], "bias": [1]}, float32) atomically."""
    from safetensors.torch import save

    w = weight.detach().to("cpu", torch.float32).reshape(1, -1).contiguous()
    b = bias.detach().to("cpu", torch.float32).reshape(1).contiguous()
    path = Path(ckpt_dir) / VALUE_HEAD_FILE
    atomic_write_bytes(path, save({"weight": w, "bias": b}))
    return path


def load_value_head(
    ckpt_dir: str | os.PathLike[str], hidden_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read value_head.safetensors -> (weight [1, H], bias [1]) float32; ModelError if missing,
    unreadable or of the wrong shape."""
    from safetensors.torch import load_file

    path = Path(ckpt_dir) / VALUE_HEAD_FILE
    if not path.is_file():
        raise ModelError(f"{ckpt_dir}: PPM checkpoint has no {VALUE_HEAD_FILE}")
    try:
        t = load_file(str(path))
    except Exception as e:
        raise ModelError(f"{path}: unreadable ({one_line(e)})") from e
    if set(t) != {"weight", "bias"}:
        raise ModelError(f"{path}: expected tensors 'weight' and 'bias', got {sorted(t)}")
    w, b = t["weight"].float(), t["bias"].float()
    if w.dim() != 2 or w.shape[0] != 1 or tuple(b.shape) != (1,):
        raise ModelError(
            f"{path}: weight must be [1, H] and bias [1], got {list(w.shape)} and {list(b.shape)}"
        )
    if hidden_size is not None and w.shape[1] != hidden_size:
        raise ModelError(
            f"{path}: value head is {w.shape[1]} wide but the model's hidden size is {hidden_size}"
        )
    if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
        raise ModelError(f"{path}: value head holds non-finite numbers")
    return w, b


class ValueHeadModel(nn.Module):
    """The PPM: a transformer backbone plus Linear(hidden, 1) on the last real token's final
    hidden state (after the final norm). `forward` returns raw rewards r (float32, shape [B]) -
    the quantity the pairwise Bradley-Terry loss trains; `squash(r)` = tanh(r / score_scale) is
    the score the runtime sees.

    `backbone` may be a causal LM (a PPM starts as a copy of the policy, SEEDS.md) or its base
    model; only the base model runs. The head is kept in float32 whatever the backbone's dtype.
    """

    def __init__(
        self, backbone: nn.Module, score_scale: float = 5.0, hidden_size: int | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        h = hidden_size or int(backbone.config.hidden_size)
        self.head = nn.Linear(h, 1, dtype=torch.float32)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if not (score_scale > 0):
            raise InputError(f"score_scale must be positive, got {score_scale!r}")
        self.score_scale = float(score_scale)

    @property
    def hidden_size(self) -> int:
        return int(self.head.in_features)

    @property
    def base(self) -> nn.Module:
        """The backbone's base model (the causal LM without its LM head)."""
        return getattr(self.backbone, "base_model", self.backbone)

    def last_hidden(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Final hidden state of each row's last real token, [B, H] float32. Pad on the right;
        without a mask every row is taken as full length."""
        if attention_mask is None:
            hs = self.base(input_ids=input_ids, use_cache=False).last_hidden_state
            return hs[:, -1, :].float()
        mask = attention_mask.to(torch.long)
        position_ids = (mask.cumsum(1) - 1).clamp(min=0)
        hs = self.base(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask).argmax(dim=1)
        return hs[torch.arange(hs.shape[0], device=hs.device), last].float()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.reward_from_hidden(self.last_hidden(input_ids, attention_mask))

    def reward_from_hidden(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h.float()).squeeze(-1)

    def squash(self, r: torch.Tensor) -> torch.Tensor:
        return torch.tanh(r / self.score_scale)

    def value_head_meta(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "score_scale": self.score_scale, "squash": "tanh"}

    def save_value_head(self, ckpt_dir: str | os.PathLike[str]) -> Path:
        return save_value_head(ckpt_dir, self.head.weight, self.head.bias)

    def load_value_head(self, ckpt_dir: str | os.PathLike[str]) -> None:
        w, b = load_value_head(ckpt_dir, self.hidden_size)
        with torch.no_grad():
            self.head.weight.copy_(w)
            self.head.bias.copy_(b)

    def save_checkpoint(
        self,
        out_dir: str | os.PathLike[str],
        tokenizer: Any,
        provenance: dict[str, Any] | None = None,
        step_format: str = "rstar",
        special_tokens: Sequence[str] | None = None,
    ) -> Path:
        """Write a complete PPM checkpoint folder: backbone (save_pretrained, safetensors),
        tokenizer, value_head.safetensors, edgestar.json (role 'ppm')."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out, safe_serialization=True)  # type: ignore[operator]
        tokenizer.save_pretrained(out)
        self.save_value_head(out)
        specials = (
            tuple(special_tokens)
            if special_tokens is not None
            else tuple(getattr(tokenizer, "additional_special_tokens", ()))
        )
        write_meta(
            out,
            CheckpointMeta(
                role="ppm",
                step_format=step_format,
                special_tokens=specials,
                value_head=self.value_head_meta(),
                provenance=dict(provenance or {}),
            ),
        )
        return out

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_dir: str | os.PathLike[str],
        *,
        causal_lm: bool = True,
        load_head: bool | None = None,
        score_scale: float | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device = "cpu",
    ) -> ValueHeadModel:
        """Build from a checkpoint folder. A policy folder gives a fresh head (zeros: every
        score 0 until trained); a PPM folder also loads its head (`load_head` overrides).
        `causal_lm=True` keeps the LM head so `save_checkpoint` writes a causal-LM folder
        (what the exporters expect); False loads the base model only (inference)."""
        from transformers import AutoModel, AutoModelForCausalLM

        path = _check_folder(ckpt_dir)
        meta = _read_meta_optional(path)
        is_ppm = meta is not None and meta.role == "ppm"
        if score_scale is None:
            score_scale = meta.score_scale if is_ppm and meta is not None else 5.0
        auto = AutoModelForCausalLM if causal_lm else AutoModel
        backbone = _load_model(auto, path, _resolve_dtype(dtype), _resolve_device(device))
        model = cls(backbone, score_scale=score_scale)
        if load_head is None:
            load_head = is_ppm
        if load_head:
            model.load_value_head(path)
        return model.to(_resolve_device(device))


# ----------------------------------------------------------------------------------- reward


class TorchReward:
    """`Reward` on a PPM checkpoint folder: scores in (-1, 1).

    Prefixes are encoded like the policy's (`encode_prefix`), sorted by length and run in
    right-padded batches of up to `batch_size` rows without an attention mask: under the causal
    mask a real token never sees the padding after it, so each row's last real token gets
    exactly its unpadded hidden state.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike[str],
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        threads: int | None = None,
        batch_size: int = 16,
        name: str | None = None,
    ) -> None:
        path = _check_folder(ckpt_dir)
        meta = read_meta(path)
        if meta.role != "ppm":
            raise ModelError(f"{path}: edgestar.json role is {meta.role!r}, not 'ppm'")
        vh = meta.value_head or {}
        if vh.get("squash", "tanh") != "tanh":
            raise ModelError(f"{path}: value head squash {vh.get('squash')!r} is not supported")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive whole number, got {batch_size!r}")
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise InputError(f"threads must be a positive whole number, got {threads!r}")
            torch.set_num_threads(threads)
        self.path = path
        self.meta = meta
        self.device = _resolve_device(device)
        self.tokenizer = _load_tokenizer(path)
        self._add_bos = tokenizer_adds_bos(self.tokenizer)
        self.model: ValueHeadModel | None = ValueHeadModel.from_checkpoint(
            path, causal_lm=False, load_head=True, dtype=dtype, device=self.device
        ).eval()
        config = self.model.backbone.config
        if vh.get("hidden_size") not in (None, self.model.hidden_size):
            raise ModelError(
                f"{path}: edgestar.json value_head.hidden_size is {vh.get('hidden_size')} but "
                f"the model's hidden size is {self.model.hidden_size}"
            )
        _check_tokenizer(path, self.tokenizer, config, meta)
        self.max_positions = _max_positions(config)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.tokenizer.eos_token_id or 0))
        self.batch_size = batch_size
        self.name = name or f"torch-ppm:{path.name}"
        self._lock = threading.Lock()

    def score(self, prefixes: Sequence[str]) -> list[float]:
        with self._lock, torch.inference_mode():
            if self.model is None:
                raise ModelError(f"{self.name}: reward model is closed")
            return self._score(prefixes)

    def raw_rewards(self, prefixes: Sequence[str]) -> list[float]:
        """r = w . h + b before squashing (for training diagnostics)."""
        with self._lock, torch.inference_mode():
            if self.model is None:
                raise ModelError(f"{self.name}: reward model is closed")
            return self._score(prefixes, squash=False)

    def close(self) -> None:
        with self._lock:
            self.model = None

    def _score(self, prefixes: Sequence[str], squash: bool = True) -> list[float]:
        assert self.model is not None
        encoded = [encode_prefix(self.tokenizer, p, self._add_bos) for p in prefixes]
        if self.max_positions is not None:
            for ids in encoded:
                if len(ids) > self.max_positions:
                    raise InputError(
                        f"prefix is {len(ids)} tokens; the model's context holds "
                        f"{self.max_positions}"
                    )
        out = np.zeros(len(encoded), dtype=np.float64)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in rows)
            batch = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            for j, i in enumerate(rows):
                batch[j, : len(encoded[i])] = torch.tensor(encoded[i])
            batch = batch.to(self.device)
            hs = self.model.base(input_ids=batch, use_cache=False).last_hidden_state
            last = torch.tensor([len(encoded[i]) - 1 for i in rows], device=hs.device)
            h = hs[torch.arange(len(rows), device=hs.device), last]
            r = self.model.reward_from_hidden(h)
            s = self.model.squash(r) if squash else r
            out[rows] = s.double().cpu().numpy()
        return [float(x) for x in out]
