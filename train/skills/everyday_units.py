"""Everyday percents and unit conversions: "what is 15% of 80", "20 percent of 45", "45 is
what percent of 60", "how many minutes are in 2.5 hours", "convert 3 kg to grams", "what is
250 cents in dollars", "2 hours and 15 minutes in minutes".

Difficulty: 1 = whole amounts, easy percents (10, 20, 25, 50, 75) and whole answers; 2 =
halves and quarters, any multiple of 5 percent, conversions to the bigger unit; 3 = two
decimal places, percents like 12.5 or 8, mixed amounts ("3 kg 250 g").

Registered in `SKILLS` when the package imports this module (after every older skill module,
so older seeds keep their problems)."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import NamedTuple

from ._common import GeneratedProblem, dec, gen, money, names, pick, skill, terminates
from ._words import WORD_LIMIT, casual, number_words


class _Pair(NamedTuple):
    big: str
    bigs: str
    big_abbr: str | None
    small: str
    smalls: str
    small_abbr: str | None
    factor: int
    """How many small units make one big unit."""


_PAIRS = (
    _Pair("hour", "hours", "h", "minute", "minutes", "min", 60),
    _Pair("minute", "minutes", "min", "second", "seconds", "s", 60),
    _Pair("day", "days", None, "hour", "hours", "h", 24),
    _Pair("week", "weeks", None, "day", "days", None, 7),
    _Pair("year", "years", None, "month", "months", None, 12),
    _Pair("kilometer", "kilometers", "km", "meter", "meters", "m", 1000),
    _Pair("meter", "meters", "m", "centimeter", "centimeters", "cm", 100),
    _Pair("kilogram", "kilograms", "kg", "gram", "grams", "g", 1000),
    _Pair("liter", "liters", "L", "milliliter", "milliliters", "mL", 1000),
    _Pair("dollar", "dollars", "$", "cent", "cents", None, 100),
)

_TO_SMALL = (
    "How many {S} are in {xb}?", "How many {S} is {xb}?", "Convert {xb} to {S}.",
    "{xb} is how many {S}?", "What is {xb} in {S}?", "{xb} in {S}?", "Change {xb} into {S}.",
    "Express {xb} in {S}.", "{xa} = ? {Sa}", "{n} wrote down {xb}. How many {S} is that?",
)  # fmt: skip
_TO_BIG = (
    "How many {B} are in {ys}?", "How many {B} is {ys}?", "Convert {ys} to {B}.",
    "{ys} is how many {B}?", "What is {ys} in {B}?", "Write {ys} in {B}.", "{ysa} = ? {Ba}",
    "{ys} makes how many {B}?",
)  # fmt: skip
_MIXED = (
    "How many {S} are in {a} {B} and {r} {S}?", "Convert {a} {B} {r} {S} to {S}.",
    "What is {a} {B} and {r} {S} in {S}?", "{a} {B} {r} {S} is how many {S}?",
)  # fmt: skip

_PERCENT_OF = (
    "What is {p}% of {b}?", "What's {p}% of {b}?", "{p}% of {b}", "{p}% of {b}?",
    "{p} percent of {b}", "What is {p} percent of {b}?", "Find {p}% of {b}.",
    "Calculate {p} percent of {b}.", "How much is {p}% of {b}?", "What is {p} per cent of {b}?",
    "{p}% of {b} is what?", "Work out {p}% of {b}.", "What is {p}% of ${b}?",
)  # fmt: skip
_PERCENT_STORY = {  # (the largest percent the story makes sense for, the phrasing)
    "save": (99, "A shirt costs ${b} and is {p}% off. How many dollars do you save?"),
    "tip": (30, "{n} leaves a {p}% tip on a ${b} bill. How many dollars is the tip?"),
    "class": (100, "{p}% of the {b} people at a party are children. How many children is that?"),
}
_PERCENT_OF_WORDS = (
    "What is {p} percent of {b}?",
    "{p} percent of {b}?",
    "How much is {p} percent of {b}?",
)
_WHAT_PERCENT = (
    "{a} is what percent of {b}?", "What percent of {b} is {a}?",
    "{a} out of {b} is what percent?", "What percentage of {b} is {a}?",
    "{n} got {a} out of {b} on a quiz. What percent is that?",
)  # fmt: skip


def _amount(unit_one: str, units: str, x: Fraction) -> str:
    return f"{dec(x)} {unit_one if x == 1 else units}"


def _convert(rng: random.Random, d: int) -> GeneratedProblem:
    pair = rng.choice(_PAIRS)
    n = names(rng)[0]
    if d > 1 and pair.factor != 7 and pair.big != "dollar" and rng.random() < 0.25:
        a, r = rng.randint(1, 12 * d), rng.randint(1, pair.factor - 1)
        t, phr = pick(rng, _MIXED)
        q = phr.format(a=a, r=r, B=pair.big if a == 1 else pair.bigs, S=pair.smalls)
        why = f"One {pair.big} is {pair.factor} {pair.smalls}; convert, then add the rest."
        steps = [(why, f"{pair.smalls} = {a} * {pair.factor} + {r}")]
        val = a * pair.factor + r
        return gen(casual(rng, q), dec(val), steps, f"print({pair.smalls})", f"mixed:{t}")
    to_small = rng.random() < (0.7 if d == 1 else 0.5)
    x = Fraction(rng.randint(2, 12))  # the fallback when no draw fits
    for _ in range(100):
        if d == 1:
            draw = Fraction(rng.randint(1, 12))
        elif d == 2:
            draw = Fraction(rng.randint(1, 40), rng.choice([1, 2, 2, 4]))
        elif pair.factor % 10 == 0 and pair.factor != 60:  # metric and money: two places
            draw = Fraction(rng.randint(101, 999), rng.choice([10, 100]))
        else:
            draw = Fraction(rng.randint(5, 99), rng.choice([2, 4, 10]))
        small = draw * pair.factor
        fits = terminates(small, 2) if to_small else small.denominator == 1
        if fits and (d == 1 or draw.denominator > 1 or rng.random() < 0.3):
            x = draw
            break
    small = x * pair.factor
    if pair.big == "dollar":
        xb = xa = money(x) if rng.random() < 0.7 else _amount("dollar", "dollars", x)
    else:
        xb = _amount(pair.big, pair.bigs, x)
        xa = f"{dec(x)} {pair.big_abbr}" if pair.big_abbr else xb
    if to_small:
        t, phr = pick(rng, _TO_SMALL)
        q = phr.format(S=pair.smalls, xb=xb, xa=xa, Sa=pair.small_abbr or pair.smalls, n=n)
        why = f"The question gives {xb}; each {pair.big} is {pair.factor} {pair.smalls}."
        code = f"{pair.bigs} = {dec(x)}\n{pair.smalls} = {pair.bigs} * {pair.factor}"
        var, val, template = pair.smalls, small, f"to_small:{t}"
    else:
        ys = _amount(pair.small, pair.smalls, small)
        ysa = f"{dec(small)} {pair.small_abbr}" if pair.small_abbr else ys
        t, phr = pick(rng, _TO_BIG)
        ba = pair.bigs if pair.big_abbr in (None, "$") else pair.big_abbr
        q = phr.format(B=pair.bigs, ys=ys, ysa=ysa, Ba=ba)
        why = f"The question gives {ys}; {pair.factor} {pair.smalls} make one {pair.big}."
        code = f"{pair.smalls} = {dec(small)}\n{pair.bigs} = {pair.smalls} / {pair.factor}"
        var, val, template = pair.bigs, x, f"to_big:{t}"
    final = f"print(round({var}, 2))"
    return gen(casual(rng, q), dec(val), [(why, code)], final, f"{template}:{pair.big}")


def _percent_of(rng: random.Random, d: int) -> GeneratedProblem:
    p = rng.choice(
        [10, 20, 25, 50, 75, 100]
        if d == 1
        else [*range(5, 100, 5), 1, 2]
        if d == 2
        else [Fraction(25, 2), Fraction(5, 2), Fraction(15, 2), 8, 3, 15, 35, 120, 150]
    )  # the percent first, then a base it fits: every percent stays as likely
    for _ in range(200):
        b = (
            rng.randint(2, 100)
            if d == 1
            else rng.randint(2, 200)
            if d == 2
            else rng.randint(10, 999)
        )
        val = Fraction(p) * b / 100
        if terminates(val, 2) and (d > 1 or val.denominator == 1):
            break
    words = d == 1 and rng.random() < 0.3 and b <= WORD_LIMIT
    if words:
        t, phr = pick(rng, _PERCENT_OF_WORDS)
        q = phr.format(p=number_words(int(p)), b=number_words(b))
        why = f"In digits, that is {dec(p)}% of {b}. "
        template = f"of:{t}:words"
    else:
        opts = list(_PERCENT_OF) + [
            phr for top, phr in _PERCENT_STORY.values() if p <= top and val.denominator == 1
        ]
        t, phr = pick(rng, opts)
        q, why, template = phr.format(p=dec(p), b=b, n=names(rng)[0]), "", f"of:{t}"
    why += "A percent is a number out of 100: multiply, then divide by 100."
    steps = [(why, f"part = {dec(p)} * {b} / 100")]
    return gen(casual(rng, q), dec(val), steps, "print(round(part, 2))", template)


def _what_percent(rng: random.Random, d: int) -> GeneratedProblem:
    b = rng.choice([4, 5, 10, 20, 25, 40, 50, 80, 100, 200] if d == 2 else [8, 16, 40, 125, 250])
    for _ in range(200):
        a = rng.randint(1, b)
        p = Fraction(a * 100, b)
        if terminates(p, 1) and (d == 3 or p.denominator == 1):
            break
    t, phr = pick(rng, _WHAT_PERCENT)
    q = phr.format(a=a, b=b, n=names(rng)[0])
    steps = [("Divide the part by the whole and multiply by 100.", f"percent = {a} / {b} * 100")]
    return gen(casual(rng, q), dec(p), steps, "print(round(percent, 2))", f"what_percent:{t}")


@skill("everyday_percent_units")
def everyday_percent_units(rng: random.Random, d: int) -> GeneratedProblem:
    r = rng.random()
    if r < 0.55:
        return _convert(rng, d)
    if d > 1 and r < 0.7:
        return _what_percent(rng, d)
    return _percent_of(rng, d)
