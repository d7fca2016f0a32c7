"""The synthetic school-math skills: one small generator per skill, in the `SKILLS` registry.

Each generator is `fn(rng, difficulty) -> GeneratedProblem` with difficulty 1 (one step, small
numbers), 2 (two or three steps, larger numbers) or 3 (multi-step, negatives, fractions). It
writes the question (several phrasings per skill and varied names, objects and units, after
Phi-4's diversity principle), computes the answer itself with exact arithmetic (ints,
`Fraction`, `Decimal`), and writes a reference solution as code steps: (reasoning, code) pairs
plus a final line that prints the answer. The code is a second, independent computation of the
answer: `edgestar.train.problems` runs it and keeps the problem only when the printed output is
`equivalent` to the answer (Phi-4's "answers must verify").

Answer formats, everywhere: integers as digits ("-12"), non-integers as reduced fractions
("7/12") or, when the question is about decimals, money or measures, as terminating decimals
without trailing zeros ("3.75"); names of days as words; times of day as 24-hour "HH:MM".

`template` names the phrasing used ("sum:2"), so tests and reports can measure diversity.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

Step = tuple[str, str]


@dataclass(frozen=True)
class GeneratedProblem:
    question: str
    answer: str
    steps: tuple[Step, ...]
    """(reasoning, code) pairs; the code of all steps runs in order, in one namespace."""
    final_code: str
    """Prints the answer (the last code step of the rstar solution)."""
    template: str = ""


SkillFn = Callable[[random.Random, int], GeneratedProblem]
SKILLS: dict[str, SkillFn] = {}
DIFFICULTIES = (1, 2, 3)


def skill(name: str) -> Callable[[SkillFn], SkillFn]:
    def register(fn: SkillFn) -> SkillFn:
        SKILLS[name] = fn
        return fn

    return register


# ----------------------------------------------------------------------------- helpers

NAMES = (
    "Amara", "Ben", "Chen", "Diego", "Elena", "Farah", "Gabriel", "Hana", "Ivan", "Jamal",
    "Keiko", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Samir", "Tara",
    "Uma", "Victor", "Wei", "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dev",
    "Emma", "Femi", "Grace", "Hugo", "Ines", "Jonas", "Kwame", "Lucia", "Mateo", "Nadia",
)  # fmt: skip

# (singular, plural, low price in cents, high price in cents)
ITEMS = (
    ("pen", "pens", 50, 300), ("notebook", "notebooks", 150, 600), ("apple", "apples", 30, 120),
    ("muffin", "muffins", 120, 450), ("ticket", "tickets", 400, 2500), ("candle", "candles", 200, 900),
    ("marker", "markers", 80, 350), ("bottle of juice", "bottles of juice", 90, 400),
    ("sticker sheet", "sticker sheets", 40, 250), ("bag of rice", "bags of rice", 300, 1500),
    ("flower pot", "flower pots", 250, 1200), ("comic book", "comic books", 300, 1400),
    ("packet of seeds", "packets of seeds", 60, 400), ("puzzle", "puzzles", 500, 2500),
    ("cupcake", "cupcakes", 100, 400), ("battery", "batteries", 70, 300),
)  # fmt: skip

COUNTABLES = (
    "marbles", "stamps", "shells", "stickers", "cards", "beads", "coins", "books", "pencils",
    "cookies", "balloons", "plants", "photos", "buttons", "toy cars", "oranges",
)  # fmt: skip

PLACES = ("the library", "the market", "school", "the park", "the museum", "the station")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def pick(rng: random.Random, options: list[str] | tuple[str, ...]) -> tuple[int, str]:
    i = rng.randrange(len(options))
    return i, options[i]


def names(rng: random.Random, k: int = 1) -> list[str]:
    return rng.sample(NAMES, k)


def nonzero(rng: random.Random, lo: int, hi: int) -> int:
    while True:
        v = rng.randint(lo, hi)
        if v:
            return v


def fmt(x: int | Fraction | Decimal) -> str:
    """The canonical answer string of an exact value."""
    if isinstance(x, bool):
        raise TypeError("bool is not an answer")
    if isinstance(x, int):
        return str(x)
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    if isinstance(x, Decimal):
        s = format(x.normalize(), "f")
        return "0" if s in ("-0", "") else s
    raise TypeError(f"not an exact value: {x!r}")


def dec(x: Fraction | int, max_places: int = 6) -> str:
    """A terminating value as a decimal string ("3.75", "12"); error if it does not terminate."""
    x = Fraction(x)
    for places in range(max_places + 1):
        scaled = x * 10**places
        if scaled.denominator == 1:
            return fmt(Decimal(scaled.numerator).scaleb(-places))
    raise ValueError(f"{x} has no decimal form with <= {max_places} places")


def terminates(x: Fraction | int, max_places: int) -> bool:
    return (Fraction(x) * 10**max_places).denominator == 1


def show(x: int | Fraction) -> str:
    """A number as written in a question: negatives in parentheses."""
    s = fmt(x) if isinstance(x, (int, Fraction)) else str(x)
    return f"({s})" if s.startswith("-") else s


def money(x: Fraction | Decimal | int) -> str:
    v = Fraction(x)
    return f"${v.numerator // v.denominator}" if v.denominator == 1 else f"${float(v):.2f}"


def pyfrac(x: Fraction) -> str:
    """Python source for an exact fraction literal."""
    return str(x.numerator) if x.denominator == 1 else f"Fraction({x.numerator}, {x.denominator})"


def gen(q: str, ans: str, steps: list[Step], final: str, template: str) -> GeneratedProblem:
    return GeneratedProblem(q, ans, tuple(steps), final, template)


# ----------------------------------------------------------------------------- arithmetic


@skill("integer_arithmetic")
def integer_arithmetic(rng: random.Random, d: int) -> GeneratedProblem:
    if d == 3 and rng.random() < 0.6:  # three terms with negatives
        a, b, c = nonzero(rng, -300, 300), nonzero(rng, -300, 300), rng.randint(2, 60)
        o1, o2 = rng.choice("+-"), rng.choice("+-*")
        expr = f"{show(a)} {o1} {show(b)} {o2} {c}"
        if o2 == "*":
            val = a + b * c if o1 == "+" else a - b * c
            steps = [
                ("Multiplication comes first.", f"product = {b} * {c}"),
                ("Then combine with the first number.", f"result = {a} {o1} product"),
            ]
        else:
            first = a + b if o1 == "+" else a - b
            val = first + c if o2 == "+" else first - c
            steps = [
                ("Work from left to right: the first two numbers.", f"first = {a} {o1} {show(b)}"),
                ("Then the third number.", f"result = first {o2} {c}"),
            ]
        t, phr = pick(
            rng,
            [
                "Evaluate {e}.", "What is the value of {e}?", "Calculate {e}.", "Work out {e}.",
                "Find the value of the expression {e}.",
            ],
        )  # fmt: skip
        return gen(phr.format(e=expr), fmt(val), steps, "print(result)", f"chain:{t}")
    op = rng.choice("+-" if d == 1 else "+-*/")
    hi = {1: 99, 2: 999, 3: 9999}[d]
    if op in "+-":
        a, b = rng.randint(10, hi), rng.randint(10, hi)
        if op == "-" and d == 1 and b > a:
            a, b = b, a
    elif op == "*":
        a, b = rng.randint(11, 99 if d == 2 else 999), rng.randint(3, 99)
    else:
        b = rng.randint(2, 12 if d == 2 else 48)
        a = b * rng.randint(3, 99 if d == 2 else 999)
    val = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    thing = rng.choice(COUNTABLES)
    name = names(rng)[0]
    phrasings = {
        "+": [
            "What is {a} + {b}?", "Find the sum of {a} and {b}.", "Add {a} and {b}.",
            "{n} had {a} {t} and then got {b} more. How many {t} does {n} have now?",
            "A shop sold {a} {t} on Monday and {b} on Tuesday. How many {t} did it sell in all?",
        ],
        "-": [
            "What is {a} - {b}?", "Subtract {b} from {a}.", "Find the difference {a} minus {b}.",
            "What number is {b} less than {a}?",
            "{n} had {a} {t} and gave away {b}. How many {t} are left?",
        ],
        "*": [
            "What is {a} × {b}?", "Find the product of {a} and {b}.", "Multiply {a} by {b}.",
            "There are {a} boxes with {b} {t} in each. How many {t} are there altogether?",
            "Compute {a} * {b}.",
        ],
        "/": [
            "What is {a} ÷ {b}?", "Divide {a} by {b}.", "Find the quotient when {a} is divided by {b}.",
            "{n} shares {a} {t} equally among {b} friends. How many {t} does each friend get?",
            "Compute {a} / {b}.",
        ],
    }  # fmt: skip
    opts = phrasings[op]
    if op == "-" and a < b:
        opts = opts[:4]  # no story where more is given away than there was
    t, phr = pick(rng, opts)
    q = phr.format(a=a, b=b, t=thing, n=name)
    pyop = "//" if op == "/" else op
    why = {
        "+": "Add the two numbers.",
        "-": "Subtract the second number from the first.",
        "*": "Multiply the two numbers.",
        "/": "Divide; the division is exact, so integer division gives the quotient.",
    }[op]
    name_of = {"+": "total", "-": "difference", "*": "product", "/": "quotient"}[op]
    steps = [("Write down the numbers.", f"a = {a}\nb = {b}"), (why, f"{name_of} = a {pyop} b")]
    return gen(q, fmt(val), steps, f"print({name_of})", f"{op}:{t}")


@skill("decimal_arithmetic")
def decimal_arithmetic(rng: random.Random, d: int) -> GeneratedProblem:
    places = 1 if d == 1 else 2

    def rnd(lo: int, hi: int, p: int = places) -> Decimal:
        return Decimal(rng.randint(lo * 10**p, hi * 10**p)).scaleb(-p)

    name = names(rng)[0]
    kind = rng.choice(
        ["add", "sub"] if d == 1 else ["add", "sub", "mul"] if d == 2 else ["mul", "div", "mix"]
    )
    if kind in ("add", "sub"):
        a, b = rnd(1, 60), rnd(1, 60)
        if kind == "sub" and b > a:
            a, b = b, a
        val = a + b if kind == "add" else a - b
        sym = "+" if kind == "add" else "-"
        opts = {
            "add": [
                "What is {a} + {b}?", "Add {a} and {b}.",
                "{n} walked {a} km in the morning and {b} km in the afternoon. How many kilometers did {n} walk in total?",
                "A parcel weighs {a} kg and a second one weighs {b} kg. What is their total weight in kilograms?",
                "{n} spent ${am} on lunch and ${bm} on a book. How many dollars did {n} spend?",
            ],
            "sub": [
                "What is {a} - {b}?", "Subtract {b} from {a}.",
                "A bottle held {a} liters of water and {n} poured out {b} liters. How many liters are left?",
                "A plank is {a} m long. {n} saws off {b} m. How long is the rest, in meters?",
                "{n} had ${am} and paid ${bm} for a ticket. How many dollars are left?",
            ],
        }[kind]  # fmt: skip
        t, phr = pick(rng, opts)
        steps = [
            ("Write down the two decimal numbers.", f"a = {a}\nb = {b}"),
            (f"{'Add' if kind == 'add' else 'Subtract'} them.", f"result = a {sym} b"),
        ]
        final = f"print(round(result, {places}))"
        q = phr.format(a=fmt(a), b=fmt(b), am=f"{a:.2f}", bm=f"{b:.2f}", n=name)
        return gen(q, fmt(val), steps, final, f"{kind}:{t}")
    if kind == "mul":
        a = rnd(1, 30, places if d == 2 else 1)
        b = Decimal(rng.randint(2, 12)) if d == 2 else rnd(1, 9, 1)
        val = a * b
        p = places if d == 2 else 2
        opts = [
            "What is {a} × {b}?", "Multiply {a} by {b}.", "Find the product of {a} and {b}.",
            "One bag of flour weighs {a} kg. How many kilograms do {b} such bags weigh?",
            "Fabric costs ${am} per meter. How much do {b} meters cost, in dollars?",
        ]  # fmt: skip
        t, phr = pick(rng, opts)
        steps = [
            ("Write down the numbers.", f"a = {a}\nb = {b}"),
            ("Multiply them.", "result = a * b"),
        ]
        q = phr.format(a=fmt(a), b=fmt(b), am=f"{a:.2f}")
        return gen(q, fmt(val), steps, f"print(round(result, {p}))", f"mul:{t}")
    if kind == "div":
        n = rng.choice([2, 4, 5, 8, 10, 20, 25])
        total = Decimal(rng.randint(10, 900)).scaleb(-1)
        opts = [
            "What is {a} ÷ {b}?", "Divide {a} by {b}.",
            "A rope {a} m long is cut into {b} equal pieces. How long is each piece, in meters?",
            "{n} and friends split a bill of ${am} equally among {b} people. How many dollars does each person pay?",
            "{b} identical boxes weigh {a} kg together. How much does one box weigh in kilograms?",
        ]  # fmt: skip
        if not terminates(Fraction(total) / n, 2):
            del opts[3]  # no bill of $12.425 a head
        t, phr = pick(rng, opts)
        steps = [
            (
                "Write down the total and the number of equal parts.",
                f"total = {total}\nparts = {n}",
            ),
            ("Divide the total by the number of parts.", "each = total / parts"),
        ]
        q = phr.format(a=fmt(total), am=f"{total:.2f}", b=n, n=name)
        return gen(q, dec(Fraction(total) / n), steps, "print(round(each, 4))", f"div:{t}")
    # mix: a + b * c
    a, b, c = rnd(1, 20, 1), rnd(1, 9, 1), Decimal(rng.randint(2, 9))
    val = a + b * c
    t, phr = pick(
        rng,
        [
            "Evaluate {a} + {b} × {c}.", "What is {a} + {b} * {c}?", "Compute {a} + {c} × {b}.",
            "{n} has {a} liters of paint and buys {c} cans holding {b} liters each. How many liters of paint does {n} have now?",
        ],
    )  # fmt: skip
    steps = [
        ("Multiplication comes before addition.", f"product = {b} * {c}"),
        ("Add the first number.", f"result = {a} + product"),
    ]
    q = phr.format(a=fmt(a), b=fmt(b), c=c, n=name)
    return gen(q, fmt(val), steps, "print(round(result, 2))", f"mix:{t}")


def _frac(rng: random.Random, dens: list[int], proper: bool = True) -> Fraction:
    den = rng.choice(dens)
    num = rng.randint(1, den - 1) if proper else rng.randint(1, 2 * den)
    return Fraction(num, den) if math.gcd(num, den) == 1 else _frac(rng, dens, proper)


def _fs(x: Fraction) -> str:
    return f"{x.numerator}/{x.denominator}"


@skill("fraction_arithmetic")
def fraction_arithmetic(rng: random.Random, d: int) -> GeneratedProblem:
    n1, n2 = names(rng, 2)
    if d == 1:  # same denominator, shown unreduced as drawn ("2/8 + 3/8")
        den = rng.choice([3, 4, 5, 6, 7, 8, 9, 10, 12])
        nx, ny = rng.randint(1, den - 1), rng.randint(1, den - 1)
        op = rng.choice("+-")
        if op == "-" and ny > nx:
            nx, ny = ny, nx
        x, y = Fraction(nx, den), Fraction(ny, den)
        xs, ys, xc, yc = f"{nx}/{den}", f"{ny}/{den}", f"({nx}, {den})", f"({ny}, {den})"
    else:
        dens = [2, 3, 4, 5, 6, 8, 9, 10, 12] if d == 2 else [3, 4, 5, 6, 7, 8, 9, 10, 12, 15]
        x, y = _frac(rng, dens), _frac(rng, dens)
        while x.denominator == y.denominator and d >= 2:
            y = _frac(rng, dens)
        op = rng.choice("+-*" if d == 2 else "*/+")
        if op == "-" and y > x:
            x, y = y, x
        xs, ys = _fs(x), _fs(y)
        xc, yc = f"({x.numerator}, {x.denominator})", f"({y.numerator}, {y.denominator})"
    if d == 3 and rng.random() < 0.5:  # three terms: x + y * z
        z = _frac(rng, [2, 3, 4, 5, 6])
        val = x + y * z
        t, phr = pick(
            rng,
            [
                "Compute {x} + {y} × {z}. Give the answer as a fraction in lowest terms.",
                "What is {x} + {y} * {z}?", "Evaluate {x} + {y} × {z} as a reduced fraction.",
                "Find the value of {x} + ({y})({z}).",
            ],
        )  # fmt: skip
        steps = [
            ("Use exact fractions.", f"from fractions import Fraction\nx = Fraction{xc}\ny = Fraction{yc}\nz = Fraction({z.numerator}, {z.denominator})"),
            ("Multiplication comes first.", "product = y * z"),
            ("Add the first fraction.", "result = x + product"),
        ]  # fmt: skip
        return gen(phr.format(x=xs, y=ys, z=_fs(z)), fmt(val), steps, "print(result)", f"three:{t}")
    val = {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]
    opts = {
        "+": [
            "What is {x} + {y}?", "Add {x} and {y}. Give the answer in lowest terms.",
            "Find the sum of {x} and {y} as a fraction in lowest terms.",
            "{a} ate {x} of a pizza and {b} ate {y} of another pizza of the same size. How many pizzas did they eat together, as a fraction?",
            "A recipe needs {x} cup of sugar for the dough and {y} cup for the icing. How many cups of sugar is that in total?",
        ],
        "-": [
            "What is {x} - {y}?", "Subtract {y} from {x}. Write the result in lowest terms.",
            "Find the difference between {x} and {y}.",
            "A jug holds {x} liter of milk. {a} drinks {y} liter. How many liters are left?",
            "{a} had {x} of a tank of fuel and used {y} of a tank. What fraction of a tank is left?",
        ],
        "*": [
            "What is {x} × {y}?", "Multiply {x} by {y}. Give the answer in lowest terms.",
            "Find the product of {x} and {y}.", "What is {x} of {y}?",
            "{a} has {y} of a cake and eats {x} of that piece. What fraction of the whole cake does {a} eat?",
        ],
        "/": [
            "What is {x} ÷ {y}?", "Divide {x} by {y}. Give the answer as a fraction in lowest terms.",
            "Find the quotient of {x} and {y}.", "How many times does {y} fit into {x}?",
            "A ribbon {x} m long is cut into pieces {y} m long. How many pieces is that (a fraction of a piece counts)?",
        ],
    }[op]  # fmt: skip
    t, phr = pick(rng, opts)
    name = {"+": "total", "-": "difference", "*": "product", "/": "quotient"}[op]
    steps = [
        ("Write the fractions exactly with the fractions module.", f"from fractions import Fraction\nx = Fraction{xc}\ny = Fraction{yc}"),
        ({"+": "Add them; Fraction finds the common denominator and reduces.", "-": "Subtract the second from the first.", "*": "Multiply numerators and denominators.", "/": "Divide by multiplying by the reciprocal."}[op], f"{name} = x {op} y"),
    ]  # fmt: skip
    q = phr.format(x=xs, y=ys, a=n1, b=n2)
    return gen(q, fmt(val), steps, f"print({name})", f"{op}:{t}")


# order of operations: random expression trees, evaluated step by step in the usual order

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "^": 3}


@dataclass
class _Node:
    op: str  # "" for a number
    value: int
    left: _Node | None = None
    right: _Node | None = None


def _tree(rng: random.Random, depth: int, d: int) -> _Node:
    if depth == 0 or (depth == 1 and rng.random() < 0.3):
        if d == 3 and rng.random() < 0.15:
            b = rng.randint(2, 9)
            return _Node("^", b * b, _Node("", b), _Node("", 2))
        return _Node("", rng.randint(1, 20 if d < 3 else 50))
    op = rng.choice("+-*/" if d > 1 else "+-*")
    left = _tree(rng, depth - 1, d)
    if op == "/":
        divs = [k for k in range(2, 13) if left.value and left.value % k == 0]
        if divs:
            k = rng.choice(divs)
            return _Node("/", left.value // k, left, _Node("", k))
        op = rng.choice("+*")
    right = _tree(rng, depth - 1 if rng.random() < 0.5 else 0, d)
    if op == "*" and abs(left.value * right.value) > 5000:
        op = "+"
    val = {"+": left.value + right.value, "-": left.value - right.value}.get(
        op, left.value * right.value
    )
    return _Node(op, val, left, right)


def _render(n: _Node, style: str) -> str:
    if not n.op:
        return show(n.value)
    assert n.left is not None and n.right is not None
    if n.op == "^":
        return f"{n.left.value}^2" if style != "py" else f"{n.left.value} ** 2"

    def wrap(child: _Node, right: bool) -> str:
        s = _render(child, style)
        if child.op and child.op != "^":
            pc, pn = _PREC[child.op], _PREC[n.op]
            if pc < pn or (right and pc == pn and n.op in "-/"):
                return f"({s})"
        return s

    sym = {"math": {"*": "×", "/": "÷"}, "ascii": {}, "py": {"/": "//"}}[style].get(n.op, n.op)
    return f"{wrap(n.left, False)} {sym} {wrap(n.right, True)}"


def _steps_of(n: _Node, out: list[Step], counter: list[int]) -> str:
    """Post-order: the code names of each intermediate value (literals stay literals)."""
    if not n.op:
        return str(n.value)
    assert n.left is not None and n.right is not None
    if n.op == "^":
        counter[0] += 1
        var = f"square_{counter[0]}"
        out.append((f"Powers first: square {n.left.value}.", f"{var} = {n.left.value} ** 2"))
        return var
    lhs = _steps_of(n.left, out, counter)
    rhs = _steps_of(n.right, out, counter)
    counter[0] += 1
    word = {"+": "sum", "-": "difference", "*": "product", "/": "quotient"}[n.op]
    var = f"{word}_{counter[0]}"
    why = {
        "+": "Add", "-": "Subtract", "*": "Multiply", "/": "Divide (it divides exactly)",
    }[n.op]  # fmt: skip
    code_op = "//" if n.op == "/" else n.op
    out.append((f"{why}: {_render(n, 'math')}.", f"{var} = {lhs} {code_op} {rhs}"))
    return var


@skill("order_of_operations")
def order_of_operations(rng: random.Random, d: int) -> GeneratedProblem:
    for _ in range(100):
        root = _tree(rng, d + 1, d)
        text = _render(root, "ascii")
        n_ops = text.count(" ") // 2
        mixed = "(" in text or (any(o in text for o in "*/^") and any(o in text for o in "+-"))
        if (
            root.op not in ("", "^")
            and d <= n_ops <= 2 * d + 1
            and mixed
            and abs(root.value) < 10**6
        ):
            break
    else:
        raise RuntimeError("no expression of the wanted size")
    style = rng.choice(["math", "ascii"])
    expr = _render(root, style)
    t, phr = pick(
        rng,
        [
            "Evaluate {e}.", "What is {e}?", "Using the order of operations, compute {e}.",
            "Find the value of {e}.", "Simplify {e}.", "Calculate {e}, remembering the order of operations.",
        ],
    )  # fmt: skip
    steps: list[Step] = []
    var = _steps_of(root, steps, [0])
    return gen(phr.format(e=expr), fmt(root.value), steps, f"print({var})", f"{style}:{t}")


# ----------------------------------------------------------------------------- algebra


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


# ----------------------------------------------------------------------------- number theory


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
        steps = [("The remainder is what the modulo operator gives.", f"remainder = {a} % {m}")]
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
        phr.format(b=b, e=e, m=m), fmt(pow(b, e, m)), steps, "print(remainder)", f"power:{t}"
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


# ----------------------------------------------------------------------------- numbers


_PLACE = {10: "ten", 100: "hundred", 1000: "thousand", 10000: "ten thousand"}
_PLACE_DIGIT = {1: "ones", 10: "tens", 100: "hundreds", 1000: "thousands", 10000: "ten thousands"}


@skill("rounding_place_value")
def rounding_place_value(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["round_int", "digit"] if d == 1 else ["round_int", "round_dec", "digit", "value"]
    )
    if kind == "round_int":
        unit = rng.choice([10, 100] if d == 1 else [10, 100, 1000, 10000])
        n = rng.randint(unit + 1, unit * 99)
        val = int((Decimal(n) / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * unit
        t, phr = pick(
            rng,
            [
                "Round {n} to the nearest {p}.", "What is {n} rounded to the nearest {p}?",
                "A town has {n} people. About how many is that, to the nearest {p}?",
                "Round {n:,} to the nearest {p}.",
            ],
        )  # fmt: skip
        steps = [
            (
                "Round half up: add half a unit, then drop the remainder.",
                f"n = {n}\nunit = {unit}\nrounded = (n + unit // 2) // unit * unit",
            )
        ]
        return gen(phr.format(n=n, p=_PLACE[unit]), fmt(val), steps, "print(rounded)", f"int:{t}")
    if kind == "round_dec":
        places = rng.randint(1, 3)
        x = Decimal(rng.randint(1000, 999999)).scaleb(-(places + rng.randint(1, 2)))
        val = x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        word = {1: "tenth", 2: "hundredth", 3: "thousandth"}[places]
        t, phr = pick(
            rng,
            [
                "Round {x} to {p} decimal places.", "Round {x} to the nearest {w}.",
                "What is {x} rounded to {p} decimal places?", "Give {x} correct to {p} decimal places.",
            ],
        )  # fmt: skip
        steps = [
            (
                "Round half up with the decimal module (exact, unlike float rounding).",
                f"from decimal import Decimal, ROUND_HALF_UP\nx = Decimal('{x}')\nrounded = x.quantize(Decimal('{Decimal(1).scaleb(-places)}'), rounding=ROUND_HALF_UP)",
            )
        ]
        return gen(phr.format(x=x, p=places, w=word), fmt(val), steps, "print(rounded)", f"dec:{t}")
    n = rng.randint(1000, 99999 if d > 1 else 9999)
    place = rng.choice([p for p in _PLACE_DIGIT if p <= n])
    digit = n // place % 10
    if kind == "digit":
        t, phr = pick(
            rng,
            [
                "What is the digit in the {p} place of {n}?", "Which digit is in the {p} place in {n}?",
                "In the number {n}, what digit is in the {p} place?",
            ],
        )  # fmt: skip
        steps = [
            (
                "Shift the number right by the place value and take the last digit.",
                f"n = {n}\ndigit = n // {place} % 10",
            )
        ]
        return gen(
            phr.format(p=_PLACE_DIGIT[place], n=n), fmt(digit), steps, "print(digit)", f"digit:{t}"
        )
    while digit == 0:
        place = rng.choice([p for p in _PLACE_DIGIT if p <= n])
        digit = n // place % 10
    t, phr = pick(
        rng,
        [
            "What is the value of the digit in the {p} place of {n}?",
            "In {n}, what is the digit {dg} in the {p} place worth?",
            "What value does the {p} digit of {n} stand for?",
        ],
    )  # fmt: skip
    steps = [
        ("Find the digit in that place.", f"n = {n}\ndigit = n // {place} % 10"),
        ("Its value is the digit times the place value.", f"value = digit * {place}"),
    ]
    return gen(
        phr.format(p=_PLACE_DIGIT[place], n=n, dg=digit),
        fmt(digit * place),
        steps,
        "print(value)",
        f"value:{t}",
    )


@skill("comparison")
def comparison(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["int", "dec"]
        if d == 1
        else ["dec", "frac", "frac_dec"]
        if d == 2
        else ["frac", "frac_dec", "power", "diff"]
    )
    bigger = rng.random() < 0.6
    word = "larger" if bigger else "smaller"
    if kind == "int":
        a, b = rng.sample(range(100, 10000), 2)
        sa, sb, code_a, code_b, va, vb = str(a), str(b), str(a), str(b), Fraction(a), Fraction(b)
    elif kind == "dec":
        a = Decimal(rng.randint(1, 999)).scaleb(-rng.randint(1, 3))
        b = Decimal(rng.randint(1, 999)).scaleb(-rng.randint(1, 3))
        while a == b:
            b = Decimal(rng.randint(1, 999)).scaleb(-rng.randint(1, 3))
        sa, sb, code_a, code_b, va, vb = fmt(a), fmt(b), fmt(a), fmt(b), Fraction(a), Fraction(b)
    elif kind in ("frac", "frac_dec", "diff"):
        x = _frac(rng, [3, 4, 5, 6, 7, 8, 9, 11, 12])
        if kind == "frac_dec":
            y = Fraction(Decimal(rng.randint(1, 99)).scaleb(-2))
            while y == x:
                y = Fraction(Decimal(rng.randint(1, 99)).scaleb(-2))
            sb, code_b = dec(y), f"Fraction('{dec(y)}')"
        else:
            y = _frac(rng, [3, 4, 5, 6, 7, 8, 9, 11, 12])
            while y == x:
                y = _frac(rng, [3, 4, 5, 6, 7, 8, 9, 11, 12])
            sb, code_b = _fs(y), f"Fraction({y.numerator}, {y.denominator})"
        sa, code_a, va, vb = _fs(x), f"Fraction({x.numerator}, {x.denominator})", x, y
    else:  # power
        b1, e1 = rng.randint(2, 9), rng.randint(2, 6)
        b2, e2 = rng.randint(2, 9), rng.randint(2, 6)
        while b1**e1 == b2**e2:
            b2, e2 = rng.randint(2, 9), rng.randint(2, 6)
        sa, sb = f"{b1}^{e1}", f"{b2}^{e2}"
        code_a, code_b, va, vb = (
            f"{b1} ** {e1}",
            f"{b2} ** {e2}",
            Fraction(b1**e1),
            Fraction(b2**e2),
        )
    if kind == "diff":
        val = abs(va - vb)
        t, phr = pick(
            rng,
            [
                "How much larger is the larger of {a} and {b} than the smaller one?",
                "What is the positive difference between {a} and {b}?",
                "By how much do {a} and {b} differ?",
            ],
        )  # fmt: skip
        steps = [
            (
                "Write both numbers exactly.",
                f"from fractions import Fraction\na = {code_a}\nb = {code_b}",
            ),
            ("The difference is the larger minus the smaller.", "difference = abs(a - b)"),
        ]
        return gen(phr.format(a=sa, b=sb), fmt(val), steps, "print(difference)", f"diff:{t}")
    win = (va > vb) == bigger
    answer = sa if win else sb
    if kind == "power":
        answer = fmt(va if win else vb)  # the value, not the power notation
    t, phr = pick(
        rng,
        [
            "Which is {w}: {a} or {b}?", "Which number is {w}, {a} or {b}?",
            "Of {a} and {b}, which is {w}?", "Compare {a} and {b}. Which one is {w}?",
        ],
    )  # fmt: skip
    fn = "max" if bigger else "min"
    imports = "from fractions import Fraction\n" if "Fraction" in code_a + code_b else ""
    steps = [
        ("Write both numbers as exact values.", f"{imports}a = {code_a}\nb = {code_b}"),
        (f"Pick the {word} one.", f"{word} = {fn}(a, b)"),
    ]
    final = f"print({word})"
    if kind == "frac_dec":  # print the winner as written in the question
        steps.append(
            ("Say it the way the question wrote it.", f"shown = {sa!r} if {word} == a else {sb!r}")
        )
        final = "print(shown)"
    q = phr.format(w=word, a=sa, b=sb)
    if kind == "power":
        q += " Give its value."
    return gen(q, answer, steps, final, f"{kind}:{t}")


# ----------------------------------------------------------------------------- measures

# (unit, per base unit (exact), plural name, family)
_UNITS = {
    "length": [("km", 1000), ("m", 1), ("cm", Fraction(1, 100)), ("mm", Fraction(1, 1000))],
    "mass": [("kg", 1000), ("g", 1), ("mg", Fraction(1, 1000))],
    "volume": [("L", 1000), ("mL", 1)],
    "imperial_length": [("yd", 36), ("ft", 12), ("in", 1)],
    "imperial_mass": [("lb", 16), ("oz", 1)],
}
_UNIT_WORDS = {
    "km": "kilometers", "m": "meters", "cm": "centimeters", "mm": "millimeters", "kg": "kilograms",
    "g": "grams", "mg": "milligrams", "L": "liters", "mL": "milliliters", "yd": "yards",
    "ft": "feet", "in": "inches", "lb": "pounds", "oz": "ounces",
}  # fmt: skip


@skill("unit_conversion")
def unit_conversion(rng: random.Random, d: int) -> GeneratedProblem:
    family = rng.choice(list(_UNITS) if d > 1 else ["length", "mass", "volume"])
    units = _UNITS[family]
    while True:  # at most a factor of 1000 apart: no 3.1e-05 kilograms
        (u1, f1), (u2, f2) = rng.sample(units, 2)
        if Fraction(1, 1000) <= Fraction(f1) / Fraction(f2) <= 1000:
            break
    if d == 1 and Fraction(f1) < Fraction(f2):  # level 1: big unit -> small unit only
        (u1, f1), (u2, f2) = (u2, f2), (u1, f1)
    ratio = Fraction(f1) / Fraction(f2)
    metric = not family.startswith("imperial")
    for _ in range(500):
        if metric:
            x = Fraction(Decimal(rng.randint(1, 999 * d)).scaleb(-rng.randint(0, d - 1)))
        else:
            x = Fraction(rng.randint(1, 60 * d))
        val = x * ratio
        if terminates(val, 4) and val >= Fraction(1, 1000):
            break
    else:
        raise RuntimeError("no amount converts to a short decimal")
    w1, w2 = _UNIT_WORDS[u1], _UNIT_WORDS[u2]
    xs = dec(x)
    n = names(rng)[0]
    if d == 3 and rng.random() < 0.5 and Fraction(f1) > Fraction(f2):  # compound: "2 km 350 m"
        extra = rng.randint(1, int(ratio) - 1) if ratio > 1 else 0
        whole = rng.randint(1, 12)
        val = whole * ratio + extra
        t, phr = pick(
            rng,
            [
                "How many {w2} are in {a} {u1} {b} {u2}?", "Write {a} {u1} {b} {u2} in {w2}.",
                "{n} measures {a} {u1} {b} {u2}. What is that in {w2}?",
            ],
        )  # fmt: skip
        steps = [
            (f"One {u1} is {ratio} {u2}.", f"per = {pyfrac(ratio)}"),
            ("Convert the whole units and add the rest.", f"total = {whole} * per + {extra}"),
        ]
        q = phr.format(a=whole, b=extra, u1=u1, u2=u2, w2=w2, n=n)
        return gen(q, dec(val), steps, "print(total)", f"compound:{t}")
    t, phr = pick(
        rng,
        [
            "Convert {x} {u1} to {u2}.", "How many {w2} are in {x} {w1}?", "{x} {u1} = ? {u2}",
            "Express {x} {w1} in {w2}.", "{n} measured {x} {w1}. How many {w2} is that?",
        ],
    )  # fmt: skip
    if Fraction(f1) >= Fraction(f2):
        why, code = (
            f"Each {u1} is {dec(ratio)} {u2}, so multiply.",
            f"amount = {xs}\nconverted = amount * {dec(ratio)}",
        )
    else:
        inv = 1 / ratio
        why, code = (
            f"It takes {dec(inv)} {u1} to make one {u2}, so divide.",
            f"amount = {xs}\nconverted = amount / {dec(inv)}",
        )
    steps = [(why, code)]
    final = "print(round(converted, 4))"
    q = phr.format(x=xs, u1=u1, u2=u2, w1=w1, w2=w2, n=n)
    return gen(q, dec(val), steps, final, f"{family}:{t}")


@skill("time_elapsed")
def time_elapsed(rng: random.Random, d: int) -> GeneratedProblem:
    kind = rng.choice(
        ["convert", "elapsed"] if d == 1 else ["convert", "elapsed", "end_time", "compound"]
    )
    n = names(rng)[0]
    if kind == "convert":
        pairs = [
            ("hours", "minutes", 60),
            ("minutes", "seconds", 60),
            ("days", "hours", 24),
            ("weeks", "days", 7),
        ]
        big, small, k = rng.choice(pairs)
        if rng.random() < 0.5 or d == 1:
            x = Fraction(rng.randint(2, 20 * d)) if d == 1 else Fraction(rng.randint(2, 40), 2)
            val = x * k
            t, phr = pick(
                rng,
                [
                    "How many {s} are in {x} {b}?", "Convert {x} {b} to {s}.",
                    "{n} practiced for {x} {b}. How many {s} is that?",
                ],
            )  # fmt: skip
            steps = [
                (f"Each of the {big} has {k} {small}.", f"{big} = {dec(x)}\n{small} = {big} * {k}")
            ]
            return gen(
                phr.format(s=small, b=big, x=dec(x), n=n),
                dec(val),
                steps,
                f"print({small})",
                f"to_small:{t}",
            )
        total = rng.randint(k + 1, k * 30)
        t, phr = pick(
            rng,
            [
                "How many whole {b} are in {x} {s}?", "{n} waited {x} {s}. How many full {b} is that?",
                "Convert {x} {s} to whole {b} (ignore what is left over).",
            ],
        )  # fmt: skip
        steps = [
            (
                f"Each of the {big} has {k} {small}; use integer division.",
                f"{small} = {total}\nwhole = {small} // {k}",
            )
        ]
        return gen(
            phr.format(s=small, b=big, x=total, n=n),
            fmt(total // k),
            steps,
            "print(whole)",
            f"to_big:{t}",
        )
    h1, m1 = rng.randint(5, 15), rng.choice(range(0, 60, 5 if d == 1 else 1))
    dur = rng.randint(15, 400 if d > 1 else 240)
    if d == 1:
        dur -= dur % 5
    start = h1 * 60 + m1
    end = start + dur
    s1, s2 = f"{h1:02d}:{m1:02d}", f"{end // 60 % 24:02d}:{end % 60:02d}"
    if kind == "elapsed":
        t, phr = pick(
            rng,
            [
                "A train leaves at {a} and arrives at {b} the same day. How many minutes does the trip take?",
                "{n} started reading at {a} and stopped at {b}. For how many minutes did {n} read?",
                "A movie runs from {a} to {b}. How long is it in minutes?",
                "How many minutes are there from {a} to {b}?",
            ],
        )  # fmt: skip
        steps = [
            ("Turn both times into minutes after midnight.", f"start = {h1} * 60 + {m1}\nend = {end // 60} * 60 + {end % 60}"),
            ("The elapsed time is the difference.", "minutes = end - start"),
        ]  # fmt: skip
        return gen(phr.format(a=s1, b=s2, n=n), fmt(dur), steps, "print(minutes)", f"elapsed:{t}")
    if kind == "end_time":
        t, phr = pick(
            rng,
            [
                "A meeting starts at {a} and lasts {m} minutes. At what time does it end? Answer in 24-hour HH:MM format.",
                "{n} puts a cake in the oven at {a}. It bakes for {m} minutes. When is it done (HH:MM, 24-hour clock)?",
                "What time is it {m} minutes after {a}? Give the time as HH:MM on a 24-hour clock.",
            ],
        )  # fmt: skip
        steps = [
            ("Turn the start into minutes after midnight and add the duration.", f"end = {h1} * 60 + {m1} + {dur}"),
            ("Split back into hours and minutes on a 24-hour clock.", "hours = end // 60 % 24\nminutes = end % 60"),
        ]  # fmt: skip
        return gen(
            phr.format(a=s1, m=dur, n=n),
            s2,
            steps,
            'print(f"{hours:02d}:{minutes:02d}")',
            f"end:{t}",
        )
    hh, mm, ss = rng.randint(1, 9), rng.randint(1, 59), rng.randint(1, 59)
    t, phr = pick(
        rng,
        [
            "How many seconds are in {h} hours {m} minutes and {s} seconds?",
            "{n} ran a race in {h} h {m} min {s} s. What is that time in seconds?",
            "Convert {h} hours, {m} minutes and {s} seconds to seconds.",
        ],
    )  # fmt: skip
    steps = [
        (
            "Each hour has 3600 seconds and each minute 60.",
            f"seconds = {hh} * 3600 + {mm} * 60 + {ss}",
        )
    ]
    return gen(
        phr.format(h=hh, m=mm, s=ss, n=n),
        fmt(hh * 3600 + mm * 60 + ss),
        steps,
        "print(seconds)",
        f"hms:{t}",
    )


# ----------------------------------------------------------------------------- functions


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
            phr.format(v=var, f=disp, g=gd, x=x0), fmt(val), steps, "print(value)", f"compose:{t}"
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
        a, s = rng.randint(-20 if d > 1 else 1, 50), nonzero(rng, -12 if d > 1 else 2, 15)
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
                "ratio = terms[1] // terms[0]\nnext_term = terms[-1] * ratio",
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
            ("The nth term is first + (n - 1) * diff.", f"n = {n}\nterm = first + (n - 1) * diff"),
        ]
        return gen(
            phr.format(n=n, nth=ordinal(n), L=listed), fmt(val), steps, "print(term)", f"{kind}:{t}"
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
            phr.format(L=listed, n=n, nth=ordinal(n)), fmt(val), steps, "print(term)", f"{kind}:{t}"
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
            f"first = {terms[0]}\nratio = {terms[1]} // {terms[0]}",
        ),
        ("The nth term is first * ratio**(n - 1).", f"n = {n}\nterm = first * ratio ** (n - 1)"),
    ]
    return gen(
        phr.format(n=n, nth=ordinal(n), L=listed), fmt(val), steps, "print(term)", f"{kind}:{t}"
    )


# ----------------------------------------------------------------------------- word problems


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
            phr.format(p=p, b=base, n=n), dec(val), steps, "print(round(part, 2))", f"of:{t}"
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
            phr.format(b=base, p=p, n=n), dec(val), steps, "print(round(new, 2))", f"{kind}:{t}"
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
            ("Apply the decrease to the new amount.", f"value = value * (100 - {q}) / 100"),
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
            (f"{want} {items} is this many groups of {k}.", f"groups = {want} // {k}"),
            ("Each group costs the same.", f"cost = groups * {price}"),
        ]
        return gen(
            phr.format(k=k, its=items, p=price, w=want, n=n),
            fmt(val),
            steps,
            "print(cost)",
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
            ("Add the cost of each kind of item.", f"total = {q1} * price_1 + {q2} * price_2"),
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
            n=n, q1=q1, q2=q2, its=items, its2=items2, m1=money(p1), m2=money(p2), paid=paid
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
        ("Cost of buying singles.", f"single = {dec(single)}\nsingles_cost = {k} * single"),
        ("Subtract the pack price.", f"saving = singles_cost - {dec(pack)}"),
    ]
    q = phr.format(it=item, its=items, m1=money(single), k=k, mp=money(pack), n=n)
    return gen(q, dec(saving), steps, "print(round(saving, 2))", f"compare:{t}")


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
        return gen(phr.format(D=dist, s=speed, n=n), dec(val), steps, "print(hours)", f"time:{t}")
    if kind == "scale":
        per, unit_time = (
            rng.randint(2, 40),
            rng.choice(
                [("minutes", "an hour", 60), ("hours", "a day", 24), ("days", "four weeks", 28)]
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
            (f"Find the rate per one of the {u}.", f"rate = {made} // {few}"),
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
        return gen(phr.format(r=rate, V=vol, n=n), fmt(val), steps, "print(minutes)", f"fill:{t}")
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
            ("The time for one job is the reciprocal of the combined rate.", "hours = 1 / rate"),
        ]
        return gen(phr.format(a=a, b=b, n=n, m=m), fmt(val), steps, "print(hours)", f"together:{t}")
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
    return gen(phr.format(D=dist, a=s1, b=s2, n=n, m=m), fmt(h), steps, "print(hours)", f"meet:{t}")


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
            ("Let m be the younger age: m + (m + gap) = sum.", f"total, gap = {total}, {gap}"),
            ("Solve for m.", "younger = (total - gap) // 2"),
        ]
        return gen(
            phr.format(n=n, m=m, s=total, g=gap), fmt(y), steps, "print(younger)", f"sum_diff:{t}"
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
            ("The sum is the child's age times (k + 1).", f"total = {child * (k + 1)}\nk = {k}"),
            ("Divide.", "child = total // (k + 1)"),
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
            ("Let c be the younger age: k*c + y = j*(c + y).", f"k, j, y = {k}, {j}, {y}"),
            ("So (k - j) * c = (j - 1) * y.", "child = (j - 1) * y // (k - j)"),
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
        steps = [("Divide the total by the number of shares.", f"each = {k * each} // {k}")]
        return gen(
            phr.format(T=k * each, t=thing, k=k, n=n), fmt(each), steps, "print(each)", f"equal:{t}"
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
                f"one_part = {total} // parts",
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
                f"smaller = {total} // ({k} + 1)",
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
            phr.format(n=n, T=total, t=thing, k=k), fmt(left), steps, "print(left)", f"leftover:{t}"
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
