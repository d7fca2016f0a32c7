"""`edgestar bench`: how much the tree-shared KV cache and batched siblings buy on this machine.

Owns `run_bench` (the library function behind the CLI command), its worker processes and its
three outputs in `out_dir`: bench.json (every figure, per run and median), bench.md (tables and
how each figure was measured) and bench.png (throughput against expansion width; wall time per
variant). What it measures, on one GGUF policy with the same threads and context everywhere:

(a) raw llama.cpp decode, llama-bench style: one token per sequence per `llama_decode` after a
    prompt of the benchmark's length, for 1 sequence and for w sibling sequences (the curve).
(b) the same seeded MCTS (token budget per question) three ways:
    - naive: what a user writes with the high-level `llama_cpp.Llama` class: for every
      candidate, `reset()`, `eval()` of the whole prompt, then one `eval([token])` per token,
      sampling with the shared sampler from the logits (no branching, no batching);
    - single: `LlamaCppPolicy(batch_candidates=False)`: the tree-shared cache, one candidate at
      a time;
    - batched: `LlamaCppPolicy()`: the tree-shared cache, all candidates in one batch per step.
    The batched run records every candidate's token ids; single and naive replay them (their
    sampler still runs on their own logits; the recorded token is fed when it disagrees), so
    all three build the SAME tree: llama.cpp's rounding depends on the batch shape and on where
    a sequence's cells sit, and with Q8_0 weights activation quantization turns that rounding
    into logit changes of up to ~0.8, so free-running variants would search different trees.
    Sameness is checked by comparing the trees' JSON (logprobs to 1e-3) and the agreement of
    each variant's own samples with the recorded tokens is reported.
    Per variant: wall time, generated tokens/s, tokens the backend decoded / distinct tokens in
    the final tree (nodes of the token trie over every node's tokenized prefix), Python
    overhead share = 1 - (time inside llama_decode / wall), peak RSS (ru_maxrss of the worker
    process that ran only that variant). Also batched MCTS at every width in `widths`.
(c) with `onnx_dir` (a folder from benchmarks/make_tiny_pair.py: one tiny model as GGUF f32 and
    q8_0 and as ONNX fp32 and int8): batched llama.cpp MCTS against `OnnxPolicy` MCTS on that
    same model, at similar precision (q8_0 vs int8; f32 vs fp32). Those trees differ (other
    numerics, no replay across backends); throughput is compared at the same token budget.

Each figure is the median over `runs` runs; a ratio is taken within each run, then its median.
Headline ratios at the top level of bench.json: `evaluated_per_unique_token`,
`batched_vs_single_decode` (batched MCTS generated tokens/s / raw single-sequence decode
tokens/s), `speedup_vs_naive` (naive wall / batched wall).

Variants run in subprocesses (`python -m edgestar._bench_workers --worker spec.json out.json`),
one at a time, so their timings do not overlap and each has its own peak RSS; the workers live
in `_bench_workers`, the summary, tables and plot in `_bench_report`. Imports nothing from
train/ or quantize/ (the ONNX folder is made beforehand) and never torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._bench_report import _curve_tokens, _markdown, _plot, _summarize
from .types import InputError, ModelError, SearchConfig

__all__ = ["DEFAULT_QUESTIONS", "BenchReport", "run_bench"]

DEFAULT_QUESTIONS: tuple[str, ...] = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
    "How much did she earn?",
)


@dataclass(frozen=True)
class BenchReport:
    """What `run_bench` wrote and its headline figures."""

    out_dir: Path
    json_path: Path
    md_path: Path
    png_path: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def evaluated_per_unique_token(self) -> float:
        return float(self.data["evaluated_per_unique_token"])

    @property
    def batched_vs_single_decode(self) -> float:
        return float(self.data["batched_vs_single_decode"])

    @property
    def speedup_vs_naive(self) -> float:
        return float(self.data["speedup_vs_naive"])


# ============================================================================ orchestration


def run_bench(
    model: str | os.PathLike[str] | None = None,
    bundle: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "bench",
    threads: int = 2,
    widths: Sequence[int] = (1, 2, 4, 8, 16, 32),
    runs: int = 3,
    questions: Sequence[str] = DEFAULT_QUESTIONS,
    onnx_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool = True,
    *,
    width: int | None = None,
    tokens: int = 320,
    step_tokens: int = 96,
    n_ctx: int = 8192,
    step_format: str | None = None,
    quiet_wait: float = 90.0,
) -> BenchReport:
    """Benchmark a GGUF policy (`model`, or a bundle's policy) and write bench.{json,md,png}
    to `out_dir`; see the module docstring. `width`: the expansion width of the three-way
    comparison (default: SearchConfig's). `tokens`: generated-token budget per question and
    search. `step_format`: 'plain' or 'rstar' (default: the bundle's or the GGUF's
    edgestar.step_format, else 'plain'). `quiet_wait`: seconds each worker may wait for other
    processes to go quiet (0: never wait). Raises InputError for bad arguments or an existing
    output without `force`, ModelError for an unusable model."""
    from .formats import get_format

    path, fmt_name = _resolve_model(model, bundle)
    fmt_name = step_format or fmt_name
    get_format(fmt_name)
    width = SearchConfig().width if width is None else width
    for name, v in (("threads", threads), ("runs", runs), ("tokens", tokens), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"bench {name} must be a positive integer, got {v!r}")
    ws = sorted({int(w) for w in widths})
    if not ws or ws[0] < 1 or ws[-1] > 64:
        raise InputError(f"bench widths must be in 1..64, got {list(widths)!r}")
    if not questions:
        raise InputError("bench needs at least one question")
    out = Path(out_dir)
    paths = [out / n for n in ("bench.json", "bench.md", "bench.png")]
    if any(p.exists() for p in paths) and not force:
        raise InputError(f"{out} already holds bench output; pass force=True to overwrite")
    onnx = _resolve_onnx(onnx_dir) if onnx_dir is not None else None
    out.mkdir(parents=True, exist_ok=True)

    say: Callable[[str], None] = (
        (lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True)) if progress else _quiet
    )
    common = {
        "quiet_wait": quiet_wait,
        "threads": threads,
        "n_ctx": n_ctx,
        "questions": list(questions),
        "format": fmt_name,
        "tokens": tokens,
        "step_tokens": step_tokens,
    }
    per_run: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgestar-bench-") as tmp:
        for r in range(runs):
            say(f"run {r + 1}/{runs}: raw decode")
            run: dict[str, Any] = {}
            run["raw"] = _worker(tmp, {"kind": "raw", "model": str(path), **common, "widths": ws})
            script = str(Path(tmp) / "script.json")
            for variant in ("batched", "single", "naive"):
                say(f"run {r + 1}/{runs}: MCTS {variant} (width {width})")
                spec = {"kind": "mcts", "variant": variant, "model": str(path), **common}
                spec |= {"width": width, "record" if variant == "batched" else "script": script}
                run[variant] = _worker(tmp, spec)
            say(f"run {r + 1}/{runs}: MCTS batched at widths {ws}")
            run["widths"] = {
                str(w): _worker(
                    tmp,
                    {"kind": "mcts", "variant": "batched", "model": str(path), **common}
                    | {"width": w, "tokens": _curve_tokens(tokens, w, width)},
                )
                for w in ws
            }
            if onnx is not None:
                run["onnx"] = {}
                for name, variant, mpath in onnx:
                    say(f"run {r + 1}/{runs}: tiny model, {name}")
                    spec = {"kind": "mcts", "variant": variant, "model": mpath, **common}
                    spec |= {"width": width, "format": "plain", "stop": ["."]}
                    spec["tokens"] = 4 * tokens  # the tiny model is ~50x faster
                    run["onnx"][name] = _worker(tmp, spec)
            per_run.append(run)
    data = _summarize(per_run, path, fmt_name, width, ws, runs, threads, common, onnx is not None)
    data["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    args = [f"model='{path.name}'" if model is not None else "bundle='BUNDLE_DIR'"]
    args += [f"out_dir={str(out)!r}", f"threads={threads}", f"runs={runs}", f"tokens={tokens}"]
    if onnx_dir is not None:
        args.append("onnx_dir='ONNX_DIR'")
    data["reproduce"] = (
        "python benchmarks/make_tiny_pair.py ONNX_DIR  # only for the ONNX part\n"
        f'python -c "from edgestar.bench import run_bench; run_bench({", ".join(args)}, force=True)"'
    )
    data["setup"]["machine"]["quiet_wait"] = {
        "waited_s": QUIET["waited_s"],
        "max_busy_at_worker_start": max(QUIET["busy_at_start"], default=0.0),
        "rule": f"each worker starts once other load is < 20% of the cores (waits <= {quiet_wait} s)",
    }
    json_p, md_p, png_p = paths
    json_p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_p.write_text(_markdown(data), encoding="utf-8")
    _plot(data, png_p)
    say(f"wrote {json_p}, {md_p}, {png_p} in {data['bench_seconds']} s")
    return BenchReport(out, json_p, md_p, png_p, data)


def _quiet(_: str) -> None:
    pass


def _resolve_model(
    model: str | os.PathLike[str] | None, bundle: str | os.PathLike[str] | None
) -> tuple[Path, str]:
    from .backends._llama_raw import check_gguf

    if (model is None) == (bundle is None):
        raise InputError("bench needs exactly one of --model FILE.gguf or --bundle DIR")
    if bundle is not None:
        from .bundle import read_bundle

        b = read_bundle(bundle)
        if b.policy.kind != "gguf":
            raise InputError(f"bundle {b.root}: its policy is {b.policy.kind}, bench needs a GGUF")
        if b.policy.lora is not None:  # the bench's raw-decode workers run bare GGUFs
            raise InputError(
                f"bundle {b.name} runs its policy with a LoRA adapter, which this bench does not "
                "apply: use `edgestar bench --solve --bundle` (times edgestar solve on it)"
            )
        return b.path(b.policy), b.step_format
    from .pull import resolve_model
    from .solver import auto_format

    # The file and format `edgestar solve --model` would use: a pulled model by name, its
    # registry format, else what the file declares (tir for a chat model).
    p, spec = resolve_model(model)  # type: ignore[arg-type]
    check_gguf(p)
    return p, spec.step_format if spec else auto_format(p)


def _resolve_onnx(onnx_dir: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    d = Path(onnx_dir)
    want = [
        ("llama.cpp q8_0", "batched", d / "policy-q8_0.gguf"),
        ("onnx int8", "onnx", d / "onnx-int8"),
        ("llama.cpp f32", "batched", d / "policy-f32.gguf"),
        ("onnx fp32", "onnx", d / "onnx-fp32"),
    ]
    missing = [str(p) for _, _, p in want if not p.exists()]
    if missing:
        raise InputError(
            f"onnx_dir {d} lacks {', '.join(missing)} (make it with benchmarks/make_tiny_pair.py)"
        )
    return [(n, v, str(p)) for n, v, p in want]


def _cpu_busy(seconds: float = 0.5) -> float:
    """Share of all cores busy over `seconds` (from /proc/stat; 0.0 where it is unreadable)."""

    def snap() -> tuple[int, int]:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return sum(f) - idle, sum(f)

    try:
        b0, t0 = snap()
        time.sleep(seconds)
        b1, t1 = snap()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (b1 - b0) / max(t1 - t0, 1)


QUIET = {"waited_s": 0.0, "busy_at_start": []}


def _wait_quiet(max_wait: float = 90.0, busy: float = 0.2) -> None:
    """A shared 2-core machine: with another process busy, llama.cpp's spinning threads slow
    down many times over. Wait (up to max_wait s) until other load is below `busy`."""
    t0 = time.perf_counter()
    while True:
        b = _cpu_busy(0.5 if max_wait > 0 else 0.05)
        if b < busy or time.perf_counter() - t0 > max_wait:
            QUIET["busy_at_start"].append(round(b, 3))
            QUIET["waited_s"] = round(QUIET["waited_s"] + time.perf_counter() - t0, 1)
            return
        time.sleep(2.0)


def _worker(tmp: str, spec: dict[str, Any]) -> dict[str, Any]:
    _wait_quiet(spec.get("quiet_wait", 90.0))
    fd, spec_p = tempfile.mkstemp(suffix=".json", dir=tmp)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    out_p = spec_p + ".out"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    proc = subprocess.run(
        [sys.executable, "-m", "edgestar._bench_workers", "--worker", spec_p, out_p],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not Path(out_p).is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ModelError(f"bench worker ({spec['kind']} {spec.get('variant', '')}) failed: {tail}")
    return json.loads(Path(out_p).read_text())


# ============================================================================ workers
