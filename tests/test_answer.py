"""Answer extraction, normalisation for voting, and equivalence (math-verify, then sympy)."""

from __future__ import annotations

import pytest

from edgestar.answer import equivalent, extract_answer, extract_boxed, normalize


@pytest.mark.parametrize(
    "text, want",
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}} then \\boxed{3}", "3"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed{x^{2}+1}", "x^{2}+1"),
        ("\\fbox{7}", "7"),
        ("no box here", None),
        ("\\boxed{unclosed", None),
    ],
)
def test_extract_boxed(text, want):
    assert extract_boxed(text) == want


def test_extract_answer_falls_back_to_answer_is():
    assert extract_answer("Thus the answer is 12.") == "12"
    assert extract_answer("nothing") is None


@pytest.mark.parametrize(
    "a, b",
    [
        ("42", "42.0"),
        ("1,000", "1000"),
        ("\\frac{3}{4}", "0.75"),
        ("\\dfrac{3}{4}", "3/4"),
        ("$12$", "12"),
        ("50\\%", "50"),
        ("\\text{12}", "12"),
        ("-7", "-7.00"),
        ("-\\frac{707}{25}", "-707/25"),  # the sign outside a LaTeX fraction
        ("-\\dfrac{1}{2}", "-0.5"),
    ],
)
def test_normalize_groups_equal_numbers(a, b):
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(
    "gold, pred, same",
    [
        ("42", "42", True),
        ("0.5", "\\frac{1}{2}", True),
        ("3/4", "0.75", True),
        ("\\frac{1}{3}", "0.3333", False),
        ("2\\sqrt{2}", "\\sqrt{8}", True),
        ("x^2+2x+1", "(x+1)^2", True),
        ("12", "13", False),
        ("12", None, False),
        ("", "1", False),
        ("\\{1,2\\}", "\\{2,1\\}", True),
    ],
)
def test_equivalent(gold, pred, same):
    assert equivalent(gold, pred) is same


def test_equivalent_survives_garbage():
    assert equivalent("1", "\\frac{{{") is False
    assert equivalent("1", "x" * 10_000) is False
