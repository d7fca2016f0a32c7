"""What every skill module shares: the problem record, the SKILLS registry, and the helpers
that pick names, objects and numbers and format answers."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from ._words import casual

Step = tuple[str, str]


@dataclass(frozen=True)
class GeneratedProblem:
    question: str
    answer: str
    steps: tuple[Step, ...]
    """(reasoning, code) pairs; the code of all steps runs in order, in one namespace."""
    final_code: str
    """Prints the answer (the last code step of the rstar solution)."""
    template: str = ""


SkillFn = Callable[[random.Random, int], GeneratedProblem]
SKILLS: dict[str, SkillFn] = {}
DIFFICULTIES = (1, 2, 3)


def skill(name: str) -> Callable[[SkillFn], SkillFn]:
    def register(fn: SkillFn) -> SkillFn:
        SKILLS[name] = fn
        return fn

    return register


# ----------------------------------------------------------------------------- helpers

NAMES = (
    "Amara", "Ben", "Chen", "Diego", "Elena", "Farah", "Gabriel", "Hana", "Ivan", "Jamal",
    "Keiko", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Samir", "Tara",
    "Uma", "Victor", "Wei", "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dev",
    "Emma", "Femi", "Grace", "Hugo", "Ines", "Jonas", "Kwame", "Lucia", "Mateo", "Nadia",
)  # fmt: skip

# (singular, plural, low price in cents, high price in cents)
ITEMS = (
    ("pen", "pens", 50, 300), ("notebook", "notebooks", 150, 600), ("apple", "apples", 30, 120),
    ("muffin", "muffins", 120, 450), ("ticket", "tickets", 400, 2500), ("candle", "candles", 200, 900),
    ("marker", "markers", 80, 350), ("bottle of juice", "bottles of juice", 90, 400),
    ("sticker sheet", "sticker sheets", 40, 250), ("bag of rice", "bags of rice", 300, 1500),
    ("flower pot", "flower pots", 250, 1200), ("comic book", "comic books", 300, 1400),
    ("packet of seeds", "packets of seeds", 60, 400), ("puzzle", "puzzles", 500, 2500),
    ("cupcake", "cupcakes", 100, 400), ("battery", "batteries", 70, 300),
)  # fmt: skip

COUNTABLES = (
    "marbles", "stamps", "shells", "stickers", "cards", "beads", "coins", "books", "pencils",
    "cookies", "balloons", "plants", "photos", "buttons", "toy cars", "oranges",
)  # fmt: skip

PLACES = (
    "the library",
    "the market",
    "school",
    "the park",
    "the museum",
    "the station",
)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def pick(rng: random.Random, options: list[str] | tuple[str, ...]) -> tuple[int, str]:
    i = rng.randrange(len(options))
    return i, options[i]


def names(rng: random.Random, k: int = 1) -> list[str]:
    return rng.sample(NAMES, k)


def nonzero(rng: random.Random, lo: int, hi: int) -> int:
    while True:
        v = rng.randint(lo, hi)
        if v:
            return v


def fmt(x: int | Fraction | Decimal) -> str:
    """The canonical answer string of an exact value."""
    if isinstance(x, bool):
        raise TypeError("bool is not an answer")
    if isinstance(x, int):
        return str(x)
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    if isinstance(x, Decimal):
        s = format(x.normalize(), "f")
        return "0" if s in ("-0", "") else s
    raise TypeError(f"not an exact value: {x!r}")


def dec(x: Fraction | int, max_places: int = 6) -> str:
    """A terminating value as a decimal string ("3.75", "12"); error if it does not terminate."""
    x = Fraction(x)
    for places in range(max_places + 1):
        scaled = x * 10**places
        if scaled.denominator == 1:
            return fmt(Decimal(scaled.numerator).scaleb(-places))
    raise ValueError(f"{x} has no decimal form with <= {max_places} places")


def terminates(x: Fraction | int, max_places: int) -> bool:
    return (Fraction(x) * 10**max_places).denominator == 1


def show(x: int | Fraction) -> str:
    """A number as written in a question: negatives in parentheses."""
    s = fmt(x) if isinstance(x, (int, Fraction)) else str(x)
    return f"({s})" if s.startswith("-") else s


def money(x: Fraction | Decimal | int) -> str:
    v = Fraction(x)
    return f"${v.numerator // v.denominator}" if v.denominator == 1 else f"${float(v):.2f}"


def pyfrac(x: Fraction) -> str:
    """Python source for an exact fraction literal."""
    return str(x.numerator) if x.denominator == 1 else f"Fraction({x.numerator}, {x.denominator})"


def gen(q: str, ans: str, steps: list[Step], final: str, template: str) -> GeneratedProblem:
    return GeneratedProblem(q, ans, tuple(steps), final, template)


Story = tuple[str, Fraction, list[Step], str, str]
"""A short story: (question, exact answer, steps, the printed variable, template)."""
StoryFn = Callable[[random.Random, int, str, str], Story]


def tell(
    kinds: dict[str, StoryFn], rng: random.Random, d: int, rounded: tuple[str, ...] = ()
) -> GeneratedProblem:
    """One story of a random kind, with two random names, casually typed some of the time; the
    answer is printed rounded to cents when it is not whole or its kind is in `rounded`."""
    kind = rng.choice(list(kinds))
    n, m = names(rng, 2)
    q, val, steps, var, template = kinds[kind](rng, d, n, m)
    final = f"print(round({var}, 2))" if val.denominator > 1 or kind in rounded else f"print({var})"
    return gen(casual(rng, q), dec(val), steps, final, template)


def _frac(rng: random.Random, dens: list[int], proper: bool = True) -> Fraction:
    den = rng.choice(dens)
    num = rng.randint(1, den - 1) if proper else rng.randint(1, 2 * den)
    return Fraction(num, den) if math.gcd(num, den) == 1 else _frac(rng, dens, proper)


def _fs(x: Fraction) -> str:
    return f"{x.numerator}/{x.denominator}"
