"""Algebra skills: one linear equation in one unknown, and systems of two.

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import random

from ._common import (
    COUNTABLES,
    GeneratedProblem,
    Step,
    fmt,
    gen,
    names,
    nonzero,
    pick,
    skill,
)


def _lin(a: int, b: int, var: str) -> str:
    """'3x + 5' from coefficients."""
    head = var if a == 1 else f"-{var}" if a == -1 else f"{a}{var}"
    if b == 0:
        return head
    return f"{head} {'+' if b > 0 else '-'} {abs(b)}"


@skill("linear_equation")
def linear_equation(rng: random.Random, d: int) -> GeneratedProblem:
    var = rng.choice("xxxynkmt")
    x = rng.randint(-12 if d > 1 else 1, 20)
    if d == 1:
        a, b = rng.choice([1, rng.randint(2, 9)]), 0
        if a == 1:
            b = nonzero(rng, 1, 40)
    else:
        a, b = nonzero(rng, -9 if d == 3 else 2, 12), nonzero(rng, -40, 40)
    c = a * x + b
    steps: list[Step] = [("Write the equation as a*x + b = c.", f"a = {a}\nb = {b}\nc = {c}")]
    if d == 3 and rng.random() < 0.5:  # unknown on both sides: a x + b = e x + f
        e = nonzero(rng, -9, 9)
        while e == a:
            e = nonzero(rng, -9, 9)
        f = a * x + b - e * x
        eq = f"{_lin(a, b, var)} = {_lin(e, f, var)}"
        t, phr = pick(
            rng,
            [
                "Solve for {v}: {eq}.", "Find {v} if {eq}.", "What value of {v} satisfies {eq}?",
                "Solve the equation {eq}.",
            ],
        )  # fmt: skip
        steps = [
            ("Write both sides as coefficient and constant.", f"a, b = {a}, {b}\ne, f = {e}, {f}"),
            ("Collect the unknown on the left and the constants on the right.", "coef = a - e\nrhs = f - b"),
            ("Divide by the coefficient.", f"from fractions import Fraction\n{var} = Fraction(rhs, coef)"),
        ]  # fmt: skip
        return gen(phr.format(v=var, eq=eq), fmt(x), steps, f"print({var})", f"both:{t}")
    eq = f"{_lin(a, b, var)} = {c}"
    word_ok = a > 0 and b != 0
    opts = [
        "Solve for {v}: {eq}.",
        "Find {v} if {eq}.",
        "What value of {v} makes {eq} true?",
        "Solve {eq}.",
    ]
    if word_ok and x > 0:
        opts += [
            "I think of a number, multiply it by {a} and {pm} {bb}. The result is {c}. What is my number?",
            "{n} thinks of a number. {a} times the number {pm2} {bb} equals {c}. What is the number?",
        ]
    t, phr = pick(rng, opts)
    q = phr.format(
        v=var, eq=eq, a=a, c=c, bb=abs(b), n=names(rng)[0],
        pm="add" if b > 0 else "subtract", pm2="plus" if b > 0 else "minus",
    )  # fmt: skip
    if a == 1 and t >= 4:
        q = q.replace("multiply it by 1 and ", "").replace("1 times the number", "The number")
    steps += [
        ("Move the constant to the right side.", "rhs = c - b"),
        ("Divide both sides by the coefficient.", f"from fractions import Fraction\n{var} = Fraction(rhs, a)"),
    ]  # fmt: skip
    return gen(q, fmt(x), steps, f"print({var})", f"one:{t}")


@skill("linear_system")
def linear_system(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["sumdiff", "tickets", "heads"] if d == 1 else ["general", "tickets", "heads", "sumdiff"]
    )
    if kind == "sumdiff":
        x, y = rng.randint(5, 60), rng.randint(1, 40)
        if y > x:
            x, y = y, x
        s, df = x + y, x - y
        t, phr = pick(
            rng,
            [
                "The sum of two numbers is {s} and their difference is {df}. What is the larger number?",
                "Two numbers add up to {s}. One is {df} more than the other. What is the larger one?",
                "Solve x + y = {s} and x - y = {df}. What is x?",
                "{n} and {m} have {s} {t} between them, and {n} has {df} more than {m}. How many {t} does {n} have?",
            ],
        )  # fmt: skip
        n, m = names(rng, 2)
        steps = [
            (
                "Let the numbers be x and y with x + y = s and x - y = diff.",
                f"s = {s}\ndiff = {df}",
            ),
            ("Adding the two equations gives 2x = s + diff.", "x = (s + diff) // 2"),
        ]
        q = phr.format(s=s, df=df, n=n, m=m, t=rng.choice(COUNTABLES))
        return gen(q, fmt(x), steps, "print(x)", f"sumdiff:{t}")
    if kind == "tickets":
        pa, pc = rng.randint(6, 15), rng.randint(2, 5)
        adults, kids = rng.randint(3, 40 * d), rng.randint(3, 40 * d)
        total, count = pa * adults + pc * kids, adults + kids
        t, phr = pick(
            rng,
            [
                "Adult tickets cost ${pa} and child tickets cost ${pc}. {c} tickets were sold for ${T} in total. How many adult tickets were sold?",
                "A museum charges ${pa} per adult and ${pc} per child. One day {c} visitors paid ${T}. How many adults visited?",
                "At a fair, rides cost ${pa} for adults and ${pc} for children. {c} ride tickets brought in ${T}. How many were adult tickets?",
            ],
        )  # fmt: skip
        steps = [
            ("Let a adults and k children: a + k = count and pa*a + pc*k = total.", f"pa, pc = {pa}, {pc}\ncount, total = {count}, {total}"),
            ("If every ticket were a child ticket the total would be pc*count; each adult adds pa - pc.", "extra = total - pc * count"),
            ("The number of adults is the extra money divided by the price difference.", "adults = extra // (pa - pc)"),
        ]  # fmt: skip
        return gen(
            phr.format(pa=pa, pc=pc, c=count, T=total),
            fmt(adults),
            steps,
            "print(adults)",
            f"tickets:{t}",
        )
    if kind == "heads":
        a_legs = rng.choice(
            [
                (2, "chickens", 4, "rabbits"),
                (2, "ducks", 4, "goats"),
                (3, "tricycles", 2, "bicycles"),
                (4, "cows", 2, "geese"),
            ]
        )
        l1, w1, l2, w2 = a_legs
        n1, n2 = rng.randint(2, 20 * d), rng.randint(2, 20 * d)
        heads, legs = n1 + n2, l1 * n1 + l2 * n2
        unit = "wheels" if "cycles" in w1 else "legs"
        top = "vehicles" if "cycles" in w1 else "heads"
        t, phr = pick(
            rng,
            [
                "A farm has {w1} and {w2}. There are {h} {top} and {L} {unit} in total. How many {w2} are there?",
                "In a yard there are only {w1} and {w2}: {h} {top} and {L} {unit}. How many {w2}?",
                "{n} counts {h} {top} and {L} {unit} among some {w1} and {w2}. How many {w2} are there?",
            ],
        )  # fmt: skip
        steps = [
            (f"Let p be the {w1} and q the {w2}: p + q = {top} and {l1}p + {l2}q = {unit}.", f"heads, legs = {heads}, {legs}"),
            (f"If all were {w1} there would be {l1} * heads {unit}; each of the {w2} changes that by {l2 - l1}.", f"q = (legs - {l1} * heads) // ({l2} - {l1})"),
        ]  # fmt: skip
        q = phr.format(w1=w1, w2=w2, h=heads, L=legs, unit=unit, top=top, n=names(rng)[0])
        return gen(q, fmt(n2), steps, "print(q)", f"heads:{t}")
    # general 2x2 with integer solution
    x, y = rng.randint(-9, 12), rng.randint(-9, 12)
    while True:
        a1, b1, a2, b2 = (nonzero(rng, -6, 8) for _ in range(4))
        if a1 * b2 - a2 * b1:
            break
    c1, c2 = a1 * x + b1 * y, a2 * x + b2 * y

    def eq(a: int, b: int, c: int) -> str:
        left = _lin(a, 0, "x")
        right = f" {'+' if b > 0 else '-'} {'' if abs(b) == 1 else abs(b)}y"
        return f"{left}{right} = {c}"

    target = rng.choice(["x", "y", "x + y"])
    val = {"x": x, "y": y, "x + y": x + y}[target]
    t, phr = pick(
        rng,
        [
            "Solve the system {e1} and {e2}. What is {tg}?",
            "If {e1} and {e2}, find {tg}.",
            "Given the equations {e1} and {e2}, what is the value of {tg}?",
            "Find {tg} when {e1} and {e2}.",
        ],
    )  # fmt: skip
    steps = [
        ("Write the coefficients of a1*x + b1*y = c1 and a2*x + b2*y = c2.", f"a1, b1, c1 = {a1}, {b1}, {c1}\na2, b2, c2 = {a2}, {b2}, {c2}"),
        ("Use Cramer's rule: the determinant first.", "det = a1 * b2 - a2 * b1"),
        ("Then x and y.", "from fractions import Fraction\nx = Fraction(c1 * b2 - c2 * b1, det)\ny = Fraction(a1 * c2 - a2 * c1, det)"),
        ("Take the quantity asked for.", f"target = {target}"),
    ]  # fmt: skip
    q = phr.format(e1=eq(a1, b1, c1), e2=eq(a2, b2, c2), tg=target)
    return gen(q, fmt(val), steps, "print(target)", f"general:{t}")
