"""End-to-end `edgestar solve` as a user runs it: wall time and peak memory per question.

Owns `run_solve_bench`: each (run, question) starts a fresh `python -m edgestar solve --json`
process on a bundle (interpreter start, imports, model load, sandbox start, search, exit: the
whole cold path a CLI user waits for), samples the resident memory of that process and all its
descendants (the sandbox worker included) every 10 ms from /proc, and writes
`solve_bench.json` + `solve_bench.md` with medians. Linux only (/proc); elsewhere the RSS column
is empty.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .types import InputError

DEFAULT_SOLVE_QUESTIONS = (
    "A shop sells pens at 3 for $2. How much do 18 pens cost?",
    "What is 48 + 37?",
    "Solve 3x + 7 = 22.",
    "What is the least common multiple of 6 and 8?",
    "What is 15% of 240?",
)


@dataclass(frozen=True)
class SolveBenchReport:
    json_path: Path
    md_path: Path
    data: dict[str, Any]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MB (0 where /proc is missing)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kb(p)
        todo += _children(p)
    return total / 1024


def _one(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise InputError(f"edgestar solve failed (exit {proc.returncode}): {last}")
    res = json.loads(out)
    return {
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(peak, 1),
        "answer": res.get("answer"),
        "search_s": res["stats"]["seconds"],
        "tokens_generated": res["stats"]["tokens_generated"],
    }


def run_solve_bench(
    bundle: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    questions: Sequence[str] = DEFAULT_SOLVE_QUESTIONS,
    runs: int = 3,
    threads: int | None = None,
    force: bool = False,
    progress: bool = True,
    model: str | os.PathLike[str] | None = None,
    ppm: str | os.PathLike[str] | None = None,
) -> SolveBenchReport:
    """Time `edgestar solve --bundle BUNDLE --json Q` (default search settings of the bundle)
    `runs` times per question; medians over all of them. `bundle` None: the shipped default.
    `model` (+ `ppm`): time `edgestar solve --model MODEL [--ppm PPM]` instead, e.g. to see the
    memory a reward model beside the policy costs (an off-the-shelf PRM: its own context)."""
    if model is not None and bundle is not None:
        raise InputError("give a bundle or a model, not both")
    if ppm is not None and model is None:
        raise InputError("--ppm needs --model")
    if runs < 1 or not questions:
        raise InputError("solve bench needs runs >= 1 and at least one question")
    out = Path(out_dir)
    paths = (out / "solve_bench.json", out / "solve_bench.md")
    if any(p.exists() for p in paths) and not force:
        raise InputError(f"{out} already holds solve bench output; pass force to overwrite")
    base = [sys.executable, "-m", "edgestar", "solve", "--json"]
    if bundle is not None:
        base += ["--bundle", str(bundle)]
    if model is not None:
        base += ["--model", str(model)] + (["--ppm", str(ppm)] if ppm is not None else [])
    if threads is not None:
        base += ["--threads", str(threads)]
    env = dict(os.environ)
    rows: list[dict[str, Any]] = []
    for r in range(runs):
        for qi, q in enumerate(questions):
            if progress:
                print(f"[solve bench] run {r + 1}/{runs}, question {qi + 1}", file=sys.stderr)
            rows.append({"run": r, "question": q, **_one([*base, q], env)})
    walls = [x["wall_s"] for x in rows]
    rss = [x["peak_rss_mb"] for x in rows]
    data: dict[str, Any] = {
        "bundle": (
            str(bundle)
            if bundle is not None
            else f"model {model}" + (f", ppm {ppm}" if ppm is not None else "")
            if model is not None
            else "(shipped default)"
        ),
        "threads": threads,
        "runs": runs,
        "cpu_count": os.cpu_count(),
        "median_wall_s": round(statistics.median(walls), 3),
        "max_wall_s": max(walls),
        "median_search_s": round(statistics.median(x["search_s"] for x in rows), 3),
        "median_peak_rss_mb": round(statistics.median(rss), 1),
        "max_peak_rss_mb": max(rss),
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# edgestar solve, end to end",
        "",
        f"Bundle {data['bundle']}, {runs} run(s) x {len(questions)} question(s), a fresh "
        f"`edgestar solve --json` process each (threads: {threads or 'bundle default'}, "
        f"{data['cpu_count']} CPUs). Peak RSS: the solve process and its sandbox worker "
        "together, sampled every 10 ms.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| median wall time per question | {data['median_wall_s']} s |",
        f"| slowest | {data['max_wall_s']} s |",
        f"| median search time (inside the process) | {data['median_search_s']} s |",
        f"| median peak RSS | {data['median_peak_rss_mb']} MB |",
        f"| largest peak RSS | {data['max_peak_rss_mb']} MB |",
        "",
        "| question | wall s | peak RSS MB | answer |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {x['question']} | {x['wall_s']} | {x['peak_rss_mb']} | {x['answer']} |" for x in rows
    ]
    paths[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return SolveBenchReport(paths[0], paths[1], data)
