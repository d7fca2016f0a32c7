"""Function skills: evaluating polynomials, and arithmetic and geometric sequences.

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import random
from fractions import Fraction

from ._common import GeneratedProblem, fmt, gen, nonzero, ordinal, pick, skill


def _poly(coeffs: list[int], var: str) -> tuple[str, str]:
    """(display, python) for sum(c * var**k), highest power first."""
    disp, py = [], []
    deg = len(coeffs) - 1
    for i, c in enumerate(coeffs):
        k = deg - i
        if c == 0:
            continue
        mag = abs(c)
        term = (f"{'' if mag == 1 else mag}{var}" + (f"^{k}" if k > 1 else "")) if k else str(mag)
        pyterm = (f"{mag} * {var}" + (f"**{k}" if k > 1 else "")) if k else str(mag)
        sign = "-" if c < 0 else "+"
        if not disp:
            disp.append(f"-{term}" if c < 0 else term)
            py.append(f"-{pyterm}" if c < 0 else pyterm)
        else:
            disp.append(f"{sign} {term}")
            py.append(f"{sign} {pyterm}")
    return " ".join(disp), " ".join(py)


@skill("polynomial_eval")
def polynomial_eval(rng: random.Random, d: int) -> GeneratedProblem:
    var = rng.choice("xxxtaz")
    deg = {1: 1, 2: 2, 3: rng.choice([2, 3])}[d]
    coeffs = [nonzero(rng, 1 if d == 1 else -9, 9)] + [
        rng.randint(-9 if d > 1 else 0, 9) for _ in range(deg)
    ]
    x0 = rng.randint(0 if d == 1 else -5, 9 if d == 1 else 6)
    disp, py = _poly(coeffs, var)
    val = sum(c * x0 ** (deg - i) for i, c in enumerate(coeffs))
    if d == 3 and rng.random() < 0.4:  # composition f(g(x))
        g = [rng.randint(1, 4), rng.randint(-5, 5)]
        if g == [1, 0]:
            g[1] = rng.choice([-3, 2])
        gd, gpy = _poly(g, var)
        inner = g[0] * x0 + g[1]
        val = sum(c * inner ** (deg - i) for i, c in enumerate(coeffs))
        t, phr = pick(
            rng,
            [
                "Let f({v}) = {f} and g({v}) = {g}. What is f(g({x}))?",
                "If f({v}) = {f} and g({v}) = {g}, find f(g({x})).",
                "Given f({v}) = {f} and g({v}) = {g}, evaluate f(g({x})).",
            ],
        )  # fmt: skip
        steps = [
            ("Define both functions.", f"def f({var}):\n    return {py}\n\ndef g({var}):\n    return {gpy}"),
            ("Apply g first, then f.", f"inner = g({x0})\nvalue = f(inner)"),
        ]  # fmt: skip
        return gen(
            phr.format(v=var, f=disp, g=gd, x=x0),
            fmt(val),
            steps,
            "print(value)",
            f"compose:{t}",
        )
    t, phr = pick(
        rng,
        [
            "Evaluate {p} when {v} = {x}.", "If f({v}) = {p}, what is f({x})?", "Find the value of {p} for {v} = {x}.",
            "What is {p} at {v} = {x}?", "Let p({v}) = {p}. Compute p({x}).",
        ],
    )  # fmt: skip
    steps = [
        (f"Substitute {var} = {x0}.", f"{var} = {x0}"),
        ("Evaluate the polynomial.", f"value = {py}"),
    ]
    return gen(phr.format(p=disp, v=var, x=x0), fmt(val), steps, "print(value)", f"eval:{t}")


@skill("sequences")
def sequences(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["arith_next", "geo_next"]
        if d == 1
        else ["arith_nth", "geo_nth", "arith_next", "geo_next"]
        if d == 2
        else ["arith_nth", "geo_nth", "arith_sum", "geo_fraction"]
    )
    shown = rng.randint(3, 5)
    if kind.startswith("arith"):
        a, s = (
            rng.randint(-20 if d > 1 else 1, 50),
            nonzero(rng, -12 if d > 1 else 2, 15),
        )
        terms = [a + s * i for i in range(shown)]
    else:
        a, r = rng.randint(1, 6), rng.choice([2, 3] if d == 1 else [2, 3, -2, 4, 5])
        terms = [a * r**i for i in range(shown)]
    listed = ", ".join(map(str, terms))
    if kind.endswith("next"):
        val = terms[-1] + (terms[1] - terms[0]) if kind.startswith("arith") else terms[-1] * r
        t, phr = pick(
            rng,
            [
                "What is the next number in the sequence {L}, ...?", "Find the next term: {L}, ...",
                "What comes next in {L}?", "Continue the pattern {L}, ... What is the next number?",
            ],
        )  # fmt: skip
        rule = (
            (
                "The terms go up by a constant difference.",
                "diff = terms[1] - terms[0]\nnext_term = terms[-1] + diff",
            )
            if kind.startswith("arith")
            else (
                "Each term is the previous one times a constant ratio.",
                "ratio = terms[1] / terms[0]\nnext_term = terms[-1] * ratio",
            )
        )
        steps = [("Write down the terms.", f"terms = [{listed}]"), rule]
        return gen(phr.format(L=listed), fmt(val), steps, "print(next_term)", f"{kind}:{t}")
    n = rng.randint(6, {2: 20, 3: 50}[d]) if kind.startswith("arith") else rng.randint(5, 10)
    if kind == "arith_nth":
        val = a + (n - 1) * s
        t, phr = pick(
            rng,
            [
                "What is the {nth} term of the arithmetic sequence {L}, ...?",
                "The sequence {L}, ... goes up by the same amount each time. Find term number {n}.",
                "An arithmetic sequence starts {L}. What is its {nth} term?",
                "Find a_{n} for the arithmetic sequence {L}, ...",
            ],
        )  # fmt: skip
        steps = [
            (
                "Read off the first term and the common difference.",
                f"first = {terms[0]}\ndiff = {terms[1]} - {terms[0]}",
            ),
            (
                "The nth term is first + (n - 1) * diff.",
                f"n = {n}\nterm = first + (n - 1) * diff",
            ),
        ]
        return gen(
            phr.format(n=n, nth=ordinal(n), L=listed),
            fmt(val),
            steps,
            "print(term)",
            f"{kind}:{t}",
        )
    if kind == "arith_sum":
        val = n * (2 * a + (n - 1) * s) // 2
        t, phr = pick(
            rng,
            [
                "What is the sum of the first {n} terms of the arithmetic sequence {L}, ...?",
                "Add up the first {n} terms of {L}, ...",
                "The arithmetic sequence {L}, ... continues. What do its first {n} terms add up to?",
            ],
        )  # fmt: skip
        steps = [
            (
                "Read off the first term and the common difference.",
                f"first = {terms[0]}\ndiff = {terms[1]} - {terms[0]}",
            ),
            (
                "Add the first n terms directly.",
                f"n = {n}\ntotal = sum(first + k * diff for k in range(n))",
            ),
        ]
        return gen(phr.format(n=n, L=listed), fmt(val), steps, "print(total)", f"{kind}:{t}")
    if kind == "geo_fraction":  # decreasing geometric sequence with a fractional ratio
        r = rng.choice([2, 3, 4])
        k = rng.randint(4, 6)
        a = rng.randint(1, 5) * r ** (k - 1)
        terms = [a // r**i for i in range(3)]
        n = k + rng.randint(0, 2)
        val = Fraction(a, r ** (n - 1))
        listed = ", ".join(map(str, terms))
        t, phr = pick(
            rng,
            [
                "In the geometric sequence {L}, ..., what is the {nth} term?",
                "Each term of {L}, ... is a fixed fraction of the one before. Find the {nth} term.",
                "Find the {nth} term of the sequence {L}, ... (give a fraction if needed).",
            ],
        )  # fmt: skip
        steps = [
            ("Find the common ratio exactly.", f"from fractions import Fraction\nfirst = {terms[0]}\nratio = Fraction({terms[1]}, {terms[0]})"),
            ("The nth term is first * ratio**(n - 1).", f"n = {n}\nterm = first * ratio ** (n - 1)"),
        ]  # fmt: skip
        return gen(
            phr.format(L=listed, n=n, nth=ordinal(n)),
            fmt(val),
            steps,
            "print(term)",
            f"{kind}:{t}",
        )
    val = a * r ** (n - 1)
    t, phr = pick(
        rng,
        [
            "What is the {nth} term of the geometric sequence {L}, ...?",
            "A geometric sequence begins {L}. Find its {nth} term.",
            "Each term of {L}, ... is the previous term times the same number. What is the {nth} term?",
        ],
    )  # fmt: skip
    steps = [
        (
            "Read off the first term and the common ratio.",
            f"first = {terms[0]}\nratio = {terms[1]} / {terms[0]}",
        ),
        (
            "The nth term is first * ratio**(n - 1).",
            f"n = {n}\nterm = first * ratio ** (n - 1)",
        ),
    ]
    return gen(
        phr.format(n=n, nth=ordinal(n), L=listed),
        fmt(val),
        steps,
        "print(term)",
        f"{kind}:{t}",
    )
