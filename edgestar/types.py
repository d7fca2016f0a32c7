"""Frozen value types that cross edgestar's boundaries.

Everything a caller hands to the runtime (Problem, Budget, SearchConfig) or gets back from it
(SolveResult, StepView, SearchStats) is an immutable dataclass, validated on construction, so a
bad value fails where it is made with one readable message. The mutable search tree lives in
`edgestar.tree`; it is turned into these types when a search ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

MAX_QUESTION_BYTES = 64 * 1024
"""Longest question accepted (UTF-8 bytes). A tiny model's context is a few thousand tokens."""


class EdgestarError(Exception):
    """An error meant for a person: its message is one readable line."""


class InputError(EdgestarError, ValueError):
    """Bad input from the caller (question, budget, config, file)."""


class ModelError(EdgestarError):
    """A model file or bundle that is missing, truncated, tampered with or of the wrong format."""


def one_line(e: BaseException) -> str:
    """An exception as one readable line: its type and the first line of its message."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def check_question(question: object) -> str:
    """Return `question` stripped, or raise InputError saying what is wrong with it."""
    if isinstance(question, bytes):
        try:
            question = question.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"question is not valid UTF-8 (byte {e.start})") from None
    if not isinstance(question, str):
        raise InputError(f"question must be a string, got {type(question).__name__}")
    q = question.strip()
    if not q:
        raise InputError("question is empty")
    n = len(q.encode("utf-8", errors="surrogatepass"))
    if n > MAX_QUESTION_BYTES:
        raise InputError(f"question is {n} bytes; the limit is {MAX_QUESTION_BYTES}")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in q):
        raise InputError("question is not valid UTF-8 (lone surrogate)")
    return q


@dataclass(frozen=True)
class Problem:
    """One question, with its reference answer when known (training, evaluation)."""

    question: str
    answer: str | None = None
    id: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "question", check_question(self.question))


@dataclass(frozen=True)
class Budget:
    """Limits on one search. None means unlimited; at least one limit must be set.

    The search is anytime: when any limit is reached it stops and returns the best answer found
    so far, naming the limit in `SolveResult.stopped_by`.
    """

    rollouts: int | None = 16
    tokens: int | None = None
    seconds: float | None = None
    nodes: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(f"budget {f.name} must be a number, got {v!r}")
            if f.name != "seconds" and not float(v).is_integer():
                raise InputError(f"budget {f.name} must be a whole number, got {v!r}")
            if not math.isfinite(v) or v <= 0:
                raise InputError(f"budget {f.name} must be positive, got {v!r}")
        if all(getattr(self, f.name) is None for f in fields(self)):
            raise InputError("budget has no limit set; give rollouts, tokens, seconds or nodes")


SELECT_RULES = ("majority", "count", "weighted", "max")
"""How a search may choose its final answer among finished answers (SearchConfig.select)."""


@dataclass(frozen=True)
class SearchConfig:
    """Knobs shared by every search strategy (each uses the ones that concern it).

    Defaults follow rStar-Math where it says (c=2, depth cap 16), scaled down for small devices.
    """

    width: int = 8
    """Candidate steps proposed per expansion (rStar: 8 for data, 32 at test time). 8 because
    decoding siblings together is nearly free on a CPU up to 16 rows: on SmolLM2-135M Q8_0 with
    2 threads batched MCTS runs at 1.72x single-sequence decode at width 4, 2.21x at 8
    (benchmarks/smollm2-135m-q8_0/bench.md)."""
    n: int = 8
    """best_of_n: number of independent samples."""
    beam_width: int = 3
    """beam: beams kept after each step."""
    c_uct: float = 2.0
    """mcts: exploration constant in UCT = Q + c * sqrt(ln N_parent / N)."""
    temperature: float = 0.8
    top_p: float = 0.95
    max_step_tokens: int = 256
    max_depth: int = 16
    max_chain_tokens: int | None = None
    """A path that has generated this many tokens without an answer ends as invalid, like the
    depth cap, and no step is asked for more than is left of it (None: no cap). Cuts the runaway
    chain that a sampled vote otherwise waits for: in Qwen2.5-Coder-0.5B's head-training
    rollouts no chain past 600 tokens answered right (0 of 14; 2 of 25 past 500), so a tir chat
    model's default is 600 (`benchmarks/head/chain_lengths.py`)."""
    select: str = "weighted"
    """Final answer choice among finished answers: 'majority' (the most frequent; with a reward
    model, a tie goes to the answer its scores favour), 'count' (the most frequent; a tie goes
    to the answer the policy was surest of, its likeliest chain's mean log-probability per
    token: the reward model never decides), 'weighted' (the largest sum of (score + 1) / 2) or
    'max' (the best-scored answer)."""
    answer_from_output: bool = True
    """rstar: after the final code has run, the runtime writes the answer step from its printed
    output instead of sampling it (a small model copies numbers unreliably; the executed code is
    the verified source of the answer). Off: the policy writes it, as in rStar-Math."""
    check_answer: bool | None = None
    """A boxed answer that contradicts the last code's printed output ends its branch as invalid
    (execution verifies the answer, not only the steps). None: the step format's choice
    (`StepFormat.check_answer`: on for rstar, off for tir)."""
    greedy_first: bool = True
    """When sampling k > 1 candidates at temperature > 0, decode the first one greedily
    (temperature 0) and sample the other k - 1: every search then holds the greedy path (MCTS
    visits unvisited children in order, so its first rollout IS the greedy chain) and cannot
    do worse than greedy for lack of it. Off: all k are sampled, as in rStar-Math."""
    code_first: bool = False
    """tir: every chain's first step starts inside a code block (`StepFormat.code_opener`, written
    by the runtime): the model computes in code before anything else. A small chat model that
    reasons in words first often does its arithmetic in its head and gets it wrong; on
    Qwen2.5-Coder-0.5B greedy tir went from 69.4% to 83.3% of 36 development problems with it,
    at half the tokens (benchmarks/qwen2.5-coder-0.5b/report.md, "Code first"). A format with
    no code opener refuses it."""
    stop_when_decided: bool = True
    """best_of_n with a rollouts budget and a counted vote (majority, count, or no reward
    model) or a head-weighted one: stop decoding once the chains still unfinished or undrawn
    cannot change the winner (3 of 4 agreeing; each chain to come worth at most 1). Same
    answer as the full vote, less time; the cut chains' answers are never seen. Never applies
    with ground truth (training rollouts)."""

    def __post_init__(self) -> None:
        for name in ("width", "n", "beam_width", "max_step_tokens", "max_depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"search {name} must be a positive whole number, got {v!r}")
        cap = self.max_chain_tokens
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InputError(
                f"search max_chain_tokens must be a positive whole number, got {cap!r}"
            )
        if not (math.isfinite(self.c_uct) and self.c_uct >= 0):
            raise InputError(f"search c_uct must be >= 0, got {self.c_uct!r}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise InputError(f"temperature must be >= 0, got {self.temperature!r}")
        if not (0 < self.top_p <= 1):
            raise InputError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.select not in SELECT_RULES:
            raise InputError(
                f"select must be majority, count, weighted or max, got {self.select!r}"
            )


@dataclass(frozen=True)
class StepView:
    """One step of a chosen trajectory, as shown to a user."""

    text: str
    code: str | None = None
    output: str | None = None
    error: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class SearchStats:
    """What a search spent."""

    tokens_generated: int = 0
    tokens_evaluated: int = 0
    nodes: int = 0
    rollouts: int = 0
    seconds: float = 0.0
    executions: int = 0
    execution_seconds: float = 0.0
    reward_calls: int = 0


@dataclass(frozen=True)
class SearchEvent:
    """What a search reports while it runs, to `Solver.solve(on_event=...)`.

    kind 'progress': an expansion finished (the counters say what has been spent so far).
    kind 'step': the step at position `index` of the chosen path is settled: every answer the
    search has found or can still find lies below it, so if the search ends with an answer, its
    path goes through this step. Greedy settles each step as it is decoded; beam settles the
    steps its live beams and finished answers all share; MCTS and best-of-N can still change
    any step until they stop, so they settle the whole path when the search ends. Steps are
    reported in path order, each once.
    """

    kind: str
    rollouts: int
    tokens: int
    nodes: int
    seconds: float
    step: StepView | None = None
    index: int | None = None


@dataclass(frozen=True)
class SolveResult:
    """The outcome of one `Solver.solve` call."""

    question: str
    answer: str | None
    score: float | None
    strategy: str
    stopped_by: str
    """'done' (the strategy finished), or the budget that ended it: rollouts, tokens, seconds, nodes."""
    steps: tuple[StepView, ...] = ()
    stats: SearchStats = field(default_factory=SearchStats)
    candidates: tuple[tuple[str, float], ...] = ()
    """Every distinct finished answer with its aggregate support, best first."""
    seed: int = 0
    tree: dict[str, Any] | None = None

    def to_dict(self, include_tree: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "question": self.question,
            "answer": self.answer,
            "score": self.score,
            "strategy": self.strategy,
            "stopped_by": self.stopped_by,
            "seed": self.seed,
            "steps": [s.__dict__.copy() for s in self.steps],
            "stats": self.stats.__dict__.copy(),
            "candidates": [list(c) for c in self.candidates],
        }
        if include_tree:
            d["tree"] = self.tree
        return d
