"""Everyday stories told the other way round: the shapes that look like an older skill's but
need a different operation, so that a small model learns to read the question rather than
match a template.

- groups asked by the count of groups ("a tin holds 12 biscuits: how many in 5 tins?",
  multiply) next to the older "how many tins are needed" (divide), a start plus some groups,
  and packing then selling;
- two or three amounts taken away from a start;
- ages: older or younger, then some years later or earlier; k times as old; half as old;
- money: prices in cents asked in dollars, prices with cents times a count, change from a note;
- percent change: a value raised or cut by a percent, a sale price;
- rates the other way: average speed from distance and time, time from distance and speed,
  the price of one from the price of several;
- temperatures that rise or fall across zero;
- sums and differences of numbers said in words above one hundred.

Difficulty: 1 = one step, small numbers; 2 = two steps; 3 = two or three steps with larger
numbers, cents or three amounts. The reference code stays one to three short steps.

The topics came from the kinds of question the shipped default got wrong on the everyday
evaluation set (tests/data/everyday.jsonl); no question text comes from that set, the recipe
excludes it from training, and the card says so. Registered after every older skill, so older
seeds keep their problems."""

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
    names,
    pick,
    skill,
    tell,
)
from ._everyday_data import CONTAINERS, MOVERS
from ._words import hundreds_words, number_words


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _in_groups(rng: random.Random, d: int, n: str, m: str) -> Story:
    (c, cs), t = rng.choice(CONTAINERS), rng.choice(COUNTABLES)
    k, e = (
        (rng.randint(2, 9), rng.randint(2, 12))
        if d < 3
        else (rng.randint(3, 15), rng.randint(4, 24))
    )
    if d == 1:
        i, phr = pick(rng, [
            "A {c} holds {e} {t}. How many {t} are in {k} {cs}?",
            "Each {c} has {e} {t} in it. How many {t} are there in {k} {cs}?",
            "There are {e} {t} in every {c}. How many {t} do {k} {cs} hold?",
            "How many {t} are in {k} {cs} if one {c} holds {e}?",
            "{n} has {k} {cs} with {e} {t} in each. How many {t} is that?",
            "One {c} fits {e} {t}. How many {t} fit in {k} {cs}?",
        ])  # fmt: skip
        steps: list[Step] = [
            (f"Each {c} holds {e}, so multiply by the number of {cs}.", f"total = {e} * {k}")
        ]
        return (
            phr.format(c=c, cs=cs, t=t, e=e, k=k, n=n),
            Fraction(e * k),
            steps,
            "total",
            f"in_groups:{i}",
        )
    if d == 2:
        s = rng.randint(1, 20)
        i, phr = pick(rng, [
            "{n} has {s} {t} and buys {k} {cs} of {e} more. How many {t} does {n} have now?",
            "{n} had {s} {t}. Then {n} got {k} {cs} with {e} {t} in each. How many {t} does {n} have?",
            "There are {s} loose {t} and {k} full {cs} of {e}. How many {t} are there in all?",
            "{n} owns {s} {t}. {m} gives {n} {k} {cs}, each holding {e}. How many {t} does {n} own now?",
        ])  # fmt: skip
        steps = [
            (f"First count the {t} in the {cs}.", f"in_groups = {k} * {e}"),
            ("Add the ones there were at the start.", f"total = {s} + in_groups"),
        ]
        q = phr.format(c=c, cs=cs, t=t, e=e, k=k, n=n, m=m, s=s)
        return q, Fraction(s + k * e), steps, "total", f"start_groups:{i}"
    sold = rng.randint(1, k - 1)
    total = k * e
    i, phr = pick(rng, [
        "{n} has {T} {t} and packs them {e} to a {c}. {n} sells {s} {cs}. How many {cs} are left?",
        "{T} {t} are packed into {cs} of {e}. {s} of the {cs} are given away. How many full {cs} remain?",
        "{n} puts {T} {t} in {cs}, {e} in each, and {m} takes {s} {cs}. How many {cs} does {n} still have?",
    ])  # fmt: skip
    steps = [
        (f"Find how many {cs} there are.", f"groups = {total} // {e}"),
        (f"Take away the {cs} that went.", f"left = groups - {sold}"),
    ]
    q = phr.format(c=c, cs=cs, t=t, e=e, T=total, s=sold, n=n, m=m)
    return q, Fraction(k - sold), steps, "left", f"pack_sell:{i}"


def _two_away(rng: random.Random, d: int, n: str, m: str) -> Story:
    t, o = rng.choice(COUNTABLES), names(rng, 3)[2]
    hi = 40 if d == 1 else 200 if d == 2 else 900
    parts = [rng.randint(1, hi // 4) for _ in range(3 if d == 3 else 2)]
    a = sum(parts) + rng.randint(1, hi // 2)
    if d < 3:
        b, c = parts
        i, phr = pick(rng, [
            "{n} had {a} {t}. {n} gave {b} to {m} and {c} to {o}. How many {t} does {n} have left?",
            "There were {a} {t}. {b} were used on Monday and {c} on Tuesday. How many are left?",
            "{n} starts the day with ${a}, spends ${b} on lunch and ${c} on a book. How many dollars are left?",
            "A shelf holds {a} {t}. {n} takes {b} and {m} takes {c}. How many {t} are still on the shelf?",
            "{n} had {a} {t}, lost {b}, then gave away {c}. How many {t} remain?",
        ])  # fmt: skip
        steps: list[Step] = [
            ("Add up everything that went away.", f"gone = {b} + {c}"),
            ("Subtract it from the start.", f"left = {a} - gone"),
        ]
        q = phr.format(n=n, m=m, o=o, a=a, b=b, c=c, t=t)
        return q, Fraction(a - b - c), steps, "left", f"two_away:{i}"
    b, c, e = parts
    i, phr = pick(rng, [
        "{n} had {a} {t}. {n} gave {b} to {m} and {c} to {o}, then lost {e}. How many {t} are left?",
        "A shop had {a} {t}. It sold {b} on Monday, {c} on Tuesday and {e} on Wednesday. How many are left?",
        "{n} has ${a}. {n} pays ${b} for rent, ${c} for food and ${e} for travel. How many dollars are left?",
    ])  # fmt: skip
    steps = [
        ("Add up everything that went away.", f"gone = {b} + {c} + {e}"),
        ("Subtract it from the start.", f"left = {a} - gone"),
    ]
    q = phr.format(n=n, m=m, o=o, a=a, b=b, c=c, e=e, t=t)
    return q, Fraction(a - b - c - e), steps, "left", f"three_away:{i}"


def _ages(rng: random.Random, d: int, n: str, m: str) -> Story:
    a = rng.randint(4, 40)
    if d == 1:
        k = rng.randint(2, 5)
        i, phr = pick(rng, [
            "{m} is {k} times as old as {n}. {n} is {a}. How old is {m}?",
            "{n} is {a} years old and {m} is {k} times as old. How old is {m}?",
            "{m}'s age is {k} times {n}'s age. If {n} is {a}, how old is {m}?",
        ])  # fmt: skip
        steps: list[Step] = [(f"{m} is {k} times as old, so multiply.", f"age = {k} * {a}")]
        return phr.format(n=n, m=m, a=a, k=k), Fraction(k * a), steps, "age", f"times_old:{i}"
    g, later = rng.randint(2, 15), rng.randint(2, 12)
    older = rng.random() < 0.6
    future = rng.random() < 0.6
    if not older:
        a += g  # a younger person's age stays positive
    if not future:
        later = rng.randint(1, min(12, a + (g if older else -g) - 1))
    rel = "older" if older else "younger"
    when = f"in {later} years" if future else f"{later} years ago"
    verb = "will {m} be" if future else "was {m}"
    i, phr = pick(rng, [
        "{m} is {g} years {rel} than {n}. {n} is {a}. How old {verb} {when}?",
        "{n} is {a}, and {m} is {g} years {rel}. How old {verb} {when}?",
        "{m} is {g} years {rel} than {n}, who is {a} now. What age {verb} {when}?",
    ])  # fmt: skip
    now = a + g if older else a - g
    val = now + later if future else now - later
    steps = [
        (f"First find {m}'s age now.", f"now = {a} {'+' if older else '-'} {g}"),
        (f"Then go {'forward' if future else 'back'} {later} years.", f"age = now {'+' if future else '-'} {later}"),
    ]  # fmt: skip
    q = phr.format(n=n, m=m, a=a, g=g, rel=rel, when=when, verb=verb.format(m=m))
    return q, Fraction(val), steps, "age", f"older_later:{i}"


def _money(rng: random.Random, d: int, n: str, m: str) -> Story:
    item, items, lo, hi = rng.choice(ITEMS)
    k = rng.randint(2, 9) if d < 3 else rng.randint(6, 30)
    if d == 1:
        cents = rng.randint(1, 19) * 5
        i, phr = pick(rng, [
            "{Items} are {c} cents each. What do {k} {items} cost in dollars?",
            "One {item} costs {c} cents. How many dollars do {k} of them cost?",
            "At {c} cents apiece, what do {k} {items} cost, in dollars?",
            "{n} buys {k} {items} at {c}¢ each. How many dollars is that?",
        ])  # fmt: skip
        steps: list[Step] = [
            ("Multiply to get the cost in cents.", f"cents = {k} * {cents}"),
            ("There are 100 cents in a dollar.", "dollars = cents / 100"),
        ]
        q = phr.format(Items=_cap(items), items=items, item=item, c=cents, k=k, n=n)
        return q, Fraction(k * cents, 100), steps, "dollars", f"cents_each:{i}"
    price = Fraction(rng.randint(max(1, lo // 5), hi // 5) * 5, 100)
    if d == 2:
        i, phr = pick(rng, [
            "A {item} costs {p}. How much do {k} {items} cost?",
            "How much do {k} {items} cost at {p} each?",
            "{Items} sell for {p}. What is the price of {k} of them?",
            "{n} needs {k} {items}, and one is {p}. What is the total?",
        ])  # fmt: skip
        steps = [("Multiply the price of one by how many.", f"cost = {dec(price)} * {k}")]
        q = phr.format(Items=_cap(items), items=items, item=item, p=money(price), k=k, n=n)
        return q, price * k, steps, "cost", f"price_times:{i}"
    bill = next(b for b in (5, 10, 20, 50, 100) if b > price)
    i, phr = pick(rng, [
        "{n} pays for a {item} costing {p} with a ${b} note. What change does {n} get?",
        "A {item} is {p}. How much change is there from ${b}?",
        "{n} hands the cashier ${b} for a {p} {item}. How much money comes back?",
        "Paying ${b} for something that costs {p}, how much change should you get?",
    ])  # fmt: skip
    steps = [("Change is what was paid minus the price.", f"change = {bill} - {dec(price)}")]
    q = phr.format(item=item, p=money(price), b=bill, n=n)
    return q, bill - price, steps, "change", f"change_cents:{i}"


def _percent_change(rng: random.Random, d: int, n: str, m: str) -> Story:
    p = rng.choice([5, 10, 20, 25, 50] if d == 1 else [5, 10, 12, 15, 20, 25, 30, 40, 75])
    a = rng.randint(2, 40) * (10 if d < 3 else 4)
    up = rng.random() < 0.5
    if up:
        i, phr = pick(rng, [
            "What is {a} increased by {p}%?", "{a} goes up by {p}%. What is the new amount?",
            "Raise {a} by {p} percent.", "Add {p}% to {a}.",
            "A price of ${a} rises by {p}%. What is the new price in dollars?",
            "{n}'s rent of ${a} goes up {p}%. What is the new rent?",
        ])  # fmt: skip
    else:
        i, phr = pick(rng, [
            "What is {a} decreased by {p}%?", "Take {p}% off {a}.", "Reduce {a} by {p} percent.",
            "A ${a} jacket is {p}% off. What is the sale price in dollars?",
            "{a} drops by {p}%. What is it now?",
        ])  # fmt: skip
    steps: list[Step] = [
        (f"Find {p}% of {a}.", f"change = {a} * {p} / 100"),
        ("Add it on." if up else "Take it away.", f"new = {a} {'+' if up else '-'} change"),
    ]
    val = Fraction(a) * (100 + (p if up else -p)) / 100
    q = phr.format(a=a, p=p, n=n)
    return q, val, steps, "new", f"{'raise' if up else 'cut'}:{i}"


def _rate_back(rng: random.Random, d: int, n: str, m: str) -> Story:
    mover, speed_unit, dist_unit = rng.choice(MOVERS)
    speed, hours = rng.randint(2, 20) * (5 if d > 1 else 1), rng.randint(2, 8)
    dist = speed * hours
    if d == 1:
        i, phr = pick(rng, [
            "{n} walks {D} {du} in {h} hours. What is the average speed in {su}?",
            "A {v} covers {D} {du} in {h} hours. How fast does it go on average, in {su}?",
            "What is the speed of a {v} that goes {D} {du} in {h} hours?",
            "If you travel {D} {du} in {h} hours, what is your average speed?",
        ])  # fmt: skip
        steps: list[Step] = [
            (
                "Speed is distance divided by time.",
                f"distance, hours = {dist}, {hours}\nspeed = distance / hours",
            )
        ]
        q = phr.format(n=n, v=mover, D=dist, du=dist_unit, h=hours, su=speed_unit)
        return q, Fraction(speed), steps, "speed", f"speed_from:{i}"
    if d == 2:
        i, phr = pick(rng, [
            "How many hours does it take to go {D} {du} at {s} {su}?",
            "At {s} {su}, how long does a {v} take to cover {D} {du}, in hours?",
            "{n} drives {D} {du} at {s} {su}. How many hours does the trip take?",
        ])  # fmt: skip
        steps = [
            (
                "Time is distance divided by speed.",
                f"distance, speed = {dist}, {speed}\nhours = distance / speed",
            )
        ]
        q = phr.format(n=n, v=mover, D=dist, du=dist_unit, s=speed, su=speed_unit)
        return q, Fraction(hours), steps, "hours", f"time_from:{i}"
    item, items, lo, hi = rng.choice(ITEMS)
    price = Fraction(rng.randint(max(1, lo // 5), hi // 5) * 5, 100)
    k = rng.randint(2, 12)
    i, phr = pick(rng, [
        "{k} {items} cost {P}. How much does one {item} cost?",
        "{n} paid {P} for {k} {items}. What was the price of each?",
        "If {k} {items} cost {P} altogether, what does a single {item} cost?",
    ])  # fmt: skip
    steps = [("Divide the total by how many.", f"each = {dec(price * k)} / {k}")]
    q = phr.format(n=n, k=k, items=items, item=item, P=money(price * k))
    return q, price, steps, "each", f"unit_price:{i}"


def _temperature(rng: random.Random, d: int, n: str, m: str) -> Story:
    a = rng.randint(-15, 10) if d < 3 else rng.randint(-30, 5)
    b = rng.randint(2, 20)
    up = rng.random() < 0.5
    when = rng.choice(["this morning", "at dawn", "at midnight", "on Monday"])
    if up:
        i, phr = pick(rng, [
            "The temperature was {a} degrees {w} and it rose by {b} degrees. What is it now?",
            "It was {a}°C {w}. By noon it was {b} degrees warmer. What was the temperature at noon?",
            "The thermometer read {a} degrees, then went up {b} degrees. What does it read now?",
        ])  # fmt: skip
    else:
        i, phr = pick(rng, [
            "The temperature was {a} degrees {w} and it fell by {b} degrees. What is it now?",
            "It was {a}°C {w}. By night it was {b} degrees colder. What was the temperature then?",
            "The thermometer read {a} degrees, then dropped {b} degrees. What does it read now?",
        ])  # fmt: skip
    steps: list[Step] = [("A rise adds, a fall subtracts.", f"now = {a} {'+' if up else '-'} {b}")]
    q = phr.format(a=a, b=b, w=when)
    return q, Fraction(a + b if up else a - b), steps, "now", f"temp_{'up' if up else 'down'}:{i}"


def _big_words(rng: random.Random, d: int, n: str, m: str) -> Story:
    a = rng.randint(1, 9) * 100 + rng.choice([0, 0, 25, 50]) if d == 1 else rng.randint(100, 999)
    b = (
        rng.randint(1, 6) * 50
        if d == 1
        else rng.randint(10, 99)
        if d == 2
        else rng.randint(101, 499)
    )
    op = rng.choice(["+", "-"])
    if op == "-" and b > a:
        a, b = b, a

    def said(x: int) -> str:
        return hundreds_words(x, rng) if x >= 100 else number_words(x)

    i, phr = pick(rng, [
        "{a} plus {b}", "What is {a} plus {b}?", "{a} and {b} added together",
        "what's {a} add {b}",
    ] if op == "+" else [
        "{a} minus {b}", "What is {a} take away {b}?", "{a} less {b}", "subtract {b} from {a}",
    ])  # fmt: skip
    steps: list[Step] = [(f"In digits, that is {a} {op} {b}.", f"result = {a} {op} {b}")]
    val = a + b if op == "+" else a - b
    kind = "add" if op == "+" else "sub"
    return phr.format(a=said(a), b=said(b)), Fraction(val), steps, "result", f"big_words:{kind}:{i}"


_KINDS: dict[str, StoryFn] = {
    "in_groups": _in_groups, "two_away": _two_away, "ages": _ages, "money": _money,
    "percent_change": _percent_change, "rate_back": _rate_back, "temperature": _temperature,
    "big_words": _big_words,
}  # fmt: skip


@skill("everyday_stories")
def everyday_stories(rng: random.Random, d: int) -> GeneratedProblem:
    return tell(_KINDS, rng, d, rounded=("money", "rate_back"))
