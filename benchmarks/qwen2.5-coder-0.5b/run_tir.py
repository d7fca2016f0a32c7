"""tir vs plain on a real chat model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M by default): one fixed
suite of generated problems, several step-format variants, one results file per variant.

    python benchmarks/qwen2.5-coder-0.5b/run_tir.py --out benchmarks/qwen2.5-coder-0.5b/tir \\
        --variants plain,tir,tir-fewshot --threads 1
    python benchmarks/qwen2.5-coder-0.5b/run_tir.py --out ... --summary   # tables only

The suite (`suite.jsonl` in --out, written once) is reasoning-gym generators and edgestar's
synthetic generator at a fixed seed. Every variant solves every problem with the same strategy
and budget; results are appended line by line (an interrupted run resumes where it stopped).

Each row also records what the two TIR choices would have given on the same greedy path, which
is exact for greedy decoding (one chain, nothing sampled):
- `contradicted`: the boxed answer contradicts the last printed output (whether or not the
  run's check was on); `correct_unchecked` / `correct_checked`: the answer were such an answer
  kept (check_answer off, tir's default) or its branch ended (check_answer on);
- `correct_if_error_ends`: a failed block ends the branch (on_error='end') instead of showing
  its error to the model (on_error='show'): the path is the same up to the first error, where
  the greedy chain would stop with no answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import fixture_path  # noqa: E402

from edgestar.answer import equivalent  # noqa: E402
from edgestar.backends.loader import open_policy  # noqa: E402
from edgestar.executor import Executor  # noqa: E402
from edgestar.formats import PLAIN, TIR, TIR_EXEMPLARS, StepFormat  # noqa: E402
from edgestar.search import run_search  # noqa: E402
from edgestar.search.base import answer_matches_output  # noqa: E402
from edgestar.train.problems import load_source  # noqa: E402
from edgestar.types import Budget, SearchConfig  # noqa: E402

SOURCES = (
    "reasoning-gym:basic_arithmetic",
    "reasoning-gym:gcd",
    "reasoning-gym:lcm",
    "reasoning-gym:simple_equations",
    "reasoning-gym:chain_sum",
    "reasoning-gym:fraction_simplification",
)
CONTRADICTS = "the boxed answer contradicts the code's printed output"

VARIANTS: dict[str, tuple[StepFormat, dict[str, Any], str]] = {
    # name: (format, SearchConfig overrides, strategy)
    "plain": (PLAIN, {}, "greedy"),
    "tir": (TIR, {}, "greedy"),
    "tir-fewshot": (dataclasses.replace(TIR, exemplars=TIR_EXEMPLARS), {}, "greedy"),
    "tir-error-ends": (dataclasses.replace(TIR, on_error="end"), {}, "greedy"),
    "tir-unchecked": (TIR, {"check_answer": False}, "greedy"),
    "tir-checked": (TIR, {"check_answer": True}, "greedy"),
    "tir-system": (
        dataclasses.replace(
            TIR,
            system=TIR.user_template.split("\n", 1)[1].replace("{{}}", "{}"),
            user_template="{question}",
        ),
        {},
        "greedy",
    ),  # fmt: skip
    "tir-code": (TIR, {"code_first": True}, "greedy"),
    "tir-bon4": (TIR, {"n": 4, "select": "majority"}, "best_of_n"),
}


def build_suite(path: Path, per_source: int, synthetic: int, seed: int) -> list[Any]:
    if path.is_file():
        return load_source(str(path))
    problems = []
    for src in SOURCES:
        problems += load_source(src, per_source, seed)
    if synthetic:
        problems += load_source("synthetic", synthetic, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    return load_source(str(path))


def interleave(problems: list[Any]) -> list[Any]:
    """Round-robin over sources, each source's problems in suite order."""
    by: dict[str, list[Any]] = defaultdict(list)
    for p in problems:
        by[p.source].append(p)
    out = []
    for i in range(max(len(v) for v in by.values())):
        out += [v[i] for v in by.values() if i < len(v)]
    return out


def _row(p: Any, result: Any, tree: Any) -> dict[str, Any]:
    ok = result.answer is not None and equivalent(p.answer, result.answer)
    covered = ok or any(equivalent(p.answer, a) for a, _ in result.candidates)
    # The greedy chain: follow first children from the root.
    node, path = tree.root, []
    while node.children:
        node = tree.nodes[node.children[0]]
        path.append(node)
    last = path[-1] if path else None
    printed = next((n.stdout for n in reversed(path) if n.stdout is not None), None)
    fired = last is not None and last.error == CONTRADICTS  # the check was on and ended it
    would = (
        last is not None and last.kind == "answer" and printed is not None
        and not answer_matches_output(last.answer, printed)
    )  # fmt: skip
    contradicted = fired or would
    unchecked = ok or (fired and equivalent(p.answer, last.answer))
    first_error = next((i for i, n in enumerate(path) if n.error and n.kind == "code"), None)
    return {
        "id": p.id,
        "source": p.source,
        "skill": p.skill,
        "gold": p.answer,
        "answer": result.answer,
        "correct": ok,
        "covered": covered,
        "tokens": result.stats.tokens_generated,
        "seconds": result.stats.seconds,
        "stopped_by": result.stopped_by,
        "steps": len(path),
        "executions": result.stats.executions,
        "errors_shown": sum(1 for n in path if n.error and n.kind == "code"),
        "contradicted": contradicted,
        "boxed": last.answer if last is not None else None,
        "correct_unchecked": unchecked,
        "correct_checked": ok and not would,
        "correct_if_error_ends": ok and first_error is None,
        "last_kind": last.kind if last is not None else None,
        "tail": tree.prefix(last)[-400:] if last is not None else "",
        "path": [{"kind": n.kind, "text": n.text, "error": n.error} for n in path],
    }


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    problems = build_suite(out / "suite.jsonl", args.per_source, args.synthetic, args.suite_seed)
    model = Path(args.model) if args.model else fixture_path(args.fixture)
    policy = open_policy(model, "cpu", args.threads, args.n_ctx)
    executor = Executor()
    budget = Budget(rollouts=args.rollouts, tokens=args.tokens)
    names = args.variants.split(",")
    files, done = {}, {}
    for name in names:
        res_path = out / name / "results.jsonl"
        res_path.parent.mkdir(parents=True, exist_ok=True)
        done[name] = set()
        if res_path.is_file():
            done[name] = {json.loads(ln)["id"] for ln in res_path.read_text().splitlines() if ln}
        files[name] = open(res_path, "a", encoding="utf-8")  # noqa: SIM115
    try:
        # Problems outer, variants inner, sources interleaved: a run stopped at any point has
        # paired results on every variant, spread over every source.
        for p in interleave(problems):
            for name in names:
                if p.id in done[name]:
                    continue
                fmt, overrides, strategy = VARIANTS[name]
                for _attempt in range(3):
                    result, tree = run_search(
                        p.question, policy=policy, fmt=fmt, strategy=strategy, budget=budget,
                        config=SearchConfig(**overrides),
                        runner=executor if fmt.executes_code else None, seed=args.seed,
                    )  # fmt: skip
                    if not any((n.error or "").startswith("internal:") for n in tree.nodes):
                        break
                    # The sandbox itself failed (not the model's code: e.g. its temporary
                    # folder was removed under it on this shared machine): a fresh executor,
                    # and the problem again.
                    print(f"sandbox failure on {p.id}; restarting the executor", flush=True)
                    executor.close()
                    executor = Executor()
                row = _row(p, result, tree)
                files[name].write(json.dumps(row, ensure_ascii=False) + "\n")
                files[name].flush()
                print(f"{name} {p.id} {row['correct']} {row['answer']!r} gold={p.answer!r} "
                      f"{row['seconds']:.1f}s {row['tokens']}tok", flush=True)  # fmt: skip
    finally:
        for f in files.values():
            f.close()
        executor.close()
        policy.close()


def summary(out: Path) -> str:
    lines = [
        "| variant | n | accuracy | coverage | median s | mean tokens | check-off acc | "
        "check-on acc | error-ends acc | contradicted | blocks failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    per_src: dict[str, dict[str, list[bool]]] = {}
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for d in sorted(p for p in out.iterdir() if (p / "results.jsonl").is_file()):
        got: dict[str, dict[str, Any]] = {}
        for ln in (d / "results.jsonl").read_text().splitlines():
            if ln:
                r = json.loads(ln)
                got.setdefault(r["id"], r)
        if got:
            runs[d.name] = got
    if not runs:
        return "no results yet"
    # Paired: only the problems every variant has solved.
    common = set.intersection(*(set(v) for v in runs.values()))
    lines = [f"Paired over the {len(common)} problems every variant has solved.", "", *lines]
    for name, got in runs.items():
        rows = [got[i] for i in sorted(common)]
        if not rows:
            continue
        n = len(rows)

        def pct(key: str, rows: list[dict[str, Any]] = rows, n: int = n) -> str:
            # rows written before `correct_checked` existed ran with the check on
            return f"{100 * sum(bool(r.get(key, r['correct'])) for r in rows) / n:.1f}%"

        lines.append(
            f"| {name} | {n} | {pct('correct')} | {pct('covered')} | "
            f"{statistics.median(r['seconds'] for r in rows):.1f} | "
            f"{statistics.mean(r['tokens'] for r in rows):.0f} | {pct('correct_unchecked')} | "
            f"{pct('correct_checked')} | "
            f"{pct('correct_if_error_ends')} | {sum(r['contradicted'] for r in rows)} | "
            f"{sum(r['errors_shown'] > 0 for r in rows)} |"
        )
        by: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            by[r["skill"] or r["source"]].append(bool(r["correct"]))
        per_src[name] = dict(by)
    srcs = sorted({s for v in per_src.values() for s in v})
    lines += ["", "| source | " + " | ".join(per_src) + " |", "|---" * (len(per_src) + 1) + "|"]
    for s in srcs:
        cells = []
        for v in per_src.values():
            got = v.get(s, [])
            cells.append(f"{sum(got)}/{len(got)}" if got else "-")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default=None, help="a GGUF file (default: the fixture)")
    ap.add_argument("--fixture", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    ap.add_argument("--variants", default="plain,tir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--per-source", type=int, default=4)
    ap.add_argument("--synthetic", type=int, default=12)
    ap.add_argument("--suite-seed", type=int, default=12001)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rollouts", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    if not args.summary:
        unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
        if unknown:
            sys.exit(f"error: unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
        run(args)
    print(summary(Path(args.out)))


if __name__ == "__main__":
    main()
