"""Every answer-selection rule on the SAME chains of an `edgestar eval` run: majority, majority
with a head breaking ties, head-weighted, head-max, and the ceiling (a right answer among them).

    python benchmarks/head/revote.py EVAL_DIR [EVAL_DIR ...] [--by-source]

Reads each run's results.jsonl, whose rows carry `finished` (train/evaluate.py: every finished
answer with the reward model's score, whether it is right, its tokens and mean log-probability,
in drawing order). Run the evaluation with a rule that lets every chain finish (e.g.
`--strategy best_of_n:weighted --ppm HEAD`: the decided-vote stop applies to majority only), so
every rule reads every chain and all compare at exactly equal tokens. The rules are those of
`SearchContext.choose` (edgestar/search/base.py), ties included:

- majority: the most frequent answer (normalized); ties by the mean log-probability of the
  group's likeliest chain, then first drawn (what `select='majority'` does without a head);
- majority_head: the most frequent; ties by the head's summed (score + 1) / 2, then as above
  (what `select='majority'` does with a head);
- weighted: the largest sum of (score + 1) / 2; max: the best-scored chain's answer;
- first: the first chain drawn (with `greedy_first`, the greedy chain);
- coverage: a right answer is among the chains.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from edgestar.answer import normalize

RULES = ("first", "majority", "majority_head", "weighted", "max", "coverage")


def pick(chains: list[list[Any]], rule: str) -> bool:
    """Whether `rule` picks a right answer among `chains` ([answer, score, right, tokens, lp])."""
    if not chains:
        return False
    if rule == "coverage":
        return any(c[2] for c in chains)
    if rule == "first":
        return bool(chains[0][2])
    groups: dict[str, list[tuple[int, list[Any]]]] = defaultdict(list)
    for i, c in enumerate(chains):
        groups[normalize(c[0])].append((i, c))

    def head(k: str) -> float:
        return sum((c[1] + 1) / 2 for _, c in groups[k] if c[1] is not None)

    def conf(k: str) -> float:
        return max(c[4] if len(c) > 4 else 0.0 for _, c in groups[k])

    def size(k: str) -> int:
        return len(groups[k])

    def first(k: str) -> int:
        return groups[k][0][0]

    keys = {
        "majority": lambda k: (size(k), conf(k), -first(k)),
        "majority_head": lambda k: (size(k), head(k), conf(k), -first(k)),
        "weighted": lambda k: (head(k), size(k), conf(k), -first(k)),
        "max": lambda k: (max(c[1] for _, c in groups[k]), size(k), conf(k), -first(k)),
    }
    best = max(groups, key=keys[rule])
    return bool(groups[best][0][1][2])


def main() -> None:
    args = sys.argv[1:]
    by_source = "--by-source" in args
    runs = [Path(a) for a in args if a != "--by-source"]
    if not runs:
        sys.exit("usage: revote.py EVAL_DIR [EVAL_DIR ...] [--by-source]")
    if by_source:
        return _by_source(runs)
    total: dict[str, int] = dict.fromkeys(RULES, 0)
    n = tokens = 0
    print("| run | problems | mean tokens | " + " | ".join(RULES) + " |")
    print("|---|---|---|" + "---|" * len(RULES))
    for run in runs:
        rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x]
        hits = {r: sum(pick(row["finished"], r) for row in rows) for r in RULES}
        tok = sum(row["tokens"] for row in rows)
        print(f"| {run.name} | {len(rows)} | {tok / len(rows):,.0f} | "
              + " | ".join(str(hits[r]) for r in RULES) + " |")  # fmt: skip
        for r in RULES:
            total[r] += hits[r]
        n, tokens = n + len(rows), tokens + tok
    if len(runs) > 1:
        print(f"| all | {n} | {tokens / n:,.0f} | "
              + " | ".join(f"{total[r]} ({total[r] / n:.1%})" for r in RULES) + " |")  # fmt: skip


def _by_source(runs: list[Path]) -> None:
    """The rules per problem source, all runs pooled."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        for x in (run / "results.jsonl").read_text().splitlines():
            if x:
                row = json.loads(x)
                by[row["source"]].append(row)
    print("| source | problems | " + " | ".join(RULES) + " |")
    print("|---|---|" + "---|" * len(RULES))
    for src, rows in sorted(by.items()):
        hits = [sum(pick(row["finished"], r) for row in rows) for r in RULES]
        print(f"| {src} | {len(rows)} | " + " | ".join(map(str, hits)) + " |")


if __name__ == "__main__":
    main()
