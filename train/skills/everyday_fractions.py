"""Everyday fraction questions: a fraction of a number ("3/4 of 20", "two thirds of 27"), a
fraction as a decimal or a percent ("7/8 as a decimal"), a fraction in lowest terms ("simplify
18/24"), and one operation on two fractions said the way people say them ("a half plus a
third", "5/6 take away 1/4").

fraction_arithmetic already drills the four operations in textbook phrasings with one solution
shape; these are the quick questions around it. Every solution is one line that copies the
question into Python with `Fraction` (of = times, as a decimal = divide), the interpreter does
the rest, as everyday_expressions does for whole calculations.

Difficulty scales the numbers: 1 = halves, thirds and quarters (often as words), 2 = other
small denominators, 3 = larger numbers and fractional results. Registered in `SKILLS` after
everyday_expressions, so older seeds keep their problems."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from ._common import GeneratedProblem, Step, dec, fmt, gen, pick, skill
from ._words import casual, number_words

# The fractions people say in words: (numerator, denominator) -> the words.
_SAID = {
    (1, 2): ("a half", "one half"), (1, 3): ("a third", "one third"),
    (2, 3): ("two thirds",), (1, 4): ("a quarter", "one quarter", "a fourth"),
    (3, 4): ("three quarters", "three fourths"), (1, 5): ("a fifth", "one fifth"),
    (2, 5): ("two fifths",), (3, 5): ("three fifths",), (1, 6): ("a sixth", "one sixth"),
    (5, 6): ("five sixths",), (1, 8): ("an eighth", "one eighth"), (3, 8): ("three eighths",),
    (1, 10): ("a tenth", "one tenth"), (7, 10): ("seven tenths",),
}  # fmt: skip

_DENS = {1: (2, 3, 4), 2: (2, 3, 4, 5, 6, 8, 10), 3: (3, 4, 5, 6, 7, 8, 9, 10, 12, 15)}
_DECIMAL_DENS = {1: (2, 4, 5, 10), 2: (4, 5, 8, 10, 20, 25), 3: (8, 16, 20, 25, 40, 50)}
_PERCENT_DENS = (2, 4, 5, 10, 20, 25, 50)  # whole-number percents

OF = (
    "What is {f} of {n}?", "{f} of {n}", "Find {f} of {n}.", "what's {f} of {n}",
    "How much is {f} of {n}?", "Work out {f} of {n}.",
)  # fmt: skip
DECIMAL = (
    "What is {f} as a decimal?", "Write {f} as a decimal.", "convert {f} to a decimal",
    "{f} in decimal form", "What decimal is {f}?",
)  # fmt: skip
PERCENT = (
    "What is {f} as a percent?", "{f} as a percentage", "Write {f} as a percent.",
    "What percent is {f}?",
)  # fmt: skip
SIMPLIFY = (
    "Simplify {f}.", "Reduce {f} to lowest terms.", "What is {f} in simplest form?",
    "write {f} in lowest terms", "simplify the fraction {f}",
)  # fmt: skip
_OPS = {
    "+": ("{f} plus {g}", "What is {f} plus {g}?", "add {f} and {g}", "{f} + {g}"),
    "-": ("{f} minus {g}", "what's {f} take away {g}", "What is {f} minus {g}?", "{f} - {g}"),
    "*": ("What is {f} times {g}?", "{f} times {g}", "{f} of {g}", "{f} × {g}"),
    "/": ("{f} divided by {g}", "What is {f} divided by {g}?", "{f} ÷ {g}"),
}  # fmt: skip


def _frac(rng: random.Random, d: int) -> Fraction:
    q = rng.choice(_DENS[d])
    p = rng.randint(1, q - 1)
    return Fraction(p, q) if math.gcd(p, q) == 1 else _frac(rng, d)


def _say(rng: random.Random, x: Fraction, d: int) -> str:
    """The fraction as written in a question: in words when people say it so, else 'p/q'."""
    words = _SAID.get((x.numerator, x.denominator))
    if words and rng.random() < (0.6 if d == 1 else 0.3):
        return rng.choice(words)
    return f"{x.numerator}/{x.denominator}"


def _code(x: Fraction) -> str:
    return f"Fraction({x.numerator}, {x.denominator})"


_IMPORT = "from fractions import Fraction\n"
_Made = tuple[str, Fraction, str, str, str]  # question, value, reasoning, code, template


def _of(rng: random.Random, d: int) -> _Made:
    f = _frac(rng, d)
    k = rng.randint(1, {1: 12, 2: 25, 3: 40}[d])
    n = k * f.denominator if d < 3 or rng.random() < 0.6 else rng.randint(5, 200)
    i, phr = pick(rng, OF)
    sn = number_words(n) if d == 1 and n <= 20 and rng.random() < 0.3 else str(n)
    q = phr.format(f=_say(rng, f, d), n=sn)
    return q, f * n, "'Of' means multiply.", f"{_IMPORT}value = {_code(f)} * {n}", f"of:{i}"


def _decimal(rng: random.Random, d: int) -> _Made:
    qd = rng.choice(_DECIMAL_DENS[d])
    p = rng.randint(1, qd - 1) if d < 3 or rng.random() < 0.7 else rng.randint(qd + 1, 3 * qd)
    f = Fraction(p, qd)
    i, phr = pick(rng, DECIMAL)
    shown = f"{p}/{qd}" if rng.random() < 0.8 else _say(rng, f, d)
    q = phr.format(f=shown)
    return q, f, "As a decimal: divide the top by the bottom.", f"value = {p} / {qd}", f"dec:{i}"


def _percent(rng: random.Random, d: int) -> _Made:
    qd = rng.choice(_PERCENT_DENS)
    p = rng.randint(1, qd - 1)
    f = Fraction(p, qd)
    i, phr = pick(rng, PERCENT)
    q = phr.format(f=f"{p}/{qd}" if rng.random() < 0.8 else _say(rng, f, d))
    code = f"{_IMPORT}value = Fraction({p}, {qd}) * 100"
    return q, f * 100, "A percent is hundredths: times 100.", code, f"pct:{i}"


def _simplify(rng: random.Random, d: int) -> _Made:
    f = _frac(rng, d)
    k = rng.randint(2, {1: 6, 2: 9, 3: 15}[d])
    p, qd = f.numerator * k, f.denominator * k
    i, phr = pick(rng, SIMPLIFY)
    code = f"{_IMPORT}value = Fraction({p}, {qd})"
    return phr.format(f=f"{p}/{qd}"), f, "Fraction reduces to lowest terms.", code, f"simp:{i}"


def _op(rng: random.Random, d: int) -> _Made:
    op = rng.choice("+-*/")
    f, g = _frac(rng, d), _frac(rng, d)
    if op == "-" and f < g:
        f, g = g, f
    if op == "-" and f == g:
        return _op(rng, d)
    i, phr = pick(rng, _OPS[op])
    sym = "+-*/".index(op)
    q = phr.format(f=_say(rng, f, d), g=_say(rng, g, d))
    val = {"+": f + g, "-": f - g, "*": f * g, "/": f / g}[op]
    code = f"{_IMPORT}value = {_code(f)} {op} {_code(g)}"
    why = "Copy the calculation with exact fractions."
    return q, val, why, code, f"op{sym}:{i}"


_KINDS = {"of": _of, "decimal": _decimal, "percent": _percent, "simplify": _simplify, "op": _op}


@skill("everyday_fractions")
def everyday_fractions(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(list(_KINDS))
    q, val, why, code, template = _KINDS[kind](rng, d)
    steps: list[Step] = [(why, code)]
    answer = dec(val) if kind == "decimal" else fmt(val)
    return gen(casual(rng, q), answer, steps, "print(value)", template)
