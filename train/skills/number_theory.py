"""Number-theory skills: gcd and lcm, remainders (and days of the week), primes and factors.

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import math
import random

from ._common import COUNTABLES, GeneratedProblem, fmt, gen, names, pick, skill


@skill("gcd_lcm")
def gcd_lcm(rng: random.Random, d: int) -> GeneratedProblem:
    g = rng.choice([2, 3, 4, 5, 6, 8, 9, 12, 15] if d > 1 else [2, 3, 4, 5, 6])
    hi = {1: 10, 2: 20, 3: 30}[d]
    nums = [g * rng.randint(1, hi) for _ in range(3 if d == 3 else 2)]
    while len(set(nums)) < len(nums):
        nums = [g * rng.randint(1, hi) for _ in range(len(nums))]
    which = rng.choice(["gcd", "lcm"])
    val = math.gcd(*nums) if which == "gcd" else math.lcm(*nums)
    listed = ", ".join(map(str, nums[:-1])) + f" and {nums[-1]}"
    n = names(rng)[0]
    if which == "gcd":
        opts = [
            "What is the greatest common divisor of {L}?", "Find the GCD of {L}.",
            "What is the highest common factor of {L}?", "Find the largest number that divides each of {L}.",
        ]  # fmt: skip
        if len(nums) == 2:
            a, b = nums
            opts += [
                f"{{n}} has {a} pencils and {b} erasers and wants to make identical gift bags with nothing left over. What is the largest number of bags {{n}} can make?",
                f"Two ropes are {a} cm and {b} cm long. They are cut into pieces of equal length with no waste. What is the longest possible piece, in cm?",
            ]
    else:
        opts = [
            "What is the least common multiple of {L}?", "Find the LCM of {L}.",
            "What is the smallest positive number that is a multiple of each of {L}?",
        ]  # fmt: skip
        if len(nums) == 2:
            a, b = nums
            opts += [
                f"Two buses leave the station together. One returns every {a} minutes, the other every {b} minutes. After how many minutes are they first back at the station together?",
                f"Hot dogs come in packs of {a} and buns in packs of {b}. What is the smallest number of hot dogs {{n}} can buy to have exactly as many buns?",
            ]
    t, phr = pick(rng, opts)
    args = ", ".join(map(str, nums))
    steps = [("Use the math module.", f"import math\nnumbers = [{args}]")]
    steps.append(
        (
            f"Compute the {'greatest common divisor' if which == 'gcd' else 'least common multiple'}.",
            f"result = math.{which}(*numbers)",
        )
    )
    return gen(phr.format(L=listed, n=n), fmt(val), steps, "print(result)", f"{which}:{t}")


DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@skill("remainders")
def remainders(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(["plain", "boxes", "days"] if d < 3 else ["power", "days", "boxes", "plain"])
    if kind == "plain":
        m = rng.randint(3, 12 if d == 1 else 40)
        a = rng.randint(m + 1, 100 if d == 1 else 5000)
        t, phr = pick(
            rng,
            [
                "What is the remainder when {a} is divided by {m}?", "Find {a} mod {m}.",
                "What is left over when {a} is divided by {m}?", "Compute the remainder of {a} ÷ {m}.",
            ],
        )  # fmt: skip
        steps = [
            (
                "The remainder is what the modulo operator gives.",
                f"remainder = {a} % {m}",
            )
        ]
        return gen(phr.format(a=a, m=m), fmt(a % m), steps, "print(remainder)", f"plain:{t}")
    if kind == "boxes":
        m = rng.randint(4, 24)
        a = rng.randint(m + 1, 100 * d)
        thing = rng.choice(COUNTABLES)
        ask = rng.choice(["left", "full"])
        if ask == "left":
            opts = [
                "{n} packs {a} {t} into bags of {m}. How many {t} are left over?",
                "{a} {t} are shared out in groups of {m}. How many {t} do not fit in a full group?",
            ]
            val, code = a % m, f"left_over = {a} % {m}"
            var = "left_over"
        else:
            opts = [
                "{n} packs {a} {t} into boxes of {m}. How many boxes are completely filled?",
                "How many full groups of {m} can be made from {a} {t}?",
            ]
            val, code = a // m, f"full = {a} // {m}"
            var = "full"
        t, phr = pick(rng, opts)
        steps = [("Divide with integer division and remainder.", code)]
        q = phr.format(n=names(rng)[0], a=a, t=thing, m=m)
        return gen(q, fmt(val), steps, f"print({var})", f"boxes-{ask}:{t}")
    if kind == "days":
        start = rng.randrange(7)
        k = rng.randint(8, 60 if d == 1 else 1000)
        t, phr = pick(
            rng,
            [
                "Today is {day}. What day of the week will it be in {k} days?",
                "If today is a {day}, what day of the week is it {k} days from now?",
                "{n}'s birthday is on a {day}. What day of the week is {k} days later?",
            ],
        )  # fmt: skip
        steps = [
            ("List the days of the week in order.", f"days = {list(DAYS)!r}\nstart = days.index({DAYS[start]!r})"),
            ("The weekday repeats every 7 days, so only the remainder counts.", f"shift = {k} % 7\nanswer = days[(start + shift) % 7]"),
        ]  # fmt: skip
        q = phr.format(day=DAYS[start], k=k, n=names(rng)[0])
        return gen(q, DAYS[(start + k) % 7], steps, "print(answer)", f"days:{t}")
    b, e, m = rng.randint(2, 9), rng.randint(10, 60), rng.randint(3, 13)
    t, phr = pick(
        rng,
        [
            "What is the remainder when {b}^{e} is divided by {m}?", "Find {b}^{e} mod {m}.",
            "Compute the remainder of {b} to the power {e} divided by {m}.",
        ],
    )  # fmt: skip
    steps = [
        (
            "Use modular exponentiation with the three-argument pow.",
            f"remainder = pow({b}, {e}, {m})",
        )
    ]
    return gen(
        phr.format(b=b, e=e, m=m),
        fmt(pow(b, e, m)),
        steps,
        "print(remainder)",
        f"power:{t}",
    )


def _factor(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


_IS_PRIME = (
    "def is_prime(n):\n    if n < 2:\n        return False\n    k = 2\n    while k * k <= n:\n"
    "        if n % k == 0:\n            return False\n        k += 1\n    return True"
)
_FACTORS = (
    "def prime_factors(n):\n    factors = []\n    p = 2\n    while p * p <= n:\n"
    "        while n % p == 0:\n            factors.append(p)\n            n //= p\n        p += 1\n"
    "    if n > 1:\n        factors.append(n)\n    return factors"
)


@skill("primes_factors")
def primes_factors(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["largest", "count_between", "next_prime"] if d == 1 else ["largest", "sum_distinct", "divisors", "count_between", "next_prime"]
    )  # fmt: skip
    hi = {1: 100, 2: 1000, 3: 20000}[d]
    n, lo = rng.randint(12, hi), 0
    if kind == "largest":
        while len(_factor(n)) < 2:
            n = rng.randint(12, hi)
        val = max(_factor(n))
        opts = [
            "What is the largest prime factor of {n}?",
            "Find the greatest prime that divides {n}.",
            "Which is the biggest prime factor of {n}?",
        ]
        steps = [
            (
                "Find the prime factors by trial division.",
                f"{_FACTORS}\nfactors = prime_factors({n})",
            ),
            ("Take the largest.", "largest = max(factors)"),
        ]
        var = "largest"
    elif kind == "sum_distinct":
        val = sum(set(_factor(n)))
        opts = [
            "What is the sum of the distinct prime factors of {n}?",
            "Add up the different primes that divide {n}. What do you get?",
        ]
        steps = [
            (
                "Find the prime factors by trial division.",
                f"{_FACTORS}\nfactors = prime_factors({n})",
            ),
            ("Add each distinct prime once.", "total = sum(set(factors))"),
        ]
        var = "total"
    elif kind == "divisors":
        val = sum(1 for k in range(1, n + 1) if n % k == 0)
        opts = [
            "How many positive divisors does {n} have?",
            "How many positive whole numbers divide {n} exactly?",
            "Count the factors of {n}.",
        ]
        steps = [
            (
                "Test every number from 1 to n.",
                f"n = {n}\ncount = sum(1 for k in range(1, n + 1) if n % k == 0)",
            )
        ]
        var = "count"
    elif kind == "count_between":
        lo = rng.randint(1, hi // 2)
        n = lo + rng.randint(10, 60 if d == 1 else 200)
        val = sum(1 for k in range(lo + 1, n) if len(_factor(k)) == 1)
        opts = [
            "How many prime numbers are there between {lo} and {n}?",
            "Count the primes strictly between {lo} and {n}.",
            "How many primes p satisfy {lo} < p < {n}?",
        ]
        steps = [
            ("Write a primality test.", _IS_PRIME),
            (
                "Count the primes strictly between the bounds.",
                f"count = sum(1 for k in range({lo + 1}, {n}) if is_prime(k))",
            ),
        ]
        var = "count"
    else:
        val = n + 1
        while len(_factor(val)) != 1:
            val += 1
        opts = [
            "What is the smallest prime number greater than {n}?",
            "Find the first prime after {n}.",
            "Which prime comes right after {n}?",
        ]
        steps = [
            ("Write a primality test.", _IS_PRIME),
            (
                "Try the numbers after n one by one.",
                f"p = {n} + 1\nwhile not is_prime(p):\n    p += 1",
            ),
        ]
        var = "p"
    t, phr = pick(rng, opts)
    q = phr.format(n=n, lo=lo)
    return gen(q, fmt(val), steps, f"print({var})", f"{kind}:{t}")
