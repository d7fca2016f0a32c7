"""Greedy: one chain, temperature 0, one candidate per step, until a terminal step."""

from __future__ import annotations

from .base import SearchContext


def search(ctx: SearchContext) -> str:
    node = ctx.tree.root
    while not node.terminal:
        if (why := ctx.tracker.exhausted()) is not None and why != "rollouts":
            return why
        kids = ctx.expand([node], 1, temperature=0.0)[0]
        if not kids:
            return "done"
        node = kids[0]
        ctx.settle([node])  # one chain: each step is final once decoded
    ctx.tracker.rollouts += 1
    return "done"
