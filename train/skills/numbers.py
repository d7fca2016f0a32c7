"""Number-sense skills: rounding and place value, and comparing numbers.

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from ._common import GeneratedProblem, _frac, _fs, dec, fmt, gen, pick, skill

_PLACE = {10: "ten", 100: "hundred", 1000: "thousand", 10000: "ten thousand"}
_PLACE_DIGIT = {
    1: "ones",
    10: "tens",
    100: "hundreds",
    1000: "thousands",
    10000: "ten thousands",
}


@skill("rounding_place_value")
def rounding_place_value(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["round_int", "digit"] if d == 1 else ["round_int", "round_dec", "digit", "value"]
    )
    if kind == "round_int":
        unit = rng.choice([10, 100] if d == 1 else [10, 100, 1000, 10000])
        n = rng.randint(unit + 1, unit * 99)
        val = int((Decimal(n) / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * unit
        t, phr = pick(
            rng,
            [
                "Round {n} to the nearest {p}.", "What is {n} rounded to the nearest {p}?",
                "A town has {n} people. About how many is that, to the nearest {p}?",
                "Round {n:,} to the nearest {p}.",
            ],
        )  # fmt: skip
        steps = [
            (
                "Round half up: add half a unit, then drop the remainder.",
                f"n = {n}\nunit = {unit}\nrounded = (n + unit // 2) // unit * unit",
            )
        ]
        return gen(
            phr.format(n=n, p=_PLACE[unit]),
            fmt(val),
            steps,
            "print(rounded)",
            f"int:{t}",
        )
    if kind == "round_dec":
        places = rng.randint(1, 3)
        x = Decimal(rng.randint(1000, 999999)).scaleb(-(places + rng.randint(1, 2)))
        val = x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        word = {1: "tenth", 2: "hundredth", 3: "thousandth"}[places]
        t, phr = pick(
            rng,
            [
                "Round {x} to {p} decimal places.", "Round {x} to the nearest {w}.",
                "What is {x} rounded to {p} decimal places?", "Give {x} correct to {p} decimal places.",
            ],
        )  # fmt: skip
        steps = [
            (
                "Round half up with the decimal module (exact, unlike float rounding).",
                f"from decimal import Decimal, ROUND_HALF_UP\nx = Decimal('{x}')\nrounded = x.quantize(Decimal('{Decimal(1).scaleb(-places)}'), rounding=ROUND_HALF_UP)",
            )
        ]
        return gen(
            phr.format(x=x, p=places, w=word),
            fmt(val),
            steps,
            "print(rounded)",
            f"dec:{t}",
        )
    n = rng.randint(1000, 99999 if d > 1 else 9999)
    place = rng.choice([p for p in _PLACE_DIGIT if p <= n])
    digit = n // place % 10
    if kind == "digit":
        t, phr = pick(
            rng,
            [
                "What is the digit in the {p} place of {n}?", "Which digit is in the {p} place in {n}?",
                "In the number {n}, what digit is in the {p} place?",
            ],
        )  # fmt: skip
        steps = [
            (
                "Shift the number right by the place value and take the last digit.",
                f"n = {n}\ndigit = n // {place} % 10",
            )
        ]
        return gen(
            phr.format(p=_PLACE_DIGIT[place], n=n),
            fmt(digit),
            steps,
            "print(digit)",
            f"digit:{t}",
        )
    while digit == 0:
        place = rng.choice([p for p in _PLACE_DIGIT if p <= n])
        digit = n // place % 10
    t, phr = pick(
        rng,
        [
            "What is the value of the digit in the {p} place of {n}?",
            "In {n}, what is the digit {dg} in the {p} place worth?",
            "What value does the {p} digit of {n} stand for?",
        ],
    )  # fmt: skip
    steps = [
        ("Find the digit in that place.", f"n = {n}\ndigit = n // {place} % 10"),
        ("Its value is the digit times the place value.", f"value = digit * {place}"),
    ]
    return gen(
        phr.format(p=_PLACE_DIGIT[place], n=n, dg=digit),
        fmt(digit * place),
        steps,
        "print(value)",
        f"value:{t}",
    )


@skill("comparison")
def comparison(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["int", "dec"]
        if d == 1
        else ["dec", "frac", "frac_dec"]
        if d == 2
        else ["frac", "frac_dec", "power", "diff"]
    )
    bigger = rng.random() < 0.6
    word = "larger" if bigger else "smaller"
    if kind == "int":
        a, b = rng.sample(range(100, 10000), 2)
        sa, sb, code_a, code_b, va, vb = (
            str(a),
            str(b),
            str(a),
            str(b),
            Fraction(a),
            Fraction(b),
        )
    elif kind == "dec":
        a = Decimal(rng.randint(1, 999)).scaleb(-rng.randint(1, 3))
        b = Decimal(rng.randint(1, 999)).scaleb(-rng.randint(1, 3))
        while a == b:
            b = Decimal(rng.randint(1, 999)).scaleb(-rng.randint(1, 3))
        sa, sb, code_a, code_b, va, vb = (
            fmt(a),
            fmt(b),
            fmt(a),
            fmt(b),
            Fraction(a),
            Fraction(b),
        )
    elif kind in ("frac", "frac_dec", "diff"):
        x = _frac(rng, [3, 4, 5, 6, 7, 8, 9, 11, 12])
        if kind == "frac_dec":
            y = Fraction(Decimal(rng.randint(1, 99)).scaleb(-2))
            while y == x:
                y = Fraction(Decimal(rng.randint(1, 99)).scaleb(-2))
            sb, code_b = dec(y), f"Fraction('{dec(y)}')"
        else:
            y = _frac(rng, [3, 4, 5, 6, 7, 8, 9, 11, 12])
            while y == x:
                y = _frac(rng, [3, 4, 5, 6, 7, 8, 9, 11, 12])
            sb, code_b = _fs(y), f"Fraction({y.numerator}, {y.denominator})"
        sa, code_a, va, vb = _fs(x), f"Fraction({x.numerator}, {x.denominator})", x, y
    else:  # power
        b1, e1 = rng.randint(2, 9), rng.randint(2, 6)
        b2, e2 = rng.randint(2, 9), rng.randint(2, 6)
        while b1**e1 == b2**e2:
            b2, e2 = rng.randint(2, 9), rng.randint(2, 6)
        sa, sb = f"{b1}^{e1}", f"{b2}^{e2}"
        code_a, code_b, va, vb = (
            f"{b1} ** {e1}",
            f"{b2} ** {e2}",
            Fraction(b1**e1),
            Fraction(b2**e2),
        )
    if kind == "diff":
        val = abs(va - vb)
        t, phr = pick(
            rng,
            [
                "How much larger is the larger of {a} and {b} than the smaller one?",
                "What is the positive difference between {a} and {b}?",
                "By how much do {a} and {b} differ?",
            ],
        )  # fmt: skip
        steps = [
            (
                "Write both numbers exactly.",
                f"from fractions import Fraction\na = {code_a}\nb = {code_b}",
            ),
            (
                "The difference is the larger minus the smaller.",
                "difference = abs(a - b)",
            ),
        ]
        return gen(phr.format(a=sa, b=sb), fmt(val), steps, "print(difference)", f"diff:{t}")
    win = (va > vb) == bigger
    answer = sa if win else sb
    if kind == "power":
        answer = fmt(va if win else vb)  # the value, not the power notation
    t, phr = pick(
        rng,
        [
            "Which is {w}: {a} or {b}?", "Which number is {w}, {a} or {b}?",
            "Of {a} and {b}, which is {w}?", "Compare {a} and {b}. Which one is {w}?",
        ],
    )  # fmt: skip
    fn = "max" if bigger else "min"
    imports = "from fractions import Fraction\n" if "Fraction" in code_a + code_b else ""
    steps = [
        ("Write both numbers as exact values.", f"{imports}a = {code_a}\nb = {code_b}"),
        (f"Pick the {word} one.", f"{word} = {fn}(a, b)"),
    ]
    final = f"print({word})"
    if kind == "frac_dec":  # print the winner as written in the question
        steps.append(
            (
                "Say it the way the question wrote it.",
                f"shown = {sa!r} if {word} == a else {sb!r}",
            )
        )
        final = "print(shown)"
    q = phr.format(w=word, a=sa, b=sb)
    if kind == "power":
        q += " Give its value."
    return gen(q, answer, steps, final, f"{kind}:{t}")
