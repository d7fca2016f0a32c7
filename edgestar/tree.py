"""The search tree: nodes are reasoning steps, a path from the root is a partial solution.

The tree is the only mutable state of a search. It stores, per node, what the policy wrote,
what running its code gave, the reward model's score, and the MCTS statistics (N visits, W value
sum, Q = W / N). `to_dict` is the JSON shape written by `--tree-out` and read by train/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL_KINDS = frozenset({"answer", "invalid", "error"})


@dataclass
class Node:
    id: int
    parent: int | None
    depth: int
    text: str = ""
    """What this step adds to the path (generated text, plus the output for a 'final' step)."""
    kind: str = "root"
    """root | code | final | text | answer | invalid | error"""
    code: str | None = None
    output: str | None = None
    stdout: str | None = None
    """A 'final' step's raw printed output (`output` is it as the format renders it)."""
    error: str | None = None
    answer: str | None = None
    n_tokens: int = 0
    logprob: float = 0.0
    prior: float | None = None
    """The reward model's score of the path ending here, when scored."""
    reward: float | None = None
    """A terminal's value (the one backed up): PPM score, +1/-1 against ground truth, or None."""
    correct: bool | None = None
    N: int = 0
    W: float = 0.0
    children: list[int] = field(default_factory=list)
    expanded: bool = False
    solved: bool = False
    """Nothing left to explore below: terminal, or expanded with every child solved."""
    hidden: Any = field(default=None, repr=False, compare=False)
    """The policy's hidden state for this step (`Candidate.hidden`), when recorded: what a
    reward head scores and `edgestar train head` learns from. Not in `to_dict`."""

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS

    @property
    def Q(self) -> float:
        return self.W / self.N if self.N else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent,
            "depth": self.depth,
            "kind": self.kind,
            "text": self.text,
            "code": self.code,
            "output": self.output,
            "stdout": self.stdout,
            "error": self.error,
            "answer": self.answer,
            "n_tokens": self.n_tokens,
            "logprob": round(self.logprob, 6),
            "prior": self.prior,
            "reward": self.reward,
            "correct": self.correct,
            "N": self.N,
            "Q": round(self.Q, 6),
            "children": list(self.children),
        }


class Tree:
    def __init__(self, question: str, prompt: str) -> None:
        self.question = question
        self.prompt = prompt
        self.nodes: list[Node] = [Node(id=0, parent=None, depth=0)]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def __len__(self) -> int:
        return len(self.nodes)

    def add(self, parent: Node, **fields: Any) -> Node:
        node = Node(id=len(self.nodes), parent=parent.id, depth=parent.depth + 1, **fields)
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def path(self, node: Node) -> list[Node]:
        """Nodes from the root's first child down to `node` (the root itself is excluded)."""
        out: list[Node] = []
        cur: Node | None = node
        while cur is not None and cur.parent is not None:
            out.append(cur)
            cur = self.nodes[cur.parent]
        out.reverse()
        return out

    def prefix(self, node: Node) -> str:
        """The full text the policy continues from at `node`: prompt + every step so far."""
        return self.prompt + "".join(n.text for n in self.path(node))

    def path_code(self, node: Node) -> str:
        """All code on the path to `node`, in order (what a new step runs after)."""
        return "\n".join(
            n.code
            for n in self.path(node)
            if n.code and n.kind in ("code", "final") and n.error is None
        )  # a failed step shown to the model (tir) is not run again

    def children(self, node: Node) -> list[Node]:
        return [self.nodes[i] for i in node.children]

    def terminals(self) -> list[Node]:
        return [n for n in self.nodes if n.terminal]

    def mark_solved(self, node: Node) -> None:
        """Propagate 'nothing left to explore' upwards from `node`."""
        cur: Node | None = node
        while cur is not None:
            if not (
                cur.terminal or (cur.expanded and all(self.nodes[c].solved for c in cur.children))
            ):
                return
            cur.solved = True
            cur = self.nodes[cur.parent] if cur.parent is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "prompt": self.prompt,
            "nodes": [n.to_dict() for n in self.nodes],
        }
