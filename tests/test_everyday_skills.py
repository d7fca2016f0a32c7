"""The everyday skills (train/skills/everyday*.py, _words.py): small arithmetic asked the ways
people type it (symbols, operation words, phrases, number words), percents and unit
conversions, short stories, number facts (powers, roots, digits, primes, gcd/lcm, shapes,
one-step equations, tips, time), fractions said as people say them; every level verifies, the forms really appear, number-word
questions compute with the digits, and the older skills' problems do not move."""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction

import pytest

from edgestar.executor import Executor
from edgestar.train import problems as P
from edgestar.train.skills import DIFFICULTIES, SKILLS
from edgestar.train.skills._words import WORD_LIMIT, casual, hundreds_words, number_words
from edgestar.types import InputError

EVERYDAY = (
    "everyday_arithmetic",
    "everyday_percent_units",
    "everyday_word",
    "everyday_facts",
    "everyday_expressions",
    "everyday_fractions",
    "everyday_stories",
)
_WORDS_TO_INT = {number_words(i): i for i in range(WORD_LIMIT + 1)}
# longest first, so "forty-two" is read before "forty" and "two"
_WORD_RE = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _WORDS_TO_INT), key=len, reverse=True)) + r")\b"
)
_SYMBOL_RE = re.compile(r"\d\s*[-+*/x×X÷]\s*\d")


@pytest.fixture(scope="module")
def ex():
    with Executor() as e:
        yield e


@pytest.fixture(scope="module")
def arithmetic(ex):
    return P.generate(400, seed=5, skills="everyday_arithmetic", runner=ex, with_solution=True)


def test_number_words():
    assert [number_words(i) for i in (0, 7, 13, 19, 20, 42, 70, 99, 100)] == [
        "zero", "seven", "thirteen", "nineteen", "twenty", "forty-two", "seventy",
        "ninety-nine", "one hundred",
    ]  # fmt: skip
    assert len(set(_WORDS_TO_INT)) == WORD_LIMIT + 1  # every number has its own words
    for bad in (-1, 101, True, 2.5, "3"):
        with pytest.raises(ValueError, match="0..100"):
            number_words(bad)  # type: ignore[arg-type]


def test_casual_changes_some_questions_and_keeps_the_words():
    rng = random.Random(0)
    outs = [casual(rng, "What is Seven times six?") for _ in range(300)]
    kinds = Counter(outs)
    assert set(kinds) == {
        "What is Seven times six?", "what is seven times six?", "What is Seven times six",
        "what is seven times six",
    }  # fmt: skip
    assert 0.5 < kinds["What is Seven times six?"] / 300 < 0.7


def test_new_skills_are_registered_after_the_old_ones():
    assert tuple(SKILLS)[-len(EVERYDAY) :] == EVERYDAY
    assert tuple(SKILLS)[:4] == (
        "integer_arithmetic", "decimal_arithmetic", "fraction_arithmetic", "order_of_operations",
    )  # fmt: skip


@pytest.mark.parametrize("skill", EVERYDAY)
def test_every_level_verifies_with_short_code(skill, ex):
    for d in DIFFICULTIES:
        st = P.GenerationStats()
        recs = P.generate(60, seed=d, skills=skill, difficulty=d, runner=ex, stats=st)
        assert len(recs) == 60 and st.failed == 0, st.examples
        assert {r.difficulty for r in recs} == {d}
    rng = random.Random(1)
    for _ in range(300):
        g = SKILLS[skill](rng, rng.choice(DIFFICULTIES))
        assert 1 <= len(g.steps) <= 3 and g.final_code.startswith("print(")
        # short steps: at most two lines each, besides a fixed `from sympy import ...` line
        for _, code in g.steps:
            lines = [ln for ln in code.splitlines() if not ln.startswith("from sympy import")]
            assert len(lines) <= 2, g.steps


def test_symbol_word_phrase_and_special_forms_all_appear(arithmetic):
    qs = [r.question for r in arithmetic]
    kinds = Counter(r.template.split(":")[0] for r in arithmetic)
    assert set(kinds) == {"symbol", "opword", "phrase", "special"}
    assert min(kinds.values()) >= 20, kinds
    assert sum(bool(_SYMBOL_RE.search(q)) for q in qs) >= 100
    wordy = [q for q in qs if not re.search(r"\d", q)]
    assert len(wordy) >= 40  # questions with no digit at all: numbers written as words
    for marker in ("×", "÷", " x ", "plus", "times", "minus", "divided by", "sum of",
                   "product of", "difference between", "twice", "half of", "dozen"):  # fmt: skip
        assert any(marker in q.lower() for q in qs), marker
    assert any(re.search(r"\d[+*/x×÷-]\d", q) for q in qs)  # no spaces: "12+30"
    assert any(q[0].islower() for q in qs) and any(q[-1].isalnum() for q in qs)  # casual
    assert len({r.template for r in arithmetic}) >= 150


def test_number_word_questions_compute_with_the_digits(arithmetic):
    checked = 0
    for r in arithmetic:
        if not r.template.endswith(":words"):
            continue
        named = sorted(_WORDS_TO_INT[w] for w in _WORD_RE.findall(r.question.lower()))
        assert named and not re.search(r"\d", r.question), r.question
        code = r.solution.split("# Now print")[0] if r.solution else ""
        in_code = re.findall(r"= (\d+) (?:[-+*]|//?) (\d+)\n", code)
        assert in_code, code
        assert sorted(map(int, in_code[0])) == named, (r.question, code)
        checked += 1
    assert checked >= 30


def test_numbers_grow_with_the_level():
    rng = random.Random(3)
    biggest: dict[int, list[int]] = {d: [] for d in DIFFICULTIES}
    for _ in range(600):
        d = rng.choice(DIFFICULTIES)
        g = SKILLS["everyday_arithmetic"](rng, d)
        m = re.fullmatch(r"\w+ = (\d+) ([-+*]) (\d+)", g.steps[0][1])
        if m and not g.template.startswith("special"):
            biggest[d].append(max(int(m[1]), int(m[3])))
    assert max(biggest[1]) <= 20 and max(biggest[2]) <= 99
    assert min(biggest[3]) >= 11 and max(biggest[3]) >= 500
    assert min(biggest[2]) >= 10


def test_percent_and_unit_forms(ex):
    recs = P.generate(300, seed=2, skills="everyday_percent_units", runner=ex)
    qs = [r.question.lower() for r in recs]
    kinds = Counter(r.template.split(":")[0] for r in recs)
    assert set(kinds) == {"of", "what_percent", "to_small", "to_big", "mixed"}, kinds
    assert any("%" in q for q in qs) and any("percent" in q for q in qs)
    units = {r.template.rsplit(":", 1)[1] for r in recs if r.template.startswith("to_")}
    assert units >= {"hour", "minute", "day", "week", "kilometer", "kilogram", "liter", "dollar"}
    assert any(re.search(r"\d+\.\d+ hours", q) for q in qs)  # "2.5 hours"
    assert any(q.endswith("?") is False for q in qs)


def test_word_stories_vary_names_objects_and_kinds(ex):
    recs = P.generate(300, seed=4, skills="everyday_word", runner=ex)
    kinds = {r.template.split(":")[0] for r in recs}
    assert kinds >= {"groups", "cost", "share", "ages", "speed", "average", "left", "per_day",
                     "compare", "boxes", "left_over", "round_up"}  # fmt: skip
    assert len({r.template for r in recs}) >= 40
    names = {w for r in recs for w in re.findall(r"\b[A-Z][a-z]+\b", r.question)}
    assert len(names) >= 40  # names, objects, units
    assert any("$" in r.question for r in recs) and any("minutes" in r.question for r in recs)


def test_old_recipes_draw_the_same_problems_with_or_without_the_new_skills(ex, monkeypatch):
    old = "integer_arithmetic,decimal_arithmetic,fraction_arithmetic,word_shopping,word_rates"
    now = P.generate(60, seed=1, skills=old, runner=ex, with_solution=True)
    # a new dict, not delitem: putting keys back would reorder the shared registry
    without = {k: fn for k, fn in P.SKILLS.items() if k not in EVERYDAY}
    monkeypatch.setattr(P, "SKILLS", without)
    with pytest.raises(InputError, match="unknown skill everyday_word"):
        P.generate(1, seed=1, skills="everyday_word", runner=ex)
    assert P.generate(60, seed=1, skills=old, runner=ex, with_solution=True) == now


FACT_KINDS = ("power", "root", "digits", "prime", "gcd_lcm", "shape", "equation", "tip", "time")


@pytest.fixture(scope="module")
def facts():
    rng = random.Random(11)
    return {d: [SKILLS["everyday_facts"](rng, d) for _ in range(900)] for d in DIFFICULTIES}


def _size(g) -> int:
    """The largest whole number in the question, the reference code or the answer."""
    text = " ".join(code for _, code in g.steps) + " " + g.question + " " + g.answer
    return max(int(n) for n in re.findall(r"\d+", text))


@pytest.mark.parametrize("kind", FACT_KINDS)
def test_every_fact_kind_varies_its_phrasing_and_grows_with_the_level(kind, facts):
    medians = []
    for d in DIFFICULTIES:
        made = [g for g in facts[d] if g.template.split(":")[0] == kind]
        assert len(made) >= 50, (kind, d, len(made))
        assert len({g.template for g in made}) >= 4, {g.template for g in made}
        distinct = {g.question.lower().rstrip(".?!") for g in made}
        assert len(distinct) >= (0.4 if d == 1 else 0.6) * len(made), (kind, d, len(distinct))
        sizes = sorted(_size(g) for g in made)
        medians.append(sizes[len(sizes) // 2])
    assert medians[0] < medians[1] < medians[2], (kind, medians)


def test_fact_forms_appear(ex):
    recs = P.generate(600, seed=7, skills="everyday_facts", runner=ex)
    assert {r.template.split(":")[0] for r in recs} == set(FACT_KINDS)
    qs = [r.question.lower() for r in recs]
    for marker in ("^", "**", "to the power", "squared", "cubed", "cube of", "√", "∛", "sqrt(",
                   "square root", "cube root", "digits", "prime", "lcm(", "gcd(", "both",
                   "area", "perimeter", "right triangle", " cm", " m ", "what number", "x/",
                   "solve for y", "tip", "tax", "a day", "a week", "seconds", " am", " pm"):  # fmt: skip
        assert any(marker in q for q in qs), marker
    assert any(w in q for q in qs for w in (" two ", " three ", " five ", " seven "))
    templates = {r.template.split(":")[1] for r in recs}
    assert templates >= {"squared", "cubed", "power", "sqrt", "cbrt", "sum", "count", "below",
                         "factor", "gcd2", "gcd3", "lcm2", "lcm3", "rect_area", "rect_perimeter",
                         "square_area", "square_perimeter", "tri_area", "add", "sub", "mul",
                         "div", "tip", "total", "tax", "clock"}  # fmt: skip


def test_fact_answers_are_right():
    """Spot checks against facts computed here, independently of the reference code."""
    rng = random.Random(12)
    checked = Counter()
    for _ in range(1500):
        g = SKILLS["everyday_facts"](rng, rng.choice(DIFFICULTIES))
        q, kind = g.question.lower(), g.template.split(":")[1]
        nums = [int(n) for n in re.findall(r"\d+", q)]
        if kind == "sqrt":
            assert int(g.answer) ** 2 == nums[-1], q
        elif kind == "cbrt":
            assert int(g.answer) ** 3 == nums[-1], q
        elif kind == "count":
            assert int(g.answer) == len(str(nums[0])), q
        elif kind == "factor":
            n, p = nums[0], int(g.answer)
            assert n % p == 0 and p < n and all(n % k for k in range(2, p)), q
        elif kind == "clock":
            (h1, m1, h2, m2), (a1, a2) = nums, re.findall(r"[ap]m", q)
            t1, t2 = (h % 12 * 60 + (720 if ap == "pm" else 0) for h, ap in ((h1, a1), (h2, a2)))
            assert int(g.answer) == t2 + m2 - t1 - m1 > 0, q
        else:
            continue
        checked[kind] += 1
    assert min(checked.values()) >= 20 and len(checked) == 5, checked


def test_expressions_are_solved_by_writing_them_as_python():
    """everyday_expressions: the typed expression, its signs mapped to Python's, is the code
    (one line, nothing computed by hand); every sign form and structure appears."""
    rng = random.Random(11)
    seen: Counter[str] = Counter()
    for _ in range(600):
        d = rng.choice(DIFFICULTIES)
        g = SKILLS["everyday_expressions"](rng, d)
        assert len(g.steps) == 1 and g.final_code == "print(result)"
        code = g.steps[0][1].removeprefix("result = ")
        code = code.removeprefix("round(").removesuffix(", 6)")
        typed = g.question
        for s in ("×", "X", "÷", "^", "**", "(", "-", "."):
            seen[s] += s in typed
        py = typed.replace("**", "^").replace("^", "**").replace("×", "*").replace("÷", "/")
        py = re.sub(r"(?<=[\d)]) ?[xX] ?(?=[\d(-])", " * ", py)
        norm = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
        assert norm(code) in norm(py), (typed, code)
    assert all(seen[s] >= 10 for s in ("×", "X", "÷", "^", "**", "(", "-", ".")), seen


# Fractions as words, written here independently of the generator's own table.
_NUM = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "five": 5, "seven": 7}
_DEN = {"half": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6, "eighth": 8,
        "tenth": 10}  # fmt: skip
_FRAC_RE = re.compile(r"(\d+)/(\d+)|(?:(a|an|one|two|three|five|seven) )?([a-z]+?)s?\b")


def _fractions_in(q: str) -> list[Fraction]:
    out = []
    for m in _FRAC_RE.finditer(q):
        if m.group(1):
            out.append(Fraction(int(m.group(1)), int(m.group(2))))
        elif m.group(4) in _DEN and (m.group(3) or m.group(4) == "half"):
            out.append(Fraction(_NUM.get(m.group(3) or "one", 1), _DEN[m.group(4)]))
    return out


def test_fraction_answers_are_right_and_every_form_appears():
    """everyday_fractions: each answer recomputed from the question's own words and digits;
    every kind and operation appears, in digits and in words; the code is one line after the
    import, the calculation copied (nothing computed by hand)."""
    rng = random.Random(13)
    seen: Counter[str] = Counter()
    for _ in range(900):
        g = SKILLS["everyday_fractions"](rng, rng.choice(DIFFICULTIES))
        q, kind = g.question.lower(), g.template.split(":")[0]
        seen[kind] += 1
        seen["words"] += not re.search(r"\d+/\d+", q)
        fr, ans = _fractions_in(q), Fraction(g.answer)
        if kind == "of":
            n = [int(x) for x in re.findall(r"(?<![/\d])\d+(?![/\d])", q)]
            whole = n[-1] if n else _WORDS_TO_INT[_WORD_RE.findall(q)[-1]]
            assert ans == fr[0] * whole, q
        elif kind == "dec":
            assert ans == fr[0] and "/" not in g.answer, q
        elif kind == "pct":
            assert ans == fr[0] * 100 and ans.denominator == 1, q
        elif kind == "simp":
            assert ans == fr[0] and f"{ans.numerator}/{ans.denominator}" != q, q
        else:
            f, h = fr
            assert ans == [f + h, f - h, f * h, f / h][int(kind[2])], q
        code = g.steps[0][1].removeprefix("from fractions import Fraction\n")
        assert len(g.steps) == 1 and "\n" not in code and code.startswith("value = "), g.steps
    kinds = {"of", "dec", "pct", "simp", "op0", "op1", "op2", "op3"}
    assert set(seen) - {"words"} == kinds and min(seen[k] for k in kinds) >= 20, seen
    assert seen["words"] >= 60, seen


STORY_KINDS = {
    "in_groups", "start_groups", "pack_sell", "two_away", "three_away", "times_old",
    "older_later", "cents_each", "price_times", "change_cents", "raise", "cut", "speed_from",
    "time_from", "unit_price", "temp_up", "temp_down", "big_words",
}  # fmt: skip


def test_hundreds_words():
    rng = random.Random(0)
    assert hundreds_words(300, rng) == "three hundred"
    assert {hundreds_words(150, rng) for _ in range(40)} == {
        "one hundred and fifty", "one hundred fifty",
    }  # fmt: skip
    assert hundreds_words(999, rng).endswith("ninety-nine")
    for bad in (99, 1000, True):
        with pytest.raises(ValueError, match="100..999"):
            hundreds_words(bad, rng)


def test_stories_told_the_other_way_round(ex):
    """everyday_stories: every kind appears, and each kind's operation is the one its question
    asks for, checked here from the question's own numbers (not the reference code)."""
    recs = P.generate(800, seed=6, skills="everyday_stories", runner=ex)
    kinds = Counter(r.template.split(":")[0] for r in recs)
    assert set(kinds) == STORY_KINDS and min(kinds.values()) >= 10, kinds
    for r in recs:
        kind, q = r.template.split(":")[0], r.question.lower()
        nums = [Fraction(x) for x in re.findall(r"-?\d+(?:\.\d+)?", q.replace("$", ""))]
        ans = Fraction(r.answer)
        if kind == "in_groups":  # "a box holds 24: how many in 7 boxes" multiplies
            assert ans == nums[0] * nums[1], q
        elif kind == "two_away":
            assert ans == nums[0] - nums[1] - nums[2], q
        elif kind == "cents_each":
            assert ans == nums[0] * nums[1] / 100, q
        elif kind in ("temp_up", "temp_down"):
            sign = 1 if kind == "temp_up" else -1
            assert ans == nums[0] + sign * nums[-1], q
        elif kind == "speed_from":
            assert ans == nums[0] / nums[1], q
        elif kind == "big_words":
            assert not re.search(r"\d", q), q
            assert re.search(r"hundred", q), q
