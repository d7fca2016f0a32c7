"""Off-the-shelf process reward models (PRMs) as a `Reward`, scored through llama.cpp.

Published PRMs score a (question, steps) pair per step; each family lays the pair out its own
way and reads its score at its own token. `PRM_FAMILIES` holds that as data:

- `skywork-o1` (Skywork-o1-Open-PRM-Qwen-2.5-1.5B / 7B; reference: huggingface/search-and-learn
  `src/sal/models/skywork_o1_prm`): ids = encode(BOS + question + "\\n"), then for every line
  of the response (steps joined by "\\n", split at "\\n") encode(line) + [id("\\n")], each piece
  tokenized on its own; the value head `v_head.summary` (Linear(hidden, 1)) on
  `hidden_states[-1]` at each "\\n" token; P = sigmoid.
- `qwen2.5-math-prm` (Qwen2.5-Math-PRM-7B): the chat template over system "Please reason step
  by step, and put your final answer within \\boxed{}.", the user's question and the assistant's
  steps each followed by `<extra_0>`; the head `score` (Linear(h, h) -> ReLU -> Linear(h, 2)) on
  `hidden_states[-1]` at each `<extra_0>`; P = softmax(...)[1].
- `math-shepherd` (peiyi9979/math-shepherd-mistral-7b-prm): question + " " + "Step i: <step> ки"
  joined by "\\n"; the LM's logits at each "ки"; P = softmax over the ids of "+ -")[0].
- `rlhflow` (RLHFlow Llama3.1-8B-PRM-*): a chat where the user turns are the question + " " +
  step 1, then step 2, ..., each answered by the assistant with "+"; the LM's logits at the
  position that writes each "+" (the published `logits[:, -3]` of the chat up to that turn);
  P = P("+") / (P("+") + P("-")).

Each family's read position depends only on the tokens before it, so the score of step k is read
at the last token of the input built from the first k steps; those inputs of a path's prefixes
are prefixes of each other, so the KV cache (`LlamaCppPolicy.eval_many`) decodes only what a
step adds to its parent's input; the paths the search scores at once (a node's children, a
beam's) are decoded together. Scores are reported as 2P - 1, in (-1, 1) like every `Reward`.

The PRM runs beside the policy in its own llama.cpp context, or on the policy's own context when
both are the same GGUF file. Heads (hidden-state families) travel as an edgestar head file
(`edgestar.head`, feature `PRM_FEATURE`, raw output = logit of P) bound to the GGUF's sha256;
`edgestar quantize` writes both (`edgestar.quantize.prm_export`) and records the family in the
GGUF metadata (`gguf_meta.PRM_KEYS`). A GGUF without that metadata (a Math-Shepherd or RLHFlow
file converted elsewhere) is named with a `FAMILY:FILE.gguf` spec.

No torch here; the search hands a PRM (question, steps) through `score_paths`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .gguf_meta import PRM_KEYS
from .head import PRM_FEATURE, Head, file_sha256, load_head
from .types import InputError, ModelError

__all__ = [
    "PRM_FAMILIES",
    "PrmFamily",
    "PrmReward",
    "open_prm",
    "parse_prm_spec",
    "prm_head_paths",
]

_READS = ("hidden", "logits")
_LAYOUTS = ("lines", "chat_sep", "tagged", "chat_turns")
_HEADS = ("", "value", "classifier")


@dataclass(frozen=True)
class PrmFamily:
    """How one family of published PRMs reads a (question, steps) pair."""

    name: str
    reads: str
    """'hidden': a head on the final hidden state (after the last norm); 'logits': the LM's."""
    layout: str
    """'lines' (Skywork), 'chat_sep' (Qwen2.5-Math-PRM), 'tagged' (Math-Shepherd),
    'chat_turns' (RLHFlow): see the module docstring."""
    sep: str = ""
    """The token each step ends with and the score is read at ('lines', 'chat_sep', 'tagged')."""
    system: str = ""
    step_template: str = "{step}"
    joiner: str = ""
    """Between formatted steps ('tagged')."""
    question_joiner: str = " "
    """Between the question and the first step ('tagged', 'chat_turns')."""
    good: str = "+"
    bad: str = "-"
    """'logits': P = softmax over the two ids of f"{good} {bad}" (encoded without BOS)."""
    head: str = ""
    """'value': Linear(h, 1), sigmoid; 'classifier': Linear-ReLU-Linear(h, 2), softmax[1]."""
    checkpoint_tensors: tuple[str, ...] = ()
    """The published checkpoint's head tensors (how `edgestar quantize` recognises it)."""
    source: str = ""

    def __post_init__(self) -> None:
        if self.reads not in _READS or self.layout not in _LAYOUTS or self.head not in _HEADS:
            raise ValueError(f"PRM family {self.name}: bad reads/layout/head")
        if (self.reads == "hidden") != bool(self.head):
            raise ValueError(f"PRM family {self.name}: a head exactly when it reads hidden states")
        if self.layout != "chat_turns" and not self.sep:
            raise ValueError(f"PRM family {self.name}: layout {self.layout} needs sep")


PRM_FAMILIES: dict[str, PrmFamily] = {
    f.name: f
    for f in (
        PrmFamily(
            "skywork-o1",
            reads="hidden",
            layout="lines",
            sep="\n",
            head="value",
            checkpoint_tensors=("v_head.summary.weight", "v_head.summary.bias"),
            source="Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B, -7B",
        ),
        PrmFamily(
            "qwen2.5-math-prm",
            reads="hidden",
            layout="chat_sep",
            sep="<extra_0>",
            system="Please reason step by step, and put your final answer within \\boxed{}.",
            head="classifier",
            checkpoint_tensors=("score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias"),
            source="Qwen/Qwen2.5-Math-PRM-7B",
        ),
        PrmFamily(
            "math-shepherd",
            reads="logits",
            layout="tagged",
            sep="ки",
            step_template="Step {i}: {step} ки",
            joiner="\n",
            source="peiyi9979/math-shepherd-mistral-7b-prm",
        ),
        PrmFamily(
            "rlhflow",
            reads="logits",
            layout="chat_turns",
            source="RLHFlow/Llama3.1-8B-PRM-Deepseek-Data, -Mistral-Data",
        ),
    )
}


def parse_prm_spec(spec: str | os.PathLike[str]) -> tuple[str | None, Path]:
    """`FAMILY:FILE.gguf` -> (family, path); anything else -> (None, path). An unknown FAMILY
    before a ':' that does not name an existing file is a one-line InputError."""
    s = str(spec)
    head, sep, rest = s.partition(":")
    if not sep or Path(s).exists() or os.sep in head or not rest:
        return None, Path(s)
    if head not in PRM_FAMILIES:
        raise InputError(
            f"unknown PRM family {head!r} in --ppm {s}; known: {', '.join(PRM_FAMILIES)}"
        )
    return head, Path(rest)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class PrmReward:
    """An off-the-shelf PRM as a `Reward` over a llama.cpp engine (`LlamaCppPolicy`: its
    `eval_tokens` decodes from the cached prefix). `own_engine=False`: the engine is the policy's
    and stays open on `close()`."""

    def __init__(
        self,
        engine: Any,
        family: PrmFamily,
        head: Head | None = None,
        *,
        bos_text: str | None = None,
        own_engine: bool = True,
        name: str = "",
    ) -> None:
        self.engine = engine
        self.family = family
        self.head = head
        self.own_engine = own_engine
        self.name = f"prm:{family.name}:{name or getattr(engine, 'name', '?')}"
        self.tokens_evaluated = 0
        """Input tokens of the scored prefixes (before the cache: what one decode each costs)."""
        if family.reads == "hidden":
            if head is None:
                raise ModelError(f"PRM family {family.name} needs its head file")
            n = int(engine.n_embd)
            if head.n_embd != n:
                raise ModelError(f"PRM head is {head.n_embd} wide, the model's hidden size is {n}")
        self._bos = engine.special_text("bos") if bos_text is None else bos_text
        self._template = (engine.metadata or {}).get("tokenizer.chat_template") or ""
        if family.layout.startswith("chat") and not self._template:
            raise ModelError(f"PRM family {family.name} needs the model's chat template")
        self._sep_id: int | None = None
        if family.sep:
            ids = engine.token_ids(family.sep)
            if not ids:
                raise ModelError(f"PRM family {family.name}: {family.sep!r} encodes to nothing")
            self._sep_id = ids[-1]
            if family.layout == "chat_sep" and len(ids) != 1:
                raise ModelError(f"{family.sep} is not one token of this model's vocabulary")
        self._pair: tuple[int, int] | None = None
        if family.reads == "logits":
            ids = engine.token_ids(f"{family.good} {family.bad}")
            if len(ids) != 2:
                raise ModelError(
                    f"PRM family {family.name}: {family.good!r} and {family.bad!r} are not one "
                    "token each in this vocabulary"
                )
            self._pair = (ids[0], ids[1])

    # -- the input a family reads, for the first k steps ------------------------------------

    def _render(self, messages: list[dict[str, str]], gen: bool) -> str:
        from .backends._llama_raw import render_chat_template

        return render_chat_template(
            self._template,
            messages,
            bos_token=self._bos,
            eos_token=self.engine.special_text("eos"),
            add_generation_prompt=gen,
        )

    def input_ids(self, question: str, steps: Sequence[str]) -> list[int]:
        """Token ids whose LAST position is where this family reads the score of steps[-1]."""
        f = self.family
        steps = [s.strip() for s in steps]
        if not steps:
            raise InputError("a PRM scores at least one step")
        eng = self.engine
        if f.layout == "lines":
            sep_id = self._sep_id
            assert sep_id is not None
            ids: list[int] = eng.token_ids(self._bos + question + f.sep)
            for piece in f.sep.join(steps).split(f.sep):
                ids += (eng.token_ids(piece) if piece else []) + [sep_id]
            return ids
        if f.layout == "chat_sep":
            msgs = [
                {"role": "system", "content": f.system},
                {"role": "user", "content": question},
                {"role": "assistant", "content": f.sep.join(steps) + f.sep},
            ]
            text = self._render(msgs, gen=False)
            return eng.tokenize(text[: text.rindex(f.sep) + len(f.sep)])
        if f.layout == "tagged":
            body = f.joiner.join(
                f.step_template.format(i=i + 1, step=s) for i, s in enumerate(steps)
            )
            ids = eng.tokenize(question + f.question_joiner + body)
            if ids[-1] != self._sep_id:
                raise ModelError(f"{f.sep!r} does not end the input as one token here")
            return ids
        msgs = []
        for i, s in enumerate(steps):
            msgs.append({"role": "user", "content": s if i else question + f.question_joiner + s})
            msgs.append({"role": "assistant", "content": f.good})
        # the published rule reads logits[-3] of the whole chat: the position that writes the
        # last assistant turn's good token (then its end-of-turn token)
        ids = eng.tokenize(self._render(msgs, gen=False))
        assert self._pair is not None
        at = max((i for i, t in enumerate(ids) if t == self._pair[0]), default=0)
        if at < 1:
            raise ModelError(f"{f.good!r} is not a token of the rendered chat")
        return ids[:at]

    # -- scoring ----------------------------------------------------------------------------

    def _p(self, out: np.ndarray) -> float:
        """P(good) from what the engine read at the read position (a hidden state or logits)."""
        if self.family.reads == "hidden":
            assert self.head is not None
            return _sigmoid(float(self.head.raw(np.asarray(out, dtype=np.float64))))
        assert self._pair is not None
        good, bad = self._pair
        return _sigmoid(float(out[good]) - float(out[bad]))

    def probability(self, question: str, steps: Sequence[str]) -> float:
        """P(the last step is good), as the family's published rule computes it."""
        ids = self.input_ids(question, steps)
        self.tokens_evaluated += len(ids)
        return self._p(self.engine.eval_tokens(ids, hidden=self.family.reads == "hidden"))

    def probabilities(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        """P(good) of the last step of each path, the paths decoded together (siblings share
        their parent's cached input)."""
        ids = [self.input_ids(question, p) for p in paths]
        self.tokens_evaluated += sum(len(x) for x in ids)
        outs = self.engine.eval_many(ids, hidden=self.family.reads == "hidden")
        return [self._p(o) for o in outs]

    def step_probabilities(self, question: str, steps: Sequence[str]) -> list[float]:
        """P(good) of every step of one solution (each read from the cached shorter input)."""
        return [self.probability(question, steps[: k + 1]) for k in range(len(steps))]

    def score_paths(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        """2 P - 1 for the last step of each path (steps from the first, as the search has them)."""
        if not paths:
            return []
        return [2.0 * p - 1.0 for p in self.probabilities(question, paths)]

    def score(self, prefixes: Sequence[str]) -> list[float]:
        if not prefixes:
            return []
        raise InputError(
            f"{self.name} scores a question and its steps (score_paths), not a bare prefix"
        )

    def close(self) -> None:
        if self.own_engine:
            self.engine.close()


# ------------------------------------------------------------------------------ opening


def _family_of(path: Path, named: str | None) -> tuple[PrmFamily | None, dict[str, Any]]:
    from .backends._llama_raw import check_gguf

    meta = check_gguf(path).metadata
    declared = meta.get(PRM_KEYS["family"])
    if declared is not None and declared not in PRM_FAMILIES:
        raise ModelError(
            f"{path}: unknown PRM family {declared!r} in its metadata; known: "
            f"{', '.join(PRM_FAMILIES)}"
        )
    if named and declared and named != declared:
        raise InputError(f"{path} is a {declared} PRM, not {named}")
    if meta.get(PRM_KEYS["role"]) == "prm" and not declared:
        raise ModelError(f"{path}: a PRM GGUF without {PRM_KEYS['family']}")
    name = named or declared
    return (PRM_FAMILIES[name] if name else None), meta


def prm_head_paths(path: Path, meta: dict[str, Any]) -> list[Path]:
    """Where a PRM GGUF's head may be: `<stem>.prm-head.npz` beside it (what conversion and
    re-quantization write), then the name its metadata records."""
    names = [f"{path.stem}.prm-head.npz", str(meta.get(PRM_KEYS["head"]) or "")]
    return [path.parent / n for n in dict.fromkeys(n for n in names if n)]


def _load_prm_head(path: Path, fam: PrmFamily, meta: dict[str, Any]) -> Head:
    found = [p for p in prm_head_paths(path, meta) if p.is_file()]
    if not found:
        raise ModelError(f"{path}: the {fam.name} head file {path.stem}.prm-head.npz is missing")
    want = file_sha256(path)
    for hp in found:
        head = load_head(hp)
        if head.meta.get("feature") != PRM_FEATURE or head.meta.get("prm_family") != fam.name:
            raise ModelError(f"{hp}: not a {fam.name} PRM head")
        if head.model_sha256 == want:
            return head
    raise ModelError(f"{found[0]}: this head belongs to another file than {path.name}")


def _bos_of(path: Path, meta: dict[str, Any]) -> str | None:
    """The checkpoint's BOS text recorded at conversion (JSON: '""' when it had none), or None
    (a GGUF converted elsewhere: the vocabulary's BOS)."""
    raw = meta.get(PRM_KEYS["bos"])
    if raw is None:
        return None
    try:
        bos = json.loads(raw)
    except (TypeError, ValueError):
        bos = None
    if not isinstance(bos, str):
        raise ModelError(f"{path}: malformed {PRM_KEYS['bos']} {raw!r}")
    return bos


def open_prm(
    spec: str | os.PathLike[str],
    policy: Any = None,
    policy_path: str | os.PathLike[str] | None = None,
    *,
    threads: int | None = None,
    n_ctx: int = 4096,
    gpu_layers: int = 0,
    kv_f32: bool = False,
) -> PrmReward | None:
    """The PRM that `spec` (FILE.gguf, or FAMILY:FILE.gguf) names, or None when it is no PRM
    (a PPM, a head file, ...). Shares `policy`'s llama.cpp context when it runs the same file."""
    family, path = parse_prm_spec(spec)
    if family is None and not (path.suffix == ".gguf" and path.is_file()):
        return None
    if path.suffix != ".gguf":
        raise InputError(f"--ppm {spec}: a PRM is a .gguf file")
    fam, meta = _family_of(path, family)
    if fam is None:
        return None
    head = _load_prm_head(path, fam, meta) if fam.reads == "hidden" else None
    bos = _bos_of(path, meta)
    from .backends.llamacpp import LlamaCppPolicy

    same = (
        isinstance(policy, LlamaCppPolicy)
        and policy_path is not None
        and Path(policy_path).resolve() == path.resolve()
    )
    if same:
        return PrmReward(policy, fam, head, bos_text=bos, own_engine=False, name=path.name)
    engine = LlamaCppPolicy(
        path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_gpu_layers=gpu_layers,
        n_seq_max=16,
        kv_f32=kv_f32,
    )
    try:
        return PrmReward(engine, fam, head, bos_text=bos, name=path.name)
    except BaseException:
        engine.close()
        raise
