"""Everyday expressions: a whole calculation typed in one line ("25*4+10", "3^4",
"345 + 289 - 100", "-4 × 9", "(12 - 5) * 3 + 2**3"), with the signs people type (x, ×, ÷, ^),
and the solution a code-executing model should write for it: the expression itself, in
Python syntax, on one line. Python applies the order of operations, so nothing is computed
by hand (the step-by-step decompositions of `order_of_operations` are where a small model
miscopies a number).

Numbers by difficulty: 1 = two or three small whole numbers, 2 = three or four up to 99 with
parentheses, powers and one-place decimals, 3 = up to 999; division from level 2. Registered after
every older skill, so older seeds keep their problems.
"""

from __future__ import annotations

import random
from fractions import Fraction

from ._common import GeneratedProblem, Step, dec, gen, pick, skill, terminates
from ._words import casual
from .arithmetic import _copied

_FRAMES = (
    "{e}", "{e} =", "{e} = ?", "{e}?", "What is {e}?", "What's {e}?", "whats {e}",
    "Calculate {e}.", "Compute {e}.", "Work out {e}.", "Evaluate {e}.", "Simplify {e}.",
    "How much is {e}?", "What does {e} come to?", "Find the value of {e}.", "Solve {e}",
    "Can you calculate {e}?", "what do you get for {e}", "Result of {e}?",
)  # fmt: skip
_TIMES = ("*", "*", "x", "×", "X")
_DIVIDE = ("/", "÷")
_POWER = ("^", "**", "^")


def _number(rng: random.Random, d: int, decimals: bool) -> Fraction:
    hi = {1: 12, 2: 99, 3: 999}[d]
    if decimals and rng.random() < 0.35:
        return Fraction(rng.randint(1, hi * 10 - 1), 10)
    return Fraction(rng.randint(1, hi))


class _Expr:
    """An expression as tokens: numbers (Fraction), operators, parentheses."""

    def __init__(self) -> None:
        self.tokens: list[object] = []

    def python(self) -> str:
        return self.shown("*", "/", "**")

    def shown(self, times: str, divide: str, power: str) -> str:
        sub = {"*": times, "/": divide, "**": power}
        out = []
        for t in self.tokens:
            out.append(_num_src(t) if isinstance(t, Fraction) else sub.get(str(t), str(t)))
        return _join(out)


def _num_src(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else dec(x)


def _join(parts: list[str]) -> str:
    s = ""
    for p in parts:
        if not s or s.endswith(("(", "-(")) or p == ")":
            s += p
        elif p in ("**", "^"):
            s += p  # powers are written tight: 3**4, 2^10
        elif s.endswith(("**", "^")):
            s += p
        else:
            s += " " + p
    return s


def _build(rng: random.Random, d: int) -> _Expr:
    n_terms = {1: rng.choice((2, 3)), 2: rng.choice((3, 3, 4)), 3: rng.choice((3, 4))}[d]
    ops = ["+", "-", "*"] + (["/"] if d >= 2 else [])
    decimals = d >= 2 and rng.random() < 0.25
    e = _Expr()
    paren_at = rng.randrange(n_terms - 1) if d >= 2 and rng.random() < 0.45 else -1
    for i in range(n_terms):
        if i:
            e.tokens.append(rng.choice(ops))
        if i == paren_at:
            e.tokens.append("(")
        if rng.random() < {1: 0.08, 2: 0.12, 3: 0.1}[d]:  # a power: base ** small exponent
            base = rng.randint(2, {1: 5, 2: 12, 3: 20}[d])
            e.tokens += [Fraction(base), "**", Fraction(rng.randint(2, 3 if base > 5 else 5))]
        else:
            e.tokens.append(_number(rng, d, decimals))
        if i == paren_at + 1 and paren_at >= 0:
            e.tokens.append(")")
    if rng.random() < 0.2 and e.tokens[0] != "(":  # a negative first number
        first = e.tokens[0]
        assert isinstance(first, Fraction)
        if not (len(e.tokens) > 1 and e.tokens[1] == "**"):  # -3**2 reads two ways: avoid it
            e.tokens[0] = -first
    return e


def _value(e: _Expr) -> Fraction | None:
    src = "".join(f"F({t.numerator},{t.denominator})" if isinstance(t, Fraction) else str(t)
                  for t in e.tokens)  # fmt: skip
    try:
        v = eval(src, {"__builtins__": {}, "F": Fraction})  # noqa: S307 (our own tokens only)
    except ZeroDivisionError:
        return None
    return v if isinstance(v, Fraction) else Fraction(v)


def _one_op(rng: random.Random, d: int) -> _Expr:
    """A single power or a signed product/sum ("3**4", "-4 × 9", "-8 + 15")."""
    e = _Expr()
    if rng.random() < 0.5:
        base = rng.randint(2, {1: 10, 2: 15, 3: 25}[d])
        e.tokens = [Fraction(base), "**", Fraction(rng.randint(2, 3 if base > 5 else 6))]
    else:
        a, b = (_number(rng, d, False) for _ in range(2))
        e.tokens = [-a, rng.choice(("*", "+", "-")), b]
    return e


@skill("everyday_expressions")
def everyday_expressions(rng: random.Random, d: int) -> GeneratedProblem:
    for _ in range(100):
        e = _one_op(rng, d) if rng.random() < 0.25 else _build(rng, d)
        v = _value(e)
        if v is None or abs(v) > 10**7 or not terminates(v, 6):
            continue
        break
    else:  # pragma: no cover - the draws above almost never all fail
        raise RuntimeError("everyday_expressions: no expression with a short decimal value")
    times, divide, power = rng.choice(_TIMES), rng.choice(_DIVIDE), rng.choice(_POWER)
    shown = e.shown(times, divide, power)
    if rng.random() < 0.3 and "(" not in shown and "^" not in shown and "**" not in shown:
        shown = shown.replace(" ", "")  # typed tight: 25*4+10
    t, frame = pick(rng, _FRAMES)
    q = casual(rng, frame.format(e=shown))
    fractional = any(isinstance(t, Fraction) and t.denominator != 1 for t in e.tokens)
    steps: list[Step] = [_copied(shown, e.python(), fractional or "/" in e.tokens)]
    return gen(q, dec(v), steps, "print(result)", f"expr:{t}")
