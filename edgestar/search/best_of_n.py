"""Best-of-N: N independent sampled chains, decoded together; the answer is chosen by vote.

With a reward model the vote is PRM-weighted (each finished chain's final-step score), else a
plain majority (SearchConfig.select decides). A chain is one rollout, so the rollouts budget
caps N as well.
"""

from __future__ import annotations

from ..tree import Node
from .base import SearchContext


def search(ctx: SearchContext) -> str:
    n = ctx.config.n
    if ctx.tracker.budget.rollouts is not None:
        n = min(n, ctx.tracker.budget.rollouts)
    # The root's first expansion samples the first step of all n chains at once.
    live: list[Node] = ctx.expand([ctx.tree.root], n, dedup=False)[0]
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
