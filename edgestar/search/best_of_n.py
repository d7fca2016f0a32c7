"""Best-of-N: N independent sampled chains, decoded together; the answer is chosen by vote.

The first steps of a wave are sampled in one request; then each chain asks for its next step
as soon as its last one is done (`_chains.grow_chains`: on llama.cpp the batch stays full
instead of waiting for the longest sibling step). The greedy chain (SearchConfig.greedy_first)
stays at temperature 0 all the way down, so the vote always holds the greedy answer.

With a reward model the vote is PRM-weighted (each finished chain's final-step score), else a
plain majority (SearchConfig.select decides).

Chains are drawn in waves of N = SearchConfig.n, decoded together, until the budget is spent: a
chain is one rollout, so `rollouts=32` draws 32 chains (four waves of 8) and `rollouts=4`
draws 4; a token or seconds budget without a rollouts cap keeps drawing waves until it runs
out, so best-of-N spends the same generated-token budget as the tree searches it is compared
with (search-and-learn's "N" is the budget too). Only the first wave holds the greedy chain
(SearchConfig.greedy_first): later waves only sample, so the greedy answer is not counted once
per wave.

With a rollouts budget, drawing stops as soon as the chains still to come can no longer change
the winner (SearchConfig.stop_when_decided): 3 of 4 chains agreeing already decides a majority
best-of-4, so the fourth is not decoded to its end. A head-weighted vote stops the same way, each
chain still to come worth at most 1 (a head scores each answer as its chain ends); a vote
weighted by a reward model that reads text cannot tell before the stream ends, and sees every
chain. The answer is the one the full vote would pick; only the coverage of the unfinished
chains is lost. Never with ground truth (training wants every chain).
"""

from __future__ import annotations

from ..answer import normalize
from ._chains import grow_chains
from .base import SearchContext


def search(ctx: SearchContext) -> str:
    tr, b = ctx.tracker, ctx.tracker.budget
    started = 0
    while True:
        n = ctx.config.n if b.rollouts is None else min(ctx.config.n, b.rollouts - started)
        before = tr.tokens
        started += n
        later = None if b.rollouts is None else b.rollouts - started
        why = _wave(ctx, n, greedy_first=None if started == n else False, later=later)
        if why != "done" or _decided(ctx, later, 0):
            return why
        if b.rollouts is not None and started >= b.rollouts:
            return "done"  # every chain the budget allows was drawn
        if (why := tr.exhausted()) is not None:
            return why
        if tr.tokens == before:  # a wave that generated nothing cannot spend the budget
            return "done"


def _wave(ctx: SearchContext, n: int, greedy_first: bool | None, later: int | None) -> str:
    """n chains from the root: their first steps sampled together, then each chain decoded on
    by itself (`grow_chains`) until it ends, or until the vote is decided with `later` chains
    still to be drawn after this wave."""
    cfg = ctx.config
    first = cfg.greedy_first if greedy_first is None else greedy_first
    kids = ctx.expand([ctx.tree.root], n, dedup=False, greedy_first=greedy_first)[0]
    # expand put the argmax candidate first; its chain stays greedy (the greedy path)
    greedy = kids[0] if kids and first and cfg.temperature > 0 and n > 1 else None
    ctx.tracker.rollouts += sum(1 for c in kids if c.terminal)
    live = [c for c in kids if not c.terminal]
    if not live or _decided(ctx, later, len(live)):
        return "done"
    # Finishing the chains already started is not a new rollout, so only the other budgets
    # stop them.
    why = ctx.tracker.exhausted()
    if why is not None and why != "rollouts":
        return why
    return grow_chains(ctx, live, greedy=greedy, decided=lambda left: _decided(ctx, later, left))


def _decided(ctx: SearchContext, later: int | None, live: int) -> bool:
    """Whether no answer the `live` unfinished chains and the `later` undrawn ones could end
    with changes the vote's winner: each adds at most one to one answer's support (one vote, or
    a head's weight in [0, 1]), so the leader must be ahead of the runner-up by more than all of
    them (a tie would go to the tie-break). A weighted vote can only tell once every finished
    answer is scored, which a head on the policy's hidden state does as each chain ends."""
    cfg = ctx.config
    counted = cfg.select in ("majority", "count") or ctx.reward is None
    weighed = cfg.select == "weighted" and hasattr(ctx.reward, "score_hidden")
    if not (cfg.stop_when_decided and (counted or weighed)) or later is None:
        return False
    if ctx.gold is not None:
        return False
    support: dict[str, float] = {}
    for node in ctx.tree.nodes:
        if node.kind == "answer" and node.answer is not None:
            w = 1.0 if counted else ctx.answer_support(node)
            if w is None:
                return False  # an answer not scored yet: cannot tell
            key = normalize(node.answer)
            support[key] = support.get(key, 0.0) + w
    top = sorted(support.values(), reverse=True) + [0.0, 0.0]
    return top[0] > top[1] + live + later
