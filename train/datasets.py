"""Training data from search trees: policy SFT trajectories, PPM preference pairs, pivotal pairs.

Input is the JSON form of an edgestar search tree (`Tree.to_dict()`, as written to trees.jsonl
by the rollout stage): nodes with parent/children, step text, kind, correctness of terminals and
the MCTS statistics N and Q. Rules, after rStar-Math (Guan et al., 2025) and Phi-4's pivotal
token search (at step granularity):

- SFT: per problem, the `top_k` (2) root-to-terminal trajectories that end in a correct answer,
  ranked by the mean Q of their steps.
- PPM pairs: for every node with several children (same prefix), chosen = the 2 highest-Q
  children that lead to a correct answer, rejected = the 2 lowest-Q children that lead only to
  wrong answers (or whose code failed); each chosen x rejected combination whose Q margin is at
  least `margin` (0.5) is a pair.
- Pivotal pairs: p(success | prefix) is the share of correct terminals below a node (visit
  weighted is not needed: an MCTS tree already holds one terminal per rollout). For a parent with
  0.2 <= p <= 0.8, a child whose p rises by at least `threshold` is chosen, one whose p falls by at
  least `threshold` is rejected (Phi-4's PTS, with steps in place of tokens).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

Tree = dict[str, Any]


@dataclass(frozen=True)
class SFTExample:
    problem_id: str
    prompt: str
    solution: str
    mean_q: float


@dataclass(frozen=True)
class PreferencePair:
    problem_id: str
    prefix: str
    chosen: str
    rejected: str
    q_chosen: float
    q_rejected: float
    kind: str = "ppm"  # ppm | pivotal

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _View:
    """Index over one tree's nodes with correct/wrong terminal counts per subtree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.nodes = {n["id"]: n for n in tree["nodes"]}
        self.good: dict[int, int] = {}
        self.bad: dict[int, int] = {}
        for nid in sorted(self.nodes, key=lambda i: -self.nodes[i]["depth"]):
            n = self.nodes[nid]
            g = b = 0
            if n["kind"] == "answer" and n.get("correct") is True:
                g = 1
            elif n["kind"] in ("answer", "error", "invalid") and n.get("correct") is not True:
                b = 1
            for c in n["children"]:
                g += self.good[c]
                b += self.bad[c]
            self.good[nid], self.bad[nid] = g, b

    def path(self, nid: int) -> list[dict[str, Any]]:
        out = []
        n = self.nodes[nid]
        while n["parent"] is not None:
            out.append(n)
            n = self.nodes[n["parent"]]
        return out[::-1]

    def prefix(self, nid: int) -> str:
        """Prompt + steps down to and including node `nid`."""
        return self.tree["prompt"] + "".join(n["text"] for n in self.path(nid))

    def p_success(self, nid: int) -> float | None:
        t = self.good[nid] + self.bad[nid]
        return self.good[nid] / t if t else None


def sft_examples(tree: Tree, problem_id: str = "", top_k: int = 2) -> list[SFTExample]:
    v = _View(tree)
    correct = [n for n in v.nodes.values() if n["kind"] == "answer" and n.get("correct") is True]
    ranked = []
    for t in correct:
        steps = v.path(t["id"])
        mean_q = sum(s["Q"] for s in steps) / len(steps)
        ranked.append((mean_q, t["id"], "".join(s["text"] for s in steps)))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    out, seen = [], set()
    for mean_q, _, solution in ranked:
        if solution in seen:
            continue
        seen.add(solution)
        out.append(SFTExample(problem_id, tree["prompt"], solution, round(mean_q, 6)))
        if len(out) == top_k:
            break
    return out


def ppm_pairs(
    tree: Tree, problem_id: str = "", per_side: int = 2, margin: float = 0.5
) -> list[PreferencePair]:
    v = _View(tree)
    pairs: list[PreferencePair] = []
    for n in sorted(v.nodes.values(), key=lambda n: n["id"]):
        kids = [v.nodes[c] for c in n["children"]]
        if len(kids) < 2:
            continue
        pos = sorted((k for k in kids if v.good[k["id"]] > 0), key=lambda k: (-k["Q"], k["id"]))
        neg = sorted(
            (k for k in kids if v.good[k["id"]] == 0 and v.bad[k["id"]] > 0),
            key=lambda k: (k["Q"], k["id"]),
        )
        prefix = v.prefix(n["id"])
        for c in pos[:per_side]:
            for r in neg[:per_side]:
                if c["Q"] - r["Q"] >= margin:
                    pairs.append(
                        PreferencePair(problem_id, prefix, c["text"], r["text"], c["Q"], r["Q"])
                    )
    return pairs


def pivotal_pairs(
    tree: Tree, problem_id: str = "", threshold: float = 0.2, band: tuple[float, float] = (0.2, 0.8)
) -> list[PreferencePair]:
    v = _View(tree)
    pairs: list[PreferencePair] = []
    for n in sorted(v.nodes.values(), key=lambda n: n["id"]):
        p = v.p_success(n["id"])
        if p is None or not (band[0] <= p <= band[1]) or len(n["children"]) < 2:
            continue
        kids = [(v.nodes[c], v.p_success(c)) for c in n["children"]]
        up = [(k, pk) for k, pk in kids if pk is not None and pk - p >= threshold]
        down = [(k, pk) for k, pk in kids if pk is not None and p - pk >= threshold]
        prefix = v.prefix(n["id"])
        for c, pc in sorted(up, key=lambda x: (-x[1], x[0]["id"])):
            for r, pr in sorted(down, key=lambda x: (x[1], x[0]["id"])):
                pairs.append(
                    PreferencePair(problem_id, prefix, c["text"], r["text"], pc, pr, "pivotal")
                )
    return pairs


def coverage_diversity(trees: Iterable[Tree]) -> dict[str, float]:
    """Smaller-Weaker-Yet-Better's data metrics over a round's trees: coverage = share of
    problems with at least one correct answer; diversity = mean number of distinct correct
    solutions per problem."""
    n = solved = distinct = 0
    for t in trees:
        n += 1
        v = _View(t)
        sols = {
            "".join(s["text"] for s in v.path(x["id"]))
            for x in v.nodes.values()
            if x["kind"] == "answer" and x.get("correct") is True
        }
        solved += bool(sols)
        distinct += len(sols)
    return {
        "problems": n,
        "coverage": solved / n if n else 0.0,
        "diversity": distinct / n if n else 0.0,
    }
