"""Self-evolution works end to end (issue 5's micro check, made CPU-independent by issue 16): a
from-scratch ~0.5M-parameter model goes through a bootstrap round and two self-evolution rounds
of train/recipes/micro-rise.yaml on a few hundred answer-only problems per round, and its search
(MCTS) accuracy on 120 held test problems ends the two rounds clearly above where round 0 left
it.

What is asserted holds on any x86-64 CPU, not on one CPU's float rounding: the trained weights
differ between CPUs (AVX-512 vs AVX2 reduction order, thread count), and where the bootstrap
lands differs with them (MCTS 0.01 to 0.69 over the seeds, kernels and threads measured), so no figure
is pinned. Round 2 must beat round 0 by MIN_RISE, or, when round 0 is already high, close at
least GAP_SHARE of the gap between round 0 and a perfect score. Every run measured is in
benchmarks/rise/README.md (benchmarks/rise/variants.sh reproduces them). Minutes on one CPU
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
GAP_SHARE = 1 / 3
"""...or this share of round 0's errors fixed, whichever is smaller (round 0 at 0.85 must reach
0.90). In the runs measured round 2 ends 0.24-0.82 above round 0."""


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
    need = min(MIN_RISE, GAP_SHARE * (1 - m0))
    assert m2 - m0 >= need - 1e-9, (
        f"search accuracy went {m0:.3f} -> {m2:.3f} from round 0 to round 2, a rise of "
        f"{m2 - m0:+.3f}; at least {need:.3f} was needed:\n{table}"
    )
