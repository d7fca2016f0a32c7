"""Budget accounting for one search: what has been spent, and which limit (if any) is reached.

Limits are checked between expansions; a single expansion never generates more tokens than
are left (the tracker caps each request's max_tokens), so `tokens` is a hard limit. `seconds` is
checked between expansions, so a search can overrun it by at most one expansion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .types import Budget


@dataclass
class BudgetTracker:
    budget: Budget
    tokens: int = 0
    rollouts: int = 0
    nodes: int = 0
    token_capped: bool = False
    """Some request got fewer max_tokens than asked because the token budget was nearly spent."""
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def exhausted(self) -> str | None:
        """The name of the first limit reached, or None."""
        b = self.budget
        if b.rollouts is not None and self.rollouts >= b.rollouts:
            return "rollouts"
        if b.tokens is not None and self.tokens >= b.tokens:
            return "tokens"
        if b.nodes is not None and self.nodes >= b.nodes:
            return "nodes"
        if b.seconds is not None and self.seconds >= b.seconds:
            return "seconds"
        return None

    def row_cap(self, k: int, nodes: int) -> int:
        """Candidates per node so that every row can have at least one token of what is left of
        the token budget (fewer rows rather than overshooting it)."""
        if self.budget.tokens is None or nodes < 1:
            return k
        left = self.budget.tokens - self.tokens
        return max(1, min(k, left // nodes))

    def token_cap(self, wanted: int, k: int) -> int:
        """Per-candidate max_tokens so that k candidates stay inside the token budget."""
        if self.budget.tokens is None:
            return wanted
        left = self.budget.tokens - self.tokens
        cap = max(1, min(wanted, left // max(k, 1)))
        if cap < wanted:
            self.token_capped = True
        return cap

    def node_cap(self) -> int | None:
        """How many more nodes may be added, or None when unlimited."""
        if self.budget.nodes is None:
            return None
        return max(0, self.budget.nodes - self.nodes)
