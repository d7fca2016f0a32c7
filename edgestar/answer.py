"""Final answers: extraction, normalisation for voting, and equivalence.

Equivalence asks math-verify first (it understands LaTeX, fractions, sets, intervals), then
falls back to sympy on the plain-text forms small models print (`3/4`, `0.75`, `2**10`), then to
string comparison. math-verify uses signal.alarm for its own timeouts, which only works in the
main thread; we switch those off and rely on the inputs being short (answers are capped at
`MAX_ANSWER_CHARS`).
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache

MAX_ANSWER_CHARS = 200


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`) in text, braces balanced; else None."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        if depth == 0:
            best = text[m.end() : i - 1].strip()
    return best


def extract_answer(text: str, last_number: bool = False) -> str | None:
    """The answer stated in a solution: a boxed value, else 'answer is X', else (with
    `last_number`) the last number in the text, else None."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    m = re.findall(r"answer is[:\s]*\$?([^\s$]+?)\$?[.\s]*$", text.strip(), flags=re.I | re.M)
    if m:
        return m[-1]
    if last_number:
        nums = re.findall(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?", text)
        if nums:
            return nums[-1].rstrip(".").replace(",", "")
    return None


_LATEX_FRAC = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_NUMERIC = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def normalize(answer: str | None) -> str:
    """A canonical string for majority voting: equal strings mean equal answers (the converse
    need not hold; `equivalent` is the exact test)."""
    if answer is None:
        return ""
    a = answer.strip()
    a = re.sub(r"^\$+|\$+$", "", a).strip()
    a = re.sub(r"\\text\{([^{}]*)\}", r"\1", a)
    a = re.sub(r"\\(left|right|,|;|!|\s)", "", a)
    a = a.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    a = _LATEX_FRAC.sub(r"(\1)/(\2)", a)
    a = a.replace("{", "").replace("}", "").replace(" ", "").rstrip(".").lower()
    a = re.sub(r"(?<=\d),(?=\d{3}\b)", "", a)  # 1,000 -> 1000
    v = _as_number(a)
    if v is not None:
        if v.denominator == 1:
            return str(v.numerator)
        return f"{v.numerator}/{v.denominator}"
    return a


def _as_number(s: str) -> Fraction | None:
    s = s.strip()
    # `3/4`, `(3)/(4)` (a LaTeX fraction, normalized), and a sign outside it: `-(707)/(25)`
    m = re.fullmatch(r"([-+]?)\(?([-+]?\d+)\)?/\(?([-+]?\d+)\)?", s)
    try:
        if m:
            den = int(m.group(3))
            sign = -1 if m.group(1) == "-" else 1
            return Fraction(sign * int(m.group(2)), den) if den else None
        if _NUMERIC.match(s) and len(s) < 40:
            return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return None


@lru_cache(maxsize=4096)
def equivalent(gold: str | None, pred: str | None) -> bool:
    """True when `pred` states the same answer as `gold`."""
    if gold is None or pred is None:
        return False
    gold, pred = gold.strip()[:MAX_ANSWER_CHARS], pred.strip()[:MAX_ANSWER_CHARS]
    if not gold or not pred:
        return False
    ng, np_ = normalize(gold), normalize(pred)
    if ng == np_:
        return True
    a, b = _as_number(ng), _as_number(np_)
    if a is not None and b is not None:
        return a == b
    if _math_verify(gold, pred):
        return True
    return _sympy_equal(ng, np_)


def _math_verify(gold: str, pred: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - math-verify is a runtime dependency
        return False
    # It warns once that its timeouts are off; ours are: inputs are capped instead (above).
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:
        g = parse(_as_latex(gold), parsing_timeout=None)
        p = parse(_as_latex(pred), parsing_timeout=None)
        if not g or not p:
            return False
        return bool(verify(g, p, timeout_seconds=None))
    except Exception:
        return False


def _as_latex(s: str) -> str:
    s = s.strip()
    return s if s.startswith("$") or "\\boxed" in s else f"${s}$"


def _sympy_equal(a: str, b: str) -> bool:
    if len(a) > 100 or len(b) > 100 or "**" in a + b and re.search(r"\*\*\s*\d{4,}", a + b):
        return False
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )

        tr = (*standard_transformations, implicit_multiplication_application)
        ea = parse_expr(a.replace("^", "**"), transformations=tr, evaluate=True)
        eb = parse_expr(b.replace("^", "**"), transformations=tr, evaluate=True)
        return bool(sympy.simplify(ea - eb) == 0)
    except Exception:
        return False
