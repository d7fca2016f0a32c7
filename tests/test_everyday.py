"""The everyday evaluation set (tests/data/everyday.jsonl, issue 14) and its scorer
(benchmarks/everyday/run.py): the set is well formed, every gold answer equals an independent
computation of it, no question comes from the training generator, and the scorer counts right
and wrong answers exactly (a scripted model that answers wrong scores below one that does not).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from fractions import Fraction as F
from pathlib import Path

import pytest

from edgestar import Solver
from edgestar.answer import equivalent, normalize
from edgestar.backends.fake import ScriptedPolicy
from edgestar.formats import TIR_EXEMPLARS
from edgestar.types import Budget, InputError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("everyday_run", ROOT / "benchmarks/everyday/run.py")
assert _spec is not None and _spec.loader is not None
run = importlib.util.module_from_spec(_spec)
sys.modules["everyday_run"] = run
_spec.loader.exec_module(run)

CATEGORIES = {
    "ages", "algebra", "arithmetic", "average", "decimals", "fractions", "money", "negatives",
    "number_theory", "percent", "powers", "rates", "units", "word_problem", "words",
}  # fmt: skip


def primes(lo: int, hi: int) -> list[int]:
    return [n for n in range(max(lo, 2), hi + 1) if all(n % d for d in range(2, math.isqrt(n) + 1))]


# Each gold answer computed again from its question, written independently of the file.
COMPUTED: dict[str, int | F] = {
    "everyday-001": 2 * 37,
    "everyday-002": F(7, 8),
    "everyday-003": F(5, 6) - F(1, 4),
    "everyday-004": 36 + 47,
    "everyday-005": 18 + 7,
    "everyday-006": 8 * 5,
    "everyday-007": F(45 * 6, 100),
    "everyday-008": F(18, 24),
    "everyday-009": 3**4,
    "everyday-010": math.isqrt(144),
    "everyday-011": F(4 + 8 + 15 + 21, 4),
    "everyday-012": len(primes(1, 20)),
    "everyday-013": F(2048, 16),
    "everyday-014": F(144, 12),
    "everyday-015": sum(map(int, "4096")),
    "everyday-016": F(7500, 1000),
    "everyday-017": F(86, 2),
    "everyday-018": 24 * 7,
    "everyday-019": math.lcm(4, 6, 10),
    "everyday-020": 7 * 6,
    "everyday-021": 3000 * F(5, 100),
    "everyday-022": 21 - 5 - 3,
    "everyday-023": F(2, 3) * F(9, 4),
    "everyday-024": F(10 + 4, 2),
    "everyday-025": math.lcm(6, 8),
    "everyday-026": F(22 - 7, 3),
    "everyday-027": 50 - 12 - 9,
    "everyday-028": 2 + 2,
    "everyday-029": 13**2,
    "everyday-030": F(15, 100) * 80,
    "everyday-031": math.isqrt(196),
    "everyday-032": 8 * 9,
    "everyday-033": F(11 - 3, 4 - 2),
    "everyday-034": 4 * 9,
    "everyday-035": F("0.6") * F("0.5"),
    "everyday-036": F(63, 7),
    "everyday-037": F("1.2") * 4,
    "everyday-038": F("1.5") * 1000,
    "everyday-039": primes(51, 100)[0],
    "everyday-040": 4 * 1000,
    "everyday-041": 60 * F("2.5"),
    "everyday-042": 10 - F("3.4"),
    "everyday-043": 365 * 24,
    "everyday-044": 15 + 7 + 4,
    "everyday-045": 5 + 3 * 4,
    "everyday-046": math.gcd(84, 120),
    "everyday-047": 100 - 4 * 7,
    "everyday-048": 45 + 78,
    "everyday-049": F(45, 5),
    "everyday-050": F(82 + 90 + 77, 3),
    "everyday-051": 50 - 17,
    "everyday-052": 53 % 6,
    "everyday-053": F(91, 7),
    "everyday-054": F(27, 3),
    "everyday-055": F(150, 60),
    "everyday-056": 12 * 15,
    "everyday-057": F("3.20") * 5,
    "everyday-058": -8 + 15,
    "everyday-059": 3 * 12,
    "everyday-060": 90 - 35,
    "everyday-061": 12 * 11,
    "everyday-062": -5 + 12,
    "everyday-063": (11 * 60 + 15) - (9 * 60 + 40),
    "everyday-064": F(3, 4) * 20,
    "everyday-065": (3 + 5) * 2,
    "everyday-066": 56 - 19,
    "everyday-067": 6 * 7,
    "everyday-068": -4 * 9,
    "everyday-069": 1234 + 5678,
    "everyday-070": 17 * 23,
    "everyday-071": 15 - 7,
    "everyday-072": 60 * F(18, 100),
    "everyday-073": F(1, 2) + F(1, 3),
    "everyday-074": 9 * 8,
    "everyday-075": 2 + 3,
    "everyday-076": 2**10,
    "everyday-077": F(350, 100),
    "everyday-078": 6 - 14,
    "everyday-079": 24 * 60,
    "everyday-080": 12 * 60,
    "everyday-081": 300 + 150,
    "everyday-082": 40 * (1 - F(25, 100)),
    "everyday-083": F("2.5") + F("3.75"),
    "everyday-084": F(12, 3),
    "everyday-085": 6 * 4,
    "everyday-086": math.gcd(45, 75),
    "everyday-087": F("2.5") * 1000,
    "everyday-088": 100 % 7,
    "everyday-089": 20 - F("7.45"),
    "everyday-090": 25 * 4 + 10,
    "everyday-091": F("3.5") * 60,
    "everyday-092": F(10, 50) * 100,
    "everyday-093": 200 * (1 + F(10, 100)),
    "everyday-094": F(20, 100) * 150,
    "everyday-095": 5**3,
    "everyday-096": -3 + 10,
    "everyday-097": F(120, 6) - 15,
    "everyday-098": F(270, 18),
    "everyday-099": F(sum([10, 20, 30, 40, 50]), 5),
    "everyday-100": 345 + 289 - 100,
}


def test_the_set_is_well_formed() -> None:
    rows = [json.loads(x) for x in run.DATA.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 100
    assert [r["id"] for r in rows] == [f"everyday-{i:03d}" for i in range(1, 101)]
    assert all(set(r) == {"id", "question", "answer", "category"} for r in rows)
    assert len({" ".join(r["question"].lower().split()) for r in rows}) == 100
    assert {r["category"] for r in rows} == CATEGORIES
    items = run.read_set()
    assert [i.id for i in items] == [r["id"] for r in rows]


def test_every_answer_is_canonical_and_computed() -> None:
    items = run.read_set()
    assert set(COMPUTED) == {i.id for i in items}
    for it in items:
        a = it.answer
        # digits; a terminating decimal without trailing zeros; or a reduced fraction a/b, b > 1
        assert re.fullmatch(r"-?(0|[1-9]\d*)(\.\d*[1-9])?|-?[1-9]\d*/[1-9]\d*", a), it
        v = F(a)
        if "/" in a:
            n, d = map(int, a.split("/"))
            assert d > 1 and math.gcd(n, d) == 1, it
        assert v == COMPUTED[it.id], (it, COMPUTED[it.id])
        assert normalize(a) == (str(v) if v.denominator > 1 else str(v.numerator))
        assert equivalent(a, a) and not equivalent(a, str(v + 1))


def test_no_question_comes_from_the_generator() -> None:
    from train.problems import load_source, normalize_question

    mine = {normalize_question(i.question): i.id for i in run.read_set()}
    assert len(mine) == 100  # no two of ours are the same question either
    # the seeds the recipes train on (train/recipes/*.yaml: seed 1 bootstraps, 2 and 5 evolve)
    generated = {
        normalize_question(p.question)
        for n, seed in ((2000, 1), (560, 2), (560, 5))
        for p in load_source("synthetic", n=n, seed=seed)
    }
    generated |= {normalize_question(q) for q, _ in TIR_EXEMPLARS}  # the few-shot examples
    assert len(generated) > 2000
    assert not [mine[q] for q in mine if q in generated]
    # a short everyday question can coincide with a generated one ("What is 2 to the power of
    # 10?"): the default's recipe drops any such question from every training set
    from train.recipe import load_recipe

    recipe = load_recipe(ROOT / "train" / "recipes" / "edgestar-smol.yaml")
    assert "tests/data/everyday.jsonl" in recipe.exclude


# The second, fresh set (tests/data/everyday_fresh.jsonl): 62 questions written by hand after
# everyday_stories was written and before any model trained on it, to tell a real gain from a
# fit to the first set's categories. Gold answers computed again here.
FRESH = ROOT / "tests" / "data" / "everyday_fresh.jsonl"
FRESH_COMPUTED: dict[str, int | F] = {
    "fresh-001": 48 + 67, "fresh-002": 9 * 7, "fresh-003": F(250, 5), "fresh-004": 1000 - 387,
    "fresh-005": 23 * 4, "fresh-006": 19 + 26 + 35, "fresh-007": 120 - 45, "fresh-008": 6**2 + 10,
    "fresh-009": 4**3, "fresh-010": math.isqrt(81), "fresh-011": 2**6, "fresh-012": F(3, 5) * 45,
    "fresh-013": F(1, 2) + F(1, 4), "fresh-014": F(1, 4), "fresh-015": F(3, 4) * 100,
    "fresh-016": F(12, 100) * 250, "fresh-017": F(40, 160) * 100, "fresh-018": 80 - F(25, 100) * 80,
    "fresh-019": F(30 * 8, 100), "fresh-020": F("12.50") + F("2.75"), "fresh-021": F(18, 4),
    "fresh-022": F(500, 25), "fresh-023": 5 * 60, "fresh-024": 3 * 7, "fresh-025": F("2.5") * 1000,
    "fresh-026": 3 * 60, "fresh-027": F(90, 60), "fresh-028": F("4.2") * 100,
    "fresh-029": F(3200, 1000), "fresh-030": 9 + 4 + 5, "fresh-031": F(72, 18), "fresh-032": 14 - 6,
    "fresh-033": 40 - 27, "fresh-034": 6 * 15, "fresh-035": 100 - 35 - 20, "fresh-036": F(28, 4),
    "fresh-037": 15 * 14, "fresh-038": 12 * 4 + 8 * 2, "fresh-039": 3 * 10 - 7,
    "fresh-040": 2 * (12 + 7), "fresh-041": 11 * 11, "fresh-042": F(8, 100) * 250,
    "fresh-043": F(45, 3), "fresh-044": F(180, 60), "fresh-045": F(15, 5) * 8,
    "fresh-046": F(10 + 20 + 30 + 40 + 50, 5), "fresh-047": F(45 + 60 + 75, 3), "fresh-048": -5 - 7,
    "fresh-049": F(-20, 4), "fresh-050": 5 - (-8), "fresh-051": F(27 + 3, 5), "fresh-052": 7 * 4,
    "fresh-053": F(29 - 5, 2), "fresh-054": math.gcd(36, 48), "fresh-055": math.lcm(9, 12),
    "fresh-056": 85 % 9, "fresh-057": primes(31, 40)[0], "fresh-058": F("3.5"),
    "fresh-059": F("4.35") + F("1.8"), "fresh-060": F("0.2") * F("0.3"), "fresh-061": 240 + 60,
    "fresh-062": F(200, 4),
}  # fmt: skip


def test_the_fresh_set_is_well_formed_computed_and_not_generated() -> None:
    from train.problems import load_source, normalize_question

    items = run.read_set(FRESH)
    assert [i.id for i in items] == [f"fresh-{k:03d}" for k in range(1, 63)]
    assert {i.category for i in items} <= CATEGORIES
    assert set(FRESH_COMPUTED) == {i.id for i in items}
    for it in items:
        assert F(it.answer) == FRESH_COMPUTED[it.id], (it, FRESH_COMPUTED[it.id])
    mine = {normalize_question(i.question): i.id for i in items}
    first = {normalize_question(i.question) for i in run.read_set()}
    assert len(mine) == 62 and not set(mine) & first
    skills = "synthetic:everyday_word,everyday_percent_units,everyday_stories"
    generated = {normalize_question(p.question) for p in load_source(skills, n=1500, seed=1)}
    assert not [mine[q] for q in mine if q in generated]


def _scripted(answers: dict[str, str]) -> Solver:
    """A plain-format solver whose one step boxes answers[question] (else says nothing)."""
    after = "\nAnswer: Let's think step by step.\n"
    script = {q + after: [f"So the answer is \\boxed{{{a}}}."] for q, a in answers.items()}
    return Solver(ScriptedPolicy(script, start="Question: "), step_format="plain")


def test_score_counts_right_and_wrong_exactly() -> None:
    items = run.read_set()
    # gold answers, written the ways a model might (0.75 for 3/4, 1,440, $12.55)...
    spoken = {i.question: i.answer for i in items}
    spoken["Simplify 18/24."] = "0.75"
    spoken["How many minutes are there in one day?"] = "1,440"
    spoken["I pay with a $20 bill for a sandwich that costs $7.45. How much change do I get?"] = (
        "\\$12.55"
    )
    # ...except five wrong answers and two unanswered questions
    wrong = [i for i in items if i.category in ("ages", "money") and "$7.45" not in i.question]
    assert len(wrong) == 5
    for i in wrong:
        spoken[i.question] = str(F(i.answer) + 1)
    silent = [items[10], items[20]]
    for i in silent:
        del spoken[i.question]
    seen: list[str] = []
    right, total, rows = run.score(
        _scripted(spoken), items, strategy="greedy", budget=Budget(rollouts=1),
        on_row=lambda r: seen.append(r.id),
    )  # fmt: skip
    assert (right, total) == (93, 100)
    assert seen == [i.id for i in items]
    bad = {r.id for r in rows if not r.right}
    assert bad == {i.id for i in wrong + silent}
    assert all(r.got is None for r in rows if r.id in {i.id for i in silent})
    assert all(r.tokens and r.tokens > 0 and r.seconds >= 0 for r in rows if r.got)
    # a model that answers every question with the same number gets (almost) none right
    constant = run.score(lambda q: "7", items)
    assert constant[0] == sum(i.answer == "7" for i in items) < 10


def test_score_counts_errors_as_wrong() -> None:
    items = run.read_set(limit=3)

    def flaky(q: str) -> str | None:
        if q == items[1].question:
            raise InputError("question is too hard")
        return next(i.answer for i in items if i.question == q)

    right, total, rows = run.score(flaky, items)
    assert (right, total) == (2, 3)
    assert rows[1].error == "question is too hard" and not rows[1].right


def test_report(tmp_path: Path) -> None:
    items = run.read_set(limit=4)
    _, _, rows = run.score(lambda q: "74" if "37" in q else None, items)
    text = run.write_report(rows, tmp_path / "report.md", "T", ["setup line"])
    assert "**1/4 right (25.0%)**" in text
    assert "| words | 1 | 2 | 50% |" in text and "| fractions | 0 | 2 | 0% |" in text
    assert (
        "## Wrong (3)" in text
        and "| everyday-002 | What is 7/8 as a decimal? | 0.875 | (none) |" in text
    )
    assert (tmp_path / "report.md").read_text() == text


def test_read_set_rejects_bad_files(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_text('{"id": "a", "question": "1+1", "answer": "2", "category": "x"}\n{"id": "b"\n')
    with pytest.raises(InputError, match=r"q.jsonl:2: malformed JSON"):
        run.read_set(p)
    p.write_text('{"id": "a", "question": "", "answer": "2", "category": "x"}\n')
    with pytest.raises(InputError, match="question must be a non-empty string"):
        run.read_set(p)
    with pytest.raises(InputError, match="does not exist"):
        run.read_set(tmp_path / "missing.jsonl")


def test_main_on_the_shipped_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["--strategy", "greedy", "--threads", "1", "--limit", "3", "--out", str(out)]
    assert run.main(args) == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["everyday-001", "everyday-002", "everyday-003"]
    assert all(r["right"] == equivalent(r["gold"], r["got"]) for r in rows)
    report = (out / "report.md").read_text()
    assert (
        "strategy greedy" in report and "questions: tests/data/everyday.jsonl (3 scored" in report
    )
    # started again with the same settings: resumes (nothing left to run), same rows
    assert run.main([*args[:-3], "5", "--out", str(out)]) == 0
    rows2 = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert rows2[:3] == rows and len(rows2) == 5
    capsys.readouterr()
    # other settings in the same folder, and bad input: one line, exit 2
    assert run.main(["--seed", "3", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("pass --force to start over")
    assert run.main(["--limit", "0", "--out", str(tmp_path / "o2")]) == 2
    assert capsys.readouterr().err == "everyday: --limit must be a positive number, got 0\n"
    assert run.main(["--seconds", "0", "--out", str(tmp_path / "o4")]) == 2
    assert capsys.readouterr().err == "everyday: budget seconds must be positive, got 0.0\n"
    assert run.main(["--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("everyday: question set") and err.count("\n") == 1


def test_resume_reruns_edited_questions(tmp_path: Path) -> None:
    data, out = tmp_path / "q.jsonl", tmp_path / "out"
    lines = run.DATA.read_text(encoding="utf-8").splitlines()[:3]
    data.write_text("\n".join(lines) + "\n")
    args = ["--data", str(data), "--strategy", "greedy", "--threads", "1", "--out", str(out)]
    assert run.main(args) == 0
    first = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    rec = json.loads(lines[1])
    rec["question"] = "What is 40 + 2?"
    rec["answer"] = "42"
    data.write_text("\n".join([lines[0], json.dumps(rec), lines[2]]) + "\n")
    assert run.main(args) == 0
    again = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(again) == 3 and again[0] == first[0] and again[1] == first[2]
    assert again[2]["id"] == rec["id"] and again[2]["question"] == "What is 40 + 2?"
    assert again[2]["gold"] == "42"


def test_score_clears_the_prefix_cache_before_each_question() -> None:
    items = run.read_set(limit=4)
    solver = _scripted({i.question: i.answer for i in items})
    cleared: list[int] = []
    solver.policy.clear_cache = lambda: cleared.append(solver.policy.calls)  # type: ignore[attr-defined]
    assert run.score(solver, items, strategy="greedy")[0] == 4
    assert len(cleared) == 4 and cleared == sorted(set(cleared))  # once before each question
    run.score(solver, items, strategy="greedy", fresh_cache=False)
    assert len(cleared) == 4


CARD_FLOOR = 78
"""models/edgestar-smol.md: recipe v6.3's round 0 gave 91/100 greedy at one and at two threads on
a 2-core AMD EPYC (v6.1: 90 at both on an AMX Xeon; v1 moved 5 points between them: near-ties
flip with the float path); the floor leaves room for other CPUs'."""


@pytest.mark.slow
def test_the_shipped_default_answers_everyday_questions(tmp_path: Path) -> None:
    """Issue 14: the default model (edgestar-smol) answers the 100 everyday questions at least as
    well as its card states, greedy with a pinned seed, one thread."""
    from edgestar.bundle import default_bundle_path, read_bundle

    default = default_bundle_path()
    assert default is not None and read_bundle(default).name == "edgestar-smol"
    card = (ROOT / "models" / "edgestar-smol.md").read_text(encoding="utf-8")
    assert f"at least {CARD_FLOOR} of 100" in card
    out = tmp_path / "out"
    assert (
        run.main(["--strategy", "greedy", "--seed", "0", "--threads", "1", "--out", str(out)]) == 0
    )
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    right = sum(r["right"] for r in rows)
    print(f"\nedgestar-smol greedy: {right}/100 everyday questions (card floor {CARD_FLOOR})")
    assert len(rows) == 100 and right >= CARD_FLOOR
