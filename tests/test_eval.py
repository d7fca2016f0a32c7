"""The evaluation harness (train/evaluate.py, `edgestar eval`): per-item results, accuracy per
strategy x budget and per source/skill, answer-rule variants side by side, and the plot, on the
scripted 6 x 7 tree of test_search (greedy is wrong there; PRM-weighted voting is right)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgestar.backends.fake import ScriptedPolicy, ScriptedReward
from edgestar.solver import Solver
from edgestar.train.evaluate import evaluate
from edgestar.train.schema import ProblemRecord
from edgestar.types import Budget, InputError
from tests.test_search import PPM, InProcessRunner, Q, make_script


class _Runner(InProcessRunner):
    def close(self) -> None:
        pass


def _problems() -> list[ProblemRecord]:
    return [
        ProblemRecord(id=f"p{i}", question=Q, answer="42", source="scripted", skill=s)
        for i, s in enumerate(("mul", "mul", "times"))
    ]


def test_evaluate_tables_and_variants(tmp_path: Path) -> None:
    solver = Solver(ScriptedPolicy(make_script()), ScriptedReward(PPM), step_format="rstar",
                    executor=_Runner())  # fmt: skip
    budgets = (Budget(rollouts=None, tokens=200), Budget(rollouts=None, tokens=600))
    strategies = ("greedy", "best_of_n:majority", "best_of_n:weighted")
    rep = evaluate(solver, _problems(), strategies, budgets, out_dir=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * len(strategies) * len(budgets)
    assert {r["strategy"] for r in rows} == set(strategies)
    assert all(r["tokens"] <= r["budget"]["tokens"] for r in rows)  # equal token budgets hold
    big = {"rollouts": None, "tokens": 600, "seconds": None, "nodes": None}
    cell = {(c.strategy, c.budget["tokens"]): c for c in rep.cells}
    assert cell[("greedy", 600)].accuracy == 0.0  # adds 6 + 7
    assert cell[("best_of_n:majority", 600)].accuracy == 0.0  # the likelier wrong path wins
    # ...yet the right answer was among its candidates: coverage is the selection's ceiling
    assert cell[("best_of_n:majority", 600)].coverage == 1.0
    assert cell[("greedy", 600)].coverage == 0.0  # one path, wrong: nothing to select
    assert all(r["covered"] >= r["correct"] for r in rows)
    # every finished chain is kept with its score, so other rules can be scored on the same ones
    for r in rows:
        assert r["covered"] == any(f[2] for f in r["finished"])
        assert sum(f[3] for f in r["finished"]) <= r["tokens"]
        places = [f[5] for f in r["finished"]]  # each chain's place among the root's children
        assert places == sorted(places) and all(p >= 0 for p in places)
    greedy_chain = [f for r in rows if r["strategy"] == "greedy" for f in r["finished"]]
    assert greedy_chain and all(f[5] == 0 for f in greedy_chain)
    weighted = [r for r in rows if r["strategy"] == "best_of_n:weighted"]
    assert all(f[1] is not None for r in weighted for f in r["finished"])  # the PPM's scores
    assert {f[0] for r in weighted for f in r["finished"]} == {"13", "42"}
    assert cell[("best_of_n:weighted", 600)].accuracy == 1.0  # the PPM lifts 6 * 7
    assert cell[("best_of_n:weighted", 600)].by_skill == {"mul": 1.0, "times": 1.0}
    assert rep.accuracy("best_of_n:weighted", Budget(**big)) == 1.0
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["cells"]) == len(strategies) * len(budgets)
    assert {c["coverage"] for c in data["cells"] if c["strategy"] == "best_of_n:majority"} <= {
        0.0, 1.0}  # fmt: skip
    md = (tmp_path / "report.md").read_text()
    assert "best_of_n:weighted" in md and "| mul | times |" in md
    assert (tmp_path / "accuracy_vs_budget.png").stat().st_size > 0
    with pytest.raises(InputError, match="already holds"):
        evaluate(solver, _problems(), ("greedy",), budgets, out_dir=tmp_path)
    with pytest.raises(InputError, match="empty"):
        evaluate(solver, [], ("greedy",), budgets)


def test_greedy_runs_once_in_a_rollout_sweep(tmp_path: Path) -> None:
    """Greedy ignores the rollout budget: a sweep over rollouts runs it once, labelled by what it
    did (one chain), while a token budget still applies to it."""
    solver = Solver(ScriptedPolicy(make_script()), ScriptedReward(PPM), step_format="rstar",
                    executor=_Runner())  # fmt: skip
    budgets = (Budget(rollouts=2), Budget(rollouts=4), Budget(rollouts=None, tokens=600))
    rep = evaluate(solver, _problems(), ("greedy", "best_of_n"), budgets, out_dir=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    greedy = {json.dumps(r["budget"], sort_keys=True) for r in rows if r["strategy"] == "greedy"}
    assert [json.loads(b)["rollouts"] for b in sorted(greedy)] == [1, None]
    assert sum(r["strategy"] == "greedy" for r in rows) == 2 * len(_problems())
    assert sum(r["strategy"] == "best_of_n" for r in rows) == 3 * len(_problems())
    assert {c.budget["rollouts"] for c in rep.cells if c.strategy == "best_of_n"} == {2, 4, None}
