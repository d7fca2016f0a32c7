"""Self-evolution works end to end (issue 5's micro check): a from-scratch ~0.5M-parameter model
goes through a bootstrap round and two self-evolution rounds of train/recipes/micro-rise.yaml
on a few hundred answer-only problems per round, and its search (MCTS) accuracy on the held
test problems rises round over round. Minutes on one CPU thread; the numbers are printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgestar.train.evolve import evolve
from edgestar.train.recipe import load_recipe

pytestmark = [pytest.mark.torch, pytest.mark.slow]

RECIPE = Path(__file__).resolve().parent.parent / "train" / "recipes" / "micro-rise.yaml"


def test_search_accuracy_rises_round_over_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = load_recipe(RECIPE)
    rep = evolve(recipe, tmp_path / "run", progress=False, log=lambda s: None)
    rows = rep.rounds
    assert [r["round"] for r in rows] == [0, 1, 2]
    lines = [f"micro-rise: {recipe.test.n} held problems, {rep.seconds:.0f} s",
             "round  greedy  mcts   train solved  SFT examples"]  # fmt: skip
    for r in rows:
        ev, ro, ds = r["eval"], r.get("rollouts", {}), r.get("datasets", {})
        lines.append(f"{r['round']:>5}  {ev['greedy']:6.3f}  {ev['mcts']:5.3f}  "
                     f"{ro.get('solved_share', float('nan')):12.3f}  {ds.get('sft_examples', '-')}")  # fmt: skip
    with capsys.disabled():  # the numbers belong in the test output, pass or fail
        print("\n" + "\n".join(lines))
    mcts = [r["eval"]["mcts"] for r in rows]
    # Each round searched, verified and learned from problems of its own.
    assert all(r["rollouts"]["solved"] > 0 and r["datasets"]["sft_examples"] > 0 for r in rows[1:])
    assert mcts[0] < mcts[1] < mcts[2], f"search accuracy did not rise round over round: {mcts}"
