"""Does the head pick answers? Greedy, majority vote, head-weighted vote and head-max, all on the
SAME sampled chains: the held-out problems of an `edgestar train head --strategy best_of_n` run.

    python benchmarks/head/selection.py RUN_DIR [--head HEAD.npz [--all]] [--json OUT.json]

The run's collection drew, per problem, N chains decoded together (the first one greedy:
`SearchConfig.greedy_first`), and recorded every step's hidden state, answer and tokens. On the
problems the head was not fitted on (`training_rows` is False: a seeded share of each training
source, plus whole holdout sources), this scores each finished chain's answer step with the
head and picks an answer from the first k chains by each rule:

- greedy: the first chain's answer (k = 1);
- majority: the most frequent answer (`edgestar.answer.normalize` groups, as the runtime);
- majority_head: the most frequent answer, ties broken by the head (the larger sum of scores)
  instead of by first appearance: the head only decides what the vote leaves open (with 4
  chains, 2-2 and 1-1-1-1 splits are common). Declared before any run was scored with it.
- weighted: the answer with the largest sum of (score + 1) / 2 (the runtime's `weighted`);
- max: the answer of the best-scored chain (the runtime's `max`);
- coverage: a right answer is among the k chains (the ceiling of any rule).

Every rule at a given k reads the same chains, so they compare at exactly equal tokens.
The rules are revote.py's (`revote.pick`); with no log-probabilities recorded here, ties break
by first appearance. It also prints the head's pairwise accuracy and AUROC on those
problems (`evaluate_head`). `--all`: every problem of the run counts (for a head fitted on
another run's states, e.g. a generator family collected only to test it). No search runs here;
it reads the collected states.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import revote  # this folder's selection rules (run as a script from here)
from compare_fits import load_run  # this folder's run reader

from edgestar.head import load_head
from edgestar.train.head import evaluate_head, training_rows

RULES = ("greedy", "majority", "majority_head", "weighted", "max", "coverage")


def chains(recs: list[dict[str, Any]], rows: list[int]) -> list[dict[str, Any]]:
    """One problem's chains in drawing order: {answer, correct, tokens, row} per chain (answer
    None when the chain ended without one)."""
    by_id = {recs[i]["id"]: i for i in rows}
    parents = {recs[i]["parent"] for i in rows}
    out = []
    for i in rows:
        r = recs[i]
        if r["id"] in parents:
            continue  # not a leaf
        tokens, j, first = 0, i, r["id"]
        while True:
            tokens += recs[j].get("tokens", 0)
            first = recs[j]["id"]
            if recs[j]["parent"] == 0 or recs[j]["parent"] not in by_id:
                break
            j = by_id[recs[j]["parent"]]
        done = r["kind"] == "answer" and r.get("answer") is not None
        out.append({"first": first, "answer": r.get("answer") if done else None,
                    "correct": bool(r["correct"]) if done else False, "tokens": tokens,
                    "row": i if done else None})  # fmt: skip
    return sorted(out, key=lambda c: c["first"])


def pick(cs: list[dict[str, Any]], scores: dict[int, float], rule: str) -> bool:
    """Whether `rule` picks a right answer among chains `cs`: revote.py's rules (the runtime's,
    ties included), on these chains written as its rows."""
    rows = [[c["answer"], scores[c["row"]], c["correct"], c["tokens"], 0.0, place]
            for place, c in enumerate(cs) if c["answer"] is not None]  # fmt: skip
    return revote.pick(rows, "first" if rule == "greedy" else rule)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--head", type=Path, help="default: RUN/head.npz")
    ap.add_argument("--all", action="store_true", help="every problem is held out from --head")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    cfg, states, recs = load_run(a.run)
    head = load_head(a.head or a.run / "head.npz")
    ok = [False] * len(recs) if a.all else training_rows(recs, cfg)
    scores = dict(enumerate(head.score(states).tolist()))
    problems: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(recs):
        if not ok[i]:
            problems[r["problem"]].append(i)
    source = {p: recs[rows[0]]["source"] for p, rows in problems.items()}
    per_problem = {p: chains(recs, rows) for p, rows in problems.items()}
    n_max = max((len(c) for c in per_problem.values()), default=0)
    table: dict[str, Any] = {"n_chains": n_max, "by_k": {}, "by_source": {}}
    for k in range(1, n_max + 1):
        hits = {rule: 0 for rule in RULES}
        tokens = 0
        for cs in per_problem.values():
            for rule in RULES:
                hits[rule] += pick(cs[:k], scores, rule)
            tokens += sum(c["tokens"] for c in cs[:k])
        table["by_k"][k] = {**hits, "problems": len(per_problem),
                            "mean_tokens": round(tokens / max(1, len(per_problem)), 1)}  # fmt: skip
    for src in sorted(set(source.values())):
        ps = [p for p in per_problem if source[p] == src]
        table["by_source"][src] = {
            "problems": len(ps),
            "unseen": src in cfg.holdout,
            **{rule: sum(pick(per_problem[p], scores, rule) for p in ps) for rule in RULES},
        }
    te = [i for i, t in enumerate(ok) if not t]
    per, overall = evaluate_head(head, states[te], [recs[i] for i in te])
    table["head"] = [dataclasses.asdict(f) for f in (*per, overall)]
    print("| source | problems | pairs | pairwise acc | answers (right) | AUROC |")
    print("|---|---|---|---|---|---|")
    for f in (*per, overall):
        print(f"| {f.source} | {f.heldout_problems} | {f.pairs} | {_f(f.pairwise_accuracy)} | "
              f"{f.answers} ({f.correct_answers}) | {_f(f.auroc)} |")  # fmt: skip
    n = len(per_problem)
    print(f"\n{n} held-out problems, up to {n_max} chains each (head: {head.kind})\n")
    print("| chains k | mean tokens | " + " | ".join(f"{r}@k" for r in RULES) + " |")
    print("|---" * (len(RULES) + 2) + "|")
    for k, f in table["by_k"].items():
        print(f"| {k} | {f['mean_tokens']:.0f} | " + " | ".join(
            f"{f[r]} ({100 * f[r] / max(1, n):.1f}%)" for r in RULES) + " |")  # fmt: skip
    print(f"\nper source, k = {n_max}:\n")
    print("| source | problems | " + " | ".join(RULES) + " |")
    print("|---" * (len(RULES) + 2) + "|")
    for src, f in table["by_source"].items():
        name = src + (" (never trained on)" if f["unseen"] else "")
        print(f"| {name} | {f['problems']} | " + " | ".join(str(f[r]) for r in RULES) + " |")
    if a.json:
        a.json.write_text(json.dumps(table, indent=1) + "\n")


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
