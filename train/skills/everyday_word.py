"""Everyday word problems: short one- or two-step stories with varied names, objects and
units: bags of things, buying things (and the change), sharing equally, ages, speed and time,
averages, what is left, amounts per day, how many more, and how many boxes (exactly, left
over, or rounded up).

Difficulty: 1 = one step with small whole numbers; 2 = two steps (change from a note, keep
some and share the rest, the sum of two ages) or halves; 3 = larger numbers, prices in cents,
decimal averages and times in minutes. The reference code stays one to three short steps.

Registered in `SKILLS` when the package imports this module (after every older skill module,
so older seeds keep their problems)."""

from __future__ import annotations

import random
from fractions import Fraction

from ._common import (
    COUNTABLES,
    ITEMS,
    GeneratedProblem,
    Step,
    Story,
    StoryFn,
    dec,
    money,
    pick,
    skill,
    tell,
)
from ._everyday_data import CONTAINERS, HOLDERS, MOVERS, PEOPLE, PER_DAY


def _listing(xs: list[int]) -> str:
    return ", ".join(map(str, xs[:-1])) + f" and {xs[-1]}"


def _groups(rng: random.Random, d: int, n: str, m: str) -> Story:
    (c, cs), t = rng.choice(CONTAINERS), rng.choice(COUNTABLES)
    k, each = (
        (rng.randint(2, 9), rng.randint(2, 10))
        if d < 3
        else (rng.randint(10, 40), rng.randint(12, 48))
    )
    i, setup = pick(rng, [
        "{n} buys {k} {cs} of {t}. Each {c} has {e} {t}.", "{n} counts {k} {cs} with {e} {t} in each.",
        "{n} has {k} {cs} of {t}, {e} in each {c}.", "One {c} holds {e} {t}, and {n} fills {k} {cs}.",
    ])  # fmt: skip
    steps: list[Step] = [
        ("Multiply the number of groups by the number in each.", f"total = {k} * {each}")
    ]
    gone = 0
    if d == 1:
        j, ask = pick(rng, ["How many {t} are there in total?", "How many {t} is that altogether?"])
        val, var = Fraction(k * each), "total"
    else:
        gone = rng.randint(1, k * each - 1)
        j, ask = pick(rng, [
            "{n} gives {g} {t} to {m}. How many {t} does {n} have left?",
            "{g} of the {t} get lost. How many are left?", "Then {m} takes {g}. How many {t} remain?",
        ])  # fmt: skip
        steps.append(("Take away the ones that are gone.", f"left = total - {gone}"))
        val, var = Fraction(k * each - gone), "left"
    q = f"{setup} {ask}".format(n=n, m=m, k=k, c=c, cs=cs, t=t, e=each, g=gone)
    return q, val, steps, var, f"groups:{i}.{j}"


def _cost(rng: random.Random, d: int, n: str, m: str) -> Story:
    item, items, lo, hi = rng.choice(ITEMS)
    k = rng.randint(2, 9 if d < 3 else 24)
    if d < 3:  # whole dollars in the item's usual price range
        price = Fraction(rng.randint(max(1, round(lo / 100)), max(2, round(hi / 100))))
    else:
        price = Fraction(rng.randint(lo // 5, hi // 5) * 5, 100)
    cost = k * price
    i, setup = pick(rng, [
        "{n} buys {k} {items} for {p} each.", "One {item} costs {p}, and {n} buys {k} of them.",
        "{items_cap} are {p} each. {n} gets {k}.", "{n} picks up {k} {items} at {p} apiece.",
    ])  # fmt: skip
    steps: list[Step] = [
        ("Multiply the price by how many were bought.", f"cost = {k} * {dec(price)}")
    ]
    if d == 1 or rng.random() < 0.3:
        j, ask = pick(
            rng,
            [
                "How much does {n} spend?",
                "What is the total cost, in dollars?",
                "How many dollars is that in all?",
            ],
        )
        val, var, bill = cost, "cost", 0
    else:
        bill = next(b for b in (5, 10, 20, 50, 100, 200, 500, 1000) if b > cost)
        j, ask = pick(rng, [
            "{n} pays with a ${b} note. How much change does {n} get?",
            "How much change is there from ${b}?", "{n} hands over ${b}. What change comes back, in dollars?",
        ])  # fmt: skip
        steps.append(("Change is what was paid minus the cost.", f"change = {bill} - cost"))
        val, var = bill - cost, "change"
    items_cap = items[0].upper() + items[1:]
    q = f"{setup} {ask}".format(
        n=n, k=k, item=item, items=items, items_cap=items_cap, p=money(price), b=bill
    )
    return q, val, steps, var, f"cost:{i}.{j}"


def _share(rng: random.Random, d: int, n: str, m: str) -> Story:
    t, people = rng.choice(COUNTABLES), rng.choice(PEOPLE)
    k, each = (
        (rng.randint(2, 10), rng.randint(1, 12))
        if d < 3
        else (rng.randint(3, 15), rng.randint(8, 40))
    )
    keep = rng.randint(1, 10) if d > 1 else 0
    total = k * each + keep
    if keep:
        i, phr = pick(rng, [
            "{n} has {T} {t}, keeps {x}, and shares the rest equally among {k} {p}. How many {t} does each get?",
            "There are {T} {t}. {x} are set aside and the rest are split equally between {k} {p}. How many does each get?",
            "{n} keeps {x} of {T} {t} and shares the others equally among {k} {p}. How many {t} does each of them get?",
        ])  # fmt: skip
        steps: list[Step] = [
            ("First take away the ones kept.", f"rest = {total} - {keep}"),
            ("Share the rest equally.", f"each = rest / {k}"),
        ]
    else:
        i, phr = pick(rng, [
            "{n} shares {T} {t} equally among {k} {p}. How many {t} does each get?",
            "{T} {t} are split equally between {k} {p}. How many {t} does each one get?",
            "If {k} {p} share {T} {t} equally, how many does each get?",
            "{n} puts {T} {t} into {k} equal piles. How many {t} are in each pile?",
        ])  # fmt: skip
        steps = [("Divide the total equally.", f"each = {total} / {k}")]
    q = phr.format(n=n, T=total, t=t, x=keep, k=k, p=people)
    return q, Fraction(each), steps, "each", f"share:{i}{':keep' if keep else ''}"


def _ages(rng: random.Random, d: int, n: str, m: str) -> Story:
    a, gap = rng.randint(4, 15 if d == 1 else 40), rng.randint(2, 12 if d < 3 else 30)
    if d == 1:
        i, phr = pick(rng, [
            "{n} is {a} years old. {m} is {g} years older. How old is {m}?",
            "{n} is {a}. How old will {n} be in {g} years?",
            "{m} is {g} years older than {n}, who is {a}. How old is {m}?",
        ])  # fmt: skip
        steps: list[Step] = [("Add the years.", f"age = {a} + {gap}")]
        return phr.format(n=n, m=m, a=a, g=gap), Fraction(a + gap), steps, "age", f"ages:{i}"
    if d == 2:
        i, phr = pick(rng, [
            "{n} is {a} years old and {m} is {g} years older. What is the sum of their ages?",
            "{n} is {a}. {m} is {g} years older than {n}. How old are they together?",
            "{m} is {g} years older than {n}. If {n} is {a}, what are their ages added up?",
        ])  # fmt: skip
        steps = [
            (f"First find {m}'s age.", f"other = {a} + {gap}"),
            ("Add the two ages.", f"total = {a} + other"),
        ]
        return (
            phr.format(n=n, m=m, a=a, g=gap),
            Fraction(2 * a + gap),
            steps,
            "total",
            f"ages_sum:{i}",
        )
    later = rng.randint(2, 20)
    i, phr = pick(rng, [
        "{n} is {a} years old and {m} is twice as old. How old will {m} be in {l} years?",
        "{m} is twice {n}'s age. {n} is {a}. How old will {m} be {l} years from now?",
    ])  # fmt: skip
    steps = [
        (f"{m} is twice as old.", f"other = 2 * {a}"),
        (f"Add {later} years.", f"age = other + {later}"),
    ]
    return (
        phr.format(n=n, m=m, a=a, l=later),
        Fraction(2 * a + later),
        steps,
        "age",
        f"ages_twice:{i}",
    )


def _speed(rng: random.Random, d: int, n: str, m: str) -> Story:
    mover, speed_unit, dist_unit = rng.choice(MOVERS)
    fast = mover in ("car", "train", "bus", "truck")
    speed = (
        rng.randint(3, 20) * (5 if fast else 1) if d < 3 else rng.randint(1, 8 if fast else 2) * 12
    )
    if d == 1:
        hours, shown = Fraction(rng.randint(2, 6)), ""
    elif d == 2:
        hours, shown = Fraction(rng.randint(3, 11), 2), ""
    else:
        minutes = rng.choice([15, 20, 30, 40, 45, 90, 75, 150])
        hours, shown = Fraction(minutes, 60), f"{minutes} minutes"
    when = shown or f"{dec(hours)} {'hour' if hours == 1 else 'hours'}"
    i, phr = pick(rng, [
        "A {v} travels at {s} {su} for {w}. How many {du} does the {v} go?",
        "{n} drives at {s} {su} for {w}. How far is that, in {du}?",
        "How far does a {v} go in {w} at {s} {su}?",
        "At {s} {su}, how many {du} can a {v} cover in {w}?",
    ])  # fmt: skip
    if shown:
        steps: list[Step] = [
            ("Turn the minutes into hours.", f"hours = {shown.split()[0]} / 60"),
            ("Distance is speed times time.", f"distance = {speed} * hours"),
        ]
    else:
        steps = [("Distance is speed times time.", f"distance = {speed} * {dec(hours)}")]
    q = phr.format(v=mover, s=speed, su=speed_unit, du=dist_unit, w=when, n=n)
    return q, speed * hours, steps, "distance", f"speed:{i}{':min' if shown else ''}"


def _average(rng: random.Random, d: int, n: str, m: str) -> Story:
    k = {1: rng.choice([2, 3]), 2: rng.choice([3, 4]), 3: rng.choice([4, 5])}[d]
    hi = {1: 20, 2: 60, 3: 100}[d]
    while True:
        xs = [rng.randint(1, hi) for _ in range(k)]
        mean = Fraction(sum(xs), k)
        if mean.denominator == 1 or (d == 3 and (mean * 10).denominator == 1):
            break
    i, phr = pick(rng, [
        "What is the average of {l}?", "Find the mean of {l}.",
        "{n} scored {l} points in {k} games. What was the average score?",
        "The temperatures on {k} days were {l} degrees. What was the average temperature?",
        "{n} read {l} pages on {k} days. How many pages a day is that on average?",
    ])  # fmt: skip
    steps: list[Step] = [
        ("Put the numbers in a list.", f"numbers = {xs}"),
        ("The average is the sum divided by how many there are.", "average = sum(numbers) / len(numbers)"),
    ]  # fmt: skip
    return phr.format(l=_listing(xs), k=k, n=n), mean, steps, "average", f"average:{i}"


def _left(rng: random.Random, d: int, n: str, m: str) -> Story:
    t = rng.choice(COUNTABLES)
    a = rng.randint(5, 20) if d == 1 else rng.randint(20, 99) if d == 2 else rng.randint(100, 500)
    b = rng.randint(1, a - 1)
    if d == 1:
        i, phr = pick(rng, [
            "{n} had {a} {t} and gave {b} to {m}. How many {t} does {n} have left?",
            "There were {a} {t} in a box. {n} took out {b}. How many are still in the box?",
            "{n} has {a} {t} and loses {b}. How many {t} are left?",
        ])  # fmt: skip
        steps: list[Step] = [("Subtract what is gone.", f"left = {a} - {b}")]
        return phr.format(n=n, m=m, a=a, b=b, t=t), Fraction(a - b), steps, "left", f"left:{i}"
    c = rng.randint(1, a)
    i, phr = pick(rng, [
        "{n} had {a} {t}, lost {b}, then found {c}. How many {t} does {n} have now?",
        "{n} has {a} {t}, gives {b} to {m} and then buys {c} more. How many {t} does {n} have?",
        "A box holds {a} {t}. {n} takes {b} out and {m} puts {c} more in. How many {t} are in the box?",
    ])  # fmt: skip
    steps = [
        ("Take away what is gone.", f"left = {a} - {b}"),
        ("Add the ones that came in.", f"now = left + {c}"),
    ]
    return phr.format(n=n, m=m, a=a, b=b, c=c, t=t), Fraction(a - b + c), steps, "now", f"left2:{i}"


def _per_day(rng: random.Random, d: int, n: str, m: str) -> Story:
    does, unit, verb = rng.choice(PER_DAY)
    p = rng.randint(2, 12) if d == 1 else rng.randint(5, 60)
    if d < 3:
        days = rng.choice([2, 3, 4, 5, 6, 7]) if d == 1 else rng.randint(8, 30)
        period = rng.choice(["a week", "two weeks"]) if rng.random() < 0.3 else f"{days} days"
        days = {"a week": 7, "two weeks": 14}.get(period, days)
        i, phr = pick(rng, [
            "{n} {does} a day. How many {u} does {n} {v} in {per}?",
            "Every day {n} {does}. How many {u} is that after {per}?",
            "If {n} {does} each day, how many {u} will {n} {v} in {per}?",
        ])  # fmt: skip
        steps: list[Step] = [
            ("Multiply the amount per day by the number of days.", f"total = {p} * {days}")
        ]
        q = phr.format(n=n, does=does.format(p=p), u=unit, v=verb, per=period)
        return q, Fraction(p * days), steps, "total", f"per_day:{i}"
    goal = p * rng.randint(5, 40)
    i, phr = pick(rng, [
        "{n} {does} a day. How many days does it take to {v} {g} {u}?",
        "At {p} {u} a day, how many days until {n} has {g} {u}?",
    ])  # fmt: skip
    steps = [("Divide the goal by the amount per day.", f"days = {goal} // {p}")]
    q = phr.format(n=n, does=does.format(p=p), u=unit, v=verb, g=goal, p=p)
    return q, Fraction(goal, p), steps, "days", f"days_to:{i}"


def _compare(rng: random.Random, d: int, n: str, m: str) -> Story:
    t = rng.choice(COUNTABLES)
    hi = {1: 20, 2: 99, 3: 999}[d]
    a, b = sorted(rng.sample(range(1, hi + 1), 2), reverse=True)
    if d == 1:
        i, phr = pick(rng, [
            "{n} has {a} {t} and {m} has {b}. How many more {t} does {n} have?",
            "{m} has {b} {t}. {n} has {a}. How many fewer {t} does {m} have than {n}?",
            "{n} has {a} {t} and {m} has {b}. What is the difference?",
        ])  # fmt: skip
        steps: list[Step] = [
            ("Subtract the smaller amount from the bigger one.", f"more = {a} - {b}")
        ]
        return phr.format(n=n, m=m, a=a, b=b, t=t), Fraction(a - b), steps, "more", f"compare:{i}"
    gap = a - b
    i, phr = pick(rng, [
        "{n} has {a} {t}, which is {g} more than {m}. How many {t} do they have together?",
        "{m} has {g} fewer {t} than {n}, and {n} has {a}. How many {t} do they have in all?",
        "{n} collected {a} {t}. {m} collected {g} less than {n}. How many did they collect altogether?",
    ])  # fmt: skip
    steps = [
        (f"First find how many {m} has.", f"other = {a} - {gap}"),
        ("Add the two amounts.", f"total = {a} + other"),
    ]
    return (
        phr.format(n=n, m=m, a=a, g=gap, t=t),
        Fraction(a + b),
        steps,
        "total",
        f"compare_sum:{i}",
    )


def _boxes(rng: random.Random, d: int, n: str, m: str) -> Story:
    thing, holder, one_holder, verb = rng.choice(HOLDERS)
    k = rng.randint(2, 12) if d < 3 else rng.randint(4, 25)
    full = rng.randint(2, 12) if d == 1 else rng.randint(3, 40)
    extra = 0 if d == 1 else rng.randint(1, k - 1)
    total = k * full + extra
    if d == 1:
        i, phr = pick(rng, [
            "{T} {th} go into {h} that {v} {k} each. How many {h} are filled?",
            "{n} puts {T} {th} into groups of {k}. How many groups are there?",
            "How many {h} that {v} {k} each are needed for {T} {th}?",
        ])  # fmt: skip
        steps: list[Step] = [
            ("Divide the total by how many fit in each.", f"count = {total} // {k}")
        ]
        return (
            phr.format(T=total, th=thing, h=holder, v=verb, k=k, n=n),
            Fraction(full),
            steps,
            "count",
            f"boxes:{i}",
        )
    if d == 2:
        i, phr = pick(rng, [
            "{T} {th} go into {h} that {v} {k} each. How many {th} are left over when every {h1} is full?",
            "{n} puts {T} {th} into groups of {k}. How many {th} are left over?",
        ])  # fmt: skip
        steps = [("The ones left over are the remainder.", f"left_over = {total} % {k}")]
        q = phr.format(
            T=total,
            th=thing,
            h=holder,
            h1=one_holder,
            v=verb,
            k=k,
            n=n,
        )
        return q, Fraction(extra), steps, "left_over", f"left_over:{i}"
    i, phr = pick(rng, [
        "How many {h} that {v} {k} each are needed for {T} {th}?",
        "{T} {th} need {h}, and each one can {v} {k}. How many {h} are needed for all of them?",
        "{n} needs {h} for {T} {th}, and each can {v} {k}. What is the smallest number of {h} that is enough?",
    ])  # fmt: skip
    steps = [
        (
            "Divide and round up: a part-full one is still needed.",
            f"import math\ncount = math.ceil({total} / {k})",
        )
    ]
    q = phr.format(T=total, th=thing, h=holder, v=verb, k=k, n=n)
    return q, Fraction(full + 1), steps, "count", f"round_up:{i}"


_KINDS: dict[str, StoryFn] = {
    "groups": _groups, "cost": _cost, "share": _share, "ages": _ages, "speed": _speed,
    "average": _average, "left": _left, "per_day": _per_day, "compare": _compare, "boxes": _boxes,
}  # fmt: skip


@skill("everyday_word")
def everyday_word(rng: random.Random, d: int) -> GeneratedProblem:
    return tell(_KINDS, rng, d, rounded=("cost", "average", "speed"))
