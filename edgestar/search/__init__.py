"""Search strategies: one module each, one signature `search(ctx) -> stopped_by`, one registry.

`run_search` builds the context for a question, runs the chosen strategy, and turns the tree into
a frozen `SolveResult`. Training rollouts call the same function with `gold=` set, so there is one
MCTS implementation for solving and for data generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..backends.base import Policy, Reward
from ..budget import BudgetTracker
from ..formats import StepFormat
from ..tree import Tree
from ..types import Budget, InputError, SearchConfig, SearchEvent, SearchStats, SolveResult
from . import beam, best_of_n, greedy, mcts
from .base import CodeRunner, SearchContext, step_view

Strategy = Callable[[SearchContext], str]

STRATEGIES: dict[str, Strategy] = {
    "greedy": greedy.search,
    "best_of_n": best_of_n.search,
    "beam": beam.search,
    "mcts": mcts.search,
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise InputError(
            f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}"
        ) from None


def run_search(
    question: str,
    *,
    policy: Policy,
    fmt: StepFormat,
    strategy: str = "mcts",
    budget: Budget | None = None,
    config: SearchConfig | None = None,
    reward: Reward | None = None,
    runner: CodeRunner | None = None,
    seed: int = 0,
    gold: str | None = None,
    keep_tree: bool = True,
    on_event: Callable[[SearchEvent], None] | None = None,
) -> tuple[SolveResult, Tree]:
    """Search for an answer to `question`; return the result and the tree it grew.
    `on_event` hears progress and settled steps while it runs (see SearchEvent)."""
    search = get_strategy(strategy)
    budget = budget or Budget()
    config = config or SearchConfig()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if config.code_first and not fmt.code_opener:
        raise InputError(f"code_first needs a format that opens code blocks; {fmt.name} does not")
    t0 = time.perf_counter()
    prompt = fmt.prompt(question, policy.chat_prompt)
    tree = Tree(question, prompt)
    ctx = SearchContext(
        tree=tree,
        policy=policy,
        fmt=fmt,
        config=config,
        tracker=BudgetTracker(budget),
        rng=np.random.default_rng(seed),
        reward=reward,
        runner=runner,
        gold=gold,
        on_event=on_event,
    )
    stopped_by = search(ctx)
    if stopped_by == "done" and ctx.tracker.token_capped:
        stopped_by = "tokens"  # finished only because steps were cut short by the budget
    best, candidates = ctx.choose()
    ctx.settle_chosen(best)
    steps = tuple(step_view(n) for n in (tree.path(best) if best is not None else []))
    c = ctx.counters
    stats = SearchStats(
        tokens_generated=ctx.tracker.tokens,
        tokens_evaluated=c.tokens_evaluated,
        nodes=len(tree) - 1,
        rollouts=ctx.tracker.rollouts,
        seconds=round(time.perf_counter() - t0, 6),
        executions=c.executions,
        execution_seconds=round(c.execution_seconds, 6),
        reward_calls=c.reward_calls,
    )
    result = SolveResult(
        question=question,
        answer=best.answer if best is not None else None,
        score=(best.reward if best.reward is not None else best.Q) if best is not None else None,
        strategy=strategy,
        stopped_by=stopped_by,
        steps=steps,
        stats=stats,
        candidates=tuple(candidates),
        seed=seed,
        tree=tree.to_dict() if keep_tree else None,
    )
    return result, tree


__all__ = ["STRATEGIES", "SearchContext", "Strategy", "get_strategy", "run_search"]
