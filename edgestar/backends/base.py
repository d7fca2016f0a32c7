"""The two small interfaces the search knows models through, and the values they exchange.

A `Policy` extends text prefixes by candidate next steps; a `Reward` (the process preference
model) scores text prefixes. Search strategies see nothing else of a model: no tokenizer, no
tensors, no device. Both work on whole-text prefixes (prompt + steps so far); a backend may cache
whatever it likes keyed on them (the llama.cpp backend keeps shared-prefix KV state), but the
answers must not depend on that cache.

Sampling is driven by an explicit integer seed per request, so a seeded search is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import InputError


@dataclass(frozen=True)
class StepRequest:
    """Ask the policy for `k` candidate continuations of `prefix`, each ending at a stop string."""

    prefix: str
    k: int
    seed: int
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Validated here, once, so no backend has to repeat it.
        for name in ("k", "max_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive whole number, got {v!r}")


@dataclass(frozen=True)
class Candidate:
    """One generated continuation.

    `text` includes the stop string that ended it, if any (`stop` names it). `finish` is 'stop'
    (a stop string), 'eos' (the model's end token) or 'length' (max_tokens reached).
    """

    text: str
    n_tokens: int
    finish: str
    stop: str | None = None
    logprob: float = 0.0
    hidden: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The policy's final hidden state (after the last norm; HF `hidden_states[-1]`) at the
    position that sampled the step's last token, when the backend records it
    (`HiddenStates.enable_hidden`): the input of a process reward head. For a step ended by
    the end token, the position that sampled its last text token. So it equals
    `HiddenStates.hidden_states([prefix + text])` up to float rounding and re-tokenization."""


@dataclass(frozen=True)
class Proposal:
    """The answer to one StepRequest: k candidates and the token positions the backend really
    ran through the model for them (prompt tokens it had no cache for, plus generated tokens
    it fed back; backends differ in whether a candidate's last sampled token is fed back, and
    llama.cpp counts identical sibling rows once)."""

    candidates: tuple[Candidate, ...]
    tokens_evaluated: int


@runtime_checkable
class Policy(Protocol):
    """Proposes candidate next steps. `propose` takes several requests so a backend can decode
    them together in one batch; it returns one Proposal per request, in order."""

    name: str

    def propose(self, requests: Sequence[StepRequest]) -> list[Proposal]: ...

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str | None:
        """Render messages with the model's own chat template, or None if it has none."""
        ...

    def close(self) -> None: ...


Refill = Callable[[StepRequest, Proposal], Sequence[StepRequest] | None]
"""Told of each request as soon as all its candidates are done; returns the requests that follow
it (a chain's next step), or None to end the whole call (in-flight requests are dropped)."""


@runtime_checkable
class Streaming(Protocol):
    """A policy that keeps decoding while requests finish: each finished request is handed to
    `refill` at once and the requests it returns join the same running batch, so a chain whose
    step ended early does not wait for its siblings' longer steps (continuous batching)."""

    def propose_stream(self, requests: Sequence[StepRequest], refill: Refill) -> int:
        """Returns the tokens generated for candidates dropped unfinished (refill's None)."""
        ...


def propose_stream(policy: Policy, requests: Sequence[StepRequest], refill: Refill) -> int:
    """`policy.propose_stream` where the backend has it; else the same contract in rounds of
    `propose` (each round waits for its slowest request). Returns the tokens generated for
    candidates that were dropped (a round's proposals not yet handed over when refill said
    stop)."""
    if isinstance(policy, Streaming):
        return policy.propose_stream(requests, refill)
    todo = list(requests)
    while todo:
        nxt: list[StepRequest] = []
        props = policy.propose(todo)
        for i, prop in enumerate(props):
            more = refill(todo[i], prop)
            if more is None:
                return sum(c.n_tokens for p in props[i + 1 :] for c in p.candidates)
            nxt += more
        todo = nxt
    return 0


@runtime_checkable
class HiddenStates(Protocol):
    """A policy that can give its own final hidden states (for a reward head on them)."""

    def enable_hidden(self) -> None:
        """Record `Candidate.hidden` for every candidate from now on (no extra decode)."""
        ...

    def hidden_states(self, prefixes: Sequence[str]) -> np.ndarray:
        """[len(prefixes), n_embd]: for each prefix, the hidden state at the position that
        predicts its last token (tokens[-2]; tokens[-1] for a one-token prefix)."""
        ...


@runtime_checkable
class Reward(Protocol):
    """Scores prefixes (question + steps so far) in (-1, 1); higher means more likely correct."""

    name: str

    def score(self, prefixes: Sequence[str]) -> list[float]: ...

    def close(self) -> None: ...
