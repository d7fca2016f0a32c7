"""The JSONL record schema of train/: problems and results, one definition each.

Owns the two record types that cross train/'s file boundaries (ARCHITECTURE.md, "Contracts
worth writing down"):

- `ProblemRecord` {id, question, answer, source} plus, where known, skill, difficulty (1-3 for
  the synthetic generator; MATH's level 1-5 for imported MATH data), template (which phrasing
  the synthetic generator used) and solution (a reference rstar-format solution).
- `ResultRecord` {id, answer, correct, tokens, seconds, strategy, budget}: one solve of one
  problem.

Both are frozen dataclasses, validated on construction, with `to_json()` (one line of JSON, keys
whose value is None left out) and `from_json(text_or_dict)`. Unknown keys are ignored on read so
that newer files stay readable; a missing or mistyped field raises `InputError` naming it.
Nothing else in train/ builds these dicts by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from edgestar.answer import equivalent
from edgestar.types import Budget, InputError, Problem, SolveResult, check_question

T = TypeVar("T", bound="_Record")


class _Record:
    """to_json / from_json shared by the record types (fields are dataclass fields)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls: type[T], data: str | dict[str, Any]) -> T:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as e:  # a required field is missing
            raise InputError(f"{cls.__name__}: {e}") from None


def _need_str(name: str, v: object, empty_ok: bool = False) -> str:
    if not isinstance(v, str):
        raise InputError(f"{name} must be a string, got {type(v).__name__}")
    if not empty_ok and not v.strip():
        raise InputError(f"{name} is empty")
    return v


@dataclass(frozen=True)
class ProblemRecord(_Record):
    """One problem with its reference answer (compatible with `edgestar.types.Problem`)."""

    id: str
    question: str
    answer: str
    source: str
    skill: str | None = None
    difficulty: int | None = None
    template: str | None = None
    solution: str | None = None
    """A reference solution in the rstar format (written by `edgestar.formats.rstar_solution`)."""

    def __post_init__(self) -> None:
        _need_str("id", self.id)
        object.__setattr__(self, "question", check_question(self.question))
        answer = self.answer
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)  # numbers in imported files
        object.__setattr__(self, "answer", _need_str("answer", answer).strip())
        _need_str("source", self.source, empty_ok=True)
        for name in ("skill", "template", "solution"):
            v = getattr(self, name)
            if v is not None:
                _need_str(name, v, empty_ok=True)
        d = self.difficulty
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
            raise InputError(f"difficulty must be a non-negative whole number, got {d!r}")

    def to_problem(self) -> Problem:
        """The runtime's view of this record."""
        return Problem(question=self.question, answer=self.answer, id=self.id, source=self.source)


@dataclass(frozen=True)
class ResultRecord(_Record):
    """The outcome of solving one problem: what came back, whether it was right, what it cost."""

    id: str
    answer: str | None
    correct: bool | None
    """None when the problem has no reference answer."""
    tokens: int = 0
    seconds: float = 0.0
    strategy: str = ""
    budget: dict[str, Any] = field(default_factory=dict)
    """The search budget's limits, e.g. {"rollouts": 16, "tokens": null} (Budget's fields)."""

    def __post_init__(self) -> None:
        _need_str("id", self.id)
        if self.answer is not None:
            _need_str("answer", self.answer, empty_ok=True)
        if self.correct is not None and not isinstance(self.correct, bool):
            raise InputError(f"correct must be true, false or null, got {self.correct!r}")
        t = self.tokens
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise InputError(f"tokens must be a non-negative whole number, got {t!r}")
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
            raise InputError(f"seconds must be a non-negative number, got {s!r}")
        object.__setattr__(self, "seconds", float(s))
        _need_str("strategy", self.strategy, empty_ok=True)
        if not isinstance(self.budget, dict):
            raise InputError(f"budget must be an object, got {type(self.budget).__name__}")

    def to_dict(self) -> dict[str, Any]:
        # answer and correct stay present even when null: "no answer" is a result, not a gap.
        return asdict(self)

    @classmethod
    def from_solve(
        cls, id: str, result: SolveResult, gold: str | None = None, budget: Budget | None = None
    ) -> ResultRecord:
        """The record of one `Solver.solve` call; `correct` is `equivalent(gold, answer)`, or
        None without a reference answer."""
        return cls(
            id=id,
            answer=result.answer,
            correct=None if gold is None else equivalent(gold, result.answer),
            tokens=result.stats.tokens_generated,
            seconds=result.stats.seconds,
            strategy=result.strategy,
            budget={} if budget is None else asdict(budget),
        )
