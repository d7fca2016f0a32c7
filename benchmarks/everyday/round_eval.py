"""A round's test-split evaluation (what `edgestar train evolve` runs after each round) for any
edgestar-smol adapter, with a reward head when one is given: MCTS with the head is then scored
on the same split and budget as the round table.

    python benchmarks/everyday/round_eval.py --recipe train/recipes/edgestar-smol.yaml \\
        --run runs/edgestar-smol --lora ADAPTER.lora.gguf [--head HEAD.npz] \\
        [--strategies greedy,mcts] [--threads 2] --out OUT

Settings come from the recipe (`eval:` width, rollouts, max_step_tokens, temperature; its seed
and base), the problems from the run's test split (`problems/test.jsonl`). Writes
`edgestar eval`'s results.jsonl and report.{json,md} to --out (`benchmarks/head/revote.py OUT`
scores every selection rule on the same chains).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgestar.backends.loader import open_policy
from edgestar.head import HeadReward
from edgestar.solver import Solver
from edgestar.train.evaluate import evaluate
from edgestar.train.problems import read_jsonl
from edgestar.train.recipe import load_recipe
from edgestar.train.schema import ProblemRecord
from edgestar.types import Budget, SearchConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", type=Path, required=True, help="the run's recipe file")
    ap.add_argument("--run", type=Path, required=True, help="an `edgestar train evolve` folder")
    ap.add_argument("--lora", type=Path, required=True, help="the GGUF LoRA adapter to evaluate")
    ap.add_argument("--head", type=Path, help="a reward head bound to the base + this adapter")
    ap.add_argument("--strategies", default="mcts", help="comma-separated (default: mcts)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    recipe = load_recipe(a.recipe)
    ev = recipe.eval
    test = read_jsonl(a.run / "problems" / "test.jsonl", ProblemRecord)[: ev.n]
    base = recipe.base.gguf_path()
    policy = open_policy(base, "cpu", a.threads, 2048, lora=a.lora)
    reward = None
    if a.head is not None:
        reward = HeadReward(policy, a.head, model_path=base, adapter_path=a.lora)
    cfg = SearchConfig(width=ev.width, max_step_tokens=ev.max_step_tokens,
                       temperature=ev.temperature)  # fmt: skip
    with Solver(policy, reward, step_format=recipe.step_format, config=cfg) as solver:
        rep = evaluate(solver, test, a.strategies.split(","), (Budget(rollouts=ev.rollouts),),
                       seed=recipe.seed, out_dir=a.out, force=True, progress=False)  # fmt: skip
    for c in rep.cells:
        print(f"{c.strategy}: {c.accuracy:.1%} (a right answer among the candidates: "
              f"{c.coverage:.1%}), {c.mean_tokens:.0f} tokens")  # fmt: skip


if __name__ == "__main__":
    main()
