"""The evaluation harness behind `edgestar eval`: solve a suite with several strategies and
budgets, write per-item results, accuracy tables and accuracy-vs-budget curves.

Budgets are compared at equal generated-token budgets (each strategy gets the same `tokens`
limit, rollouts unlimited), as Smaller-Weaker-Yet-Better compares samplers at matched compute.
Outputs in `out_dir`:

    results.jsonl          one ResultRecord (+ source, skill, stopped_by, covered, finished: every
                           finished answer with its score) per (item, strategy, budget)
    report.json            accuracy per strategy x budget, per source and per skill; coverage;
                           tokens and seconds per problem (mean and median)
    report.md              the same as tables
    accuracy_vs_budget.png accuracy against mean generated tokens, one line per strategy

Coverage is the share of problems where ANY finished answer the search produced is right (pass@k
over the search's own candidates): the ceiling that a perfect answer selection (a perfect
reward model) could reach at that budget. Accuracy below coverage is a selection loss; coverage
itself is what the policy can find.

Results are appended and flushed line by line: an interrupted evaluation keeps what it solved.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgestar.answer import equivalent
from edgestar.checkpoint import atomic_write_text
from edgestar.types import Budget, InputError, SearchConfig

from .schema import ProblemRecord, ResultRecord


@dataclass(frozen=True)
class Cell:
    strategy: str
    budget: dict[str, Any]
    n: int
    correct: int
    mean_tokens: float
    median_seconds: float
    mean_seconds: float
    covered: int = 0
    """Problems where some finished answer of the search (not only the chosen one) was right."""
    by_source: dict[str, float] = field(default_factory=dict)
    by_skill: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def coverage(self) -> float:
        return self.covered / self.n if self.n else 0.0


@dataclass(frozen=True)
class EvalReport:
    cells: tuple[Cell, ...]
    problems: int
    seed: int

    def accuracy(self, strategy: str, budget: Budget | None = None) -> float:
        for c in self.cells:
            if c.strategy == strategy and (budget is None or c.budget == asdict(budget)):
                return c.accuracy
        raise KeyError(strategy)

    def to_json(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "seed": self.seed,
            "cells": [
                {**asdict(c), "accuracy": round(c.accuracy, 4), "coverage": round(c.coverage, 4)}
                for c in self.cells
            ],
        }

    def to_markdown(self) -> str:
        lines = [
            "| strategy | budget | accuracy | correct / n | coverage | tokens / problem "
            "| s / problem (median) |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.cells:
            b = ", ".join(f"{k}={v}" for k, v in c.budget.items() if v is not None)
            lines.append(
                f"| {c.strategy} | {b} | {c.accuracy:.1%} | {c.correct} / {c.n} | {c.coverage:.1%} "
                f"| {c.mean_tokens:.0f} | {c.median_seconds:.3f} |"
            )
        for key in ("by_source", "by_skill"):
            groups = sorted({g for c in self.cells for g in getattr(c, key)})
            if not groups:
                continue
            lines += ["", f"| strategy | budget | {' | '.join(groups)} |",
                      "|---|---|" + "---|" * len(groups)]  # fmt: skip
            for c in self.cells:
                b = ", ".join(f"{k}={v}" for k, v in c.budget.items() if v is not None)
                vals = [f"{getattr(c, key).get(g, float('nan')):.0%}" for g in groups]
                lines.append(f"| {c.strategy} | {b} | {' | '.join(vals)} |")
        lines += ["", "coverage: share of problems where any finished answer of the search was "
                  "right (the ceiling of a perfect answer selection at that budget)."]  # fmt: skip
        return "\n".join(lines) + "\n"


def evaluate(
    solver: Any,
    problems: Sequence[ProblemRecord],
    strategies: Sequence[str] = ("greedy", "mcts"),
    budgets: Sequence[Budget] = (Budget(rollouts=8),),
    *,
    seed: int = 0,
    config: SearchConfig | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = False,
) -> EvalReport:
    """Solve every problem with every strategy at every budget; score against the answers."""
    if not problems:
        raise InputError("the evaluation suite is empty")
    out = Path(out_dir) if out_dir is not None else None
    results_f = None
    if out is not None:
        if (out / "results.jsonl").exists() and not force:
            raise InputError(f"{out} already holds results; pass force to overwrite")
        out.mkdir(parents=True, exist_ok=True)
        results_f = open(out / "results.jsonl", "w", encoding="utf-8")  # noqa: SIM115
    bar = None
    if progress:
        from tqdm import tqdm

        runs = sum(len(_budgets_for(_variant(s, solver, config)[0], budgets)) for s in strategies)
        bar = tqdm(total=len(problems) * runs, desc="eval", unit="solve")
    rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    try:
        for strategy in strategies:
            name, cfg = _variant(strategy, solver, config)
            for budget in _budgets_for(name, budgets):
                bkey = json.dumps(asdict(budget), sort_keys=True)
                for p in problems:
                    r = solver.solve(p.question, strategy=name, budget=budget, seed=seed,
                                     config=cfg, keep_tree=True)  # fmt: skip
                    ok = equivalent(p.answer, r.answer) if r.answer is not None else False
                    covered = ok or any(equivalent(p.answer, a) for a, _ in r.candidates)
                    finished = _finished(r.tree, p.answer)
                    rec = ResultRecord(
                        id=p.id, answer=r.answer, correct=ok, tokens=r.stats.tokens_generated,
                        seconds=r.stats.seconds, strategy=strategy, budget=asdict(budget),
                    )  # fmt: skip
                    row = {**rec.to_dict(), "source": p.source, "skill": p.skill,
                           "stopped_by": r.stopped_by, "covered": covered,
                           "finished": finished}  # fmt: skip
                    rows[(strategy, bkey)].append(row)
                    if results_f is not None:
                        results_f.write(json.dumps(row, ensure_ascii=False) + "\n")
                        results_f.flush()
                    if bar is not None:
                        bar.update(1)
    finally:
        if results_f is not None:
            results_f.close()
        if bar is not None:
            bar.close()
    cells = tuple(_cell(s, json.loads(b), rs) for (s, b), rs in rows.items())
    report = EvalReport(cells=cells, problems=len(problems), seed=seed)
    if out is not None:
        atomic_write_text(out / "report.json", json.dumps(report.to_json(), indent=1) + "\n")
        atomic_write_text(out / "report.md", report.to_markdown())
        plot_accuracy_vs_budget(report, out / "accuracy_vs_budget.png")
    return report


def _finished(tree: dict[str, Any] | None, gold: str) -> list[list[Any]]:
    """Every finished answer of a search, in the order its chain was drawn (by its first step;
    in best-of-n the first is the greedy chain): [answer, the reward model's score or None,
    right?, generated tokens on its path, their mean log-probability, its chain's place among
    the root's children (0: the first drawn, best-of-n's greedy chain)]. Lets another selection
    rule be scored on the very same chains afterwards (benchmarks/head/revote.py), or on the
    first k of them."""
    if not tree:
        return []
    nodes = tree["nodes"]
    place = {c["id"]: i for i, c in enumerate(n for n in nodes if n["parent"] == 0)}
    out = []
    for n in nodes:
        if n["kind"] != "answer" or n["answer"] is None:
            continue
        tokens, logprob, cur, first = 0, 0.0, n, n["id"]
        while cur["parent"] is not None:
            tokens, logprob, first = tokens + cur["n_tokens"], logprob + cur["logprob"], cur["id"]
            cur = nodes[cur["parent"]]
        mean = round(logprob / tokens, 6) if tokens else 0.0
        row = [n["answer"], n["prior"], equivalent(gold, n["answer"]), tokens, mean, place[first]]
        out.append((first, row))
    return [row for _, row in sorted(out, key=lambda x: x[0])]


def _budgets_for(name: str, budgets: Sequence[Budget]) -> list[Budget]:
    """The budgets `name` really runs under, each once. Greedy draws one chain whatever the
    rollout budget says, so its rollout limit is dropped (a budget with no other limit becomes
    `rollouts=1`): a sweep over rollouts runs greedy once and labels it by what it did."""
    if name != "greedy":
        return list(budgets)
    seen: dict[str, Budget] = {}
    for b in budgets:
        rest = dataclasses.replace(b, rollouts=None) if (b.tokens or b.seconds or b.nodes) else None
        eff = rest if rest is not None else Budget(rollouts=1)
        seen.setdefault(json.dumps(asdict(eff), sort_keys=True), eff)
    return list(seen.values())


def _variant(
    strategy: str, solver: Any, config: SearchConfig | None
) -> tuple[str, SearchConfig | None]:
    """'best_of_n:majority' -> ('best_of_n', the config with select='majority'); a plain name
    keeps `config`. The label (with its rule) names the strategy in every table and plot."""
    name, _, select = strategy.partition(":")
    if not select:
        return name, config
    base = config or getattr(solver, "config", None) or SearchConfig()
    return name, dataclasses.replace(base, select=select)


def _share(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r.get(key):
            groups[str(r[key])].append(bool(r["correct"]))
    return {g: round(sum(v) / len(v), 4) for g, v in sorted(groups.items())}


def _cell(strategy: str, budget: dict[str, Any], rows: list[dict[str, Any]]) -> Cell:
    secs = [r["seconds"] for r in rows]
    return Cell(
        strategy=strategy,
        budget=budget,
        n=len(rows),
        correct=sum(1 for r in rows if r["correct"]),
        mean_tokens=round(statistics.fmean(r["tokens"] for r in rows), 2),
        median_seconds=round(statistics.median(secs), 4),
        mean_seconds=round(statistics.fmean(secs), 4),
        covered=sum(1 for r in rows if r["covered"]),
        by_source=_share(rows, "source"),
        by_skill=_share(rows, "skill"),
    )


def plot_accuracy_vs_budget(report: EvalReport, path: str | Path) -> Path | None:
    """Accuracy against mean generated tokens per problem, a line per strategy (None when
    matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in dict.fromkeys(c.strategy for c in report.cells):
        pts = sorted((c.mean_tokens, c.accuracy) for c in report.cells if c.strategy == s)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s)
    ax.set_xlabel("generated tokens per problem (mean)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"accuracy vs budget ({report.problems} problems)")
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return Path(path)
