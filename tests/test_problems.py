"""Problem sources (train/problems.py, train/skills/, train/schema.py): the synthetic generator
verifies its answers by running its code in the sandbox, writes rstar solutions, is
deterministic and diverse; splits never leak; JSONL import survives bad lines; reasoning-gym."""

from __future__ import annotations

import json
import random
import re

import pytest

from edgestar.answer import equivalent, extract_boxed
from edgestar.executor import Executor
from edgestar.formats import RSTAR, Marker
from edgestar.train import problems as P
from edgestar.train.schema import ProblemRecord, ResultRecord
from edgestar.train.skills import DIFFICULTIES, SKILLS, GeneratedProblem
from edgestar.train.skills.measures import _UNIT_WORDS
from edgestar.types import InputError, Problem

# In registration order: the "synthetic" source (every skill) draws in this order, so a seed's
# problems depend on it (train/skills/__init__.py imports its modules in this order).
REQUIRED_SKILLS = (
    "integer_arithmetic", "decimal_arithmetic", "fraction_arithmetic", "order_of_operations",
    "linear_equation", "linear_system", "gcd_lcm", "remainders", "primes_factors",
    "rounding_place_value", "comparison", "unit_conversion", "time_elapsed", "polynomial_eval",
    "sequences", "percentages", "word_shopping", "word_rates", "word_ages", "word_sharing",
    "everyday_arithmetic", "everyday_percent_units", "everyday_word", "everyday_facts",
    "everyday_expressions", "everyday_fractions", "everyday_stories",
)  # fmt: skip


@pytest.fixture(scope="module")
def ex():
    with Executor() as e:
        yield e


def test_registry_has_the_skills_in_order():
    assert tuple(SKILLS) == REQUIRED_SKILLS


def _markers_in_order(solution: str) -> None:
    order = [
        "# Step 1:", Marker.END_STEP, "# Now print the final answer",
        Marker.END_CODE, Marker.OUTPUT, Marker.END_OUTPUT, Marker.ANSWER, "\\boxed{",
        Marker.END_ANSWER,
    ]  # fmt: skip
    pos = -1
    for m in order:
        nxt = solution.find(m, pos + 1)
        assert nxt > pos, f"{m!r} missing or out of order in:\n{solution}"
        pos = nxt


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_every_skill_every_difficulty_verifies(skill, ex):
    for d in DIFFICULTIES:
        st = P.GenerationStats()
        recs = P.generate(6, seed=d, skills=[skill], difficulty=d, with_solution=True,
                          runner=ex, stats=st)  # fmt: skip
        assert len(recs) == 6 and st.failed == 0, st.examples
        for r in recs:
            assert (r.skill, r.difficulty, r.source) == (skill, d, "synthetic")
            assert r.solution is not None
            _markers_in_order(r.solution)
            assert extract_boxed(r.solution) == r.answer
            out = r.solution.split(Marker.OUTPUT)[1].split(Marker.END_OUTPUT)[0]
            assert equivalent(r.answer, out)
            # every step is one `# Step k:` block, numbered from 1
            nums = [int(k) for k in re.findall(r"# Step (\d+):", r.solution)]
            assert nums == list(range(1, len(nums) + 1))
            # the solution parses back step by step with the runtime's own parser
            assert not r.solution.startswith(Marker.CODE)  # RSTAR.prompt() opens the code
            first = r.solution.split(Marker.END_STEP)[0] + Marker.END_STEP
            assert RSTAR.parse(first, "stop", Marker.END_STEP).kind == "code"


def test_answers_are_canonical(ex):
    for r in P.generate(300, seed=11, runner=ex):
        a = r.answer
        assert a == a.strip() and a
        if re.fullmatch(r"-?\d+/\d+", a):  # fractions reduced, denominator > 1
            num, den = map(int, a.split("/"))
            from math import gcd

            assert den > 1 and gcd(num, den) == 1, a
        elif re.fullmatch(r"-?\d+\.\d+", a):  # decimals without trailing zeros, bounded
            assert not a.endswith("0") and len(a.split(".")[1]) <= 6, a
        elif not re.fullmatch(r"-?\d+", a):
            assert re.fullmatch(r"[A-Z][a-z]+day|\d\d:\d\d", a), a


def test_verification_drops_wrong_answers_and_counts_them(ex, monkeypatch):
    def wrong(rng: random.Random, d: int) -> GeneratedProblem:
        k = rng.randint(1, 10**6)
        return GeneratedProblem(
            f"What is {k} + 1?", str(k + 2), (("add", f"x = {k} + 1"),), "print(x)", "t"
        )

    def crash(rng: random.Random, d: int) -> GeneratedProblem:
        k = rng.randint(1, 10**6)
        return GeneratedProblem(
            f"What is {k} / 0?", "0", (("oops", f"x = {k} / 0"),), "print(x)", "t"
        )

    def raises(rng: random.Random, d: int) -> GeneratedProblem:
        raise ValueError("no numbers fit")

    for name, fn in (("wrong", wrong), ("crash", crash), ("raises", raises)):
        monkeypatch.setitem(P.SKILLS, name, fn)
    st = P.GenerationStats()
    good = P.generate(
        12, seed=0, skills=["wrong", "crash", "raises", "gcd_lcm"], runner=ex, stats=st
    )
    assert len(good) == 12 and {r.skill for r in good} == {"gcd_lcm"}
    assert st.mismatches > 0 and st.exec_errors > 0 and st.generator_errors > 0
    assert st.failed == st.attempted - 12 - st.duplicates
    assert 0 < st.failure_rate < 1
    assert set(st.dropped_by_skill) == {"wrong", "crash", "raises"}
    assert any("ZeroDivisionError" in e for e in st.examples)


def test_batched_and_single_runs_agree(ex):
    rng = random.Random(5)
    probs = [SKILLS[s](rng, d) for s in sorted(SKILLS) for d in DIFFICULTIES]
    batched = P.check_reference(probs, ex, batch_size=64)
    single = P.check_reference(probs[:15], ex, batch_size=1)
    assert [c.output for c in batched[:15]] == [c.output for c in single]
    assert all(c.ok and equivalent(p.answer, c.output) for p, c in zip(probs, batched, strict=True))


def test_generate_is_deterministic_and_prefix_stable(ex):
    a = P.generate(40, seed=3, runner=ex, with_solution=True)
    b = P.generate(40, seed=3, runner=ex, with_solution=True)
    assert a == b
    assert P.generate(15, seed=3, runner=ex, with_solution=True) == a[:15]
    assert [r.question for r in P.generate(40, seed=4, runner=ex)] != [r.question for r in a]
    assert len({r.id for r in a}) == 40
    assert len({P.normalize_question(r.question) for r in a}) == 40


def test_generate_mixes_skills_and_levels(ex):
    recs = P.generate(200, seed=1, runner=ex)
    assert len({r.skill for r in recs}) >= 15
    assert {r.difficulty for r in recs} == set(DIFFICULTIES)
    only = P.generate(20, seed=1, skills="gcd_lcm,remainders", difficulty=[1, 2], runner=ex)
    assert {r.skill for r in only} <= {"gcd_lcm", "remainders"}
    assert {r.difficulty for r in only} <= {1, 2}


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_diversity(skill):
    rng = random.Random(2024)
    made = [SKILLS[skill](rng, rng.choice(DIFFICULTIES)) for _ in range(200)]
    assert len({g.question for g in made}) > 150
    assert len({g.template for g in made}) > 3
    assert len({g.answer for g in made}) > 20


def test_bad_generate_arguments():
    with pytest.raises(InputError, match="unknown skill nope"):
        P.generate(3, 0, skills=["nope"])
    with pytest.raises(InputError, match="difficulty"):
        P.generate(3, 0, difficulty=4)
    with pytest.raises(InputError, match="n must be"):
        P.generate(-1, 0)
    assert P.generate(0, 0) == []


# ----------------------------------------------------------------------------- splits


def _rec(i: int, q: str) -> ProblemRecord:
    return ProblemRecord(id=f"p{i}", question=q, answer="1", source="t")


def test_normalize_question():
    n = P.normalize_question
    assert n("  What is   2+3? ") == n("what is 2+3") == "what is 2+3"
    assert n("What is 3+5?") != n("What is 3-5?")
    assert n("Is 2.5 bigger?") != n("Is 25 bigger?")
    assert n("Add 1,000 and 7.") == n("add 1000 and 7")
    assert n("“Quoted,” she said!") == n("quoted she said")


def test_split_never_shares_a_question():
    base = [f"What is {i} + {i % 7}?" for i in range(300)]
    variants = [q.upper() for q in base[:50]] + [q.replace("?", " ?  ") for q in base[50:80]]
    probs = [_rec(i, q) for i, q in enumerate(base + variants)]
    train, test = P.split(probs, 0.2, seed=1)
    assert len(train) + len(test) == len(probs)
    tq = {P.normalize_question(p.question) for p in test}
    assert not tq & {P.normalize_question(p.question) for p in train}
    assert abs(len(test) - 0.2 * len(probs)) <= 2
    assert P.split(probs, 0.2, seed=1) == (train, test)
    assert P.split(probs, 0.2, seed=2) != (train, test)
    assert [p.id for p in train] == sorted((p.id for p in train), key=lambda s: int(s[1:]))
    assert P.split(probs, 0.0, 0)[1] == [] and P.split(probs, 1.0, 0)[0] == []
    with pytest.raises(InputError):
        P.split(probs, 1.5, 0)


def test_dedup_against_and_dedup():
    train = [_rec(0, "What is 1+1?"), _rec(1, "what is 1+1"), _rec(2, "What is 2+2?")]
    test = [_rec(9, "WHAT IS 1+1 ?")]
    assert [p.id for p in P.dedup_against(train, test)] == ["p2"]
    assert [p.id for p in P.dedup(train)] == ["p0", "p2"]


def test_evaluation_files_are_kept_out_of_training(tmp_path):
    """A recipe's `exclude` files: their questions are dropped from training like test ones."""
    ev = tmp_path / "eval.jsonl"
    ev.write_text(json.dumps({"id": "e1", "question": "what is 2 + 2", "gold": "4"}) + "\n\n")
    train = [_rec(0, "What is 2 + 2?"), _rec(1, "What is 3 + 3?")]
    held = P.questions_in(ev)
    assert held == ["what is 2 + 2"]
    assert [p.id for p in P.dedup_against(train, [], held)] == ["p1"]
    with pytest.raises(InputError, match="no such evaluation file"):
        P.questions_in(tmp_path / "missing.jsonl")
    ev.write_text('{"id": "e1"}\n')
    with pytest.raises(InputError, match=r"eval.jsonl:1: expected a JSON object"):
        P.questions_in(ev)


# ----------------------------------------------------------------------------- JSONL


def test_read_jsonl_problems_gsm8k_math_and_bad_lines(tmp_path):
    lines = [
        json.dumps({"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"}),
        json.dumps({"question": "A big sum?", "answer": "It is 1,200.\n#### 1,200"}),
        json.dumps({"problem": "Find x if 2x = 1.", "solution": "So $x = \\frac{1}{2}$, i.e. \\boxed{\\frac{1}{2}}.", "level": "Level 2", "type": "Algebra"}),
        "",
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"answer": "5"}),
        json.dumps({"question": "No answer here?"}),
        json.dumps({"problem": "Boxless?", "solution": "the answer is 4"}),
        json.dumps({"question": "Plain?", "answer": 12, "id": "x1"}),
        json.dumps({"question": "Dup id?", "answer": "3", "id": "x1"}),
        json.dumps({"question": "Empty hashes", "answer": "work\n####   "}),
        json.dumps({"question": "Long?", "answer": "word " * 100}),
        json.dumps({"question": "   ", "answer": "1"}),
    ]  # fmt: skip
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, errors = P.read_jsonl_problems(path)
    assert [r.answer for r in records] == ["7", "1200", "\\frac{1}{2}", "12"]
    math = records[2]
    assert (math.skill, math.difficulty, math.source, math.id) == ("Algebra", 2, "mixed", "mixed-3")
    assert records[3].id == "x1"
    assert [e.line for e in errors] == [5, 6, 7, 8, 9, 11, 12, 13, 14]
    msgs = {e.line: e.message for e in errors}
    assert "not valid JSON" in msgs[5] and "JSON object" in msgs[6]
    assert "no question" in msgs[7] and "no answer" in msgs[8]
    assert "boxed" in msgs[9] and "duplicate id" in msgs[11]
    assert "####" in msgs[12] and "characters" in msgs[13] and "empty" in msgs[14]
    assert str(errors[0]).startswith("line 5:")
    assert equivalent(records[2].answer, "0.5")


def test_write_and_read_jsonl_roundtrip(tmp_path, ex):
    recs = P.generate(10, seed=2, runner=ex, with_solution=True)
    path = tmp_path / "sub" / "problems.jsonl"
    assert P.write_jsonl(path, recs) == 10
    assert P.read_jsonl(path, ProblemRecord) == recs
    assert P.read_jsonl(path)[0]["id"] == recs[0].id
    # our own files import through the foreign-data reader too
    again, errors = P.read_jsonl_problems(path)
    assert not errors and [(r.id, r.answer, r.skill) for r in again] == [
        (r.id, r.answer, r.skill) for r in recs
    ]
    results = [ResultRecord(id="a", answer="7", correct=True, tokens=12, seconds=0.5,
                            strategy="mcts", budget={"rollouts": 16}),
               ResultRecord(id="b", answer=None, correct=None)]  # fmt: skip
    rpath = tmp_path / "results.jsonl"
    P.write_jsonl(rpath, results)
    assert P.read_jsonl(rpath, ResultRecord) == results
    assert '"answer": null' in rpath.read_text()
    rpath.write_text(rpath.read_text() + '{"id": "c", "answer": "1", "correct": "yes"}\n')
    with pytest.raises(InputError, match=r"results.jsonl:3: correct must be"):
        P.read_jsonl(rpath, ResultRecord)
    with pytest.raises(InputError, match="cannot write"):
        P.write_jsonl(rpath, [42])  # type: ignore[list-item]


def test_schema_validation():
    r = ProblemRecord(id="a", question=" What? ", answer=" 3 ", source="s", difficulty=2)
    assert (r.question, r.answer) == ("What?", "3")
    assert r.to_problem() == Problem(question="What?", answer="3", id="a", source="s")
    assert ProblemRecord.from_json(r.to_json()) == r
    assert "skill" not in json.loads(r.to_json())
    assert ProblemRecord.from_json({**json.loads(r.to_json()), "future_field": 1}) == r
    for bad in ({"id": "", "question": "q", "answer": "1", "source": ""},
                {"id": "a", "question": "", "answer": "1", "source": ""},
                {"id": "a", "question": "q", "answer": " ", "source": ""},
                {"id": "a", "question": "q", "answer": "1", "source": "", "difficulty": "hard"},
                {"id": "a", "question": "q", "source": ""}):  # fmt: skip
        with pytest.raises(InputError):
            ProblemRecord.from_json(bad)
    with pytest.raises(InputError, match="not valid JSON"):
        ProblemRecord.from_json("{")
    with pytest.raises(InputError, match="tokens"):
        ResultRecord(id="a", answer="1", correct=True, tokens=-1)
    with pytest.raises(InputError, match="seconds"):
        ResultRecord(id="a", answer="1", correct=True, seconds=float("nan"))


# ----------------------------------------------------------------------------- sources


def test_load_source_dispatch(tmp_path, ex):
    recs = P.load_source("synthetic:gcd_lcm,remainders", 8, seed=5, runner=ex)
    assert len(recs) == 8 and {r.skill for r in recs} <= {"gcd_lcm", "remainders"}
    assert P.load_source("synthetic", 5, seed=5, runner=ex) == P.generate(5, 5, runner=ex)
    path = tmp_path / "gsm.jsonl"
    path.write_text(
        "".join(json.dumps({"question": f"Q{i}?", "answer": f"#### {i}"}) + "\n" for i in range(20))
        + "oops\n"
    )
    assert len(P.load_source(str(path))) == 20
    some = P.load_source(str(path), 5, seed=1)
    assert len(some) == 5 and some == sorted(some, key=lambda r: int(r.answer))
    assert some == P.load_source(str(path), 5, seed=1)
    with pytest.raises(InputError, match="unknown problem source"):
        P.load_source("nonsense", 5)
    with pytest.raises(InputError, match="no such file"):
        P.load_source(str(tmp_path / "missing.jsonl"), 5)
    with pytest.raises(InputError, match="unknown skill"):
        P.load_source("synthetic:gcd,nope", 5, runner=ex)
    with pytest.raises(InputError, match="how many"):
        P.load_source("synthetic")


def test_reasoning_gym_source():
    pytest.importorskip("reasoning_gym")
    recs = P.reasoning_gym_source("basic_arithmetic", 20, seed=100)
    assert len(recs) == 20 and all(r.source == "reasoning-gym:basic_arithmetic" for r in recs)
    assert all(equivalent(r.answer, r.answer) for r in recs)
    # item i comes from Random(seed + i): the id names the item, so overlaps are visible
    shifted = P.reasoning_gym_source("basic_arithmetic", 20, seed=101)
    assert {r.id for r in recs} & {r.id for r in shifted}
    same = {r.id: r.question for r in recs}
    assert all(same[r.id] == r.question for r in shifted if r.id in same)
    for name in ("chain_sum", "gcd", "lcm", "leg_counting", "fraction_simplification"):
        got = P.reasoning_gym_source(name, 3, seed=0)
        assert len(got) == 3 and all(r.answer for r in got)
    cfg = P.load_source("reasoning-gym:chain_sum?min_terms=4&max_terms=4", 5, seed=0)
    assert all(r.question.count("+") + r.question.count("-") >= 3 for r in cfg)
    assert cfg[0].id != P.reasoning_gym_source("chain_sum", 5, seed=0)[0].id
    with pytest.raises(InputError, match="did you mean basic_arithmetic"):
        P.reasoning_gym_source("basic_arithmatic", 3, 0)
    with pytest.raises(InputError, match="reasoning-gym chain_sum"):
        P.reasoning_gym_source("chain_sum", 3, 0, no_such_option=1)


def test_reasoning_gym_missing_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    with pytest.raises(InputError, match="pip install reasoning-gym"):
        P.reasoning_gym_source("gcd", 3, 0)


def test_result_record_from_solve():
    from edgestar.types import Budget, SearchStats, SolveResult

    res = SolveResult(question="q", answer="0.5", score=0.9, strategy="mcts", stopped_by="done",
                      stats=SearchStats(tokens_generated=42, seconds=1.5))  # fmt: skip
    rec = ResultRecord.from_solve("p1", res, gold="1/2", budget=Budget(rollouts=8))
    assert (rec.correct, rec.tokens, rec.seconds, rec.strategy) == (True, 42, 1.5, "mcts")
    assert rec.budget["rollouts"] == 8 and ResultRecord.from_json(rec.to_json()) == rec
    assert ResultRecord.from_solve("p1", res).correct is None
    assert ResultRecord.from_solve("p1", res, gold="2").correct is False


def test_equations_are_copied_into_sympy_as_written():
    """linear_equation, linear_system and everyday_facts' one-step equations: the reference
    code is sympy.solve on the equations exactly as the question writes them (3x -> 3*x);
    nothing is rearranged by hand, where a small model slips on signs."""
    rng = random.Random(5)
    copied = 0
    for _ in range(400):
        for name in ("linear_equation", "linear_system"):
            g = SKILLS[name](rng, rng.choice(DIFFICULTIES))
            code = "\n".join(c for _, c in g.steps)
            assert "sympy" in code and "Fraction(rhs" not in code and "det" not in code, code
            eqs = re.findall(r"Eq\(([^,]+), ([^,)]+)\)", code)
            assert eqs, code
            written = [f"{a} = {b}".replace("*", "") for a, b in eqs]
            if all(w in g.question for w in written):
                copied += 1
            else:  # word problems: the equations are named, not copied
                assert not re.search(r"\d[a-z] [-+=]", g.question), (g.question, code)
    assert copied >= 300, copied


# Kinds whose question asks for a whole count (full boxes, days, digits, clock times) or whose
# expression is drawn to divide exactly and may be typed with `//`: floor division is their meaning.
FLOOR_KINDS = {
    ("everyday_stories", "pack_sell"), ("everyday_word", "boxes"), ("everyday_word", "days_to"),
    ("order_of_operations", "ascii"), ("order_of_operations", "math"),
    ("order_of_operations", "py"), ("primes_factors", "largest"),
    ("primes_factors", "sum_distinct"), ("remainders", "boxes-full"),
    ("rounding_place_value", "digit"), ("rounding_place_value", "int"),
    ("rounding_place_value", "value"), ("time_elapsed", "end"), ("time_elapsed", "to_big"),
    ("word_shopping", "how_many"),
}  # fmt: skip


def test_references_never_ask_the_model_to_judge_exactness():
    """v6.2: a reference solution never makes its code depend on whether a division comes out
    whole or on how many decimal places the operands have, which a 135M model copies from the
    question instead of judging. v6.1 divided shares, rates and ratios with `//` because the
    generator drew them whole (the model then floored "$18 split four ways" to 4), and rounded
    decimal sums to the places of the operands, always equal in its questions (the model wrote
    round(2.5 + 3.75, 1) = 6.2)."""
    recs = P.generate(3000, seed=5, with_solution=True)
    floors = {(r.skill, r.template.split(":")[0]) for r in recs if "//" in r.solution}
    assert floors <= FLOOR_KINDS, floors - FLOOR_KINDS
    decimals = [r for r in recs if r.skill == "decimal_arithmetic"]
    assert len(decimals) > 50
    for r in decimals:
        assert re.search(r"print\(round\(\w+, 6\)\)", r.solution), r.solution
    shares = [r for r in recs if r.template.split(":")[0] in ("share", "equal", "proportion")]
    assert len(shares) > 20 and all(" / " in r.solution for r in shares)


def test_expressions_are_copied_into_python_whole():
    """v6.3: an expression the question types is copied into Python in one line and Python
    applies the order of operations. Until v6.2 order_of_operations was solved one operation
    per step, and the 135M default lost track of which operand came next on reasoning-gym's
    chain sums ("2 + 4 - 5" became sum_1 = 2 + 4, difference_2 = 2 - 5)."""
    rng = random.Random(7)
    to_py = {"×": "*", "÷": "/", "^": "**"}
    seen = 0
    for _ in range(400):
        skill = rng.choice(["order_of_operations", "integer_arithmetic"])
        g = SKILLS[skill](rng, rng.choice(DIFFICULTIES))
        if skill == "integer_arithmetic" and not g.template.startswith("chain:"):
            continue
        seen += 1
        assert len(g.steps) == 1, g.steps
        code = g.steps[0][1]
        m = re.fullmatch(r"result = (?:round\((.+), 6\)|(.+))", code)
        assert m, code
        written = m.group(1) or m.group(2)
        shown = re.search(r"[-(\d][-+×÷*/^() \d]*\d\)?", g.question).group(0)
        for sign, py in to_py.items():
            shown = shown.replace(sign, py)
        assert written.replace(" ** ", "**") == shown.replace(" ** ", "**"), (g.question, code)
    assert seen > 200


def test_unit_conversions_name_the_amount_by_its_unit():
    """v6.3: "How many millilitres are in 1.5 litres?" -> `liters = 1.5` then
    `milliliters = liters * 1000`, as everyday_units writes it; the v6.2 form
    (`converted = amount / 1000` under a comment saying which way to go) was copied the wrong
    way round by the default model (0.0015)."""
    rng = random.Random(11)
    n = 0
    for _ in range(300):
        g = SKILLS["unit_conversion"](rng, rng.choice(DIFFICULTIES))
        if len(g.steps) != 1:
            continue  # "2 km 350 m": whole units, then the rest
        n += 1
        first, second = g.steps[0][1].splitlines()
        unit_in, amount = first.split(" = ")
        unit_out, rhs = second.split(" = ")
        assert re.fullmatch(rf"{unit_in} [*/] [\d.]+", rhs), g.steps
        assert g.final_code == f"print(round({unit_out}, 4))"
        assert amount in g.question and unit_in != unit_out
        assert {unit_in, unit_out} <= set(_UNIT_WORDS.values()), g.steps
    assert n > 100
