"""Self-evolution works end to end (issue 5's micro check, made CPU-independent by issue 16): a
from-scratch ~0.5M-parameter model goes through a bootstrap round and two self-evolution rounds
of train/recipes/micro-rise.yaml on a few hundred answer-only problems per round, and its search
(MCTS) accuracy on 120 held test problems ends the two rounds well above where round 0 left it.

What is asserted holds on any x86-64 CPU, not on one CPU's float rounding: the trained weights
differ between CPUs (AVX-512 vs AVX2 reduction order), and where the bootstrap lands differs with
them (MCTS 0.27 with AVX2 kernels, 0.69 with AVX-512, same seed), so no figure is pinned. Round 2
must be MIN_RISE above round 0, or, when round 0 already starts near what this micro model can
reach, at least REACH; and never clearly below round 0. Every run measured is in
benchmarks/rise/README.md (reproduced by benchmarks/rise/variants.sh). Minutes on one CPU
thread; the table is printed, pass or fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgestar.train.evolve import evolve
from edgestar.train.recipe import load_recipe

pytestmark = [pytest.mark.torch, pytest.mark.slow]

RECIPE = Path(__file__).resolve().parent.parent / "train" / "recipes" / "micro-rise.yaml"
MIN_RISE = 0.10
"""Round 2's MCTS accuracy minus round 0's, at least (as a share of the held problems)..."""
REACH = 0.65
"""...unless round 2 reaches this: round 2 ends at 0.77-0.83 MCTS (coverage 0.82-0.86) in the runs
measured, near this micro model's plateau, so a round 0 that lands at 0.69 cannot rise by much.
Known gap (benchmarks/rise/README.md): with seed 1 the two-epoch bootstrap still ends before
the model learns to copy numbers (round 0 at 0.017) and the rule fails (0.075 after round 2)."""
MAX_DROP = 0.05
"""Round 2 below round 0 by more than this (6 of 120 problems) fails whatever round 0 was."""


def _table(rows: tuple[dict, ...]) -> list[str]:
    out = ["round  greedy  mcts   mcts coverage  train solved  SFT examples"]
    for r in rows:
        ev, ro, ds = r["eval"], r.get("rollouts", {}), r.get("datasets", {})
        out.append(f"{r['round']:>5}  {ev['greedy']:6.3f}  {ev['mcts']:5.3f}  "
                   f"{ev.get('mcts_coverage', float('nan')):13.3f}  "
                   f"{ro.get('solved_share', float('nan')):12.3f}  {ds.get('sft_examples', '-')}")  # fmt: skip
    return out


def test_search_accuracy_rises_over_the_rounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = load_recipe(RECIPE)
    rep = evolve(recipe, tmp_path / "run", progress=False, log=lambda s: None)
    rows = rep.rounds
    assert [r["round"] for r in rows] == [0, 1, 2]
    table = "\n".join([f"micro-rise: {recipe.eval.n} held problems, {rep.seconds:.0f} s",
                       *_table(rows)])  # fmt: skip
    with capsys.disabled():  # the numbers belong in the test output, pass or fail
        print("\n" + table)
    # Each round searched, verified and learned from problems of its own.
    for r in rows[1:]:
        assert r["rollouts"]["solved"] > 0 and r["datasets"]["sft_examples"] > 0, table
    m0, m2 = rows[0]["eval"]["mcts"], rows[2]["eval"]["mcts"]
    assert m2 >= min(m0 + MIN_RISE, REACH) and m2 >= m0 - MAX_DROP, (
        f"search accuracy went {m0:.3f} -> {m2:.3f} from round 0 to round 2: neither "
        f"+{MIN_RISE} nor {REACH} reached (or it fell more than {MAX_DROP}):\n{table}"
    )
