"""Numbers written as English words ("forty-two") and the casual rewrites of a question
(lower case, no closing punctuation) that the everyday skills share."""

from __future__ import annotations

import random

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

WORD_LIMIT = 100
"""The largest number `number_words` writes."""


def number_words(n: int) -> str:
    """0..100 as words: 7 -> "seven", 42 -> "forty-two", 100 -> "one hundred"."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= WORD_LIMIT:
        raise ValueError(f"number_words covers whole numbers 0..{WORD_LIMIT}, got {n!r}")
    if n == 100:
        return "one hundred"
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] if ones == 0 else f"{_TENS[tens]}-{_ONES[ones]}"


def casual(rng: random.Random, question: str) -> str:
    """The question as people type it, some of the time: all lower case, or without the
    closing punctuation, or both (about two in five questions change)."""
    r = rng.random()
    if r < 0.15:
        return question.lower()
    if r < 0.28:
        return question.rstrip(".?!")
    if r < 0.4:
        return question.lower().rstrip(".?!")
    return question


def hundreds_words(n: int, rng: random.Random) -> str:
    """100..999 as people say them, with or without "and": 150 -> "one hundred and fifty" or
    "one hundred fifty", 300 -> "three hundred"."""
    if isinstance(n, bool) or not isinstance(n, int) or not 100 <= n <= 999:
        raise ValueError(f"hundreds_words covers whole numbers 100..999, got {n!r}")
    h, rest = divmod(n, 100)
    head = f"{_ONES[h]} hundred"
    if not rest:
        return head
    return f"{head}{' and ' if rng.random() < 0.5 else ' '}{number_words(rest)}"
