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

One module per family: arithmetic, algebra, number_theory, numbers, measures, functions,
word_money, word_stories, and the everyday questions people type (everyday: "2+2", "seven
times six", "half of 36"; everyday_units: percents and unit conversions; everyday_word: short
stories; everyday_facts: powers, roots, digits, primes, gcd/lcm, shapes, one-step equations,
tips and time facts; everyday_expressions: a whole calculation on one line, solved by
writing it as Python; everyday_fractions: a fraction of a number, as a decimal or percent, in
lowest terms, or two fractions said in words; everyday_stories: the shapes that look like an
older skill's but need another operation, money in cents, percent change, rates the other
way, temperatures across zero, numbers said above one hundred); what they share (the record, the registry, names and formatting helpers)
is in _common, and number words and casual rewrites in _words.

`template` names the phrasing used ("sum:2"), so tests and reports can measure diversity.
"""

from __future__ import annotations

# Import order is registration order: SKILLS keeps the order in which the skills were written,
# which the "synthetic" source (every skill) follows when it draws, so a seed's problems depend
# on it. Keep it; tests/test_problems.py pins it.
# isort: off
from . import arithmetic  # noqa: F401
from . import algebra  # noqa: F401
from . import number_theory  # noqa: F401
from . import numbers  # noqa: F401
from . import measures  # noqa: F401
from . import functions  # noqa: F401
from . import word_money  # noqa: F401
from . import word_stories  # noqa: F401
from . import everyday  # noqa: F401
from . import everyday_units  # noqa: F401
from . import everyday_word  # noqa: F401
from . import everyday_facts  # noqa: F401
from . import everyday_expressions  # noqa: F401
from . import everyday_fractions  # noqa: F401
from . import everyday_stories  # noqa: F401

# isort: on
from ._common import DIFFICULTIES, SKILLS, GeneratedProblem, SkillFn, Step, skill

__all__ = ["DIFFICULTIES", "SKILLS", "GeneratedProblem", "SkillFn", "Step", "skill"]
