"""Every answer-selection rule on the SAME chains of an `edgestar eval` run: majority, majority
with a head breaking ties, head-weighted, head-max, and the ceiling (a right answer among them).

    python benchmarks/head/revote.py EVAL_DIR [EVAL_DIR ...] [--by-source] [--first K]

Reads each run's results.jsonl, whose rows carry `finished` (train/evaluate.py: every finished
answer with the reward model's score, whether it is right, its tokens and mean log-probability,
in drawing order, and since 2026-12-07 each chain's place among the root's children). Run the
evaluation with `--every-chain` (no decided-vote stop), so every rule reads every chain and all
compare at exactly equal tokens. `--first K` scores best-of-K on the first K chains drawn of
each problem (needs the chain places). The rules are those of
`SearchContext.choose` (edgestar/search/base.py), ties included:

- majority: the most frequent answer (normalized); ties by the mean log-probability of the
  group's likeliest chain, then first drawn (what `select='majority'` does without a head, and
  `select='count'`, the default for a chat model since 2026-12-07, with or without one);
- majority_head: the most frequent; ties by the head's summed (score + 1) / 2, then as above
  (what `select='majority'` does with a head);
- weighted: the largest sum of (score + 1) / 2; max: the best-scored chain's answer;
- first: the first chain drawn (with `greedy_first`, the greedy chain): by its place where rows
  record it (a greedy chain that ended with no answer is wrong); older rows only list chains
  that answered, so there it is the first chain that answered;
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
        if len(chains[0]) > 5:
            return any(c[5] == 0 and c[2] for c in chains)
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

    def top(k: str) -> float:  # a run without a reward model scores nothing: all tie
        return max((c[1] for _, c in groups[k] if c[1] is not None), default=-1.0)

    keys = {
        "majority": lambda k: (size(k), conf(k), -first(k)),
        "majority_head": lambda k: (size(k), head(k), conf(k), -first(k)),
        "weighted": lambda k: (head(k), size(k), conf(k), -first(k)),
        "max": lambda k: (top(k), size(k), conf(k), -first(k)),
    }
    best = max(groups, key=keys[rule])
    return bool(groups[best][0][1][2])


def _rows(run: Path, first: int | None) -> list[dict[str, Any]]:
    """A run's results; with `first`, each problem's chains cut to the first `first` drawn."""
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x]
    if first is None:
        return rows
    for row in rows:
        if any(len(c) <= 5 for c in row["finished"]):
            sys.exit(f"{run}: its rows do not record chain places; --first needs a newer run")
        kept = [c for c in row["finished"] if c[5] < first]
        row["finished"], row["tokens"] = kept, None  # the cut chains' tokens are not known
    return rows


def main() -> None:
    args = sys.argv[1:]
    first = None
    if "--first" in args:
        i = args.index("--first")
        if i + 1 >= len(args) or not args[i + 1].isdigit() or int(args[i + 1]) < 1:
            sys.exit("revote.py: --first needs a whole number of chains >= 1")
        first = int(args.pop(i + 1))
        args.pop(i)
    by_source = "--by-source" in args
    runs = [Path(a) for a in args if a != "--by-source"]
    if not runs:
        sys.exit("usage: revote.py EVAL_DIR [EVAL_DIR ...] [--by-source] [--first K]")
    if by_source:
        return _by_source(runs, first)
    total: dict[str, int] = dict.fromkeys(RULES, 0)
    n, tokens = 0, 0  # tokens: None once a run's are unknown (--first)
    print("| run | problems | mean tokens | " + " | ".join(RULES) + " |")
    print("|---|---|---|" + "---|" * len(RULES))
    for run in runs:
        rows = _rows(run, first)
        hits = {r: sum(pick(row["finished"], r) for row in rows) for r in RULES}
        tok = None if first else sum(row["tokens"] for row in rows)
        mean = "?" if tok is None else f"{tok / len(rows):,.0f}"
        print(f"| {run.name} | {len(rows)} | {mean} | "
              + " | ".join(str(hits[r]) for r in RULES) + " |")  # fmt: skip
        for r in RULES:
            total[r] += hits[r]
        n, tokens = n + len(rows), None if tok is None or tokens is None else tokens + tok
    if len(runs) > 1:
        mean = "?" if tokens is None else f"{tokens / n:,.0f}"
        print(f"| all | {n} | {mean} | "
              + " | ".join(f"{total[r]} ({total[r] / n:.1%})" for r in RULES) + " |")  # fmt: skip


def _by_source(runs: list[Path], first: int | None) -> None:
    """The rules per problem source, all runs pooled."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        for row in _rows(run, first):
            by[row["source"]].append(row)
    print("| source | problems | " + " | ".join(RULES) + " |")
    print("|---|---|" + "---|" * len(RULES))
    for src, rows in sorted(by.items()):
        hits = [sum(pick(row["finished"], r) for row in rows) for r in RULES]
        print(f"| {src} | {len(rows)} | " + " | ".join(map(str, hits)) + " |")


if __name__ == "__main__":
    main()
