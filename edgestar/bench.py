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

Variants run in subprocesses (`python -m edgestar.bench --worker spec.json out.json`), one at a
time, so their timings do not overlap and each has its own peak RSS. Imports nothing from
train/ or quantize/ (the ONNX folder is made beforehand) and never torch.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from .types import Budget, InputError, ModelError, SearchConfig

__all__ = ["DEFAULT_QUESTIONS", "BenchReport", "run_bench"]

DEFAULT_QUESTIONS: tuple[str, ...] = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
    "How much did she earn?",
)
TARGETS = {
    "evaluated_per_unique_token": ("<=", 1.05),
    "batched_vs_single_decode": (">=", 2.0),
    "speedup_vs_naive": (">=", 3.0),
    "python_overhead_share": ("<", 0.10),
    "onnx_vs_llamacpp": (">=", 0.5),
}


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


def _curve_tokens(tokens: int, w: int, width: int) -> int:
    """Token budget per question at width w on the curve: scaled with the width above the
    comparison's width, so that wide searches still expand more than the root (the search caps
    each candidate at budget / width tokens)."""
    return tokens * max(1, -(-w // width))


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
        return b.path(b.policy), b.step_format
    p = Path(model)  # type: ignore[arg-type]
    info = check_gguf(p)
    fmt = info.metadata.get("edgestar.step_format")
    return p, fmt if fmt in ("plain", "rstar") else "plain"


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
        [sys.executable, "-m", "edgestar.bench", "--worker", spec_p, out_p],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not Path(out_p).is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ModelError(f"bench worker ({spec['kind']} {spec.get('variant', '')}) failed: {tail}")
    return json.loads(Path(out_p).read_text())


# ============================================================================ workers


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _raw_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """llama-bench style decode: a prompt of the benchmark's length, then one token per sequence
    per decode; 1 sequence, then w sequences forked from the prompt."""
    from .backends.llamacpp import LlamaCppPolicy

    ws = list(spec["widths"])
    n_gen = 64
    with LlamaCppPolicy(
        spec["model"], n_ctx=spec["n_ctx"], n_threads=spec["threads"], n_seq_max=max(ws) + 1
    ) as pol:
        model, ctx, batch = pol._rt.parts()
        prompt = model.tokenize(spec["questions"][0])
        batch.clear()
        batch.add_run(prompt, 0, (0,), True)
        ctx.decode(batch)
        tok = int(ctx.logits(batch.n - 1).argmax())
        out: dict[str, float] = {}
        for w in [1, *ws]:
            for s in range(1, w + 1):
                ctx.seq_rm(s)
                ctx.seq_cp(0, s, -1, -1)
            t = time.perf_counter()
            for j in range(n_gen):
                batch.clear()
                for s in range(1, w + 1):
                    batch.add(tok, len(prompt) + j, (s,), True)
                ctx.decode(batch)
            out[str(w)] = w * n_gen / (time.perf_counter() - t)
            for s in range(1, w + 1):
                ctx.seq_rm(s)
    single = out.pop("1")
    if 1 in ws:
        out["1"] = single
    return {"single_tok_s": single, "widths": out, "rss_mb": _rss_mb()}


class NaiveLlamaPolicy:
    """The path a user writes with llama-cpp-python's high-level `Llama` class: one sequence;
    for every candidate `reset()`, `eval()` of the whole prompt, then one `eval([token])` per
    generated token; sampling by the shared sampler (`sample_rows` = `sample_token`) from the
    last logits; stop strings as `StopMatcher`. Only for the benchmark.

    AMX: `Llama` has no option for llama.cpp's extra buffer types, which crash quantized models
    on AMX CPUs (see `_llama_raw.cpu_has_amx`), so `llama_model_default_params` is wrapped
    while the model loads to turn them off there, as LlamaCppPolicy does."""

    def __init__(self, path: str, n_ctx: int, threads: int) -> None:
        import llama_cpp
        import llama_cpp.llama_cpp as raw

        from .backends._llama_raw import cpu_has_amx, llama_lib

        llama_lib()  # silences llama.cpp's log
        orig = raw.llama_model_default_params
        amx = cpu_has_amx()

        def params() -> Any:
            p = orig()
            p.use_extra_bufts = not amx
            return p

        raw.llama_model_default_params = params
        try:
            self.llm = llama_cpp.Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_batch=512,
                n_ubatch=512,
                n_threads=threads,
                n_threads_batch=threads,
                flash_attn=False,
                verbose=False,
            )
        finally:
            raw.llama_model_default_params = orig
        self.raw = raw
        self.name = f"naive-llama:{Path(path).name}"
        m = self.llm._model
        self.vocab = m.vocab
        self.add_bos, self.bos = bool(m.add_bos_token()), int(m.token_bos())
        self.n_vocab = int(raw.llama_vocab_n_tokens(self.vocab))
        self.script: dict[tuple[str, int, int], list[int]] | None = None
        self.replay_stats = [0, 0]

    def tokenize(self, text: str) -> list[int]:
        ids = self.llm._model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if self.add_bos and self.bos >= 0 and (not ids or ids[0] != self.bos):
            ids.insert(0, self.bos)
        return ids

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str | None:
        from .backends.llamacpp import render_chat_template

        tpl = self.llm.metadata.get("tokenizer.chat_template")
        if not tpl:
            return None
        m = self.llm._model
        bos = m.detokenize([m.token_bos()], special=True).decode("utf-8", "replace")
        eos = m.detokenize([m.token_eos()], special=True).decode("utf-8", "replace")
        return render_chat_template(tpl, messages, bos_token=bos, eos_token=eos)

    def propose(self, requests: Sequence[Any]) -> list[Any]:
        import numpy as np

        from .backends.base import Candidate, Proposal
        from .backends.llamacpp import sample_rows, token_logprob
        from .backends.sampling import StopMatcher, candidate_rngs

        out = []
        for r in requests:
            prompt = self.tokenize(r.prefix)
            max_new = min(r.max_tokens, self.llm.n_ctx() - len(prompt))
            stopper = StopMatcher(r.stop)
            cands, evaluated = [], 0
            for i, rng in enumerate(candidate_rngs(r.seed, r.k)):
                forced = self.script.get((r.prefix, r.seed, i)) if self.script else None
                self.llm.reset()
                self.llm.eval(prompt)
                evaluated += len(prompt)
                data, n, lp_sum, cand = bytearray(), 0, 0.0, None
                while cand is None:
                    ptr = self.raw.llama_get_logits_ith(self.llm._ctx.ctx, -1)
                    x = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
                    tok, lp = sample_rows(x[None, :], r.temperature, r.top_p, [[rng]])[0][0]
                    if forced is not None and n < len(forced):
                        self.replay_stats[1] += 1
                        if forced[n] == tok:
                            self.replay_stats[0] += 1
                        else:
                            tok, lp = forced[n], token_logprob(x, r.temperature, forced[n])
                    n += 1
                    lp_sum += lp
                    if self.raw.llama_vocab_is_eog(self.vocab, tok):
                        cand = Candidate(data.decode("utf-8", "replace"), n, "eos", None, lp_sum)
                        break
                    data += self.llm._model.detokenize([tok], special=True)
                    text = data.decode("utf-8", "replace")
                    hit = stopper.check(text)
                    if hit is not None:
                        cand = Candidate(hit[0], n, "stop", hit[1], lp_sum)
                    elif n >= max_new:
                        cand = Candidate(text, n, "length", None, lp_sum)
                    else:
                        self.llm.eval([tok])
                        evaluated += 1
                cands.append(cand)
            out.append(Proposal(tuple(cands), evaluated))
        return out

    def close(self) -> None:
        self.llm.close()


def _unique_tokens(tokenize: Callable[[str], list[int]], tree: Any) -> int:
    """Nodes of the token trie over every tree node's tokenized prefix."""
    trie: dict[int, Any] = {}
    n = 0
    for node in tree.nodes:
        d = trie
        for t in tokenize(tree.prefix(node)):
            nxt = d.get(t)
            if nxt is None:
                nxt = d[t] = {}
                n += 1
            d = nxt
    return n


def _tree_json(tree: Any) -> tuple[str, list[float]]:
    """The tree's JSON without the candidates' logprobs (each variant computes them from its
    own logits), and those logprobs."""
    d = tree.to_dict()
    lps = [node.pop("logprob") for node in d["nodes"]]
    return json.dumps(d, sort_keys=True), lps


def _mcts_worker(spec: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import replace

    from .formats import get_format
    from .search import run_search

    variant = spec["variant"]
    decode_s = [0.0]
    policy: Any
    if variant == "naive":
        import llama_cpp.llama_cpp as raw

        policy = NaiveLlamaPolicy(spec["model"], spec["n_ctx"], spec["threads"])
        orig = raw.llama_decode

        def timed(ctx: Any, batch: Any) -> int:
            t = time.perf_counter()
            try:
                return int(orig(ctx, batch))
            finally:
                decode_s[0] += time.perf_counter() - t

        raw.llama_decode = timed
        tokenize = policy.tokenize
    elif variant == "onnx":
        from .backends import onnx as ob

        policy = ob.OnnxPolicy(spec["model"], device="cpu", threads=spec["threads"])
        orig_run = ob._Session.run

        def timed_run(self: Any, *a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig_run(self, *a, **k)
            finally:
                decode_s[0] += time.perf_counter() - t

        ob._Session.run = timed_run  # type: ignore[method-assign]
        tokenize = policy.encode
    else:
        from .backends.llamacpp import LlamaCppPolicy

        policy = LlamaCppPolicy(
            spec["model"],
            n_ctx=spec["n_ctx"],
            n_threads=spec["threads"],
            batch_candidates=variant != "single",
        )
        tokenize = policy.tokenize
    if spec.get("record"):
        policy.recorded = {}
    if spec.get("script"):
        rows = json.loads(Path(spec["script"]).read_text())
        policy.script = {(p, s, i): t for p, s, i, t in rows}
    fmt = get_format(spec["format"])
    if spec.get("stop"):
        fmt = replace(fmt, stop=tuple(spec["stop"]))
    config = SearchConfig(width=spec["width"], max_step_tokens=spec["step_tokens"])
    budget = Budget(rollouts=None, tokens=spec["tokens"])
    wall = gen = evaluated = unique = nodes = 0.0
    trees: list[str] = []
    logprobs: list[list[float]] = []
    d0 = policy.decode_seconds if variant in ("batched", "single") else 0.0
    for qi, q in enumerate(spec["questions"]):
        t = time.perf_counter()
        res, tree = run_search(
            q, policy=policy, fmt=fmt, strategy="mcts", budget=budget, config=config, seed=qi
        )
        wall += time.perf_counter() - t
        gen += res.stats.tokens_generated
        evaluated += res.stats.tokens_evaluated
        nodes += len(tree) - 1
        unique += _unique_tokens(tokenize, tree)
        tj, lps = _tree_json(tree)
        trees.append(tj)
        logprobs.append(lps)
    if variant in ("batched", "single"):
        decode_s[0] = policy.decode_seconds - d0
    out: dict[str, Any] = {
        "wall_s": wall,
        "generated": gen,
        "gen_tok_s": gen / wall,
        "evaluated": evaluated,
        "unique": unique,
        "evaluated_per_unique": evaluated / max(unique, 1),
        "decode_s": decode_s[0],
        "python_overhead_share": 1.0 - decode_s[0] / wall,
        "nodes": nodes,
        "trees": trees,
        "logprobs": logprobs,
        "rss_mb": _rss_mb(),
    }
    if spec.get("script"):
        agree, total = policy.replay_stats
        out["replay_agreement"] = agree / total if total else None
    if variant in ("batched", "single"):
        out["cache"] = {**policy.stats.as_dict(), **policy.cache_info()}
    if spec.get("record"):
        rows = [[p, s, i, t] for (p, s, i), t in policy.recorded.items()]
        Path(spec["record"]).write_text(json.dumps(rows))
    policy.close()
    return out


def _worker_main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    res = _raw_worker(spec) if spec["kind"] == "raw" else _mcts_worker(spec)
    Path(out_path).write_text(json.dumps(res))


# ============================================================================ report


def _med(xs: Sequence[float]) -> float:
    return float(median(xs))


def _variant_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("wall_s", "gen_tok_s", "evaluated_per_unique", "python_overhead_share", "rss_mb")
    out = {k: round(_med([r[k] for r in runs]), 4) for k in keys}
    out |= {k: runs[0][k] for k in ("generated", "evaluated", "unique", "nodes")}
    if runs[0].get("replay_agreement") is not None:
        out["replay_agreement"] = round(_med([r["replay_agreement"] for r in runs]), 4)
    if "cache" in runs[0]:
        out["cache"] = runs[0]["cache"]
    return out


def _summarize(
    per_run: list[dict[str, Any]],
    path: Path,
    fmt: str,
    width: int,
    ws: list[int],
    n_runs: int,
    threads: int,
    common: dict[str, Any],
    with_onnx: bool,
) -> dict[str, Any]:
    from . import __version__

    ratios = {
        "evaluated_per_unique_token": [r["batched"]["evaluated_per_unique"] for r in per_run],
        "batched_vs_single_decode": [
            r["batched"]["gen_tok_s"] / r["raw"]["single_tok_s"] for r in per_run
        ],
        "speedup_vs_naive": [r["naive"]["wall_s"] / r["batched"]["wall_s"] for r in per_run],
    }
    same = all(r["batched"]["trees"] == r[v]["trees"] for r in per_run for v in ("single", "naive"))
    lp_diff = max(
        abs(a - b)
        for r in per_run
        for v in ("single", "naive")
        for ta, tb in zip(r["batched"]["logprobs"], r[v]["logprobs"], strict=False)
        for a, b in zip(ta, tb, strict=False)
    )
    data: dict[str, Any] = {k: round(_med(v), 4) for k, v in ratios.items()}
    data["ratios_per_run"] = {k: [round(x, 4) for x in v] for k, v in ratios.items()}
    data["setup"] = {
        "model": path.name,
        "model_bytes": path.stat().st_size,
        "step_format": fmt,
        "threads": threads,
        "n_ctx": common["n_ctx"],
        "width": width,
        "tokens_per_question": common["tokens"],
        "max_step_tokens": common["step_tokens"],
        "questions": common["questions"],
        "runs": n_runs,
        "search": "mcts, SearchConfig defaults otherwise (temperature 0.8, top_p 0.95, c 2)",
        "kv_cache": "F16, flash attention off, unified",
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {"edgestar": __version__, "llama_cpp_python": _version("llama_cpp_python")},
    }
    data["raw_decode"] = {
        "single_tok_s": round(_med([r["raw"]["single_tok_s"] for r in per_run]), 2),
        "widths_tok_s": {
            w: round(_med([r["raw"]["widths"][w] for r in per_run]), 2)
            for w in per_run[0]["raw"]["widths"]
        },
        "rss_mb": _med([r["raw"]["rss_mb"] for r in per_run]),
    }
    data["mcts"] = {v: _variant_summary([r[v] for r in per_run]) for v in ("naive", "single", "batched")}  # fmt: skip
    data["same_tree"] = {
        "identical": same,
        "how": "the JSON of every question's tree (structure, step texts, kinds, token counts, "
        "visits, values) compared between the batched run and the single and naive runs of "
        "the same run, which replay the batched run's token ids; candidate logprobs are left "
        "out of the comparison (each variant computes them from its own logits)",
        "max_logprob_diff": round(lp_diff, 4),
    }
    data["mcts_widths"] = {
        str(w): {
            k: round(_med([r["widths"][str(w)][k] for r in per_run]), 4)
            for k in ("gen_tok_s", "wall_s", "evaluated_per_unique", "python_overhead_share")
        }
        | {
            "tokens_per_question": _curve_tokens(common["tokens"], w, width),
            "vs_single_decode": round(
                _med(
                    [r["widths"][str(w)]["gen_tok_s"] / r["raw"]["single_tok_s"] for r in per_run]
                ),
                3,
            ),
        }  # noqa: E501
        for w in ws
    }
    if with_onnx:
        names = list(per_run[0]["onnx"])
        data["onnx"] = {
            "model": "edgestar-tiny preset, random init (train/tiny.py), exported by "
            "benchmarks/make_tiny_pair.py; step format plain with stop '.'",
            "variants": {n: _variant_summary([r["onnx"][n] for r in per_run]) for n in names},
            "onnx_vs_llamacpp": {
                pair: round(
                    _med(
                        [r["onnx"][o]["gen_tok_s"] / r["onnx"][lcpp]["gen_tok_s"] for r in per_run]
                    ),  # noqa: E501
                    4,
                )
                for pair, lcpp, o in (
                    ("int8 vs q8_0", "llama.cpp q8_0", "onnx int8"),
                    ("fp32 vs f32", "llama.cpp f32", "onnx fp32"),
                )
            },
        }
    data["targets"] = _targets(data)
    data["runs"] = [_strip_trees(r) for r in per_run]
    return data


def _strip_trees(run: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in run.items():
        if isinstance(v, dict) and "trees" in v:
            out[k] = {kk: vv for kk, vv in v.items() if kk not in ("trees", "logprobs")}
        elif isinstance(v, dict):
            out[k] = _strip_trees(v)
        else:
            out[k] = v
    return out


def _targets(data: dict[str, Any]) -> dict[str, Any]:
    got = {
        "evaluated_per_unique_token": data["evaluated_per_unique_token"],
        "batched_vs_single_decode": data["batched_vs_single_decode"],
        "speedup_vs_naive": data["speedup_vs_naive"],
        "python_overhead_share": data["mcts"]["batched"]["python_overhead_share"],
    }
    if "onnx" in data:
        got["onnx_vs_llamacpp"] = min(data["onnx"]["onnx_vs_llamacpp"].values())
    out = {}
    for k, v in got.items():
        op, bound = TARGETS[k]
        ok = v <= bound if op == "<=" else v >= bound if op == ">=" else v < bound
        out[k] = {"value": v, "target": f"{op} {bound}", "met": bool(ok)}
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _markdown(d: dict[str, Any]) -> str:
    s = d["setup"]
    m = d["mcts"]
    lines = [
        f"# edgestar bench: {s['model']}",
        "",
        f"{s['machine']['cpu']}, {s['machine']['cores']} cores, **{s['threads']} threads**; "
        f"n_ctx {s['n_ctx']}, {s['kv_cache']} KV cache; llama-cpp-python "
        f"{s['versions']['llama_cpp_python']}. MCTS: step format `{s['step_format']}`, "
        f"width {s['width']}, {s['tokens_per_question']} generated tokens per question "
        f"(token budget), {len(s['questions'])} questions, max {s['max_step_tokens']} tokens "
        f"per step. Every figure is the median of {s['runs']} runs; ratios are taken within a "
        f"run, then their median. Total bench time {d.get('bench_seconds', '?')} s.",
        "",
        "## Headline",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for k, t in d["targets"].items():
        lines.append(
            f"| `{k}` | {t['value']:.3f} | {t['target']} | {'yes' if t['met'] else 'no'} |"
        )
    lines += [
        "",
        f"Raw llama.cpp decode, one sequence: **{d['raw_decode']['single_tok_s']:.1f} tok/s**.",
        "",
        f"## The same MCTS three ways (width {s['width']})",
        "",
        "| variant | wall s | generated tok/s | evaluated / unique tree tokens | Python overhead | peak RSS MB | replay agreement |",  # noqa: E501
        "|---|---|---|---|---|---|---|",
    ]
    for v, label in (
        ("naive", "naive `Llama` (reset + eval per candidate)"),
        ("single", "tree cache, one branch at a time"),
        ("batched", "tree cache, batched siblings"),
    ):
        r = m[v]
        agree = r.get("replay_agreement")
        lines.append(
            f"| {label} | {r['wall_s']:.2f} | {r['gen_tok_s']:.1f} | "
            f"{r['evaluated_per_unique']:.3f} | {100 * r['python_overhead_share']:.1f}% | "
            f"{r['rss_mb']:.0f} | {'recorded' if agree is None else f'{100 * agree:.1f}%'} |"
        )
    b = m["batched"].get("cache", {})
    lines += [
        "",
        f"Same tree: **{'identical' if d['same_tree']['identical'] else 'DIFFERENT'}** "
        f"({d['same_tree']['how']}; largest candidate logprob difference "
        f"{d['same_tree']['max_logprob_diff']:.3f}). Replay agreement = share of tokens where "
        "the variant's own sample equalled the recorded one. The rest differ because llama.cpp's "
        "rounding depends on the batch shape (a one-token batch takes matrix-vector kernels) and "
        "on where a sequence's cells sit, and Q8_0 activation quantization turns that rounding "
        "into logit changes of up to ~0.8; on F32 weights the tests find identical trees "
        "without replay.",
        "",
        f"Tree: {m['batched']['nodes']:.0f} nodes, {m['batched']['unique']:.0f} distinct tokens. "
        f"Batched cache: {b.get('prompt_tokens', '?')} prompt tokens asked, "
        f"{b.get('prompt_evaluated', '?')} decoded; re-tokenization at step boundaries cost "
        f"{b.get('boundary_tokens', '?')} tokens in {b.get('boundary_events', '?')} of "
        f"{b.get('requests', '?')} requests; evictions {b.get('evicted_seqs', '?')}.",
        "",
        "Python overhead = 1 - time inside `llama_decode` / wall (naive: `llama_decode` wrapped; "
        "ONNX: `InferenceSession.run` calls). Peak RSS = `ru_maxrss` of a worker process that ran "
        "only that variant (model, KV cache and Python included). Evaluated / unique = tokens the "
        "backend decoded / nodes of the token trie over every tree node's tokenized prefix (a "
        "leaf's last sampled token is in the tree but never decoded, so < 1 is possible).",
        "",
        "## Throughput against expansion width",
        "",
        "| width | raw decode tok/s (w sequences) | MCTS batched tok/s | MCTS / raw single | evaluated / unique | Python overhead |",  # noqa: E501
        "|---|---|---|---|---|---|",
    ]
    for w, r in d["mcts_widths"].items():
        raw = d["raw_decode"]["widths_tok_s"].get(w)
        lines.append(
            f"| {w} | {raw:.1f} | {r['gen_tok_s']:.1f} | {r['vs_single_decode']:.2f}x | "
            f"{r['evaluated_per_unique']:.3f} | {100 * r['python_overhead_share']:.1f}% |"
            if raw is not None
            else f"| {w} | - | {r['gen_tok_s']:.1f} | {r['vs_single_decode']:.2f}x | "
            f"{r['evaluated_per_unique']:.3f} | {100 * r['python_overhead_share']:.1f}% |"
        )
    lines += [
        "",
        "Each width is its own seeded search (its own tree). Token budget per question at "
        f"width w: {s['tokens_per_question']} x ceil(w / {s['width']}) (the search caps a "
        "candidate at budget / width tokens, so a fixed budget would stop wide searches at the "
        "root). Generated tokens/s counts every sampled token; candidates with identical tokens "
        "so far share one decoded row, so at wide widths it can exceed raw decode.",
    ]
    if "onnx" in d:
        o = d["onnx"]
        lines += [
            "",
            "## ONNX Runtime against llama.cpp on the same model",
            "",
            f"{o['model']}. Batched MCTS, width {s['width']}, same budget; the two backends' trees "
            "differ (other numerics; no replay across backends).",
            "",
            "| backend, precision | wall s | generated tok/s | evaluated / unique | Python + non-model overhead | peak RSS MB |",  # noqa: E501
            "|---|---|---|---|---|---|",
        ]
        for n, r in o["variants"].items():
            lines.append(
                f"| {n} | {r['wall_s']:.2f} | {r['gen_tok_s']:.1f} | "
                f"{r['evaluated_per_unique']:.3f} | {100 * r['python_overhead_share']:.1f}% | "
                f"{r['rss_mb']:.0f} |"
            )
        lines += [
            "",
            "ONNX tok/s over llama.cpp tok/s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in o["onnx_vs_llamacpp"].items())
            + ".",
        ]  # noqa: E501
    if "reproduce" in d:
        lines += ["", "## Reproduce", "", "```", d["reproduce"], "```"]
    return "\n".join(lines) + "\n"


def _plot(d: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    ws = [int(w) for w in d["mcts_widths"]]
    a.plot(ws, [d["mcts_widths"][str(w)]["gen_tok_s"] for w in ws], "o-", label="MCTS, batched")
    rw = sorted(int(w) for w in d["raw_decode"]["widths_tok_s"])
    a.plot(
        rw,
        [d["raw_decode"]["widths_tok_s"][str(w)] for w in rw],
        "s--",
        label="raw decode, w sequences",
    )  # noqa: E501
    single = d["raw_decode"]["single_tok_s"]
    a.axhline(single, color="gray", lw=1, label=f"raw decode, 1 sequence ({single:.0f})")
    a.axhline(2 * single, color="gray", lw=1, ls=":", label="2x single")
    a.set_xscale("log", base=2)
    a.set_xticks(ws, [str(w) for w in ws])
    a.set_xlabel("expansion width (candidates decoded together)")
    a.set_ylabel("generated tokens / s")
    a.set_title(f"{d['setup']['model']}, {d['setup']['threads']} threads")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    names = ["naive", "single", "batched"]
    walls = [d["mcts"][n]["wall_s"] for n in names]
    bars = b.bar(
        ["naive Llama", "cache, 1 branch", "cache, batched"], walls, color=["#c44", "#48c", "#4a4"]
    )  # noqa: E501
    for bar, n in zip(bars, names, strict=True):
        b.annotate(
            f"{d['mcts'][n]['gen_tok_s']:.0f} tok/s",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    b.set_ylabel("wall seconds (same tree)")
    b.set_title(f"MCTS, width {d['setup']['width']}: speedup {d['speedup_vs_naive']:.1f}x")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":  # worker entry: python -m edgestar.bench --worker SPEC OUT
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2], sys.argv[3])
    else:
        print("usage: python -m edgestar.bench --worker SPEC.json OUT.json", file=sys.stderr)
        sys.exit(2)
