"""Measure skills: unit conversion (metric and imperial) and elapsed time on the clock.

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

from ._common import (
    GeneratedProblem,
    dec,
    fmt,
    gen,
    names,
    pick,
    pyfrac,
    skill,
    terminates,
)

# (unit, per base unit (exact), plural name, family)
_UNITS = {
    "length": [
        ("km", 1000),
        ("m", 1),
        ("cm", Fraction(1, 100)),
        ("mm", Fraction(1, 1000)),
    ],
    "mass": [("kg", 1000), ("g", 1), ("mg", Fraction(1, 1000))],
    "volume": [("L", 1000), ("mL", 1)],
    "imperial_length": [("yd", 36), ("ft", 12), ("in", 1)],
    "imperial_mass": [("lb", 16), ("oz", 1)],
}
_UNIT_WORDS = {
    "km": "kilometers", "m": "meters", "cm": "centimeters", "mm": "millimeters", "kg": "kilograms",
    "g": "grams", "mg": "milligrams", "L": "liters", "mL": "milliliters", "yd": "yards",
    "ft": "feet", "in": "inches", "lb": "pounds", "oz": "ounces",
}  # fmt: skip


@skill("unit_conversion")
def unit_conversion(rng: random.Random, d: int) -> GeneratedProblem:
    family = rng.choice(list(_UNITS) if d > 1 else ["length", "mass", "volume"])
    units = _UNITS[family]
    while True:  # at most a factor of 1000 apart: no 3.1e-05 kilograms
        (u1, f1), (u2, f2) = rng.sample(units, 2)
        if Fraction(1, 1000) <= Fraction(f1) / Fraction(f2) <= 1000:
            break
    if d == 1 and Fraction(f1) < Fraction(f2):  # level 1: big unit -> small unit only
        (u1, f1), (u2, f2) = (u2, f2), (u1, f1)
    ratio = Fraction(f1) / Fraction(f2)
    metric = not family.startswith("imperial")
    for _ in range(500):
        if metric:
            x = Fraction(Decimal(rng.randint(1, 999 * d)).scaleb(-rng.randint(0, d - 1)))
        else:
            x = Fraction(rng.randint(1, 60 * d))
        val = x * ratio
        if terminates(val, 4) and val >= Fraction(1, 1000):
            break
    else:
        raise RuntimeError("no amount converts to a short decimal")
    w1, w2 = _UNIT_WORDS[u1], _UNIT_WORDS[u2]
    xs = dec(x)
    n = names(rng)[0]
    if d == 3 and rng.random() < 0.5 and Fraction(f1) > Fraction(f2):  # compound: "2 km 350 m"
        extra = rng.randint(1, int(ratio) - 1) if ratio > 1 else 0
        whole = rng.randint(1, 12)
        val = whole * ratio + extra
        t, phr = pick(
            rng,
            [
                "How many {w2} are in {a} {u1} {b} {u2}?", "Write {a} {u1} {b} {u2} in {w2}.",
                "{n} measures {a} {u1} {b} {u2}. What is that in {w2}?",
            ],
        )  # fmt: skip
        steps = [
            (f"One {u1} is {ratio} {u2}.", f"per = {pyfrac(ratio)}"),
            (
                "Convert the whole units and add the rest.",
                f"total = {whole} * per + {extra}",
            ),
        ]
        q = phr.format(a=whole, b=extra, u1=u1, u2=u2, w2=w2, n=n)
        return gen(q, dec(val), steps, "print(total)", f"compound:{t}")
    t, phr = pick(
        rng,
        [
            "Convert {x} {u1} to {u2}.", "How many {w2} are in {x} {w1}?", "{x} {u1} = ? {u2}",
            "Express {x} {w1} in {w2}.", "{n} measured {x} {w1}. How many {w2} is that?",
        ],
    )  # fmt: skip
    # v6.3: the amount is copied under its own unit's name, then converted (everyday_units'
    # form); "amount / 1000" with a comment on which way to go was copied the wrong way round
    # by the 135M default ("1.5 litres in millilitres" -> 0.0015).
    if Fraction(f1) >= Fraction(f2):
        why = f"The question gives {xs} {w1}; each {u1} is {dec(ratio)} {u2}."
        code = f"{w1} = {xs}\n{w2} = {w1} * {dec(ratio)}"
    else:
        per = dec(1 / ratio)  # how many of the given unit make one of the asked unit
        why = f"The question gives {xs} {w1}; {per} {w1} make one {u2}."
        code = f"{w1} = {xs}\n{w2} = {w1} / {per}"
    steps = [(why, code)]
    final = f"print(round({w2}, 4))"
    q = phr.format(x=xs, u1=u1, u2=u2, w1=w1, w2=w2, n=n)
    return gen(q, dec(val), steps, final, f"{family}:{t}")


@skill("time_elapsed")
def time_elapsed(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["convert", "elapsed"] if d == 1 else ["convert", "elapsed", "end_time", "compound"]
    )
    n = names(rng)[0]
    if kind == "convert":
        pairs = [
            ("hours", "minutes", 60),
            ("minutes", "seconds", 60),
            ("days", "hours", 24),
            ("weeks", "days", 7),
        ]
        big, small, k = rng.choice(pairs)
        if rng.random() < 0.5 or d == 1:
            x = Fraction(rng.randint(2, 20 * d)) if d == 1 else Fraction(rng.randint(2, 40), 2)
            val = x * k
            t, phr = pick(
                rng,
                [
                    "How many {s} are in {x} {b}?", "Convert {x} {b} to {s}.",
                    "{n} practiced for {x} {b}. How many {s} is that?",
                ],
            )  # fmt: skip
            steps = [
                (
                    f"Each of the {big} has {k} {small}.",
                    f"{big} = {dec(x)}\n{small} = {big} * {k}",
                )
            ]
            return gen(
                phr.format(s=small, b=big, x=dec(x), n=n),
                dec(val),
                steps,
                f"print({small})",
                f"to_small:{t}",
            )
        total = rng.randint(k + 1, k * 30)
        t, phr = pick(
            rng,
            [
                "How many whole {b} are in {x} {s}?", "{n} waited {x} {s}. How many full {b} is that?",
                "Convert {x} {s} to whole {b} (ignore what is left over).",
            ],
        )  # fmt: skip
        steps = [
            (
                f"Each of the {big} has {k} {small}; use integer division.",
                f"{small} = {total}\nwhole = {small} // {k}",
            )
        ]
        return gen(
            phr.format(s=small, b=big, x=total, n=n),
            fmt(total // k),
            steps,
            "print(whole)",
            f"to_big:{t}",
        )
    h1, m1 = rng.randint(5, 15), rng.choice(range(0, 60, 5 if d == 1 else 1))
    dur = rng.randint(15, 400 if d > 1 else 240)
    if d == 1:
        dur -= dur % 5
    start = h1 * 60 + m1
    end = start + dur
    s1, s2 = f"{h1:02d}:{m1:02d}", f"{end // 60 % 24:02d}:{end % 60:02d}"
    if kind == "elapsed":
        t, phr = pick(
            rng,
            [
                "A train leaves at {a} and arrives at {b} the same day. How many minutes does the trip take?",
                "{n} started reading at {a} and stopped at {b}. For how many minutes did {n} read?",
                "A movie runs from {a} to {b}. How long is it in minutes?",
                "How many minutes are there from {a} to {b}?",
            ],
        )  # fmt: skip
        steps = [
            ("Turn both times into minutes after midnight.", f"start = {h1} * 60 + {m1}\nend = {end // 60} * 60 + {end % 60}"),
            ("The elapsed time is the difference.", "minutes = end - start"),
        ]  # fmt: skip
        return gen(
            phr.format(a=s1, b=s2, n=n),
            fmt(dur),
            steps,
            "print(minutes)",
            f"elapsed:{t}",
        )
    if kind == "end_time":
        t, phr = pick(
            rng,
            [
                "A meeting starts at {a} and lasts {m} minutes. At what time does it end? Answer in 24-hour HH:MM format.",
                "{n} puts a cake in the oven at {a}. It bakes for {m} minutes. When is it done (HH:MM, 24-hour clock)?",
                "What time is it {m} minutes after {a}? Give the time as HH:MM on a 24-hour clock.",
            ],
        )  # fmt: skip
        steps = [
            ("Turn the start into minutes after midnight and add the duration.", f"end = {h1} * 60 + {m1} + {dur}"),
            ("Split back into hours and minutes on a 24-hour clock.", "hours = end // 60 % 24\nminutes = end % 60"),
        ]  # fmt: skip
        return gen(
            phr.format(a=s1, m=dur, n=n),
            s2,
            steps,
            'print(f"{hours:02d}:{minutes:02d}")',
            f"end:{t}",
        )
    hh, mm, ss = rng.randint(1, 9), rng.randint(1, 59), rng.randint(1, 59)
    t, phr = pick(
        rng,
        [
            "How many seconds are in {h} hours {m} minutes and {s} seconds?",
            "{n} ran a race in {h} h {m} min {s} s. What is that time in seconds?",
            "Convert {h} hours, {m} minutes and {s} seconds to seconds.",
        ],
    )  # fmt: skip
    steps = [
        (
            "Each hour has 3600 seconds and each minute 60.",
            f"seconds = {hh} * 3600 + {mm} * 60 + {ss}",
        )
    ]
    return gen(
        phr.format(h=hh, m=mm, s=ss, n=n),
        fmt(hh * 3600 + mm * 60 + ss),
        steps,
        "print(seconds)",
        f"hms:{t}",
    )
