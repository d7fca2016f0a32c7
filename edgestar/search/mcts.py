"""Monte Carlo Tree Search over reasoning steps, as in rStar-Math (Guan et al., 2025).

One rollout:
1. Selection: from the root, while the node is expanded, step to the child with the highest
   UCT = Q + c * sqrt(ln N_parent / N_child) (c = 2). Unvisited children (N = 0) come first, in
   the order they were proposed. Children whose subtree is fully explored are skipped.
2. Expansion: a leaf that is not terminal gets `width` candidate steps from the policy; their
   code runs (a step whose code fails is a terminal 'error' child with value -1). With a process
   preference model, or a head on the policy's own hidden state (edgestar.head: scored from the
   state recorded while the step was sampled), each new child is scored, and the score is its
   initial Q with N = 1 (rStar's PPM-augmented rounds and test time).
3. The rollout continues from the new children by the same rule, expanding each leaf it meets,
   until it reaches a terminal step (answer, error, invalid, depth cap 16).
4. Backup: the terminal's value is added to every node on the path (N += 1, W += v):
   +1 / -1 against a ground-truth answer when one is given (terminal-guided rounds 1-2), else
   the PPM's score of the terminal, else, without a reward model, the agreement of its answer
   with all finished answers (2 * share - 1): a self-consistency signal in place of the PPM.

Departures from the reference: failed steps stay in the tree as terminal children (value -1)
instead of being silently dropped, so training can use them as rejected steps; fully explored
subtrees are skipped so a search with only a token budget cannot spin; and without a PPM or
ground truth, terminals are valued by answer agreement. `width` defaults to 8 (rStar: 8 for data,
32 at test time): siblings decode together in one batch, nearly free on a CPU up to 16 rows.
"""

from __future__ import annotations

import math

from ..tree import Node
from .base import SearchContext, agreement_value


def uct(child: Node, parent_visits: int, c: float) -> float:
    if child.N == 0:
        return math.inf
    return child.Q + c * math.sqrt(math.log(max(parent_visits, 1)) / child.N)


def select_child(ctx: SearchContext, node: Node) -> Node | None:
    best, best_v = None, -math.inf
    for ch in ctx.tree.children(node):
        if ch.solved:
            continue
        v = uct(ch, node.N, ctx.config.c_uct)
        if v > best_v:
            best, best_v = ch, v
    return best


def terminal_value(ctx: SearchContext, node: Node) -> float:
    if node.reward is not None:
        return node.reward
    return agreement_value(ctx.tree, node)


def backup(path: list[Node], value: float) -> None:
    for n in path:
        n.N += 1
        n.W += value


def search(ctx: SearchContext) -> str:
    tree, cfg = ctx.tree, ctx.config
    while True:
        if tree.root.solved:
            return "done"
        why = ctx.tracker.exhausted()
        if why is not None:
            return why
        node, path = tree.root, [tree.root]
        while not node.terminal:
            if not node.expanded:
                if (why := ctx.tracker.exhausted()) is not None:
                    return why  # budget ran out mid-rollout: no backup for a partial path
                ctx.expand([node], cfg.width)
                for ch in tree.children(node):
                    if ch.N == 0 and ch.prior is not None:  # PPM score as initial Q, N = 1
                        ch.N, ch.W = 1, ch.prior
            nxt = select_child(ctx, node)
            if nxt is None:  # dead end: nothing usable below
                tree.mark_solved(node)
                break
            node = nxt
            path.append(node)
        value = terminal_value(ctx, node) if node.terminal else -1.0
        backup(path, value)
        tree.mark_solved(node)
        ctx.tracker.rollouts += 1
