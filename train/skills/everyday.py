"""Everyday arithmetic: the small sums people actually type ("2+2", "what's 7 x 6",
"seven times six", "the sum of 12 and 30", "half of 36"), in symbol forms, operation words,
phrases and number words, with casual casing and punctuation.

Numbers by difficulty: 1 = 0..20 (times tables to 12), 2 = two digits, 3 = three digits (and
negative differences and decimal quotients). Number words are used for numbers up to 100; the
reference code always uses the digits ("two plus two" -> `total = 2 + 2`).

Registered in `SKILLS` when the package imports this module (after every older skill module,
so older seeds keep their problems)."""

from __future__ import annotations

import random
from fractions import Fraction

from ._common import GeneratedProblem, Step, dec, gen, pick, skill
from ._words import WORD_LIMIT, casual, number_words

_SYMBOLS = {"+": ("+",), "-": ("-",), "*": ("*", "x", "×", "X"), "/": ("/", "÷")}

_SYMBOL_FRAMES = (
    "What is {e}?", "What's {e}?", "what is {e}", "whats {e}", "Calculate {e}.", "Compute {e}.",
    "Work out {e}.", "Solve {e}.", "{e} =", "{e} = ?", "{e}", "{e}?", "How much is {e}?",
    "What does {e} equal?", "What is the answer to {e}?", "Evaluate {e}.", "Please calculate {e}.",
    "Can you work out {e}?", "Find {e}.", "Quick one: {e}",
)  # fmt: skip

# operation words between the two numbers ("{a} times {b}")
_OP_WORDS = {
    "+": ("{a} plus {b}", "{a} add {b}", "{a} and {b}"),
    "-": ("{a} minus {b}", "{a} take away {b}", "{a} subtract {b}"),
    "*": ("{a} times {b}", "{a} multiplied by {b}"),
    "/": ("{a} divided by {b}",),
}
_WORD_FRAMES = (
    "What is {x}?", "What's {x}?", "How much is {x}?", "{x}?", "{x} equals what?",
    "What does {x} make?", "What do you get from {x}?", "Tell me {x}.", "{x} =",
    "Can you tell me what {x} is?", "{x} is how much?", "what's {x}",
)  # fmt: skip

# whole-question phrases; "ordered" ones only when a >= b (no "difference between 3 and 9")
_PHRASES = {
    "+": (
        "What is the sum of {a} and {b}?", "Find the sum of {a} and {b}.",
        "What do you get if you add {a} and {b}?", "Add {a} and {b}.", "Add {b} to {a}.",
        "If you add {b} to {a}, what do you get?", "What number is {b} more than {a}?",
        "What is {a} increased by {b}?", "{a} and {b} together make what?",
        "What is the total of {a} and {b}?",
    ),
    "-": (
        "Subtract {b} from {a}.", "Take {b} away from {a}.", "What is {a} decreased by {b}?",
        "What do you get if you take {b} away from {a}?", "What number is {b} less than {a}?",
        "What is {b} less than {a}?",
    ),
    "-ordered": (
        "What is the difference between {a} and {b}?", "How much bigger is {a} than {b}?",
        "How many are left if you have {a} and take away {b}?",
        "Find the difference between {a} and {b}.",
    ),
    "*": (
        "What is the product of {a} and {b}?", "Multiply {a} by {b}.", "Multiply {a} and {b}.",
        "What do you get if you multiply {a} by {b}?", "What is {a} lots of {b}?",
        "How much are {a} groups of {b}?", "Find the product of {a} and {b}.",
    ),
    "/": (
        "Divide {a} by {b}.", "What do you get if you divide {a} by {b}?",
        "What is the quotient of {a} and {b}?", "How many times does {b} go into {a}?",
        "If you split {a} into {b} equal parts, how big is each part?",
        "Share {a} equally among {b}. How much does each get?",
    ),
}  # fmt: skip
_DIGITS_ONLY = {"/": ("How many {b}s are in {a}?",)}

_WHY = {
    "+": "Add the two numbers.",
    "-": "Subtract the second number from the first.",
    "*": "Multiply the two numbers.",
    "/": "Divide the first number by the second.",
}
_VAR = {"+": "total", "-": "difference", "*": "product", "/": "quotient"}


def _operands(rng: random.Random, op: str, d: int) -> tuple[int, int]:
    """Two operands for `op` at level `d`; division is exact except sometimes at level 3."""
    if op == "+":
        lo, hi = {1: (0, 20), 2: (10, 99), 3: (100, 999)}[d]
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        if d == 3 and rng.random() < 0.4:
            b = rng.randint(10, 99)
        return a, b
    if op == "-":
        lo, hi = {1: (0, 20), 2: (10, 99), 3: (100, 999)}[d]
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        if b > a and not (d == 3 and rng.random() < 0.3):  # level 3 has some negative answers
            a, b = b, a
        return a, b
    if op == "*":
        if d == 1:
            return rng.randint(0, 12), rng.randint(1, 12)
        if d == 2:
            return (
                (rng.randint(11, 99), rng.randint(2, 9))
                if rng.random() < 0.7
                else (
                    rng.randint(11, 20),
                    rng.randint(11, 20),
                )
            )
        return (
            (rng.randint(100, 999), rng.randint(2, 9))
            if rng.random() < 0.5
            else (
                rng.randint(11, 99),
                rng.randint(11, 99),
            )
        )
    b = {1: rng.randint(1, 10), 2: rng.randint(2, 12), 3: rng.randint(2, 25)}[d]
    if d == 3 and rng.random() < 0.3:  # a decimal quotient: 3-digit over 2, 4, 5 or 8
        b = rng.choice([2, 4, 5, 8])
        a = rng.randint(100, 999)
        return (a + 1 if a % b == 0 else a), b
    q = {1: rng.randint(0, 10), 2: rng.randint(2, 20), 3: rng.randint(10, 99)}[d]
    return b * q, b


def _value(op: str, a: int, b: int) -> Fraction:
    return {"+": Fraction(a + b), "-": Fraction(a - b), "*": Fraction(a * b)}.get(
        op, Fraction(a, b) if b else Fraction(0)
    )


def _code(op: str, a: int, b: int) -> str:
    return f"{_VAR[op]} = {a} {op} {b}"


def _in_digits(words: list[tuple[str, int]]) -> str:
    """ "In digits, seven is 7 and six is 6. " for the numbers a question wrote as words."""
    parts = [f"{w} is {n}" for w, n in words]
    text = " and ".join(parts)
    return f"In digits, {text}. " if text else ""


def _special(rng: random.Random, d: int, wordy: bool) -> GeneratedProblem:
    """Twice, double, triple, half, a quarter, squared, dozens."""
    kinds = ["twice", "double", "triple", "half", "quarter", "squared", "dozen", "dozen_plus"]
    kind = rng.choice(kinds)
    hi = {1: 20, 2: 99, 3: 999}[d]
    if kind in ("half", "quarter"):
        k = 2 if kind == "half" else 4
        a = rng.randint(1, hi // k) * k + (rng.randint(1, k - 1) if d == 3 else 0)
    elif kind == "squared":
        a = rng.randint(0, {1: 12, 2: 25, 3: 99}[d])
    elif kind == "dozen":
        a = rng.randint(1, {1: 5, 2: 12, 3: 50}[d])
    else:
        a = rng.randint(0 if kind == "dozen_plus" else 1, hi)
    words = wordy and a <= WORD_LIMIT
    shown = number_words(a) if words else str(a)
    frames = {
        "twice": ("What is twice {a}?", "Twice {a} is what?", "How much is twice {a}?"),
        "double": ("What's double {a}?", "Double {a}.", "What is {a} doubled?"),
        "triple": ("What is triple {a}?", "What is three times {a}?", "Triple {a}."),
        "half": ("What is half of {a}?", "Half of {a} is what?", "What's half {a}?"),
        "quarter": ("What is a quarter of {a}?", "How much is one quarter of {a}?"),
        "squared": ("What is {a} squared?", "What's {a} squared?", "Square {a}."),
        "dozen": ("How many is {a} dozen?", "How many eggs are in {a} dozen?"),
        "dozen_plus": ("What is a dozen plus {a}?", "How much is a dozen and {a} more?"),
    }[kind]
    t, phr = pick(rng, frames)
    why, code, val = {
        "twice": ("Twice means multiply by 2.", f"result = 2 * {a}", Fraction(2 * a)),
        "double": ("Doubling means multiply by 2.", f"result = 2 * {a}", Fraction(2 * a)),
        "triple": ("Tripling means multiply by 3.", f"result = 3 * {a}", Fraction(3 * a)),
        "half": ("Half means divide by 2.", f"result = {a} / 2", Fraction(a, 2)),
        "quarter": ("A quarter means divide by 4.", f"result = {a} / 4", Fraction(a, 4)),
        "squared": ("Squaring multiplies the number by itself.", f"result = {a} * {a}", Fraction(a * a)),
        "dozen": ("A dozen is 12.", f"result = {a} * 12", Fraction(12 * a)),
        "dozen_plus": ("A dozen is 12.", f"result = 12 + {a}", Fraction(12 + a)),
    }[kind]  # fmt: skip
    if words:
        why = _in_digits([(shown, a)]) + why
    q = casual(rng, phr.format(a=shown))
    return gen(q, dec(val), [(why, code)], "print(result)", f"special:{kind}:{t}")


@skill("everyday_arithmetic")
def everyday_arithmetic(rng: random.Random, d: int) -> GeneratedProblem:
    form = rng.choices(["symbol", "opword", "phrase", "special"], weights=[40, 30, 20, 10])[0]
    wordy = rng.random() < (0.6 if d == 1 else 0.35 if d == 2 else 0.15)
    if form == "special":
        return _special(rng, d, wordy)
    op = rng.choice("+-*/")
    a, b = _operands(rng, op, d)
    val = _value(op, a, b)
    written: list[tuple[str, int]] = []
    if form == "symbol":
        sym = rng.choice(_SYMBOLS[op])
        tight = rng.random() < 0.45 and sym not in ("x", "X")
        expr = f"{a}{sym}{b}" if tight else f"{a} {sym} {b}"
        t, phr = pick(rng, _SYMBOL_FRAMES)
        q, template = phr.format(e=expr), f"symbol:{op}:{t}"
    else:
        words = wordy and a <= WORD_LIMIT and b <= WORD_LIMIT
        sa, sb = (number_words(a), number_words(b)) if words else (str(a), str(b))
        if words:
            written = [(sa, a), (sb, b)]
        if form == "opword":
            i, inner = pick(rng, _OP_WORDS[op])
            t, phr = pick(rng, _WORD_FRAMES)
            q = phr.format(x=inner.format(a=sa, b=sb))
            template = f"opword:{op}{i}:{t}"
        else:
            opts = list(_PHRASES[op])
            if op == "-" and a >= b:
                opts += _PHRASES["-ordered"]
            if not words:
                opts += _DIGITS_ONLY.get(op, ())
            t, phr = pick(rng, opts)
            q, template = phr.format(a=sa, b=sb), f"phrase:{op}:{t}"
        q = q[0].upper() + q[1:] if q[0].islower() and rng.random() < 0.7 else q
        template += ":words" if words else ""
    why = _WHY[op]
    if written:
        why = _in_digits(written) + why
    steps: list[Step] = [(why, _code(op, a, b))]
    return gen(casual(rng, q), dec(val), steps, f"print({_VAR[op]})", template)
