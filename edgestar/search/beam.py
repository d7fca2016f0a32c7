"""Step-level beam search: keep the `beam_width` best partial solutions after every step.

Each live beam proposes `width` candidate steps (all beams decoded in one batch); children are
ranked by the process reward model's (or reward head's) score of their prefix, or, without one,
by the policy's mean log-probability per token. Finished beams are collected; the search ends
when no beam is live or `beam_width` beams have finished. Each finished beam is one rollout.
"""

from __future__ import annotations

from ..tree import Node
from .base import SearchContext


def _rank(n: Node) -> float:
    if n.prior is not None:
        return n.prior
    return n.logprob / max(n.n_tokens, 1)


def search(ctx: SearchContext) -> str:
    cfg = ctx.config
    beams: list[Node] = [ctx.tree.root]
    finished = 0
    while beams:
        why = ctx.tracker.exhausted()
        if why is not None:
            return why
        children = [c for kids in ctx.expand(beams, cfg.width) for c in kids]
        done = [c for c in children if c.terminal]
        finished += sum(1 for c in done if c.kind == "answer")
        ctx.tracker.rollouts += len(done)
        if finished >= cfg.beam_width:
            return "done"
        live = sorted((c for c in children if not c.terminal), key=lambda c: (-_rank(c), c.id))
        beams = live[: cfg.beam_width - finished]
        ctx.settle(beams)  # what the live beams and the answers so far all share
    return "done"
