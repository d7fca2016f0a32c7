"""Torch references of the published scoring rules of the PRM families in `edgestar.prm`, on an
HF-format checkpoint folder: what `edgestar quantize` checks a converted PRM against, and what
the parity tests compare edgestar's llama.cpp scores with.

Each follows its family's published code, written out here (no model-hub code is imported):
- skywork-o1: search-and-learn `skywork_o1_prm/io_utils.prepare_input` (BOS + problem + "\\n",
  each line encoded on its own plus the "\\n" id, reward flag on that id) and `prm_model.py`
  (v_head.summary on `hidden_states[-1]`, sigmoid, read at the flags);
- qwen2.5-math-prm: the model card's `make_step_rewards` (chat template over system, query,
  "<extra_0>".join(steps) + "<extra_0>"; softmax of the head's 2 logits, class 1 at each
  `<extra_0>`); the head is `score` = Linear(h, h) -> ReLU -> Linear(h, 2) on `Qwen2Model`;
- math-shepherd: the model card (f"{question} {output}" with "Step i: ... ки" lines; logits of
  encode("+ -") at every "ки", softmax, index 0);
- rlhflow: the model card (per step k: user/assistant("+") turns up to step k through the chat
  template, logits[-3] of encode("+ -"), softmax, index 0).

Needs torch + transformers (the [quantize] extra). One thread is the caller's business.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.prm import PRM_FAMILIES
from edgestar.types import ModelError

__all__ = ["checkpoint_tensor_names", "read_tensors", "reference_step_probabilities"]


def checkpoint_tensor_names(ckpt: str | os.PathLike[str]) -> list[str]:
    """Tensor names of a checkpoint's model*.safetensors (headers only)."""
    p = Path(ckpt)
    index = p / "model.safetensors.index.json"
    if index.is_file():
        try:
            return sorted(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{index}: unreadable ({e})") from None
    from safetensors import safe_open

    names: list[str] = []
    for f in sorted(p.glob("model*.safetensors")):
        try:
            with safe_open(str(f), "np") as sf:
                names.extend(sf.keys())
        except Exception as e:  # a truncated or foreign file
            raise ModelError(f"{f}: not a readable safetensors file ({e})") from None
    return sorted(names)


def read_tensors(ckpt: str | os.PathLike[str], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named tensors as float32 arrays, read from whichever shard holds them."""
    from safetensors import safe_open

    out: dict[str, np.ndarray] = {}
    for f in sorted(Path(ckpt).glob("model*.safetensors")):
        with safe_open(str(f), "pt") as sf:
            for k in set(sf.keys()) & set(names):
                out[k] = sf.get_tensor(k).float().numpy()
    missing = set(names) - set(out)
    if missing:
        raise ModelError(f"{ckpt}: tensors missing: {', '.join(sorted(missing))}")
    return out


def _skywork(ckpt: Path, tok: Any, question: str, steps: Sequence[str]) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    t = read_tensors(ckpt, ["v_head.summary.weight", "v_head.summary.bias"])
    w, b = torch.from_numpy(t["v_head.summary.weight"]), torch.from_numpy(t["v_head.summary.bias"])
    step_token = "\n"
    response = step_token.join(s.strip() for s in steps)
    bos = tok.bos_token or ""
    ids = tok.encode(bos + question + "\n")
    flags = [0] * len(ids)
    step_id = tok.encode(step_token)[-1]
    for piece in response.split(step_token):
        sids = (tok.encode(piece) if piece != "" else []) + [step_id]
        ids += sids
        flags += [0] * (len(sids) - 1) + [1]
    with torch.no_grad():
        h = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
        value = torch.sigmoid(h @ w.T + b).squeeze(-1)
    at = [i for i, f in enumerate(flags) if f]
    # one score per policy step: the flag of its last line
    lines = [len(s.strip().split(step_token)) for s in steps]
    ends = np.cumsum(lines) - 1
    return [float(value[at[e]]) for e in ends]


def _qwen_prm(ckpt: Path, tok: Any, question: str, steps: Sequence[str]) -> list[float]:
    import torch
    from transformers import Qwen2Model

    fam = PRM_FAMILIES["qwen2.5-math-prm"]
    model = Qwen2Model.from_pretrained(ckpt, dtype=torch.float32).eval()
    t = read_tensors(ckpt, list(fam.checkpoint_tensors))
    h = model.config.hidden_size
    score = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2))
    score.load_state_dict({k[len("score.") :]: torch.from_numpy(v) for k, v in t.items()})
    messages = [
        {"role": "system", "content": fam.system},
        {"role": "user", "content": question},
        {"role": "assistant", "content": fam.sep.join(s.strip() for s in steps) + fam.sep},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = tok.encode(text, return_tensors="pt")
    with torch.no_grad():
        logits = score(model(input_ids=ids).last_hidden_state)
    sep_id = tok.encode(fam.sep)[0]
    mask = ids[0] == sep_id
    probs = torch.softmax(logits[0], dim=-1)[mask]
    return [float(p) for p in probs[:, 1]]


def _math_shepherd(ckpt: Path, tok: Any, question: str, steps: Sequence[str]) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM

    fam = PRM_FAMILIES["math-shepherd"]
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    cand = tok.encode(f"{fam.good} {fam.bad}", add_special_tokens=False)
    tag_id = tok.encode(fam.sep)[-1]
    output = fam.joiner.join(
        fam.step_template.format(i=i + 1, step=s.strip()) for i, s in enumerate(steps)
    )
    ids = torch.tensor([tok.encode(f"{question}{fam.question_joiner}{output}")])
    with torch.no_grad():
        logits = model(ids).logits[:, :, cand]
    scores = logits.softmax(dim=-1)[:, :, 0]
    return [float(x) for x in scores[ids == tag_id]]


def _rlhflow(ckpt: Path, tok: Any, question: str, steps: Sequence[str]) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM

    fam = PRM_FAMILIES["rlhflow"]
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    cand = tok.encode(f"{fam.good} {fam.bad}", add_special_tokens=False)
    out: list[float] = []
    conversation: list[dict[str, str]] = []
    for k, s in enumerate(steps):
        text = question + fam.question_joiner + s.strip() if k == 0 else s.strip()
        conversation.append({"content": text, "role": "user"})
        conversation.append({"content": fam.good, "role": "assistant"})
        ids = tok.apply_chat_template(conversation, return_tensors="pt")
        if not isinstance(ids, torch.Tensor):  # transformers may hand back a BatchEncoding
            ids = ids["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[:, -3, cand]
        out.append(float(logits.softmax(dim=-1)[0, 0]))
    return out


_RULES = {
    "skywork-o1": _skywork,
    "qwen2.5-math-prm": _qwen_prm,
    "math-shepherd": _math_shepherd,
    "rlhflow": _rlhflow,
}


def reference_step_probabilities(
    ckpt: str | os.PathLike[str], family: str, question: str, steps: Sequence[str]
) -> list[float]:
    """P(good) of each step by `family`'s published rule, in torch (float32)."""
    from transformers import AutoTokenizer

    if family not in _RULES:
        raise ModelError(f"unknown PRM family {family!r}")
    p = Path(ckpt)
    tok = AutoTokenizer.from_pretrained(p)
    return _RULES[family](p, tok, question, steps)
