"""Arithmetic skills: integer, decimal and fraction arithmetic, and order of operations
(expression trees rendered with the fewest parentheses, solved one operation per step).

Registered in `SKILLS` when the package imports this module."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from ._common import (
    COUNTABLES,
    GeneratedProblem,
    Step,
    _frac,
    _fs,
    dec,
    fmt,
    gen,
    names,
    nonzero,
    pick,
    show,
    skill,
    terminates,
)


@skill("integer_arithmetic")
def integer_arithmetic(rng: random.Random, d: int) -> GeneratedProblem:
    if d == 3 and rng.random() < 0.6:  # three terms with negatives
        a, b, c = nonzero(rng, -300, 300), nonzero(rng, -300, 300), rng.randint(2, 60)
        o1, o2 = rng.choice("+-"), rng.choice("+-*")
        expr = f"{show(a)} {o1} {show(b)} {o2} {c}"
        if o2 == "*":
            val = a + b * c if o1 == "+" else a - b * c
        else:
            first = a + b if o1 == "+" else a - b
            val = first + c if o2 == "+" else first - c
        # v6.3: copied whole; Python applies the order of operations (see order_of_operations)
        steps = [_copied(expr, expr, False)]
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
    why = {
        "+": "Add the two numbers.",
        "-": "Subtract the second number from the first.",
        "*": "Multiply the two numbers.",
        "/": "Divide the first number by the second.",
    }[op]
    name_of = {"+": "total", "-": "difference", "*": "product", "/": "quotient"}[op]
    steps = [
        ("Write down the numbers.", f"a = {a}\nb = {b}"),
        (why, f"{name_of} = a {op} b"),
    ]
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
        final = "print(round(result, 6))"
        q = phr.format(a=fmt(a), b=fmt(b), am=f"{a:.2f}", bm=f"{b:.2f}", n=name)
        return gen(q, fmt(val), steps, final, f"{kind}:{t}")
    if kind == "mul":
        a = rnd(1, 30, places if d == 2 else 1)
        b = Decimal(rng.randint(2, 12)) if d == 2 else rnd(1, 9, 1)
        val = a * b
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
        return gen(q, fmt(val), steps, "print(round(result, 6))", f"mul:{t}")
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
        return gen(q, dec(Fraction(total) / n), steps, "print(round(each, 6))", f"div:{t}")
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
    return gen(q, fmt(val), steps, "print(round(result, 6))", f"mix:{t}")


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
        xs, ys, xc, yc = (
            f"{nx}/{den}",
            f"{ny}/{den}",
            f"({nx}, {den})",
            f"({ny}, {den})",
        )
    else:
        dens = [2, 3, 4, 5, 6, 8, 9, 10, 12] if d == 2 else [3, 4, 5, 6, 7, 8, 9, 10, 12, 15]
        x, y = _frac(rng, dens), _frac(rng, dens)
        while x.denominator == y.denominator and d >= 2:
            y = _frac(rng, dens)
        op = rng.choice("+-*" if d == 2 else "*/+")
        if op == "-" and y > x:
            x, y = y, x
        xs, ys = _fs(x), _fs(y)
        xc, yc = (
            f"({x.numerator}, {x.denominator})",
            f"({y.numerator}, {y.denominator})",
        )
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
        return gen(
            phr.format(x=xs, y=ys, z=_fs(z)),
            fmt(val),
            steps,
            "print(result)",
            f"three:{t}",
        )
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


# order of operations: random expression trees. v6.3: the solution copies the expression into
# Python in one line, as everyday_expressions does; until v6.2 it was evaluated one operation per
# step, and the 135M default lost track of which operand came next (reasoning-gym chain_sum:
# "2 + 4 - 5" became sum_1 = 2 + 4, difference_2 = 2 - 5).

_ORDER_WHY = "Python follows the order of operations, so the expression is computed as written"
_SIGN_WORDS = {"×": "× is *", "x": "x is *", "X": "X is *", "÷": "÷ is /", "^": "^ is ** (a power)"}


def _copied(shown: str, py: str, rounded: bool) -> Step:
    """The one step that copies an expression into Python whole: `shown` as the question
    types it (its signs are named in the comment), `py` in Python syntax, rounded to 6 places
    when it divides or has decimals (float noise). Shared with everyday_expressions."""
    signs = [w for s, w in _SIGN_WORDS.items() if s in shown.replace("**", "")]
    why = _ORDER_WHY + (" (" + ", ".join(signs) + ")." if signs else ".")
    if rounded:
        return (why + " Round away float noise.", f"result = round({py}, 6)")
    return (why, f"result = {py}")


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

    sym = {"math": {"*": "×", "/": "÷"}, "ascii": {}, "py": {}}[style].get(n.op, n.op)
    return f"{wrap(n.left, False)} {sym} {wrap(n.right, True)}"


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
    py = _render(root, "py")
    steps: list[Step] = [_copied(expr, py, "/" in py)]
    return gen(phr.format(e=expr), fmt(root.value), steps, "print(result)", f"{style}:{t}")
