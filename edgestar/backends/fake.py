"""Scripted backends for tests and demos: a policy and a reward model with no neural network.

`ScriptedPolicy` is given, for each partial solution (the text after `start`), the candidate
steps it may propose, optionally weighted. At temperature 0 it always proposes the first one
(so greedy follows the script's first choices); otherwise it samples k of them with the shared
per-request seed, like a real model would. `ScriptedReward` scores a prefix by the first rule
whose substring occurs in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .base import Candidate, Proposal, StepRequest
from .sampling import StopMatcher

ScriptEntry = str | tuple[str, float]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedPolicy:
    name = "scripted"

    def __init__(
        self,
        script: Mapping[str, Sequence[ScriptEntry]],
        start: str = "<code>\n",
        fallback: str = "I am not sure.",
    ) -> None:
        self.script = {
            k: [(e, 1.0) if isinstance(e, str) else (e[0], float(e[1])) for e in v]
            for k, v in script.items()
        }
        self.start = start
        self.fallback = fallback
        self.calls = 0

    def solution(self, prefix: str) -> str:
        i = prefix.find(self.start)
        return prefix[i + len(self.start) :] if i >= 0 else ""

    def propose(self, requests: Sequence[StepRequest]) -> list[Proposal]:
        out = []
        for req in requests:
            self.calls += 1
            entries = self.script.get(self.solution(req.prefix))
            rng = np.random.default_rng(req.seed)
            if not entries:
                texts = [self.fallback] * req.k
            elif req.temperature <= 0:
                texts = [entries[0][0]] * req.k
            else:
                w = np.array([e[1] for e in entries], dtype=float)
                idx = rng.choice(len(entries), size=req.k, p=w / w.sum())
                texts = [entries[i][0] for i in idx]
            cands = tuple(self._finish(t, req) for t in texts)
            out.append(Proposal(cands, _tokens(req.prefix) + sum(c.n_tokens for c in cands)))
        return out

    def _finish(self, text: str, req: StepRequest) -> Candidate:
        hit = StopMatcher(req.stop).check(text)
        if hit is not None:
            cut, stop = hit
            if _tokens(cut) <= req.max_tokens:
                return Candidate(cut, _tokens(cut), "stop", stop)
        if _tokens(text) > req.max_tokens:
            cut = text[: req.max_tokens * 4]
            return Candidate(cut, req.max_tokens, "length")
        return Candidate(text, _tokens(text), "eos")

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str | None:
        return None

    def close(self) -> None:
        pass


class ScriptedReward:
    name = "scripted"

    def __init__(self, rules: Sequence[tuple[str, float]], default: float = 0.0) -> None:
        self.rules = list(rules)
        self.default = default
        self.calls = 0

    def score(self, prefixes: Sequence[str]) -> list[float]:
        self.calls += 1
        out = []
        for p in prefixes:
            out.append(next((v for s, v in self.rules if s in p), self.default))
        return out

    def close(self) -> None:
        pass
