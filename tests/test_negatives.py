"""Execution-verified perturbed PPM pairs (train/negatives.py): each pair differs from a correct
step in exactly one number literal of its code, the changed program runs and prints a wrong
answer, changes that do not matter (dead numbers, comments) or that crash are dropped, and the
draw is deterministic in its seed. One adversarial test per property."""

from __future__ import annotations

import re

import pytest

from edgestar.answer import equivalent
from edgestar.executor import Executor
from edgestar.formats import RSTAR
from edgestar.train import problems as P
from edgestar.train.negatives import NUMBER, Solved, perturbed_pairs, split_solution
from edgestar.train.recipe import recipe_from_dict
from edgestar.types import InputError


@pytest.fixture(scope="module")
def ex():
    with Executor() as e:
        yield e


@pytest.fixture(scope="module")
def solved(ex):
    recs = P.generate(60, seed=5, with_solution=True, runner=ex)
    return [Solved(r.id, RSTAR.prompt(r.question), r.solution, r.answer) for r in recs]


def _solution(*steps: str, final: str = "print(x)", out: str = "5") -> str:
    body = "".join(f"{s}\n<end_of_step>\n" for s in steps)
    return (
        f"{body}# Now print the final answer\n{final}\n<end_of_code>\n"
        f"<output>{out}<end_of_output>\n<answer>The answer is \\boxed{{{out}}}<end_of_answer>"
    )


def _run(ex: Executor, prefix: str, steps: list[str], final: str) -> str:
    codes = [s.removesuffix("<end_of_step>\n") for s in steps]
    r = ex.run(final, prefix="\n".join(codes))
    assert r.ok, r.error
    return r.stdout.strip()


def test_pairs_change_one_number_and_verify_wrong(solved, ex):
    pairs = perturbed_pairs(solved, 25, seed=3, runner=ex)
    assert len(pairs) == 25
    by_id = {s.problem_id: s for s in solved}
    for p in pairs:
        s = by_id[p.problem_id]
        steps, final = split_solution(s.solution)
        i = steps.index(p.chosen)
        assert p.prefix == s.prompt + "".join(steps[:i])
        assert p.kind == "perturbed" and (p.q_chosen, p.q_rejected) == (1.0, -1.0)
        # exactly one literal differs, on a code line
        a, b = NUMBER.split(p.chosen), NUMBER.split(p.rejected)
        assert a == b, "text around the numbers must be unchanged"
        diff = [
            (x, y)
            for x, y in zip(NUMBER.findall(p.chosen), NUMBER.findall(p.rejected), strict=True)
            if x != y
        ]
        assert len(diff) == 1
        changed = [ln for ln in p.rejected.splitlines() if ln not in p.chosen.splitlines()]
        assert len(changed) == 1 and not changed[0].lstrip().startswith("#")
        # the original program is right, the changed one runs and is wrong
        assert equivalent(s.answer, _run(ex, s.prompt, steps, final))
        bad = list(steps)
        bad[i] = p.rejected
        assert not equivalent(s.answer, _run(ex, s.prompt, bad, final))


def test_deterministic_in_seed(solved, ex):
    a = perturbed_pairs(solved, 10, seed=1, runner=ex)
    b = perturbed_pairs(solved, 10, seed=1, runner=ex)
    c = perturbed_pairs(solved, 10, seed=2, runner=ex)
    assert a == b and a != c


def test_dead_numbers_and_comments_give_no_pair(ex):
    # The only literals: one in a comment, one in a variable that the answer never uses.
    s = Solved(
        "p", RSTAR.prompt("What is 5?"),
        _solution("# Step 1: Keep 5 and 7 apart.\nx = unused_base = 7\nx = len('abcde')"),
        "5",
    )  # fmt: skip
    assert perturbed_pairs([s] * 20, 5, seed=0, runner=ex) == []


def test_crashing_changes_are_dropped(ex):
    # Any change to the index crashes (IndexError); only changes to the 5 can be kept.
    s = Solved("p", RSTAR.prompt("What is 5?"), _solution("# Step 1: Pick.\nx = [5][0]"), "5")
    pairs = perturbed_pairs([s] * 40, 40, seed=0, runner=ex)
    assert pairs, "changes to the 5 are wrong answers and must be kept"
    assert all(re.search(r"\[\d+\]\[0\]", p.rejected) for p in pairs)
    assert all("[5]" not in p.rejected for p in pairs)


def test_not_more_than_asked_and_empty_input(solved, ex):
    assert perturbed_pairs(solved, 0, runner=ex) == []
    assert perturbed_pairs([], 5, runner=ex) == []
    assert len(perturbed_pairs(solved, 3, seed=0, runner=ex)) == 3


def test_split_solution_rejects_malformed():
    assert split_solution("x = 1\n<end_of_step>\nprint(x)") is None
    steps, final = split_solution(_solution("x = 2", "y = x"))
    assert steps == ["x = 2\n<end_of_step>\n", "y = x\n<end_of_step>\n"]
    assert final == "# Now print the final answer\nprint(x)\n"


@pytest.mark.parametrize("bad", [-1, True, 1.5, "10"])
def test_recipe_rejects_bad_perturbed(bad):
    with pytest.raises(InputError, match="perturbed"):
        recipe_from_dict(_recipe(perturbed=bad))


def test_recipe_rejects_perturbed_without_ppm():
    with pytest.raises(InputError, match="ppm"):
        recipe_from_dict(_recipe(perturbed=10, ppm=False))


def _recipe(**round_kw) -> dict:
    rnd = {"problems": [{"source": "synthetic:integer_arithmetic", "n": 4, "seed": 1}], **round_kw}
    return {
        "name": "t",
        "base": {"preset": "test"},
        "test": {"source": "synthetic:integer_arithmetic", "n": 4, "seed": 9},
        "rounds": [rnd],
    }
