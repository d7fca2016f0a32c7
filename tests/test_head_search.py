"""A reward head in the search, on the scripted tree of test_search.py (no model, no torch): the
head's score of a step's recorded hidden state is a new child's initial Q in MCTS, ranks beams,
and weights best-of-n votes; steps without a recorded state are scored through `hidden_states`.

The scripted policy's "hidden state" is three features of the step text (multiplies, adds,
bias); the head prefers multiplying, so it steers every strategy to 42 where the policy's own
likelier path (and a majority vote) gives 13.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from test_search import InProcessRunner, Q, make_script

from edgestar.backends.base import Candidate, Proposal, StepRequest
from edgestar.backends.fake import ScriptedPolicy
from edgestar.formats import RSTAR
from edgestar.head import Head, HeadReward
from edgestar.search import run_search
from edgestar.types import Budget, SearchConfig


def features(text: str) -> np.ndarray:
    return np.array([float("6 * 7" in text), float("6 + 7" in text), 1.0])


class StatePolicy(ScriptedPolicy):
    """ScriptedPolicy whose candidates carry a hidden state, like the llama.cpp backend's."""

    n_embd = 3

    def __init__(self) -> None:
        super().__init__(make_script())
        self.prefix_calls = 0

    def propose(self, requests: Sequence[StepRequest]) -> list[Proposal]:
        out = []
        for req, prop in zip(requests, super().propose(requests), strict=True):
            cands = tuple(
                Candidate(c.text, c.n_tokens, c.finish, c.stop, c.logprob,
                          features(self.solution(req.prefix) + c.text))
                for c in prop.candidates
            )  # fmt: skip
            out.append(Proposal(cands, prop.tokens_evaluated))
        return out

    def enable_hidden(self) -> None:
        pass

    def hidden_states(self, prefixes: Sequence[str]) -> np.ndarray:
        self.prefix_calls += len(prefixes)
        return np.stack([features(self.solution(p)) for p in prefixes])


HEAD = Head(
    (np.array([[3.0], [-3.0], [0.0]]),), (np.zeros(1),), np.zeros(3), np.ones(3),
    model_sha256="0" * 64,
)  # fmt: skip


def solve(strategy: str, head: bool, **cfg):  # type: ignore[no-untyped-def]
    pol = StatePolicy()
    reward = HeadReward(pol, HEAD, check=False) if head else None
    r, tree = run_search(
        Q, policy=pol, fmt=RSTAR, strategy=strategy, budget=Budget(rollouts=8),
        config=SearchConfig(**cfg), reward=reward, runner=InProcessRunner(), seed=0,
    )  # fmt: skip
    return r, tree, pol


def test_head_ranks_beams() -> None:
    assert solve("beam", False, width=8, beam_width=1)[0].answer == "13"
    r, tree, pol = solve("beam", True, width=8, beam_width=1)
    assert r.answer == "42"


def test_head_weights_best_of_n_votes() -> None:
    assert solve("best_of_n", False, n=8, select="majority")[0].answer == "13"
    r, _, _ = solve("best_of_n", True, n=8, select="weighted")
    assert r.answer == "42"
    assert dict(r.candidates)["42"] > dict(r.candidates)["13"]


def test_head_score_is_initial_q_in_mcts() -> None:
    r, tree, pol = solve("mcts", True, width=8)
    assert r.answer == "42"
    first = [tree.nodes[i] for i in tree.root.children]
    for n in first:
        if n.kind not in ("error", "invalid"):  # scored from the recorded state, no decode
            assert n.hidden is not None
            assert abs(n.prior - float(HEAD.score(n.hidden))) < 1e-12
    # only the answer steps the runtime writes after the printed output had no state
    written = [n for n in tree.nodes if n.kind == "answer" and n.hidden is None]
    assert written and pol.prefix_calls == len(written)
