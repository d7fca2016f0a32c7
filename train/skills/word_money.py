"""Money word problems: percentages (of, what percent, discounts, increases, successive and
reverse changes) and shopping (proportions, totals, change, how many).

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from ._common import (
    ITEMS,
    GeneratedProblem,
    dec,
    fmt,
    gen,
    money,
    names,
    pick,
    skill,
    terminates,
)


@skill("percentages")
def percentages(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["of", "what_percent"]
        if d == 1
        else ["of", "what_percent", "discount", "increase"]
        if d == 2
        else ["successive", "reverse", "discount", "increase"]
    )
    n = names(rng)[0]
    for _ in range(100):
        p = rng.choice(
            [5, 10, 20, 25, 50, 75] if d == 1 else list(range(5, 96, 5)) + [12, 15, 35, 8]
        )
        base = rng.randint(2, 40) * (10 if d == 1 else rng.choice([1, 4, 5, 10]))
        if kind == "of":
            val = Fraction(p * base, 100)
        elif kind == "what_percent":
            val = Fraction(p)
        elif kind == "discount":
            val = Fraction(base * (100 - p), 100)
        elif kind == "increase":
            val = Fraction(base * (100 + p), 100)
        elif kind == "successive":
            q = rng.choice([10, 20, 25, 50])
            val = Fraction(base * (100 + p) * (100 - q), 10000)
        else:
            val = Fraction(base)
            sale = Fraction(base * (100 - p), 100)
            if not terminates(sale, 2):
                continue
        if terminates(val, 2):
            break
    if kind == "of":
        t, phr = pick(
            rng,
            [
                "What is {p}% of {b}?",
                "Find {p} percent of {b}.",
                "Calculate {p}% of {b}.",
                "A class of {b} students voted and {p}% chose soccer. How many students chose soccer?"
                if (p * base) % 100 == 0
                else "What is {p}% of {b}?",
                "{n} saves {p}% of a ${b} allowance. How many dollars does {n} save?",
            ],
        )
        steps = [
            (
                "A percent is a number out of 100: multiply first, then divide.",
                f"part = {base} * {p} / 100",
            )
        ]
        return gen(
            phr.format(p=p, b=base, n=n),
            dec(val),
            steps,
            "print(round(part, 2))",
            f"of:{t}",
        )
    if kind == "what_percent":
        part = p * base // 100 if (p * base) % 100 == 0 else None
        if part is None:
            base = 100 // math.gcd(p, 100) * rng.randint(1, 8)
            part = p * base // 100
        t, phr = pick(
            rng,
            [
                "{a} is what percent of {b}?",
                "What percent of {b} is {a}?",
                "{n} answered {a} of {b} questions correctly. What percent is that?",
                "Out of {b} seeds, {a} sprouted. What percentage of the seeds sprouted?",
            ],
        )
        steps = [
            (
                "Divide the part by the whole and multiply by 100.",
                f"percent = {part} * 100 / {base}",
            )
        ]
        return gen(
            phr.format(a=part, b=base, n=n),
            fmt(p),
            steps,
            "print(round(percent, 2))",
            f"percent:{t}",
        )
    if kind in ("discount", "increase"):
        up = kind == "increase"
        opts = (
            ["A town of {b} people grows by {p}%. What is the new population?" if val.denominator == 1 else "A colony of {b} kg of algae grows by {p}%. How many kilograms of algae are there now?", "{n} earned ${b} a week and got a {p}% raise. How much does {n} earn per week now?", "Increase {b} by {p}%.", "A plant was {b} cm tall and grew {p}% taller. How tall is it now, in cm?"]
            if up
            else ["A jacket costs ${b}. It is on sale for {p}% off. What is the sale price in dollars?", "{n} buys a ${b} bike with a {p}% discount. How much does {n} pay?", "Decrease {b} by {p}%.", "A tank holds {b} liters and loses {p}% of its water. How many liters remain?"]
        )  # fmt: skip
        t, phr = pick(rng, opts)
        sign = "+" if up else "-"
        steps = [
            (
                f"Find the {'increase' if up else 'discount'} as a percent of the original.",
                f"original = {base}\nchange = original * {p} / 100",
            ),
            ("Apply it.", f"new = original {sign} change"),
        ]
        return gen(
            phr.format(b=base, p=p, n=n),
            dec(val),
            steps,
            "print(round(new, 2))",
            f"{kind}:{t}",
        )
    if kind == "successive":
        t, phr = pick(
            rng,
            [
                "A price of ${b} rises by {p}% and then falls by {q}%. What is the final price in dollars?",
                "{n}'s savings of ${b} grow by {p}% one year and shrink by {q}% the next. How much is left?",
                "Increase {b} by {p}%, then decrease the result by {q}%. What do you get?",
            ],
        )
        steps = [
            ("Apply the increase.", f"value = {base} * (100 + {p}) / 100"),
            (
                "Apply the decrease to the new amount.",
                f"value = value * (100 - {q}) / 100",
            ),
        ]
        return gen(
            phr.format(b=base, p=p, q=q, n=n),
            dec(val),
            steps,
            "print(round(value, 2))",
            f"successive:{t}",
        )
    t, phr = pick(
        rng,
        [
            "After a {p}% discount a lamp costs ${s}. What was the original price in dollars?",
            "{n} paid ${s} for shoes that were {p}% off. What was the price before the discount?",
            "A number decreased by {p}% is {s}. What was the number?",
        ],
    )
    steps = [
        (
            "The sale price is (100 - p)% of the original.",
            f"sale = {dec(sale)}\nkept = (100 - {p}) / 100",
        ),
        ("Divide to undo the discount.", "original = sale / kept"),
    ]
    return gen(
        phr.format(p=p, s=dec(sale), n=n),
        dec(val),
        steps,
        "print(round(original, 2))",
        f"reverse:{t}",
    )


@skill("word_shopping")
def word_shopping(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["proportion", "total"]
        if d == 1
        else ["proportion", "change", "how_many", "total"]
        if d == 2
        else ["change", "compare", "how_many", "proportion"]
    )
    item, items, lo, hi = rng.choice(ITEMS)
    n, m = names(rng, 2)
    if kind == "proportion":
        k = rng.randint(2, 6)
        price = rng.randint(1, 12) * (1 if d < 3 else rng.choice([1, 3]))
        mult = rng.randint(2, 12)
        want = k * mult
        val = Fraction(price * mult)
        t, phr = pick(
            rng,
            [
                "{k} {its} cost ${p}. How much do {w} {its} cost?",
                "At a shop, {k} {its} sell for ${p}. What do {w} {its} cost, in dollars?",
                "If {n} pays ${p} for {k} {its}, how much would {w} {its} cost?",
                "{k} {its} are priced at ${p} together. Find the cost of {w} {its}.",
                "A shop sells {its} at {k} for ${p}. How much do {w} {its} cost?",
            ],
        )
        steps = [
            (f"{want} {items} is this many groups of {k}.", f"groups = {want} / {k}"),
            ("Each group costs the same.", f"cost = groups * {price}"),
        ]
        return gen(
            phr.format(k=k, its=items, p=price, w=want, n=n),
            fmt(val),
            steps,
            "print(round(cost, 2))",
            f"proportion:{t}",
        )
    p1 = Fraction(rng.randint(lo, hi), 100) if d > 1 else Fraction(rng.randint(1, 9))
    item2, items2, lo2, hi2 = rng.choice([x for x in ITEMS if x[0] != item])
    p2 = Fraction(rng.randint(lo2, hi2), 100) if d > 1 else Fraction(rng.randint(1, 9))
    q1, q2 = rng.randint(2, 6), rng.randint(2, 5)
    spent = q1 * p1 + q2 * p2
    price_code = f"price_1 = {dec(p1)}\nprice_2 = {dec(p2)}"
    if kind == "total":
        t, phr = pick(
            rng,
            [
                "{n} buys {q1} {its} at {m1} each and {q2} {its2} at {m2} each. How much does {n} spend in dollars?",
                "What is the total cost of {q1} {its} costing {m1} each and {q2} {its2} costing {m2} each?",
                "A {it} costs {m1} and a {it2} costs {m2}. How much do {q1} {its} and {q2} {its2} cost together?",
            ],
        )
        steps = [
            ("Write down the prices.", price_code),
            (
                "Add the cost of each kind of item.",
                f"total = {q1} * price_1 + {q2} * price_2",
            ),
        ]
        q = phr.format(
            n=n,
            q1=q1,
            q2=q2,
            its=items,
            its2=items2,
            it=item,
            it2=item2,
            m1=money(p1),
            m2=money(p2),
        )
        return gen(q, dec(spent), steps, "print(round(total, 2))", f"total:{t}")
    if kind == "change":
        paid = (int(spent) // 10 + 1) * 10 + rng.choice([0, 10, 40])
        t, phr = pick(
            rng,
            [
                "{n} buys {q1} {its} at {m1} each and {q2} {its2} at {m2} each, and pays with a ${paid} bill. How much change does {n} get?",
                "{q1} {its} cost {m1} each and {q2} {its2} cost {m2} each. {n} hands over ${paid}. What is the change in dollars?",
                "With ${paid}, {n} buys {q1} {its} ({m1} each) and {q2} {its2} ({m2} each). How much money is left?",
            ],
        )
        steps = [
            ("Write down the prices.", price_code),
            ("Find the total cost.", f"total = {q1} * price_1 + {q2} * price_2"),
            ("Subtract from the amount paid.", f"change = {paid} - total"),
        ]
        q = phr.format(
            n=n,
            q1=q1,
            q2=q2,
            its=items,
            its2=items2,
            m1=money(p1),
            m2=money(p2),
            paid=paid,
        )
        return gen(q, dec(paid - spent), steps, "print(round(change, 2))", f"change:{t}")
    if kind == "how_many":
        budget = rng.randint(10, 60 if d == 2 else 200)
        val = int(budget // p1)
        t, phr = pick(
            rng,
            [
                "{n} has ${b}. Each {it} costs {m1}. What is the largest number of {its} {n} can buy?",
                "How many {its} at {m1} each can be bought with ${b}?",
                "{its_c} cost {m1} each. {n} wants to spend at most ${b}. How many can {n} buy?",
            ],
        )
        cents = int(p1 * 100)
        steps = [
            (
                "Work in cents to keep the arithmetic exact.",
                f"budget_cents = {budget} * 100\nprice_cents = {cents}",
            ),
            (
                "Only whole items can be bought, so use integer division.",
                "count = budget_cents // price_cents",
            ),
        ]
        q = phr.format(n=n, b=budget, it=item, its=items, its_c=items.capitalize(), m1=money(p1))
        return gen(q, fmt(val), steps, "print(count)", f"how_many:{t}")
    # compare: bulk vs single price per item
    k = rng.randint(3, 12)
    single = p1
    pack = Fraction(round(single * k * Fraction(rng.randint(70, 95), 100) * 100), 100)
    saving = single * k - pack
    t, phr = pick(
        rng,
        [
            "One {it} costs {m1}; a pack of {k} costs {mp}. How much does {n} save by buying the pack instead of {k} single {its}?",
            "A store sells {its} for {m1} each or {k} for {mp}. How many dollars are saved with the pack?",
            "{n} needs {k} {its}. Singles cost {m1}; the {k}-pack costs {mp}. What is the saving from the pack?",
        ],
    )
    steps = [
        (
            "Cost of buying singles.",
            f"single = {dec(single)}\nsingles_cost = {k} * single",
        ),
        ("Subtract the pack price.", f"saving = singles_cost - {dec(pack)}"),
    ]
    q = phr.format(it=item, its=items, m1=money(single), k=k, mp=money(pack), n=n)
    return gen(q, dec(saving), steps, "print(round(saving, 2))", f"compare:{t}")
