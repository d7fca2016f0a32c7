"""Everyday number facts people type as quick questions: powers ("2^5", "7 cubed"), square and
cube roots ("√144"), digit sums and digit counts, the largest prime below n and the smallest
prime factor, gcd/lcm in casual and function forms ("lcm(4, 6)", "smallest number both 4 and 6
divide into"), areas and perimeters of rectangles, squares and right triangles, one-step
equations ("what number plus 7 equals 12", "x/4 = 9"), tips and tax, and time facts (minutes
in a day, minutes between two am/pm clock times).

Kinds the older skills already phrase naturally are left to them (prime counts and the next
prime: primes_factors; two-sided equations: linear_equation; percent increase, decrease, sale
price and "what percent": percentages and everyday_percent_units; unit conversions of hours
and minutes and 24-hour elapsed time: time_elapsed and everyday_percent_units).

Difficulty scales the numbers: 1 = small (often as words), 2 = two- and three-digit, 3 =
larger, decimals and prices in cents. The phrasing tables are in _facts_data. Registered in
`SKILLS` last, so older seeds keep their problems."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from fractions import Fraction

from . import _facts_data as T
from ._common import GeneratedProblem, Step, dec, gen, money, ordinal, pick, skill
from ._words import casual, number_words

# Each fact: (question, exact answer, steps, the printed variable, template).
_Fact = tuple[str, Fraction, list[Step], str, str]


def _say(rng: random.Random, d: int, phr: str, *xs: int) -> list[str]:
    """The numbers as people type them: at level 1 all as words about a third of the time,
    when they are all small and the phrasing has no symbols (no "two^five", "lcm(four, six)")."""
    words = d == 1 and all(0 <= x <= 20 for x in xs) and not any(c in phr for c in "^*()=/+")
    if words and rng.random() < 0.35:
        return [number_words(x) for x in xs]
    return [str(x) for x in xs]


def _power(rng: random.Random, d: int) -> _Fact:
    if rng.random() < 0.3:  # powers of two, the commonest
        a, b = 2, rng.randint(*{1: (2, 6), 2: (7, 12), 3: (13, 24)}[d])
    else:
        a = rng.randint(*{1: (2, 9), 2: (6, 20), 3: (11, 40)}[d])
        b = rng.randint(2, {1: 3, 2: 4, 3: 5}[d])
    name, table = "power", T.POWER
    if b in (2, 3) and rng.random() < 0.6:
        name, table = ("squared", T.SQUARED) if b == 2 else ("cubed", T.CUBED)
    i, phr = pick(rng, table)
    sa, sb = _say(rng, d, phr, a, b)
    q = phr.format(a=sa, b=sb, bo=ordinal(b))
    why = {2: "Squared means to the power 2", 3: "Cubed means to the power 3"}
    say = why[b] if name != "power" else f"{a} to the power {b}"
    steps: list[Step] = [(f"{say}: use **.", f"value = {a} ** {b}")]
    return q, Fraction(a**b), steps, "value", f"power:{name}:{i}"


def _root(rng: random.Random, d: int) -> _Fact:
    if rng.random() < 0.7:
        r = rng.randint(*{1: (2, 12), 2: (13, 40), 3: (41, 150)}[d])
        i, phr = pick(rng, T.SQRT)
        code, name = f"import math\nroot = math.isqrt({r * r})", "sqrt"
        why = f"Find the whole number whose square is {r * r}."
        n = r * r
    else:
        r = rng.randint(*{1: (2, 5), 2: (6, 12), 3: (13, 40)}[d])
        i, phr = pick(rng, T.CBRT)
        n, name = r**3, "cbrt"
        code, why = f"root = round({n} ** (1 / 3))", f"Find the whole number whose cube is {n}."
    return phr.format(n=n), Fraction(r), [(why, code)], "root", f"root:{name}:{i}"


def _digits(rng: random.Random, d: int) -> _Fact:
    n = rng.randint(*{1: (10, 999), 2: (1000, 99999), 3: (100000, 10**10)}[d])
    if rng.random() < 0.6:
        i, phr = pick(rng, T.DIGIT_SUM)
        code, var, val, name = f"total = sum(int(c) for c in str({n}))", "total", 0, "sum"
        val = sum(map(int, str(n)))
        why = "Add the digits one by one."
    else:
        i, phr = pick(rng, T.DIGIT_COUNT)
        code, var, val, name = f"count = len(str({n}))", "count", len(str(n)), "count"
        why = "Count the characters of the number written out."
    return phr.format(n=n), Fraction(val), [(why, code)], var, f"digits:{name}:{i}"


def _is_prime(k: int) -> bool:
    return k > 1 and all(k % p for p in range(2, math.isqrt(k) + 1))


def _prime(rng: random.Random, d: int) -> _Fact:
    lo, hi = {1: (4, 50), 2: (51, 300), 3: (301, 5000)}[d]
    if rng.random() < 0.5:
        n = rng.randint(lo, hi)
        i, phr = pick(rng, T.PRIME_BELOW)
        val = max(k for k in range(2, n) if _is_prime(k))
        steps: list[Step] = [
            ("A prime has no divisor from 2 up to its square root.",
             "is_prime = lambda k: k > 1 and all(k % p for p in range(2, int(k ** 0.5) + 1))"),
            (f"Take the largest prime below {n}.", f"p = max(k for k in range(2, {n}) if is_prime(k))"),
        ]  # fmt: skip
        return phr.format(n=n), Fraction(val), steps, "p", f"prime:below:{i}"
    small, most = {1: ((2, 3, 5, 7), 12), 2: ((3, 5, 7, 11, 13), 40), 3: ((7, 11, 13, 17), 300)}[d]
    p = rng.choice(small)
    while True:  # n = p * q with no prime below p in q, so p is the answer (and n is not prime)
        q = rng.randint(p, max(most, p + 1))
        if all(q % k for k in range(2, p)):
            break
    n = p * q
    i, phr = pick(rng, T.PRIME_FACTOR)
    val = next(k for k in range(2, n + 1) if n % k == 0)
    steps = [
        ("The smallest divisor above 1 is always prime.",
         f"p = next(k for k in range(2, {n} + 1) if {n} % k == 0)"),
    ]  # fmt: skip
    return phr.format(n=n), Fraction(val), steps, "p", f"prime:factor:{i}"


def _gcd_lcm(rng: random.Random, d: int) -> _Fact:
    three = d == 3 or (d == 2 and rng.random() < 0.5)
    fn = rng.choice(["gcd", "lcm"])
    if fn == "gcd":
        g = rng.randint(*{1: (2, 6), 2: (3, 15), 3: (4, 25)}[d])
        mult = rng.sample(range(1, {1: 10, 2: 13, 3: 16}[d]), 3 if three else 2)
        nums = [g * m for m in mult]
        val = math.gcd(*nums)
    else:
        nums = rng.sample(range(2, {1: 13, 2: 25, 3: 41}[d]), 3 if three else 2)
        val = math.lcm(*nums)
    table = {("gcd", False): T.GCD, ("gcd", True): T.GCD3, ("lcm", False): T.LCM}
    i, phr = pick(rng, table.get((fn, three), T.LCM3))
    q = phr.format(**dict(zip("abc", _say(rng, d, phr, *nums), strict=False)))
    what = "largest number dividing all of them" if fn == "gcd" else "smallest common multiple"
    args = ", ".join(map(str, nums))
    steps: list[Step] = [(f"The {what}: math.{fn}.", f"import math\nvalue = math.{fn}({args})")]
    return q, Fraction(val), steps, "value", f"gcd_lcm:{fn}{len(nums)}:{i}"


def _side(rng: random.Random, d: int) -> Fraction:
    if d == 3 and rng.random() < 0.5:
        return Fraction(rng.randint(11, 99), 2)  # halves: 12.5
    return Fraction(rng.randint(*{1: (2, 12), 2: (10, 60), 3: (40, 250)}[d]))


def _shape(rng: random.Random, d: int) -> _Fact:
    shape, measure = key = rng.choice(list(T.SHAPES))
    i, phr = pick(rng, T.SHAPES[key])
    u, uu = rng.choice(T.UNITS)
    a, b = _side(rng, d), _side(rng, d)
    if shape == "rect" and a == b:
        b += 1
    x, y = dec(a), dec(b)
    if (shape, measure) == ("rect", "area"):
        val, code, why = a * b, f"area = {x} * {y}", "Area of a rectangle is length times width."
    elif (shape, measure) == ("rect", "perimeter"):
        val, code, why = 2 * (a + b), f"perimeter = 2 * ({x} + {y})", "Twice length plus width."
    elif (shape, measure) == ("square", "area"):
        val, code, why = a * a, f"area = {x} * {x}", "Area of a square is side times side."
    elif (shape, measure) == ("square", "perimeter"):
        val, code, why = 4 * a, f"perimeter = 4 * {x}", "A square has four equal sides."
    else:
        val, code, why = a * b / 2, f"area = {x} * {y} / 2", "Half of leg times leg."
    var = code.split(" =")[0]
    q = phr.format(a=x, b=y, u=u, uu=uu)
    return q, val, [(why, code)], var, f"shape:{shape}_{measure}:{i}"


def _equation(rng: random.Random, d: int) -> _Fact:
    op = rng.choice(["add", "sub", "mul", "div"])
    x = rng.randint(*{1: (1, 12), 2: (10, 99), 3: (-60, 500)}[d])
    a = rng.randint(*{1: (2, 10), 2: (3, 25), 3: (6, 99)}[d])
    if op == "sub" and d < 3:
        x += a  # no negative answers below level 3
    b = {"add": x + a, "sub": x - a, "mul": a * x, "div": x}[op]
    if op == "div":
        x = a * b  # x / a = b
    table = {"add": T.EQ_ADD, "sub": T.EQ_SUB, "mul": T.EQ_MUL, "div": T.EQ_DIV}[op]
    i, phr = pick(rng, table)
    # the unknown as the question names it; the equation written as it reads, solved by sympy
    # (as linear_equation: copying is what a small model does reliably, rearranging is not)
    v = (re.findall(r"(?<![a-z])([xyn])(?![a-z])", phr) or ["x"])[0]
    lhs = {"add": f"{v} + {a}", "sub": f"{v} - {a}", "mul": f"{a}*{v}", "div": f"{v} / {a}"}[op]
    code = f'from sympy import Eq, solve, symbols\n{v} = symbols("{v}")\n'
    code += f"{v} = solve(Eq({lhs}, {b}), {v})[0]"
    why = "Name the unknown and write the equation; sympy solves it."
    sa, sb = _say(rng, d, phr.replace("x", "="), a, b)  # no "six x = ..."
    q = phr.format(a=sa, b=sb)
    return q, Fraction(x), [(why, code)], v, f"equation:{op}:{i}"


def _tip(rng: random.Random, d: int) -> _Fact:
    table, name = rng.choice([(T.TIP, "tip"), (T.TIP_TOTAL, "total"), (T.TAX_TOTAL, "tax")])
    rates = T.TAX_RATES if name == "tax" else T.TIP_RATES
    p = rng.choice(rates[d])
    while True:
        cents = rng.randint(*{1: (1, 9), 2: (20, 300), 3: (5000, 80000)}[d]) * (
            1000 if d == 1 else 100 if d == 2 else 1
        )
        bill = Fraction(cents, 100)
        if ((bill * p / 100) * 100).denominator == 1:
            break
    tip = bill * p / 100
    i, phr = pick(rng, table)
    q = phr.format(p=p, bill=money(bill))
    q = q.replace(f"a {p}%", f"an {p}%") if p in (8, 18) else q  # "an 18% tip"
    steps: list[Step] = [(f"{p}% of the bill.", f"extra = {dec(bill)} * {p} / 100")]
    if name == "tip":
        return q, tip, steps, "extra", f"tip:{name}:{i}"
    steps.append(("Add it to the bill.", f"total = {dec(bill)} + extra"))
    return q, bill + tip, steps, "total", f"tip:{name}:{i}"


def _clock(h: int, m: int) -> str:
    return f"{(h - 1) % 12 + 1}:{m:02d} {'am' if h < 12 else 'pm'}"


def _time(rng: random.Random, d: int) -> _Fact:
    if rng.random() < 0.5:
        s, big, per, one = rng.choice(T.TIME_UNITS)
        if d == 1 or big == "year":
            i, phr = pick(rng, T.TIME_ONE)
            k, name = 1, "one"
        else:
            i, phr = pick(rng, T.TIME_K)
            k, name = rng.randint(2, 9) if d == 2 else rng.randint(10, 60), "k"
        q = phr.format(s=s, one=one, k=k, big=big)
        q = q[0].upper() + q[1:]
        code = f"{s} = {k} * {per}" if k > 1 else f"{s} = {per}"
        steps: list[Step] = [(f"There are {per} {s} in one {big}.", code)]
        return q, Fraction(k * per), steps, s, f"time:{s}_{big}:{name}{i}"
    start = rng.randint(*{1: (7, 10), 2: (6, 16), 3: (5, 11)}[d]) * 60 + rng.choice(range(0, 60, 5))
    gap = rng.randint(*{1: (2, 12), 2: (12, 60), 3: (30, 120)}[d]) * 5
    end = start + gap
    if d == 3 and end < 12 * 60:  # level 3 crosses noon
        end += 12 * 60 - start
    (h1, m1), (h2, m2) = divmod(start, 60), divmod(end, 60)
    i, phr = pick(rng, T.CLOCK)
    q = phr.format(t1=_clock(h1, m1), t2=_clock(h2, m2))
    steps = [
        ("Write both times as minutes after midnight (pm adds 12 hours).",
         f"start = {h1} * 60 + {m1}\nend = {h2} * 60 + {m2}"),
        ("Subtract.", "minutes = end - start"),
    ]  # fmt: skip
    return q, Fraction(end - start), steps, "minutes", f"time:clock:{i}"


_KINDS: dict[str, Callable[[random.Random, int], _Fact]] = {
    "power": _power, "root": _root, "digits": _digits, "prime": _prime, "gcd_lcm": _gcd_lcm,
    "shape": _shape, "equation": _equation, "tip": _tip, "time": _time,
}  # fmt: skip


@skill("everyday_facts")
def everyday_facts(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(list(_KINDS))
    q, val, steps, var, template = _KINDS[kind](rng, d)
    final = f"print(round({var}, 2))" if kind in ("shape", "tip") else f"print({var})"
    return gen(casual(rng, q), dec(val), steps, final, template)
