"""Problem sources for train/: the synthetic generator, reasoning-gym, JSONL import, splits.

Everything here yields `ProblemRecord`s (train/schema.py; compatible with
`edgestar.types.Problem`), so rollouts and evaluation never care where a problem came from.

Sources, by `load_source` spec:

- ``synthetic`` / ``synthetic:skill1,skill2``: `generate`, school math from the skills in
  train/skills/, after Phi-4's data principles (diversity of skills and phrasings, graded
  difficulty, answers that verify, chain of thought). Each problem's reference solution is
  code; it is executed in edgestar's sandbox (`edgestar.executor.Executor`, the same one that
  runs model code) and the problem is kept only when the printed output is `equivalent` to the
  answer the generator computed by other means. Dropped problems are counted in
  `GenerationStats`. With ``with_solution=True`` the record carries the reference solution
  in the rstar format, written by `edgestar.formats.rstar_solution` with the real output.
- ``reasoning-gym:NAME`` (optionally ``reasoning-gym:NAME?key=value&key=value`` for the
  dataset's config): `reasoning_gym_source`. Scored by exact answer (`equivalent`), not by
  reasoning-gym's own partial-credit scorers.
- a path to a ``.jsonl`` file: `read_jsonl_problems`, GSM8K-style ({question, answer} with the
  final answer after ``####``) or MATH-style ({problem, solution} with the answer in the last
  ``\\boxed{}``) or our own records; bad lines are collected with their line numbers, not fatal.

Then `split` / `dedup_against` keep train and test apart on normalised question text, and
`write_jsonl` / `read_jsonl` store records atomically.

Departure from the papers: Phi-4 also filters questions by how often a model solves them
(neither always nor never); that needs a model, so it belongs to the rollout stage, not here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from edgestar.answer import MAX_ANSWER_CHARS, equivalent, extract_boxed
from edgestar.checkpoint import atomic_write_text
from edgestar.formats import rstar_solution
from edgestar.types import InputError

from .schema import ProblemRecord, ResultRecord
from .skills import DIFFICULTIES, SKILLS, GeneratedProblem

__all__ = [
    "DIFFICULTIES",
    "SKILLS",
    "GenerationStats",
    "JsonlImport",
    "LineError",
    "ProblemRecord",
    "ResultRecord",
    "check_reference",
    "dedup",
    "dedup_against",
    "generate",
    "load_source",
    "normalize_question",
    "questions_in",
    "read_jsonl",
    "read_jsonl_problems",
    "reasoning_gym_source",
    "split",
    "write_jsonl",
]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- verification


class CodeRunner(Protocol):
    """What runs reference code: `edgestar.executor.Executor` or anything shaped like it."""

    def run(self, code: str, prefix: str = "") -> Any: ...  # -> ExecResult(ok, stdout, error)


@dataclass(frozen=True)
class CodeCheck:
    """One reference solution, run: did it run, what did it print."""

    ok: bool
    output: str
    error: str | None = None


def _default_runner() -> Any:
    from edgestar.executor import Executor, ExecutorConfig

    # Our own code, batched: a longer clock and a larger output cap than a model step gets.
    return Executor(ExecutorConfig(timeout_s=30.0, cpu_s=30, max_output_chars=1 << 18))


_BEGIN, _END, _FAIL = "@@edgestar-check-begin", "@@edgestar-check-end", "@@edgestar-check-failed"


def _batch_program(problems: Sequence[GeneratedProblem]) -> str:
    """One program that runs each problem's code in its own function (its own namespace) and
    brackets each output with markers. Code needs no exec/json, which the sandbox refuses."""
    parts = []
    for i, p in enumerate(problems):
        body = "\n".join([*(code for _, code in p.steps), p.final_code])
        indented = "\n".join("    " + line if line.strip() else "" for line in body.splitlines())
        parts.append(
            f"def _check_{i}():\n{indented}\n    return None\n\n\n"
            f"print({_BEGIN + f' {i}'!r})\n"
            f"try:\n    _check_{i}()\nexcept Exception:\n    print({_FAIL + f' {i}'!r})\n"
            f"print()\nprint({_END + f' {i}'!r})\n"
        )
    return "\n".join(parts)


def _parse_batch(stdout: str, n: int) -> dict[int, CodeCheck]:
    found: dict[int, CodeCheck] = {}
    pattern = re.compile(
        rf"^{re.escape(_BEGIN)} (\d+)\n(.*?)^{re.escape(_END)} \1$", flags=re.S | re.M
    )
    for m in pattern.finditer(stdout):
        i, out = int(m.group(1)), m.group(2)
        if i >= n or i in found:
            continue
        failed = re.search(rf"^{re.escape(_FAIL)} {i}$", out, flags=re.M) is not None
        found[i] = CodeCheck(ok=not failed, output="" if failed else out.strip())
    return found


def _run_one(runner: CodeRunner, p: GeneratedProblem) -> CodeCheck:
    prefix = "\n".join(code for _, code in p.steps)
    r = runner.run(p.final_code, prefix=prefix)
    ok = bool(getattr(r, "ok", False))
    err = getattr(r, "error", None)
    return CodeCheck(ok=ok, output=str(getattr(r, "stdout", "") or "").strip(), error=err)


def check_reference(
    problems: Sequence[GeneratedProblem],
    runner: CodeRunner | None = None,
    batch_size: int = 64,
) -> list[CodeCheck]:
    """Run each problem's reference code (steps as prefix, final code as the step, as the
    runtime does) and return what it printed.

    With batch_size > 1, problems run `batch_size` at a time in one sandbox run (each in its
    own function); any problem whose batched run failed, printed a wrong answer or went missing
    is run again on its own, the way the runtime runs it, and that verdict is final.
    """
    own = runner is None
    run: CodeRunner = _default_runner() if runner is None else runner
    results: list[CodeCheck | None] = [None] * len(problems)
    try:
        if batch_size > 1:
            for start in range(0, len(problems), batch_size):
                chunk = problems[start : start + batch_size]
                if any('"""' in c or "'''" in c for p in chunk for _, c in p.steps):
                    continue  # indenting could change a multi-line string: run one by one
                r = run.run(_batch_program(chunk))
                for i, chk in _parse_batch(str(getattr(r, "stdout", "") or ""), len(chunk)).items():
                    if chk.ok and equivalent(chunk[i].answer, chk.output):
                        results[start + i] = chk
        for i, p in enumerate(problems):
            if results[i] is None:
                results[i] = _run_one(run, p)
    finally:
        if own:
            close = getattr(run, "close", None)
            if close is not None:
                close()
    return [r for r in results if r is not None]


# ----------------------------------------------------------------------------- synthetic


@dataclass
class GenerationStats:
    """What `generate` did: how many problems it drew, kept and dropped, and why."""

    requested: int = 0
    produced: int = 0
    attempted: int = 0
    generator_errors: int = 0
    """A skill raised (it could not build a problem with the numbers it drew)."""
    exec_errors: int = 0
    """The reference code failed to run."""
    mismatches: int = 0
    """The reference code ran but printed something not `equivalent` to the answer."""
    duplicates: int = 0
    dropped_by_skill: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    """The first few failures, one line each, for a person to read."""
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.generator_errors + self.exec_errors + self.mismatches

    @property
    def failure_rate(self) -> float:
        return self.failed / self.attempted if self.attempted else 0.0

    def _drop(self, kind: str, skill: str, detail: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.dropped_by_skill[skill] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{skill}: {kind}: {detail}"[:300])


def _resolve_skills(skills: Iterable[str] | str | None) -> list[str]:
    if skills is None:
        return list(SKILLS)
    names = [s.strip() for s in (skills.split(",") if isinstance(skills, str) else skills)]
    names = [s for s in names if s]
    unknown = [s for s in names if s not in SKILLS]
    if unknown or not names:
        raise InputError(
            f"unknown skill {', '.join(unknown) or '(none given)'}; choose from {', '.join(SKILLS)}"
        )
    return list(dict.fromkeys(names))


def _resolve_difficulty(difficulty: int | Iterable[int] | None) -> list[int]:
    if difficulty is None:
        return list(DIFFICULTIES)
    levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
    bad = [d for d in levels if isinstance(d, bool) or d not in DIFFICULTIES]
    if bad or not levels:
        raise InputError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    return levels


def generate(
    n: int,
    seed: int,
    skills: Iterable[str] | str | None = None,
    difficulty: int | Iterable[int] | None = None,
    *,
    with_solution: bool = False,
    runner: CodeRunner | None = None,
    stats: GenerationStats | None = None,
    batch_size: int = 64,
) -> list[ProblemRecord]:
    """`n` distinct, verified synthetic problems (fewer only if the skills run out of distinct
    questions; a warning says so).

    Skills and difficulty levels are drawn uniformly from `skills` (default: all) and
    `difficulty` (one level, several, or default 1-3). Deterministic per seed, and a larger `n`
    extends a smaller one (same seed, same first problems). `runner` defaults to a sandboxed
    `Executor` started for this call; pass one to reuse it. `stats`, if given, is filled in.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"n must be a non-negative whole number, got {n!r}")
    names, levels = _resolve_skills(skills), _resolve_difficulty(difficulty)
    st = stats if stats is not None else GenerationStats()
    st.requested += n
    t0 = time.perf_counter()
    rng = random.Random(seed)
    own = runner is None and n > 0
    run = _default_runner() if own else runner
    out: list[ProblemRecord] = []
    seen: set[str] = set()
    max_attempts = 20 * n + 200
    try:
        while len(out) < n and st.attempted < max_attempts:
            drawn: list[tuple[str, int, GeneratedProblem]] = []
            for _ in range(min(max(n - len(out), 1), 4 * batch_size)):
                skill, level = rng.choice(names), rng.choice(levels)
                st.attempted += 1
                try:
                    drawn.append((skill, level, SKILLS[skill](rng, level)))
                except Exception as e:  # a skill that cannot build a problem: count it
                    st._drop("generator_errors", skill, f"{type(e).__name__}: {e}")
            checks = check_reference([g for _, _, g in drawn], run, batch_size)
            for (skill, level, g), chk in zip(drawn, checks, strict=True):
                if not chk.ok:
                    st._drop("exec_errors", skill, f"{g.question!r}: {chk.error}")
                    continue
                if not equivalent(g.answer, chk.output):
                    st._drop("mismatches", skill, f"{g.question!r}: {chk.output!r} != {g.answer!r}")
                    continue
                key = normalize_question(g.question)
                if key in seen:
                    st.duplicates += 1
                    continue
                seen.add(key)
                out.append(_record(skill, level, g, chk.output if with_solution else None))
                if len(out) == n:
                    break
    finally:
        if own and run is not None and hasattr(run, "close"):
            run.close()
    st.produced += len(out)
    st.seconds += time.perf_counter() - t0
    if st.failed:
        log.info(
            "synthetic: dropped %d of %d problems that did not verify", st.failed, st.attempted
        )
    if len(out) < n:
        log.warning(
            "synthetic: only %d distinct problems for %d asked (skills %s)", len(out), n, names
        )
    return out


def _record(skill: str, level: int, g: GeneratedProblem, output: str | None) -> ProblemRecord:
    digest = hashlib.sha1(g.question.encode("utf-8")).hexdigest()[:12]
    solution = None
    if output is not None:
        solution = rstar_solution(list(g.steps), g.final_code, output, g.answer)
    return ProblemRecord(
        id=f"syn-{skill}-{digest}",
        question=g.question,
        answer=g.answer,
        source="synthetic",
        skill=skill,
        difficulty=level,
        template=g.template,
        solution=solution,
    )


# ----------------------------------------------------------------------------- reasoning-gym


def reasoning_gym_source(name: str, n: int, seed: int, **config: Any) -> list[ProblemRecord]:
    """`n` problems from reasoning-gym's dataset `name` (e.g. basic_arithmetic, chain_sum, gcd,
    lcm, leg_counting, fraction_simplification), with its `config` keywords.

    Item i of a reasoning-gym dataset is generated from Random(seed + i), so two seeds closer
    than `n` share items: space seeds by more than `n` and dedup train against test. The record
    id is built from (name, config, seed + i), so equal ids mean equal items.
    """
    try:
        import reasoning_gym
    except ImportError:
        raise InputError(
            "reasoning-gym sources need the reasoning-gym package: pip install reasoning-gym "
            "(it comes with edgestar[train])"
        ) from None
    known = _reasoning_gym_names()
    if known and name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"reasoning-gym has no dataset {name!r}{hint}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive whole number, got {n!r}")
    try:
        ds = reasoning_gym.create_dataset(name, seed=seed, size=n, **config)
        items = [ds[i] for i in range(n)]
    except Exception as e:  # bad config keys or values surface here
        raise InputError(f"reasoning-gym {name}: {type(e).__name__}: {e}") from None
    tag = ""
    if config:
        blob = json.dumps(config, sort_keys=True, default=str).encode("utf-8")
        tag = hashlib.sha1(blob).hexdigest()[:8] + "-"
    out, skipped = [], 0
    for i, item in enumerate(items):
        answer = item.get("answer")
        if answer is None or not str(answer).strip() or len(str(answer)) > MAX_ANSWER_CHARS:
            skipped += 1
            continue
        meta = item.get("metadata") or {}
        level = meta.get("difficulty")
        out.append(
            ProblemRecord(
                id=f"rg-{name}-{tag}{seed + i}",
                question=str(item["question"]),
                answer=str(answer),
                source=f"reasoning-gym:{name}",
                skill=name,
                difficulty=level
                if isinstance(level, int) and not isinstance(level, bool)
                else None,
            )
        )
    if skipped:
        log.warning("reasoning-gym %s: skipped %d items without a usable answer", name, skipped)
    return out


def _reasoning_gym_names() -> list[str]:
    try:
        from reasoning_gym.factory import DATASETS

        return sorted(DATASETS)
    except Exception:  # the registry moved: let create_dataset say what is wrong
        return []


# ----------------------------------------------------------------------------- JSONL import


class LineError(NamedTuple):
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class JsonlImport(NamedTuple):
    records: list[ProblemRecord]
    errors: list[LineError]


_QUESTION_KEYS = ("question", "problem")


def _answer_of(row: dict[str, Any]) -> str:
    """The final answer of a GSM8K / MATH / plain record; raises ValueError saying why not."""
    ans = row.get("answer")
    if isinstance(ans, (int, float)) and not isinstance(ans, bool):
        return str(ans)
    if isinstance(ans, str) and ans.strip():
        if "####" in ans:  # GSM8K: reasoning, then "#### 72"
            final = ans.rsplit("####", 1)[1].strip()
            final = re.sub(r"(?<=\d),(?=\d{3}\b)", "", final).rstrip(".").strip()
            if not final:
                raise ValueError("nothing after '####'")
            return final
        boxed = extract_boxed(ans) if "\\boxed" in ans or "\\fbox" in ans else None
        final = boxed if boxed is not None else ans.strip()
        if len(final) > MAX_ANSWER_CHARS:
            raise ValueError(
                f"answer is {len(final)} characters (looks like a solution without '####' "
                f"or \\boxed{{}}); the limit is {MAX_ANSWER_CHARS}"
            )
        return final
    sol = row.get("solution")
    if isinstance(sol, str) and sol.strip():
        boxed = extract_boxed(sol)
        if boxed is None or not boxed.strip():
            raise ValueError("no \\boxed{} answer in the solution")
        return boxed
    raise ValueError("no answer (expected 'answer', or 'solution' with \\boxed{})")


def _level(row: dict[str, Any]) -> int | None:
    v = row.get("difficulty", row.get("level"))
    if isinstance(v, int) and not isinstance(v, bool):
        return v if v >= 0 else None
    if isinstance(v, str):  # MATH: "Level 3"
        m = re.search(r"\d+", v)
        return int(m.group()) if m else None
    return None


def read_jsonl_problems(path: str | Path, source: str | None = None) -> JsonlImport:
    """Problems from a GSM8K- or MATH-style JSONL file (or our own problem records).

    Question: "question" or "problem". Answer: "answer" (GSM8K's text after the last '####';
    a \\boxed{} answer; or the value as is), else the last \\boxed{} in "solution" (MATH).
    Optional: "id" (default: file stem + line number), "source" (default: `source` or the file
    stem), "skill" or MATH's "type", "difficulty" or MATH's "level". Blank lines are skipped;
    every other bad line becomes a `LineError` and the rest of the file is still read.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read ({e})") from None
    src = source if source is not None else p.stem
    records: list[ProblemRecord] = []
    errors: list[LineError] = []
    ids: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(LineError(lineno, f"not valid JSON ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(row, dict):
            errors.append(LineError(lineno, f"expected a JSON object, got {type(row).__name__}"))
            continue
        try:
            question = next((row[k] for k in _QUESTION_KEYS if k in row), None)
            if question is None:
                raise ValueError("no question (expected 'question' or 'problem')")
            rid = row.get("id", row.get("unique_id"))
            rid = str(rid) if rid is not None and str(rid).strip() else f"{p.stem}-{lineno}"
            if rid in ids:
                raise ValueError(f"duplicate id {rid!r}")
            rec = ProblemRecord(
                id=rid,
                question=question,
                answer=_answer_of(row),
                source=str(row.get("source") or src),
                skill=_opt_str(row.get("skill", row.get("type"))),
                difficulty=_level(row),
                template=_opt_str(row.get("template")),
            )
        except (ValueError, TypeError) as e:  # InputError is a ValueError
            errors.append(LineError(lineno, str(e)))
            continue
        ids.add(rid)
        records.append(rec)
    return JsonlImport(records, errors)


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


# ----------------------------------------------------------------------------- dispatch


def load_source(
    spec: str,
    n: int | None = None,
    seed: int = 0,
    *,
    difficulty: int | Iterable[int] | None = None,
    with_solution: bool = False,
    runner: CodeRunner | None = None,
) -> list[ProblemRecord]:
    """Problems from a source spec: "synthetic", "synthetic:skill1,skill2",
    "reasoning-gym:NAME" (config as "reasoning-gym:NAME?min_terms=2&max_terms=4", values read
    as JSON where they parse), or a path to a .jsonl file.

    `n` is required for generated sources; for a file it takes a seeded sample of `n` records
    (file order kept), or all of them when None. Bad lines of a file are logged as warnings;
    call `read_jsonl_problems` to get them.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("empty problem source spec")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if kind in ("synthetic", "reasoning-gym"):
        if n is None:
            raise InputError(f"{spec}: say how many problems to generate (n)")
        if kind == "synthetic":
            return generate(
                n, seed, rest or None, difficulty, with_solution=with_solution, runner=runner
            )
        name, _, query = rest.partition("?")
        if not name:
            raise InputError("reasoning-gym spec needs a dataset name: reasoning-gym:NAME")
        return reasoning_gym_source(name, n, seed, **_parse_query(query))
    path = Path(spec)
    if spec.endswith(".jsonl") or path.is_file():
        if not path.is_file():
            raise InputError(f"{spec}: no such file")
        records, errors = read_jsonl_problems(path)
        for err in errors[:20]:
            log.warning("%s: %s", spec, err)
        if len(errors) > 20:
            log.warning("%s: %d more bad lines", spec, len(errors) - 20)
        if n is not None and n < len(records):
            keep = sorted(random.Random(seed).sample(range(len(records)), n))
            records = [records[i] for i in keep]
        return records
    raise InputError(
        f"unknown problem source {spec!r}: use synthetic[:skills], reasoning-gym:NAME "
        "or a path to a .jsonl file"
    )


def _parse_query(query: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise InputError(f"reasoning-gym config {part!r}: expected key=value")
        try:
            config[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            config[key.strip()] = value
    return config


# ----------------------------------------------------------------------------- splits


_SENTENCE_PUNCT = re.compile(r"""[.,;:!?"'`“”‘’]""")


def normalize_question(text: str) -> str:
    """The text two questions are compared on: lowercase, whitespace collapsed, sentence
    punctuation stripped. Math symbols and decimal points stay ("3+5" and "3-5" differ, "2.5"
    is not "25"); thousands separators go ("1,000" is "1000")."""
    t = text.lower()
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = re.sub(r"(?<=\d)\.(?=\d)", "\x00", t)  # protect decimal points
    t = _SENTENCE_PUNCT.sub(" ", t).replace("\x00", ".")
    return " ".join(t.split())


def dedup(problems: Iterable[ProblemRecord]) -> list[ProblemRecord]:
    """The first problem of each normalised question, in order."""
    seen: set[str] = set()
    out = []
    for p in problems:
        key = normalize_question(p.question)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def dedup_against(
    train: Iterable[ProblemRecord], test: Iterable[ProblemRecord], also: Iterable[str] = ()
) -> list[ProblemRecord]:
    """`train` without any problem whose normalised question is also in `test` or among the
    questions `also` (evaluation sets kept outside the recipe)."""
    banned = {normalize_question(p.question) for p in test}
    banned |= {normalize_question(q) for q in also}
    kept, dropped = [], 0
    for p in train:
        if normalize_question(p.question) in banned:
            dropped += 1
        else:
            kept.append(p)
    if dropped:
        log.info("dropped %d training problems that are also test questions", dropped)
    return kept


def questions_in(path: str | os.PathLike[str]) -> list[str]:
    """The `question` of every row of a JSONL evaluation file (any other fields ignored), for
    keeping its questions out of training data; a missing or malformed file: one InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such evaluation file")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line).get("question")
        except (json.JSONDecodeError, AttributeError):
            q = None
        if not isinstance(q, str):
            raise InputError(f"{p}:{n}: expected a JSON object with a 'question' string")
        out.append(q)
    return out


def split(
    problems: Sequence[ProblemRecord], test_fraction: float, seed: int
) -> tuple[list[ProblemRecord], list[ProblemRecord]]:
    """(train, test): a seeded split by question, so copies of one question (after
    normalisation) always land on the same side; each side keeps the input order. The test side
    gets round(test_fraction * len) problems, or slightly more when a group overshoots."""
    if not isinstance(test_fraction, (int, float)) or not 0.0 <= test_fraction <= 1.0:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault(normalize_question(p.question), []).append(i)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    want = round(test_fraction * len(problems))
    test_idx: set[int] = set()
    for k in keys:
        if len(test_idx) >= want:
            break
        test_idx.update(groups[k])
    train = [p for i, p in enumerate(problems) if i not in test_idx]
    test = [p for i, p in enumerate(problems) if i in test_idx]
    return train, test


# ----------------------------------------------------------------------------- JSONL files


def write_jsonl(
    path: str | Path, records: Iterable[ProblemRecord | ResultRecord | dict[str, Any]]
) -> int:
    """Write records one per line, atomically (a reader never sees half a file). Returns the
    number written."""
    lines = []
    for r in records:
        if isinstance(r, (ProblemRecord, ResultRecord)):
            lines.append(r.to_json())
        elif isinstance(r, dict):
            lines.append(json.dumps(r, ensure_ascii=False))
        else:
            raise InputError(f"cannot write a {type(r).__name__} as a JSONL record")
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(
    path: str | Path, record_type: type[ProblemRecord] | type[ResultRecord] | None = None
) -> list[Any]:
    """Read a JSONL file we wrote: dicts, or `record_type` records. Strict: the first bad line
    raises InputError naming the file and line (use `read_jsonl_problems` for foreign data)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read ({e})") from None
    out: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if record_type is not None:
                out.append(record_type.from_json(row))
            elif isinstance(row, dict):
                out.append(row)
            else:
                raise InputError(f"expected a JSON object, got {type(row).__name__}")
        except json.JSONDecodeError as e:
            raise InputError(f"{p}:{lineno}: not valid JSON ({e.msg})") from None
        except InputError as e:
            raise InputError(f"{p}:{lineno}: {e}") from None
    return out
