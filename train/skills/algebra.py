"""Algebra skills: one linear equation in one unknown, and systems of two.

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import random
import re

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


def _py(text: str) -> str:
    """An equation side as typed ('3x + 5', '-y') in Python: a number before a letter multiplies."""
    return re.sub(r"(\d)([a-z])", r"\1*\2", text)


# Every equation is solved the same way: the unknowns named as sympy symbols, the equations
# copied from the question as written, sympy.solve. A small model copies far more reliably
# than it rearranges signs by hand (the everyday_expressions finding).
_SOLVE1 = "Name the unknown and copy the equation as written; sympy solves it."
_SOLVE2 = "Name the unknowns and write the two equations; sympy solves them."


def _sympy_one(var: str, lhs: str, rhs: str) -> str:
    return (
        f'from sympy import Eq, solve, symbols\n{var} = symbols("{var}")\n'
        f"{var} = solve(Eq({_py(lhs)}, {_py(rhs)}), {var})[0]"
    )


def _sympy_two(u: str, v: str, eqs: list[tuple[str, str]], want: str) -> str:
    eq = ", ".join(f"Eq({_py(a)}, {_py(b)})" for a, b in eqs)
    take = f"s[{want}]" if want.isidentifier() else f"({want}).subs(s)"
    return (
        f'from sympy import Eq, solve, symbols\n{u}, {v} = symbols("{u} {v}")\n'
        f"s = solve([{eq}], [{u}, {v}])\nanswer = {take}"
    )


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
        steps: list[Step] = [(_SOLVE1, _sympy_one(var, _lin(a, b, var), _lin(e, f, var)))]
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
    if t >= 4:  # in words: the number gets a name
        var = "n"
        steps = [
            ("Call the number n and write the equation.", _sympy_one(var, _lin(a, b, var), str(c)))
        ]
    else:
        steps = [(_SOLVE1, _sympy_one(var, _lin(a, b, var), str(c)))]
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
        code = _sympy_two("x", "y", [("x + y", str(s)), ("x - y", str(df))], "x")
        steps: list[Step] = [(f"{_SOLVE2} x is the larger.", code)]
        q = phr.format(s=s, df=df, n=n, m=m, t=rng.choice(COUNTABLES))
        return gen(q, fmt(x), steps, "print(answer)", f"sumdiff:{t}")
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
        code = _sympy_two("a", "k", [("a + k", str(count)), (f"{pa}*a + {pc}*k", str(total))], "a")
        steps = [(f"{_SOLVE2} a adults, k children.", code)]
        q = phr.format(pa=pa, pc=pc, c=count, T=total)
        return gen(q, fmt(adults), steps, "print(answer)", f"tickets:{t}")
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
        code = _sympy_two("p", "q", [("p + q", str(heads)), (f"{l1}*p + {l2}*q", str(legs))], "q")
        steps = [(f"{_SOLVE2} p {w1}, q {w2}; {top} and {unit}.", code)]
        q = phr.format(w1=w1, w2=w2, h=heads, L=legs, unit=unit, top=top, n=names(rng)[0])
        return gen(q, fmt(n2), steps, "print(answer)", f"heads:{t}")
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
    e1, e2 = eq(a1, b1, c1), eq(a2, b2, c2)
    sides = [e.partition(" = ") for e in (e1, e2)]
    code = _sympy_two("x", "y", [(a, b) for a, _, b in sides], target)
    steps = [("Copy the two equations as written; sympy solves them.", code)]
    q = phr.format(e1=e1, e2=e2, tg=target)
    return gen(q, fmt(val), steps, "print(answer)", f"general:{t}")
