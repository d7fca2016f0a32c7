"""Story word problems: rates (distance, time, scale, filling, working together,
meeting), ages, and sharing.

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from ._common import COUNTABLES, GeneratedProblem, dec, fmt, gen, names, pick, skill


@skill("word_rates")
def word_rates(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["distance", "scale"]
        if d == 1
        else ["distance", "time", "scale", "fill"]
        if d == 2
        else ["together", "meet", "time", "fill"]
    )
    n, m = names(rng, 2)
    if kind == "distance":
        speed, hours = (
            rng.randint(3, 90),
            Fraction(rng.randint(2, 8), 1)
            if d == 1
            else Fraction(rng.choice([1, *range(3, 17)]), 2),
        )
        vehicle = rng.choice(["car", "cyclist", "train", "boat", "runner"])
        t, phr = pick(
            rng,
            [
                "A {v} travels at {s} km/h for {h} hours. How many kilometers does it go?",
                "{n} rides at a steady {s} km/h for {h} hours. How far does {n} go, in km?",
                "How far does a {v} moving at {s} km per hour travel in {h} hours?",
                "At {s} km/h, what distance is covered in {h} hours?",
            ],
        )
        steps = [
            (
                "Distance is speed times time.",
                f"speed = {speed}\nhours = {dec(hours)}\ndistance = speed * hours",
            )
        ]
        return gen(
            phr.format(v=vehicle, s=speed, h=dec(hours), n=n),
            dec(speed * hours),
            steps,
            "print(distance)",
            f"distance:{t}",
        )
    if kind == "time":
        speed = rng.choice([4, 5, 6, 8, 10, 12, 15, 20, 30, 40, 45, 50, 60, 80])
        dist = (
            speed * rng.randint(1, 12) // rng.choice([1, 2])
            if speed % 2 == 0
            else speed * rng.randint(1, 12)
        )
        val = Fraction(dist, speed)
        t, phr = pick(
            rng,
            [
                "A bus covers {D} km at {s} km/h. How many hours does the trip take?",
                "{n} walks {D} km at {s} km/h. How long does it take, in hours?",
                "How many hours does it take to travel {D} km at {s} km per hour?",
            ],
        )
        steps = [
            (
                "Time is distance divided by speed.",
                f"distance = {dist}\nspeed = {speed}\nhours = distance / speed",
            )
        ]
        return gen(
            phr.format(D=dist, s=speed, n=n),
            dec(val),
            steps,
            "print(hours)",
            f"time:{t}",
        )
    if kind == "scale":
        per, unit_time = (
            rng.randint(2, 40),
            rng.choice(
                [
                    ("minutes", "an hour", 60),
                    ("hours", "a day", 24),
                    ("days", "four weeks", 28),
                ]
            ),
        )
        u, big, k = unit_time
        few = rng.choice([x for x in (2, 3, 4, 5, 6) if k % x == 0])
        made = per * few
        t, phr = pick(
            rng,
            [
                "A machine makes {mk} bottles in {f} {u}. How many bottles does it make in {big}?",
                "{n} types {mk} lines in {f} {u}. At that rate, how many lines in {big}?",
                "A printer prints {mk} pages every {f} {u}. How many pages does it print in {big}?",
                "A pump moves {mk} liters in {f} {u}. How many liters does it move in {big}?",
            ],
        )
        steps = [
            (f"Find the rate per one of the {u}.", f"rate = {made} / {few}"),
            (f"{big.capitalize()} has {k} {u}.", f"total = rate * {k}"),
        ]
        return gen(
            phr.format(mk=made, f=few, u=u, big=big, n=n),
            fmt(per * k),
            steps,
            "print(total)",
            f"scale:{t}",
        )
    if kind == "fill":
        rate, size = rng.randint(2, 25), rng.randint(5, 40)
        vol = rate * size + (rng.randint(0, rate - 1) if d == 3 else 0)
        val = Fraction(vol, rate)
        t, phr = pick(
            rng,
            [
                "A tap fills {r} liters per minute. How many minutes does it take to fill a {V}-liter tank?",
                "A hose delivers {r} L each minute. How long, in minutes, to fill a pool of {V} L?",
                "{n} pours {r} liters a minute into a {V}-liter barrel. How many minutes until it is full?",
            ],
        )
        steps = [
            (
                "Time is volume divided by rate.",
                f"from fractions import Fraction\nminutes = Fraction({vol}, {rate})",
            )
        ]
        return gen(
            phr.format(r=rate, V=vol, n=n),
            fmt(val),
            steps,
            "print(minutes)",
            f"fill:{t}",
        )
    if kind == "together":
        a, b = rng.sample([2, 3, 4, 5, 6, 8, 10, 12, 15, 20], 2)
        val = Fraction(a * b, a + b)
        t, phr = pick(
            rng,
            [
                "Pipe A fills a tank in {a} hours and pipe B in {b} hours. How many hours do they take together?",
                "{n} can paint a fence in {a} hours and {m} in {b} hours. Working together, how many hours do they need?",
                "One machine does a job in {a} hours, another in {b} hours. How long does the job take with both machines working?",
            ],
        )
        steps = [
            (
                "Add the work rates (jobs per hour).",
                f"from fractions import Fraction\nrate = Fraction(1, {a}) + Fraction(1, {b})",
            ),
            (
                "The time for one job is the reciprocal of the combined rate.",
                "hours = 1 / rate",
            ),
        ]
        return gen(
            phr.format(a=a, b=b, n=n, m=m),
            fmt(val),
            steps,
            "print(hours)",
            f"together:{t}",
        )
    s1, s2, h = rng.randint(20, 90), rng.randint(20, 90), rng.randint(1, 6)
    dist = (s1 + s2) * h
    t, phr = pick(
        rng,
        [
            "Two towns are {D} km apart. Two cars leave at the same time toward each other at {a} km/h and {b} km/h. After how many hours do they meet?",
            "{n} and {m} start {D} km apart and drive toward each other at {a} km/h and {b} km/h. When do they meet, in hours?",
            "Two trains {D} km apart head toward each other at {a} and {b} km/h. How many hours until they meet?",
        ],
    )
    steps = [
        (
            "Moving toward each other, the gap closes at the sum of the speeds.",
            f"closing = {s1} + {s2}",
        ),
        ("Time is the distance over the closing speed.", f"hours = {dist} / closing"),
    ]
    return gen(
        phr.format(D=dist, a=s1, b=s2, n=n, m=m),
        fmt(h),
        steps,
        "print(hours)",
        f"meet:{t}",
    )


@skill("word_ages")
def word_ages(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["shift", "older"]
        if d == 1
        else ["sum_diff", "times", "older", "shift"]
        if d == 2
        else ["times_future", "chain", "sum_diff", "times"]
    )
    n, m, o = names(rng, 3)
    if kind == "shift":
        now, fut = rng.randint(5, 60), rng.randint(2, 15)
        past = rng.randint(2, min(6, now - 1))
        t, phr = pick(
            rng,
            [
                "In {f} years {n} will be {a}. How old was {n} {p} years ago?",
                "{n} will turn {a} in {f} years. What was {n}'s age {p} years ago?",
                "{f} years from now {n} will be {a} years old. How old was {n} {p} years ago?",
            ],
        )
        steps = [
            ("Find the age now.", f"now = {now + fut} - {fut}"),
            ("Go back in time.", f"then = now - {past}"),
        ]
        return gen(
            phr.format(f=fut, n=n, a=now + fut, p=past),
            fmt(now - past),
            steps,
            "print(then)",
            f"shift:{t}",
        )
    if kind == "older":
        a, gap = rng.randint(3, 40), rng.randint(2, 30)
        later = rng.randint(1, 10) if d > 1 else 0
        if later:
            opts = [
                "{n} is {a} years old and {m} is {g} years older. How old will {m} be in {l} years?",
                "{m} is {g} years older than {n}, who is {a}. What is {m}'s age {l} years from now?",
                "{n} is {a}. {m} was born {g} years before {n}. How old will {m} be in {l} years?",
            ]
        else:
            opts = [
                "{n} is {a} years old and {m} is {g} years older. How old is {m}?",
                "{m} is {g} years older than {n}, who is {a}. What is {m}'s age?",
                "{n} is {a}. {m} was born {g} years before {n}. How old is {m}?",
            ]
        t, phr = pick(rng, opts)
        steps = [
            (f"{m}'s age now.", f"age_now = {a} + {gap}"),
            ("Add the years still to come.", f"age_later = age_now + {later}"),
        ]
        if not later:
            steps = steps[:1]
        q = phr.format(n=n, m=m, a=a, g=gap, l=later)
        return gen(
            q,
            fmt(a + gap + later),
            steps,
            f"print({'age_later' if later else 'age_now'})",
            f"older{int(bool(later))}:{t}",
        )
    if kind == "sum_diff":
        y, gap = rng.randint(3, 40), rng.randint(2, 25)
        total = 2 * y + gap
        t, phr = pick(
            rng,
            [
                "The ages of {n} and {m} add up to {s}. {n} is {g} years older than {m}. How old is {m}?",
                "{n} is {g} years older than {m}, and together they are {s} years old. What is {m}'s age?",
                "Together {n} and {m} are {s}. If {n} is {g} years older, how old is {m}?",
            ],
        )
        steps = [
            (
                "Let m be the younger age: m + (m + gap) = sum.",
                f"total, gap = {total}, {gap}",
            ),
            ("Solve for m.", "younger = (total - gap) / 2"),
        ]
        return gen(
            phr.format(n=n, m=m, s=total, g=gap),
            fmt(y),
            steps,
            "print(younger)",
            f"sum_diff:{t}",
        )
    if kind == "times":
        child, k = rng.randint(2, 15), rng.randint(2, 5)
        t, phr = pick(
            rng,
            [
                "{n} is {k} times as old as {m}. The sum of their ages is {s}. How old is {m}?",
                "A parent is {k} times as old as a child, and together they are {s} years old. How old is the child?",
                "{m}'s grandmother is {k} times {m}'s age. Their ages add up to {s}. What is {m}'s age?",
            ],
        )
        steps = [
            (
                "The sum is the child's age times (k + 1).",
                f"total = {child * (k + 1)}\nk = {k}",
            ),
            ("Divide.", "child = total / (k + 1)"),
        ]
        return gen(
            phr.format(n=n, m=m, k=k, s=child * (k + 1)),
            fmt(child),
            steps,
            "print(child)",
            f"times:{t}",
        )
    if kind == "times_future":
        # parent = k * child now; in y years parent = j * child  ->  child = y (j - 1) / (k - j)
        while True:
            k, j, y = rng.randint(3, 6), rng.randint(2, 3), rng.randint(2, 20)
            if k > j and (y * (j - 1)) % (k - j) == 0:
                child = y * (j - 1) // (k - j)
                if 1 <= child <= 20:
                    break
        t, phr = pick(
            rng,
            [
                "{n} is {k} times as old as {m}. In {y} years {n} will be {j} times as old as {m}. How old is {m} now?",
                "A mother is {k} times her son's age. In {y} years she will be {j} times his age. How old is the son now?",
                "Right now {n}'s age is {k} times {m}'s. {y} years from now it will be {j} times {m}'s age. Find {m}'s age now.",
            ],
        )
        steps = [
            (
                "Let c be the younger age: k*c + y = j*(c + y).",
                f"k, j, y = {k}, {j}, {y}",
            ),
            ("So (k - j) * c = (j - 1) * y.", "child = (j - 1) * y / (k - j)"),
        ]
        return gen(
            phr.format(n=n, m=m, k=k, j=j, y=y),
            fmt(child),
            steps,
            "print(child)",
            f"times_future:{t}",
        )
    c, k, gap = rng.randint(2, 12), rng.randint(2, 4), rng.randint(1, 10)
    b = k * c
    a = b + gap
    t, phr = pick(
        rng,
        [
            "{o} is {c}. {m} is {k} times as old as {o}, and {n} is {g} years older than {m}. What is the sum of their three ages?",
            "{n} is {g} years older than {m}; {m} is {k} times as old as {o}, who is {c}. What do their ages add up to?",
            "If {o} is {c} years old, {m} is {k} times {o}'s age and {n} is {g} years older than {m}, what is the total of the three ages?",
        ],
    )
    steps = [
        (f"{o}'s age.", f"youngest = {c}"),
        (f"{m} is {k} times as old.", f"middle = {k} * youngest"),
        (f"{n} is {gap} years older than {m}.", f"oldest = middle + {gap}"),
        ("Add the three ages.", "total = youngest + middle + oldest"),
    ]
    return gen(
        phr.format(n=n, m=m, o=o, c=c, k=k, g=gap),
        fmt(a + b + c),
        steps,
        "print(total)",
        f"chain:{t}",
    )


@skill("word_sharing")
def word_sharing(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["equal", "ratio"]
        if d == 1
        else ["ratio", "twice", "equal", "leftover"]
        if d == 2
        else ["ratio", "fractions_left", "twice", "leftover"]
    )
    n, m, o = names(rng, 3)
    thing = rng.choice(COUNTABLES)
    if kind == "equal":
        k, each = rng.randint(2, 12), rng.randint(2, 25 * d)
        t, phr = pick(
            rng,
            [
                "{T} {t} are shared equally among {k} children. How many does each child get?",
                "{n} divides {T} {t} equally into {k} bags. How many {t} are in each bag?",
                "If {k} friends share {T} {t} equally, how many {t} does each friend get?",
                "{T} {t} are packed equally into {k} boxes. How many go in each box?",
            ],
        )
        steps = [("Divide the total by the number of shares.", f"each = {k * each} / {k}")]
        return gen(
            phr.format(T=k * each, t=thing, k=k, n=n),
            fmt(each),
            steps,
            "print(each)",
            f"equal:{t}",
        )
    if kind == "ratio":
        p, q = rng.randint(1, 7), rng.randint(1, 7)
        while p == q or math.gcd(p, q) > 1:
            q = rng.randint(1, 7)
        unit = rng.randint(2, 30)
        total = (p + q) * unit
        money_ = rng.random() < 0.5
        t, phr = pick(
            rng,
            [
                "{n} and {m} share ${T} in the ratio {p}:{q}. How much does {m} get?",
                "${T} is split between {n} and {m} in the ratio {p} to {q}. What is {m}'s share in dollars?",
                "{n} and {m} divide {T} {t} in the ratio {p}:{q}. How many {t} does {m} get?",
                "Split {T} in the ratio {p}:{q}. What is the second part?",
            ]
            if money_
            else [
                "{n} and {m} divide {T} {t} in the ratio {p}:{q}. How many {t} does {m} get?",
                "{T} {t} are shared by {n} and {m} in the ratio {p} to {q}. How many does {m} receive?",
                "Split {T} in the ratio {p}:{q}. What is the second part?",
                "The ratio of {n}'s {t} to {m}'s {t} is {p}:{q} and they have {T} together. How many does {m} have?",
            ],
        )
        steps = [
            ("Count the parts of the ratio.", f"parts = {p} + {q}"),
            (
                "One part is the total divided by the number of parts.",
                f"one_part = {total} / parts",
            ),
            ("The second share has this many parts.", f"share = {q} * one_part"),
        ]
        return gen(
            phr.format(n=n, m=m, T=total, p=p, q=q, t=thing),
            fmt(q * unit),
            steps,
            "print(share)",
            f"ratio{int(money_)}:{t}",
        )
    if kind == "twice":
        k, small = rng.randint(2, 5), rng.randint(2, 40)
        total = small * (k + 1)
        t, phr = pick(
            rng,
            [
                "{n} has {k} times as many {t} as {m}. Together they have {T}. How many {t} does {n} have?",
                "{T} {t} are split so that {n} gets {k} times as many as {m}. How many does {n} get?",
                "Together {n} and {m} own {T} {t}; {n} owns {k} times as many as {m}. How many {t} does {n} own?",
            ],
        )
        steps = [
            (
                "The total is (k + 1) equal parts, one for the smaller share.",
                f"smaller = {total} / ({k} + 1)",
            ),
            ("The larger share is k times that.", f"larger = {k} * smaller"),
        ]
        return gen(
            phr.format(n=n, m=m, k=k, t=thing, T=total),
            fmt(k * small),
            steps,
            "print(larger)",
            f"twice:{t}",
        )
    if kind == "leftover":
        k, each = rng.randint(3, 9), rng.randint(2, 20)
        left = rng.randint(1, k - 1)
        total = k * each + left
        t, phr = pick(
            rng,
            [
                "{n} shares {T} {t} equally among {k} friends and keeps the ones left over. How many does {n} keep?",
                "{T} {t} are dealt out equally to {k} players; the rest stay in the pile. How many stay in the pile?",
                "When {T} {t} are shared equally among {k} kids, how many are left over?",
            ],
        )
        steps = [("What cannot be shared equally is the remainder.", f"left = {total} % {k}")]
        return gen(
            phr.format(n=n, T=total, t=thing, k=k),
            fmt(left),
            steps,
            "print(left)",
            f"leftover:{t}",
        )
    # fractions_left: give away a/b, then c/d of the rest; R remain -> start?
    a_, b_ = rng.choice([(1, 2), (1, 3), (2, 3), (1, 4), (3, 4), (1, 5), (2, 5)])
    c_, d_ = rng.choice([(1, 2), (1, 3), (1, 4), (2, 3), (1, 5)])
    start = b_ * d_ * rng.randint(1, 10)
    rest = start - start * a_ // b_
    remain = rest - rest * c_ // d_
    t, phr = pick(
        rng,
        [
            "{n} gave away {f1} of the {t} and then {f2} of what was left. {R} {t} remain. How many {t} were there at the start?",
            "A box of {t} lost {f1} of them on Monday and {f2} of the rest on Tuesday. Now {R} are left. How many were there at first?",
            "After using {f1} of the {t} and then {f2} of the remainder, {n} has {R} left. How many {t} did {n} start with?",
        ],
    )
    steps = [
        (
            "Write the fractions that are kept at each stage.",
            f"from fractions import Fraction\nkept_1 = 1 - Fraction({a_}, {b_})\nkept_2 = 1 - Fraction({c_}, {d_})",
        ),
        (
            "What remains is start * kept_1 * kept_2; undo it.",
            f"start = {remain} / (kept_1 * kept_2)",
        ),
    ]
    return gen(
        phr.format(n=n, f1=f"{a_}/{b_}", f2=f"{c_}/{d_}", R=remain, t=thing),
        fmt(start),
        steps,
        "print(start)",
        f"fractions_left:{t}",
    )
