"""Execution-verified perturbed steps: targeted rejected steps for the PPM, made without a model.

A tiny policy's commonest mistake is copying a number wrongly ("speed = 25" where the question
says 5 km/h); the code runs, so only a PPM can tell that step from the right one. MCTS trees
yield few such pairs per round (a problem gives pairs only when some rollouts succeed and some
fail), so this module makes more from the solutions we already know are correct:

1. take a correct solution (a round's MCTS trajectory or a replayed bootstrap reference);
2. pick one of its steps before the final one and one number literal in that step's code (not
   in a comment, not inside a name) - seeded;
3. change it: to another number the question mentions (a copy confusion), or one digit changed,
   dropped or doubled;
4. run the whole solution with that one step changed, in the sandbox, many programs per run;
5. keep the pair (prefix, chosen = the original step, rejected = the changed step) only when
   the changed program still runs and prints an answer that is NOT equivalent to the reference
   answer: the perturbation is verified to matter, as a wrong MCTS branch would be.

`perturbed_pairs` is deterministic in its inputs and seed. Pairs have kind "perturbed" and Q
values +1 / -1 (the outcomes of the two programs).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from edgestar.answer import equivalent
from edgestar.formats import Marker

from .datasets import PreferencePair
from .problems import CodeRunner, _batch_program, _default_runner, _parse_batch

NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
"""A number literal: digits, maybe a decimal part, not glued to a name or another number."""

_STEP_END = Marker.END_STEP + "\n"


@dataclass(frozen=True)
class Solved:
    """A correct solution to perturb: the prompt, the policy-format text, the reference answer."""

    problem_id: str
    prompt: str
    solution: str
    answer: str


@dataclass(frozen=True)
class _Candidate:
    source: Solved
    index: int  # which step
    steps: tuple[str, ...]  # step texts, each ending in <end_of_step>\n
    final_code: str
    rejected: str  # the changed step's text

    @property
    def prefix(self) -> str:
        return self.source.prompt + "".join(self.steps[: self.index])


class _Program:
    """The duck type `_batch_program` runs: steps as (comment, code) pairs plus final code."""

    def __init__(self, codes: list[str], final_code: str) -> None:
        self.steps = [("", c) for c in codes]
        self.final_code = final_code


def split_solution(solution: str) -> tuple[list[str], str] | None:
    """Split a solution into its step texts (each ending in '<end_of_step>\\n') and the final
    step's code (before '<end_of_code>'); None if it is not in that shape."""
    parts = solution.split(_STEP_END)
    steps = [p + _STEP_END for p in parts[:-1]]
    last = parts[-1]
    if Marker.END_CODE not in last:
        return None
    return steps, last.split(Marker.END_CODE, 1)[0]


def _step_code(step: str) -> str:
    return step[: -len(_STEP_END)] if step.endswith(_STEP_END) else step


def _literals(step: str) -> list[re.Match[str]]:
    """Number literals on the code lines of a step (comment lines and trailing comments skipped)."""
    out: list[re.Match[str]] = []
    pos = 0
    for line in step.splitlines(keepends=True):
        code = line.split("#", 1)[0]
        if code.strip() and Marker.END_STEP not in code:
            out += [m for m in NUMBER.finditer(step, pos, pos + len(code))]
        pos += len(line)
    return out


def _change(lit: str, question_numbers: list[str], rng: random.Random) -> str | None:
    """A different number literal for `lit`, or None if the draw found none."""
    others = [n for n in question_numbers if n != lit]
    kind = rng.choice(("question", "digit", "digit", "drop", "double"))
    if kind == "question" and others:
        return rng.choice(others)
    digits = [i for i, c in enumerate(lit) if c.isdigit()]
    i = rng.choice(digits)
    if kind == "drop" and len(digits) > 1:
        new = lit[:i] + lit[i + 1 :]
    elif kind == "double":
        new = lit[:i] + lit[i] + lit[i:]
    else:
        new = lit[:i] + rng.choice([d for d in "0123456789" if d != lit[i]]) + lit[i + 1 :]
    if new == lit or not new or new[0] == "." or new.endswith("."):
        return None
    if len(new) > 1 and new[0] == "0" and new[1] != ".":
        return None  # '07' is a syntax error, not a plausible copy
    return new


def _candidate(s: Solved, rng: random.Random) -> _Candidate | None:
    split = split_solution(s.solution)
    if split is None:
        return None
    steps, final_code = split
    spots = [(i, m) for i, st in enumerate(steps) for m in _literals(st)]
    if not spots:
        return None
    i, m = rng.choice(spots)
    new = _change(m.group(0), NUMBER.findall(s.prompt), rng)
    if new is None:
        return None
    step = steps[i]
    rejected = step[: m.start()] + new + step[m.end() :]
    return _Candidate(s, i, tuple(steps), final_code, rejected)


def _program(c: _Candidate) -> _Program:
    codes = [_step_code(t) for t in c.steps]
    codes[c.index] = _step_code(c.rejected)
    return _Program(codes, c.final_code)


def perturbed_pairs(
    solved: Sequence[Solved],
    n: int,
    seed: int = 0,
    runner: CodeRunner | None = None,
    batch_size: int = 32,
) -> list[PreferencePair]:
    """Up to `n` verified perturbed-step pairs from `solved`, taken in order (one try each).

    Candidates run `batch_size` programs per sandbox run; a batch that fails as a whole (a
    perturbation that loops until the time limit) loses only its own candidates.
    """
    if n <= 0:
        return []
    rng = random.Random(seed)
    own = runner is None
    run: CodeRunner = _default_runner() if runner is None else runner
    out: list[PreferencePair] = []
    seen: set[tuple[str, str]] = set()
    try:
        todo = iter(solved)
        while len(out) < n:
            batch: list[_Candidate] = []
            for s in todo:
                c = _candidate(s, rng)
                if c is None or '"""' in s.solution or "'''" in s.solution:
                    continue
                if (c.prefix, c.rejected) in seen:
                    continue
                seen.add((c.prefix, c.rejected))
                batch.append(c)
                if len(batch) == batch_size:
                    break
            if not batch:
                break
            r = run.run(_batch_program([_program(c) for c in batch]))  # type: ignore[list-item]
            checks = _parse_batch(str(getattr(r, "stdout", "") or ""), len(batch))
            for j, c in enumerate(batch):
                chk = checks.get(j)
                if chk is None or not chk.ok or not chk.output:
                    continue
                if equivalent(c.source.answer, chk.output):
                    continue  # the change did not matter: not a wrong step
                out.append(
                    PreferencePair(
                        c.source.problem_id,
                        c.prefix,
                        c.steps[c.index],
                        c.rejected,
                        1.0,
                        -1.0,
                        "perturbed",
                    )  # fmt: skip
                )
                if len(out) == n:
                    break
    finally:
        if own:
            close = getattr(run, "close", None)
            if close is not None:
                close()
    return out
