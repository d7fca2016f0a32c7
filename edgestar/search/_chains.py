"""Chains decoded on independently: each one asks for its next step the moment its last one is
done, instead of waiting for the slowest sibling (best-of-N after its first step).

The policy streams (`backends.base.propose_stream`): on llama.cpp a finished row's next step
joins the running batch, so the batch stays full; other backends fall back to rounds of
`propose`, which is the step-synchronous loop this replaces. Everything a step needs between
two model calls happens in the stream's callback: the open-code-block continuation (tir), the
runtime-written answer (rstar), parsing, code execution, budgets. Scoring waits until the
stream ends (a reward model that reads text, or a head asked about a step the runtime wrote,
needs the policy, which is busy until then), except a chain's answer that a head scores from its
recorded hidden state: that costs no model call, and a weighted vote needs it to know it is
decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..backends.base import Candidate, Proposal, StepRequest, propose_stream
from ..tree import Node
from .base import SearchContext, join_candidates


@dataclass
class _Chain:
    leaf: Node
    greedy: bool
    partial: Candidate | None = None
    """A step cut at a blank line inside an open code block, being decoded on (tir)."""
    rounds: int = 0


def grow_chains(
    ctx: SearchContext,
    chains: Sequence[Node],
    *,
    greedy: Node | None = None,
    decided: Callable[[int], bool] = lambda live: False,
) -> str:
    """Decode every chain in `chains` (non-terminal leaves) step by step to its end. `greedy`:
    the chain decoded at temperature 0 (the greedy path), the rest are sampled. After each
    chain ends, `decided(number still live)` may end them all at once. Returns 'done', or the
    budget that stopped new steps (steps already being decoded still finish)."""
    cfg, tr = ctx.config, ctx.tracker
    live: dict[int, _Chain] = {}  # id(request) -> the chain waiting for it
    new_nodes: list[Node] = []
    why = "done"
    n_live = 0

    def ask(ch: _Chain) -> StepRequest | None:
        """The request for the chain's next step, after any steps the runtime writes itself."""
        while (written := ctx.written_answer(ch.leaf)) is not None:
            if not grow(ch, written):
                return None
        temp = 0.0 if ch.greedy else cfg.temperature
        chain_left = ctx.chain_tokens_left(ch.leaf)
        if ch.partial is not None:
            left = cfg.max_step_tokens - ch.partial.n_tokens
            if chain_left is not None:
                left = min(left, chain_left - ch.partial.n_tokens)
            stop = ctx.fmt.continue_stop(ch.partial.text, ch.partial.finish)
            assert stop is not None
            prefix = ctx.tree.prefix(ch.leaf) + ch.partial.text
            req = ctx.step_request(prefix, 1, left, temp, stop)
        else:
            cap = tr.token_cap(cfg.max_step_tokens, max(1, n_live))
            if chain_left is not None:
                cap = max(1, min(cap, chain_left))
            req = ctx.step_request(ctx.tree.prefix(ch.leaf), 1, cap, temp)
        live[id(req)] = ch
        return req

    def grow(ch: _Chain, cand: Candidate) -> bool:
        """Add the finished step to its chain; whether the chain goes on."""
        nonlocal n_live
        tr.tokens += cand.n_tokens
        ch.leaf.expanded = True
        child = ctx.adopt(ch.leaf, cand)
        if child is None:  # node budget spent
            n_live -= 1
            return False
        new_nodes.append(child)
        ch.leaf = child
        if child.terminal:
            ctx.score_ended(child)  # a head scores it now, so a weighted vote can be decided
            tr.rollouts += 1
            n_live -= 1
            return False
        return True

    def refill(req: StepRequest, prop: Proposal) -> list[StepRequest] | None:
        nonlocal why, n_live
        ch = live.pop(id(req))
        ctx.counters.tokens_evaluated += prop.tokens_evaluated
        cand = prop.candidates[0]
        if ch.partial is not None:
            cand = join_candidates(ch.partial, cand)
            ch.partial = None
        left = cfg.max_step_tokens - cand.n_tokens
        if (chain_left := ctx.chain_tokens_left(ch.leaf)) is not None:
            left = min(left, chain_left - cand.n_tokens)
        open_block = ctx.fmt.continue_stop(cand.text, cand.finish) is not None
        if open_block and left >= 1 and ch.rounds < 4:
            ch.partial, ch.rounds = cand, ch.rounds + 1
            return [r] if (r := ask(ch)) is not None else []
        ch.rounds = 0
        nxt: list[StepRequest] = []
        if grow(ch, cand):
            if why == "done" and (b := tr.exhausted()) not in (None, "rollouts"):
                why = b  # no new steps; the ones being decoded finish and count
            if why != "done":
                n_live -= 1
            elif (r := ask(ch)) is not None:
                nxt.append(r)
        ctx.emit("progress")
        return None if decided(n_live) else nxt

    first: list[StepRequest] = []
    todo = [_Chain(n, n is greedy) for n in chains if not n.terminal]
    n_live = len(todo)
    for ch in todo:
        if (r := ask(ch)) is not None:
            first.append(r)
    if first:
        dropped = propose_stream(ctx.policy, first, refill)  # refill counts as it goes
        tr.tokens += dropped
    scored = [c for c in new_nodes if c.kind not in ("invalid", "error") and c.prior is None]
    ctx.score(scored)
    ctx.settle_values(new_nodes)
    return why
