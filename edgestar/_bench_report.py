"""The report side of `edgestar bench`: medians over runs, the speedups and targets, and the
three outputs (bench.json figures, bench.md tables with how each was measured, bench.png)."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

TARGETS = {
    "evaluated_per_unique_token": ("<=", 1.05),
    "batched_vs_single_decode": (">=", 2.0),
    "speedup_vs_naive": (">=", 3.0),
    "python_overhead_share": ("<", 0.10),
    "onnx_vs_llamacpp": (">=", 0.5),
}


def _curve_tokens(tokens: int, w: int, width: int) -> int:
    """Token budget per question at width w on the curve: scaled with the width above the
    comparison's width, so that wide searches still expand more than the root (the search caps
    each candidate at budget / width tokens)."""
    return tokens * max(1, -(-w // width))


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
