"""Compute-matched data generation from two policies (Bansal et al., "Smaller, Weaker, Yet
Better", 2024): sample solutions to the same problems from a weak-cheap and a strong-expensive
policy at the same sampling FLOPs, and compare the data by coverage, diversity and false
positive rate.

Cost of sampling ~ problems x samples x tokens x 2P, so the weaker model W gets
samples_weak = (P_strong / P_weak) x samples_strong samples per problem. Each sample is one
sampled chain (best-of-n's independent chains, ground truth marking each final answer); the
metrics are those of `train.datasets.coverage_diversity` and `train.evolve.false_positive_rate`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgestar.checkpoint import atomic_write_text
from edgestar.types import Budget, InputError, SearchConfig

from .datasets import coverage_diversity


@dataclass(frozen=True)
class SideReport:
    model: str
    params: int
    samples_per_problem: int
    coverage: float
    diversity: float
    false_positive_rate: float
    tokens_generated: int
    flops: float


def model_params(path: str | os.PathLike[str]) -> int:
    """Parameter count of a .gguf file or a checkpoint folder."""
    p = Path(path)
    if p.is_file():
        import gguf
        import numpy as np

        r = gguf.GGUFReader(p)
        return int(sum(int(np.prod(t.shape)) for t in r.tensors))
    from edgestar.checkpoint import param_count

    n = param_count(p)
    if not n:
        raise InputError(f"cannot count the parameters of {p}")
    return n


def matched_samples(p_strong: int, p_weak: int, samples_strong: int) -> int:
    """Samples for the weak model at the strong model's sampling compute."""
    if min(p_strong, p_weak, samples_strong) < 1:
        raise InputError("parameter counts and samples must be positive")
    return max(1, round(samples_strong * p_strong / p_weak))


def _side(model: Path, problems: list[Any], n: int, cfg: SearchConfig, seed: int,
          threads: int, step_format: str) -> tuple[SideReport, list[dict[str, Any]]]:  # fmt: skip
    from edgestar.backends.loader import open_policy
    from edgestar.executor import Executor
    from edgestar.formats import get_format
    from edgestar.search import run_search

    from .evolve import false_positive_rate

    params = model_params(model)
    policy = open_policy(model, "cpu", threads, 2048)
    trees, tokens = [], 0
    try:
        with Executor() as runner:
            for p in problems:
                res, tree = run_search(
                    p.question, policy=policy, fmt=get_format(step_format), strategy="best_of_n",
                    budget=Budget(rollouts=n), config=SearchConfig(**{**asdict(cfg), "n": n}),
                    runner=runner, seed=seed, gold=p.answer,
                )  # fmt: skip
                tokens += res.stats.tokens_generated
                trees.append({"id": p.id, "tree": tree.to_dict()})
    finally:
        policy.close()
    cd = coverage_diversity(t["tree"] for t in trees)
    side = SideReport(
        model=str(model), params=params, samples_per_problem=n,
        coverage=round(cd["coverage"], 4), diversity=round(cd["diversity"], 4),
        false_positive_rate=round(false_positive_rate(trees), 4),
        tokens_generated=tokens, flops=float(2 * params * tokens),
    )  # fmt: skip
    return side, trees


def compare(
    weak: str | os.PathLike[str],
    strong: str | os.PathLike[str],
    problems: list[Any],
    *,
    samples_strong: int = 1,
    out_dir: str | os.PathLike[str] | None = None,
    config: SearchConfig | None = None,
    seed: int = 0,
    threads: int = 1,
    step_format: str = "rstar",
) -> dict[str, Any]:
    """Sample both policies at matched compute; return (and write) the side-by-side report."""
    if not problems:
        raise InputError("no problems to sample")
    cfg = config or SearchConfig(temperature=0.9, max_step_tokens=96)
    p_w, p_s = model_params(weak), model_params(strong)
    n_w = matched_samples(p_s, p_w, samples_strong)
    w, w_trees = _side(Path(weak), problems, n_w, cfg, seed, threads, step_format)
    s, s_trees = _side(Path(strong), problems, samples_strong, cfg, seed, threads, step_format)
    report = {"problems": len(problems), "weak": asdict(w), "strong": asdict(s),
              "compute_ratio": round(w.flops / s.flops, 3) if s.flops else None}  # fmt: skip
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "compare.json", json.dumps(report, indent=1) + "\n")
        atomic_write_text(out / "compare.md", compare_markdown(report))
        for name, trees in (("weak", w_trees), ("strong", s_trees)):
            atomic_write_text(out / f"trees-{name}.jsonl",
                              "".join(json.dumps(t) + "\n" for t in trees))  # fmt: skip
    return report


def compare_markdown(r: dict[str, Any]) -> str:
    rows = ["| | weak | strong |", "|---|---|---|"]
    for key, label in (("params", "parameters"), ("samples_per_problem", "samples / problem"),
                       ("coverage", "coverage"), ("diversity", "diversity"),
                       ("false_positive_rate", "false positive rate (est.)"),
                       ("tokens_generated", "tokens generated"), ("flops", "sampling FLOPs")):  # fmt: skip
        rows.append(f"| {label} | {r['weak'][key]} | {r['strong'][key]} |")
    rows.append(f"\n{r['problems']} problems; weak/strong sampling compute ratio "
                f"{r['compute_ratio']}.")  # fmt: skip
    return "\n".join(rows) + "\n"
