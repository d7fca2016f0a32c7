"""Best-of-N: N independent sampled chains, decoded together; the answer is chosen by vote.

With a reward model the vote is PRM-weighted (each finished chain's final-step score), else a
plain majority (SearchConfig.select decides).

Chains are drawn in waves of N = SearchConfig.n, decoded together, until the budget is spent: a
chain is one rollout, so `rollouts=32` draws 32 chains (four waves of 8) and `rollouts=4`
draws 4; a token or seconds budget without a rollouts cap keeps drawing waves until it runs
out, so best-of-N spends the same generated-token budget as the tree searches it is compared
with (search-and-learn's "N" is the budget too). Only the first wave holds the greedy chain
(SearchConfig.greedy_first): later waves only sample, so the greedy answer is not counted once
per wave.
"""

from __future__ import annotations

from ..tree import Node
from .base import SearchContext


def search(ctx: SearchContext) -> str:
    tr, b = ctx.tracker, ctx.tracker.budget
    started = 0
    while True:
        n = ctx.config.n if b.rollouts is None else min(ctx.config.n, b.rollouts - started)
        before = tr.tokens
        why = _wave(ctx, n, greedy_first=None if started == 0 else False)
        started += n
        if why != "done":
            return why
        if b.rollouts is not None and started >= b.rollouts:
            return "done"  # every chain the budget allows was drawn
        if (why := tr.exhausted()) is not None:
            return why
        if tr.tokens == before:  # a wave that generated nothing cannot spend the budget
            return "done"


def _wave(ctx: SearchContext, n: int, greedy_first: bool | None) -> str:
    """n chains from the root, decoded together step by step until each one ends."""
    # The root's expansion samples the first step of all n chains at once.
    live: list[Node] = ctx.expand([ctx.tree.root], n, dedup=False, greedy_first=greedy_first)[0]
    while True:
        ctx.tracker.rollouts += sum(1 for c in live if c.terminal)
        live = [c for c in live if not c.terminal]
        if not live:
            return "done"
        # Finishing the chains already started is not a new rollout, so only the other
        # budgets stop them.
        why = ctx.tracker.exhausted()
        if why is not None and why != "rollouts":
            return why
        live = [kids[0] for kids in ctx.expand(live, 1, dedup=False) if kids]
