"""The everyday evaluation set (issue 14): 100 hand-written questions, scored on any model.

The set is `tests/data/everyday.jsonl` (one `{"id", "question", "answer", "category"}` per line),
written by hand in the phrasings a person types to a math helper, never produced by the
training generator and never trained on. This script owns reading it, running a model over it
through edgestar's public API and scoring the answers with `edgestar.answer.equivalent`:

    python benchmarks/everyday/run.py --strategy greedy --threads 1 --out runs/everyday-tiny
    python benchmarks/everyday/run.py --model SmolLM2-135M-Instruct.Q4_1.gguf --format tir \\
        --strategy greedy --threads 1 --out runs/everyday-smollm2

It writes `results.jsonl` (one line per question, flushed as it goes: an interrupted run started
again with the same settings resumes) and `report.md` (accuracy overall and per category, the
wrong ones, median seconds and tokens) in --out.

From a test, `score(solver_or_fn, read_set())` returns (right, total, rows) for a loaded
`edgestar.Solver`, or for any callable that maps a question to an answer string.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from edgestar.answer import equivalent
from edgestar.types import Budget, EdgestarError, InputError

__all__ = ["DATA", "Item", "Scored", "main", "read_set", "score", "write_report"]

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "everyday.jsonl"
"""The shipped set: 100 questions."""


@dataclass(frozen=True)
class Item:
    """One question of the set with its gold answer."""

    id: str
    question: str
    answer: str
    category: str

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer", "category"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise InputError(f"everyday item {self.id!r}: {name} must be a non-empty string")


@dataclass(frozen=True)
class Scored:
    """One question after the model answered it."""

    id: str
    question: str
    category: str
    gold: str
    got: str | None
    right: bool
    seconds: float
    tokens: int | None = None
    stopped_by: str | None = None
    error: str | None = None


class _SolverLike(Protocol):
    def solve(self, question: str, **kw: Any) -> Any: ...


def read_set(path: str | os.PathLike[str] = DATA, limit: int | None = None) -> list[Item]:
    """The items of an everyday-format JSONL file (default: the shipped set), the first `limit`
    of them when given. Raises InputError naming the line of anything malformed."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"question set {p} does not exist")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive number, got {limit}")
    items: list[Item] = []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{p}:{lineno}: malformed JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise InputError(f"{p}:{lineno}: expected a JSON object")
            try:
                items.append(
                    Item(**{k: rec.get(k) for k in ("id", "question", "answer", "category")})
                )
            except InputError as e:
                raise InputError(f"{p}:{lineno}: {e}") from None
    if not items:
        raise InputError(f"question set {p} is empty")
    return items[:limit] if limit else items


def _answer(
    model: _SolverLike | Callable[[str], str | None],
    question: str,
    strategy: str | None,
    budget: Budget | None,
    seed: int,
) -> tuple[str | None, float, int | None, str | None]:
    """(answer, seconds, tokens generated, stopped_by) for one question."""
    if hasattr(model, "solve"):
        kw: dict[str, Any] = {"seed": seed, "keep_tree": False}
        if strategy is not None:
            kw["strategy"] = strategy
        if budget is not None:
            kw["budget"] = budget
        r = model.solve(question, **kw)
        return r.answer, r.stats.seconds, r.stats.tokens_generated, r.stopped_by
    t0 = time.perf_counter()
    got = model(question)  # type: ignore[operator]
    return got, time.perf_counter() - t0, None, None


def score(
    model: _SolverLike | Callable[[str], str | None],
    items: Iterable[Item],
    *,
    strategy: str | None = None,
    budget: Budget | None = None,
    seed: int = 0,
    on_row: Callable[[Scored], None] | None = None,
    fresh_cache: bool = True,
) -> tuple[int, int, list[Scored]]:
    """Run `model` (an `edgestar.Solver`, or a callable question -> answer string) over `items`
    and score each answer against the gold one with `edgestar.answer.equivalent`. A question
    the model fails on with an EdgestarError counts as wrong (its message is kept). `strategy`
    and `budget` default to the solver's own. Returns (right, total, scored rows).

    `fresh_cache`: drop the llama.cpp prefix cache before each question, so that every answer
    is the one `edgestar solve "QUESTION"` gives and does not depend on the questions before it
    (with the cache kept, a prompt decoded on top of a cached prefix gets slightly different
    logits, which can flip a greedy choice: measured on SmolLM2-135M, see README.md)."""
    rows: list[Scored] = []
    for it in items:
        err = None
        if fresh_cache:
            for part in (getattr(model, "policy", None), getattr(model, "reward", None)):
                if hasattr(part, "clear_cache"):
                    part.clear_cache()
        try:
            got, secs, toks, stopped = _answer(model, it.question, strategy, budget, seed)
        except EdgestarError as e:
            got, secs, toks, stopped, err = None, 0.0, None, None, str(e)
        row = Scored(
            id=it.id,
            question=it.question,
            category=it.category,
            gold=it.answer,
            got=got,
            right=equivalent(it.answer, got),
            seconds=secs,
            tokens=toks,
            stopped_by=stopped,
            error=err,
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return sum(r.right for r in rows), len(rows), rows


def _cell(s: str | None) -> str:
    return "" if s is None else str(s).replace("|", "\\|").replace("\n", " ")


def write_report(rows: Sequence[Scored], path: Path, title: str, setup: Sequence[str]) -> str:
    """Write (and return) the markdown report of scored rows: accuracy overall and per
    category, median seconds and tokens, and every wrong answer."""
    if not rows:
        raise InputError("nothing was scored")
    right = sum(r.right for r in rows)
    lines = [f"# {title}", "", *[f"- {s}" for s in setup], ""]
    lines.append(f"**{right}/{len(rows)} right ({100 * right / len(rows):.1f}%)**")
    secs = [r.seconds for r in rows]
    toks = [r.tokens for r in rows if r.tokens is not None]
    lines.append("")
    lines.append(f"Median seconds per question: {statistics.median(secs):.2f} "
                 f"(total {sum(secs):.1f} s)")  # fmt: skip
    if toks:
        lines.append(f"Median tokens generated per question: {statistics.median(toks):g}")
    lines += ["", "| category | right | of | accuracy |", "|---|---:|---:|---:|"]
    for cat in sorted({r.category for r in rows}):
        cr = [r for r in rows if r.category == cat]
        k = sum(r.right for r in cr)
        lines.append(f"| {cat} | {k} | {len(cr)} | {100 * k / len(cr):.0f}% |")
    wrong = [r for r in rows if not r.right]
    lines += ["", f"## Wrong ({len(wrong)})", ""]
    if wrong:
        lines += ["| id | question | gold | got |", "|---|---|---|---|"]
        for r in wrong:
            got = f"error: {r.error}" if r.error else r.got if r.got is not None else "(none)"
            lines.append(f"| {r.id} | {_cell(r.question)} | {_cell(r.gold)} | {_cell(got)} |")
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="A policy model: .gguf file, checkpoint folder or pulled name.")
    ap.add_argument("--bundle", help="A bundle folder (default: the shipped model).")
    ap.add_argument("--lora", help="A GGUF LoRA adapter for --model.")
    ap.add_argument("--ppm", help="A reward for --model (as `edgestar solve --ppm`).")
    ap.add_argument("--format", choices=["auto", "tir", "rstar", "plain"], help="Step format.")
    ap.add_argument("--strategy", choices=["greedy", "best_of_n", "beam", "mcts"],
                    help="Search strategy (default: the model's, as `edgestar solve`).")  # fmt: skip
    ap.add_argument("--rollouts", type=int, help="Budget: rollouts (default: the model's).")
    ap.add_argument("--seconds", type=float, help="Budget: wall-clock seconds per question.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="CPU threads for the model.")
    ap.add_argument(
        "--data", default=str(DATA), help="The question set (default: the shipped one)."
    )
    ap.add_argument("--limit", type=int, help="Only the first N questions.")
    ap.add_argument("--out", required=True, help="Folder for results.jsonl and report.md.")
    ap.add_argument("--force", action="store_true", help="Start over in a used --out folder.")
    return ap


def _settings(a: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "model",
        "bundle",
        "lora",
        "ppm",
        "format",
        "strategy",
        "rollouts",
        "seconds",
        "seed",
        "data",
    )
    return {k: _shown(getattr(a, k)) if k == "data" else getattr(a, k) for k in keys}


def _resume(
    out: Path, settings: dict[str, Any], force: bool, items: Sequence[Item]
) -> dict[str, Scored]:
    """Rows already in out/results.jsonl from a run with the same settings, for questions that
    are still the same (a row whose question or gold answer was edited since is run again)."""
    res, cfg = out / "results.jsonl", out / "settings.json"
    if force or not res.exists():
        return {}
    try:
        same = json.loads(cfg.read_text(encoding="utf-8")) == settings
    except (OSError, ValueError):
        same = False
    if not same:
        raise InputError(f"{out} holds a run with other settings; pass --force to start over")
    try:
        rows = _read_results(res)
    except (ValueError, TypeError, KeyError) as e:
        raise InputError(f"{res} is damaged ({e}); pass --force to start over") from None
    now = {it.id: (it.question, it.answer, it.category) for it in items}
    kept = [
        r
        for r in rows
        if now.get(r.id, (r.question, r.gold, r.category)) == (r.question, r.gold, r.category)
    ]
    if len(kept) < len(rows):
        res.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in kept))
    return {r.id: r for r in kept}


def _read_results(path: Path) -> list[Scored]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Scored(**json.loads(x)) for x in lines if x.strip()]


def _budget(rollouts: int | None, seconds: float | None) -> Budget | None:
    """The budget the flags give (they replace the model's whole budget, as in `edgestar
    solve`), or None for the model's own."""
    if rollouts is None and seconds is None:
        return None
    if rollouts is not None and rollouts < 1:
        raise InputError(f"--rollouts must be a positive number, got {rollouts}")
    return Budget(rollouts=rollouts, seconds=seconds)


def _run(a: argparse.Namespace, argv: Sequence[str]) -> int:
    import edgestar

    budget = _budget(a.rollouts, a.seconds)
    items = read_set(a.data, a.limit)
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    settings = _settings(a)
    done = _resume(out, settings, a.force, items)
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    todo = [it for it in items if it.id not in done]
    t0 = time.perf_counter()
    solver = edgestar.load(a.bundle, model=a.model, ppm=a.ppm, step_format=a.format,
                           threads=a.threads, lora=a.lora)  # fmt: skip
    load_s = time.perf_counter() - t0
    with solver, open(out / "results.jsonl", "w" if not done else "a", encoding="utf-8") as f:
        if solver.executor is not None:
            solver.executor.start()

        def write(row: Scored) -> None:
            f.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
            f.flush()
            mark = "ok " if row.right else "NO "
            print(f"{mark}{row.id} gold={row.gold} got={row.got} {row.seconds:.1f}s", flush=True)

        score(solver, todo, strategy=a.strategy, budget=budget, seed=a.seed, on_row=write)
        strategy = a.strategy or solver.strategy
        b = budget or solver.budget
        fmt = solver.format.name
    by_id = {r.id: r for r in _read_results(out / "results.jsonl")}
    rows = [by_id[it.id] for it in items if it.id in by_id]
    what = a.model or a.bundle or "the shipped default (edgestar-tiny)"
    setup = [
        f"model: {what}"
        + (f" + LoRA {a.lora}" if a.lora else "")
        + (f", PPM {a.ppm}" if a.ppm else ""),
        f"format {fmt}, strategy {strategy}, budget rollouts={b.rollouts} "
        f"seconds={b.seconds}, seed {a.seed}, "
        f"threads {a.threads or 'default'}",
        f"questions: {_shown(a.data)} ({len(rows)} scored{f', --limit {a.limit}' if a.limit else ''})",
        f"model load: {load_s:.1f} s (this invocation)",
        "command: python benchmarks/everyday/run.py " + " ".join(argv),
    ]
    write_report(rows, out / "report.md", "Everyday questions", setup)
    right = sum(r.right for r in rows)
    print(f"{right}/{len(rows)} right; report in {out / 'report.md'}")
    return 0


def _shown(path: str) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    p, root = Path(path).resolve(), DATA.parents[2]
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    try:
        return _run(a, argv)
    except EdgestarError as e:
        print(f"everyday: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("everyday: interrupted (finished rows are kept in --out)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
