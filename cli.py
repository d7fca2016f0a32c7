"""The `edgestar` command line: each command parses options, builds a config, calls ONE library
function, and prints. Installed as `edgestar.cli` (edgestar/cli.py links here). The shared
option sets and error contract are edgestar/_cli_common.py; `train` and `data` are train/_cli.py.

Every failure a user can cause (bad question, missing model, malformed input) ends with one
readable line on stderr and a non-zero exit; set EDGESTAR_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from click import get_current_context
from click.core import ParameterSource

from edgestar._cli_common import (
    EXIT_FAILED,
    SELECTS,
    STRATEGY_NAMES,
    _budget,
    _config,
    _int_list,
    _open_solver,
    _read_jsonl,
    _suite,
    code_first_option,
    fail,
    friendly,
    lora_option,
    model_options,
    search_options,
)
from edgestar.train._cli import data, train
from edgestar.types import Budget, EdgestarError, InputError, SearchConfig


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgestar")
def main() -> None:
    """edgestar: small language models that reason on a laptop or a Jetson, offline."""


@main.command()
@friendly
def doctor() -> None:
    """Show which layers of the code sandbox are active on this machine."""
    from edgestar.executor import sandbox_report

    rows, missing = sandbox_report()
    for name, on, what in rows:
        click.echo(f"{name:<18} {'on ' if on else 'OFF'}  {what}")
    if missing:
        fail(f"model code will not run without --allow-weak-sandbox: no {', '.join(missing)}", 1)
    click.echo("model code runs with every kernel layer of the sandbox")


# --------------------------------------------------------------------------- solve
@main.command()
@click.argument("question", required=False)
@model_options
@search_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--tree-out",
    type=click.Path(path_type=Path),
    help="Write the search tree: .html (a page to open in a browser) or .json.",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help='Batch mode: JSONL file of {"id", "question"}.',
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Batch mode: JSONL results file.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing --output or --tree-out file.")
@click.option(
    "--allow-weak-sandbox",
    is_flag=True,
    help="Run model code even where the kernel lacks Landlock or namespaces (see `edgestar doctor`).",
)
@lora_option
@friendly
def solve(
    question,
    bundle,
    model,
    ppm,
    step_format,
    device,
    threads,
    strategy,
    rollouts,
    tokens,
    seconds,
    nodes,
    width,
    n,
    beam_width,
    temperature,
    select,
    code_first,
    seed,
    as_json,
    tree_out,
    input_path,
    output_path,
    force,
    allow_weak_sandbox,
    lora,
) -> None:
    """Solve QUESTION (or every line of --input) by searching over reasoning steps."""
    if allow_weak_sandbox:
        os.environ["EDGESTAR_ALLOW_WEAK_SANDBOX"] = "1"  # ExecutorConfig's default
    if input_path is None and output_path is not None:
        raise InputError("--output needs --input")
    if input_path is not None and question is not None:
        raise InputError("give a QUESTION or --input, not both")
    if input_path is None and question is None:
        raise InputError(
            'nothing to solve: give a QUESTION, e.g. edgestar solve "What is 12 + 30?"'
        )
    if input_path is not None and output_path is None:
        raise InputError("--input needs --output")
    for p in (output_path, tree_out):
        if p is not None and p.exists() and not force:
            raise InputError(f"{p} exists; pass --force to overwrite it")
    if input_path is not None and not input_path.is_file():
        raise InputError(f"input file {input_path} does not exist")
    if question is not None:
        from edgestar.types import check_question

        question = check_question(question)

    solver = _open_solver(bundle, model, ppm, step_format, device, threads, lora)
    with solver:
        if solver.executor is not None:
            solver.executor.start()  # a machine without the sandbox's kernel layers stops here
        budget = _budget(solver.budget, rollouts, tokens, seconds, nodes)
        config = _config(
            solver.config,
            width=width,
            n=n,
            beam_width=beam_width,
            temperature=temperature,
            select=select,
            code_first=code_first,
        )
        strategy = strategy or solver.strategy
        if input_path is not None:
            failed = _solve_batch(solver, input_path, output_path, strategy, budget, config, seed)
            if failed:
                fail(
                    f"{failed} line(s) of {input_path} could not be solved (see above; the rest are in {output_path})",
                    EXIT_FAILED,
                )
            return
        result = solver.solve(question, strategy=strategy, budget=budget, seed=seed, config=config)
    if tree_out is not None:
        from edgestar.treeview import write_tree

        write_tree(result, tree_out)
    if as_json:
        d = result.to_dict()
        d["stats"]["reward"] = getattr(solver.reward, "name", None)  # e.g. head:linear:FILE
        click.echo(json.dumps(d, ensure_ascii=False))
        return
    click.echo(result.answer if result.answer is not None else "(no answer found)")
    s = result.stats
    click.echo(
        f"[{result.strategy}] score={_fmt(result.score)} stopped_by={result.stopped_by} "
        f"tokens={s.tokens_generated} nodes={s.nodes} rollouts={s.rollouts} {s.seconds:.2f}s",
        err=True,
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _solve_batch(
    solver,
    input_path: Path,
    output_path: Path,
    strategy: str,
    budget: Budget,
    config: SearchConfig,
    seed: int,
) -> int:
    from edgestar.types import check_question

    lines = list(_read_jsonl(input_path))
    failed = 0
    show = sys.stderr.isatty()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # Results are written and flushed one line at a time: an interrupted batch keeps every
    # finished line.
    with open(output_path, "w", encoding="utf-8") as out:
        progress = None
        if show:
            from rich.progress import Progress

            progress = Progress(transient=True)
            progress.start()
            task = progress.add_task("solving", total=len(lines))
        try:
            for lineno, rec, err in lines:
                row: dict[str, Any] = {"line": lineno}
                if rec is not None:
                    row["id"] = rec.get("id", lineno)
                    try:
                        q = check_question(rec["question"])
                        r = solver.solve(
                            q,
                            strategy=strategy,
                            budget=budget,
                            seed=seed,
                            config=config,
                            keep_tree=False,
                        )
                        row.update(
                            answer=r.answer,
                            score=r.score,
                            strategy=r.strategy,
                            stopped_by=r.stopped_by,
                            **r.stats.__dict__,
                        )
                    except EdgestarError as e:
                        err = str(e)
                if err is not None:
                    failed += 1
                    row["error"] = err
                    click.echo(f"edgestar: {input_path}:{lineno}: {err}", err=True)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                if progress is not None:
                    progress.advance(task)
        finally:
            if progress is not None:
                progress.stop()
    return failed


# --------------------------------------------------------------------------- quantize / deploy
def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        data = report.to_json() if hasattr(report, "to_json") else report
        click.echo(data if isinstance(data, str) else json.dumps(data, indent=1, default=str))
    elif hasattr(report, "to_markdown"):
        click.echo(report.to_markdown())
    else:
        click.echo(json.dumps(report, indent=1, default=str))


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--to", "to", type=click.Choice(["gguf", "onnx"]), default="gguf", show_default=True)
@click.option(
    "--quant",
    default="q8_0",
    show_default=True,
    help="gguf: f32 f16 bf16 q8_0 q6_k q5_k_m q4_k_m q4_0; onnx: f32 int8 int4.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output file (.gguf) or folder (onnx).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--no-verify", is_flag=True, help="Skip the parity checks against the source.")
@click.option(
    "--prm",
    "prm_family",
    help="SRC is an off-the-shelf process reward model of this family (skywork-o1, "
    "qwen2.5-math-prm, math-shepherd, rlhflow); head families are recognised without it.",
)
@click.option("--json", "as_json", is_flag=True)
@friendly
def quantize(
    src: Path,
    to: str,
    quant: str,
    out: Path,
    force: bool,
    no_verify: bool,
    prm_family: str | None,
    as_json: bool,
) -> None:
    """Export SRC (a checkpoint folder or a .gguf file) to GGUF or ONNX at one quant level,
    then verify it against the source."""
    from edgestar.quantize.deploy import quantize_one

    if not src.exists():
        raise InputError(f"{src} does not exist")
    _print_report(
        quantize_one(
            src,
            to=to,
            quant=quant,
            out=out,
            force=force,
            verify=not no_verify,
            prm_family=prm_family,
        ),
        as_json,
    )


@main.command()
@click.option(
    "--policy",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    help="Policy checkpoint folder.",
)
@click.option("--ppm", type=click.Path(path_type=Path, exists=True), help="PPM checkpoint folder.")
@click.option(
    "--profile",
    default="laptop-cpu",
    show_default=True,
    help="Device profile: laptop-cpu, cuda-desktop, jetson-orin-nano-8gb, jetson-agx-orin.",
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Bundle folder to write."
)
@click.option("--force", is_flag=True, help="Replace an existing bundle folder.")
@click.option("--no-onnx", is_flag=True, help="GGUF only.")
@click.option("--no-smoke", is_flag=True, help="Skip the smoke solve.")
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@friendly
def deploy(
    policy: Path,
    ppm: Path | None,
    profile: str,
    out: Path,
    force: bool,
    no_onnx: bool,
    no_smoke: bool,
    threads: int | None,
    as_json: bool,
) -> None:
    """Export, quantize and verify a policy (+ PPM) for a device profile; write a bundle."""
    from edgestar.profiles import get_profile
    from edgestar.quantize.deploy import deploy as run_deploy

    get_profile(profile)
    report = run_deploy(
        policy,
        ppm,
        profile,
        out,
        force=force,
        onnx=not no_onnx,
        smoke=not no_smoke,
        threads=threads,
        progress=sys.stderr.isatty(),
    )
    _print_report(report, as_json)


# --------------------------------------------------------------------------- bench
@main.command()
@click.option("--model", type=click.Path(path_type=Path, dir_okay=False), help="A .gguf policy.")
@click.option(
    "--bundle",
    type=click.Path(path_type=Path, file_okay=False),
    help="A bundle (its GGUF policy, and its ONNX encoding when present).",
)
@click.option(
    "--onnx",
    "onnx_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="An ONNX export of the same model, for the ONNX comparison.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for bench.json, bench.md, bench.png.",
)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--widths",
    default="1,2,4,8,16,32",
    show_default=True,
    help="Expansion widths for the decode curve.",
)
@click.option(
    "--width",
    type=click.IntRange(min=1),
    help="Expansion width of the three-way MCTS comparison (default: the search default).",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Runs per figure (medians are reported).",
)
@click.option(
    "--tokens",
    type=click.IntRange(min=1),
    default=320,
    show_default=True,
    help="Generated-token budget per question.",
)
@click.option("--force", is_flag=True, help="Overwrite results in --out.")
@click.option(
    "--solve",
    "solve_only",
    is_flag=True,
    help="Instead: time `edgestar solve` end to end on the bundle (default: the shipped one), "
    "a fresh process per question, with peak memory.",
)
@click.option(
    "--ppm",
    help="With --solve --model: a reward beside the policy (as `edgestar solve --ppm`), so the "
    "peak memory includes it.",
)
@friendly
def bench(
    model, bundle, onnx_dir, out, threads, widths, width, runs, tokens, force, solve_only, ppm
) -> None:
    """Measure decode and tree-search throughput: raw decode, naive vs tree-cached vs batched
    MCTS on the same tree, the width curve, and ONNX vs llama.cpp. With --solve: the wall time
    and peak memory of `edgestar solve` as a user runs it."""
    if solve_only:
        from edgestar.solvebench import run_solve_bench

        src = get_current_context().get_parameter_source("threads")
        rep = run_solve_bench(
            bundle, out, runs=runs, force=force, progress=sys.stderr.isatty(),
            threads=None if src == ParameterSource.DEFAULT else threads, model=model, ppm=ppm,
        )  # fmt: skip
        click.echo(rep.md_path.read_text(encoding="utf-8"))
        return
    from edgestar.bench import run_bench

    if (model is None) == (bundle is None):
        raise InputError("give exactly one of --model or --bundle")
    if ppm is not None:
        raise InputError("--ppm is for --solve (the decode benchmark runs the policy alone)")
    report = run_bench(
        model=model,
        bundle=bundle,
        out_dir=out,
        threads=threads,
        widths=_int_list(widths, "--widths"),
        runs=runs,
        onnx_dir=onnx_dir,
        force=force,
        progress=sys.stderr.isatty(),
        width=width,
        tokens=tokens,
    )
    click.echo(report.md_path.read_text(encoding="utf-8"))
    click.echo(f"wrote {report.json_path}, {report.md_path}, {report.png_path}", err=True)


# --------------------------------------------------------------------------- eval
@main.command("eval")
@click.option(
    "--suite", required=True, help="A .jsonl file, 'synthetic[:skill,...]' or 'reasoning-gym:NAME'."
)
@click.option(
    "-n",
    "--n",
    "n",
    type=click.IntRange(min=1),
    help="Problems to take from the suite (required for generators).",
)
@click.option(
    "--suite-seed", type=int, default=90001, show_default=True, help="Seed of generated suites."
)
@model_options
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    type=click.Choice(
        STRATEGY_NAMES + [f"{s}:{sel}" for s in STRATEGY_NAMES if s != "greedy" for sel in SELECTS]
    ),
    help="Repeat for several (default: greedy and mcts). NAME:SELECT picks the final answer "
    "rule for that entry, e.g. best_of_n:majority and best_of_n:weighted side by side.",
)
@click.option(
    "--tokens",
    "tokens",
    help="Token budgets to sweep, e.g. 200,400,800 (all strategies get the same).",
)
@click.option("--rollouts", "rollouts", help="Rollout budgets to sweep, e.g. 4,8,16.")
@click.option("--width", type=int, help="Candidate steps per expansion.")
@click.option("--temperature", type=float, help="Sampling temperature (default: the bundle's).")
@click.option("--select", type=click.Choice(SELECTS))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for results.jsonl, report.{json,md}, accuracy_vs_budget.png.",
)
@click.option("--force", is_flag=True, help="Overwrite results in --out.")
@click.option(
    "--every-chain",
    is_flag=True,
    help="Decode every best-of-n chain to its end (no stop once the vote is decided), so "
    "every answer-selection rule can be scored on the same chains (benchmarks/head/revote.py).",
)
@code_first_option
@lora_option
@friendly
def eval_cmd(
    suite,
    n,
    suite_seed,
    bundle,
    model,
    ppm,
    step_format,
    device,
    threads,
    strategies,
    tokens,
    rollouts,
    width,
    temperature,
    select,
    seed,
    out,
    force,
    every_chain,
    code_first,
    lora,
) -> None:
    """Evaluate strategies and budgets on a suite; write per-item results and accuracy tables."""
    from edgestar.train.evaluate import evaluate

    budgets = [Budget(rollouts=None, tokens=t) for t in _int_list(tokens, "--tokens")]
    budgets += [Budget(rollouts=r) for r in _int_list(rollouts, "--rollouts")]
    problems = _suite(suite, n, suite_seed)
    solver = _open_solver(bundle, model, ppm, step_format, device, threads, lora)
    with solver:
        config = _config(solver.config, width=width, temperature=temperature, select=select,
                         stop_when_decided=False if every_chain else None,
                         code_first=code_first)  # fmt: skip
        report = evaluate(
            solver,
            problems,
            strategies or ("greedy", "mcts"),
            budgets or [solver.budget],
            seed=seed,
            config=config,
            out_dir=out,
            force=force,
            progress=sys.stderr.isatty(),
        )
    click.echo(report.to_markdown())


# --------------------------------------------------------------------------- train / data
main.add_command(train)
main.add_command(data)


# --------------------------------------------------------------------------- pull
@main.command()
@click.argument("model", required=False)
@click.option("--list", "list_", is_flag=True, help="Show the registry and what is cached.")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def pull(model: str | None, list_: bool, revision: str, as_json: bool) -> None:
    """Download MODEL (a registry name or OWNER/REPO/FILE.gguf) from the Hugging Face Hub into
    its cache and check its sha256; `edgestar solve --model MODEL` then finds it offline."""
    from edgestar.pull import pull_model, registry_status

    if list_:
        rows = registry_status()
        if as_json:
            out = [{**vars(r.spec), "cached": str(r.path) if r.path else None} for r in rows]
            click.echo(json.dumps(out, indent=2))
            return
        for r in rows:
            pin = "pinned" if r.spec.sha256 else "hub-lfs"
            click.echo(
                f"{r.spec.name:<28} {r.spec.quant:<7} {r.spec.step_format:<5} {pin:<8} "
                f"{r.spec.repo}/{r.spec.file}  {'cached: ' + str(r.path) if r.path else '-'}"
            )
        return
    if not model:
        raise InputError("give a model to pull (a registry name or OWNER/REPO/FILE.gguf) or --list")
    try:
        res = pull_model(model, revision=revision)
    except KeyboardInterrupt:
        fail(f"interrupted: rerun `edgestar pull {model}` to resume the download", 130)
    if as_json:
        click.echo(json.dumps(res.as_dict()))
        return
    against = "pinned sha256" if res.checked_against == "pinned" else "Hub LFS sha256"
    click.echo(
        f"{res.ref.label}: {res.size} bytes, sha256 {res.sha256} matches the {against}", err=True
    )
    click.echo(str(res.path))


# --------------------------------------------------------------------------- serve
@main.command("serve")
@model_options
@click.option("--name", help="Model id clients send (default: bundle name or model file stem).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--api-key",
    envvar="EDGESTAR_API_KEY",
    help="Require 'Authorization: Bearer KEY' (or set EDGESTAR_API_KEY).",
)
@click.option(
    "--max-queue", type=click.IntRange(min=0), default=4, show_default=True,
    help="Requests that may wait while one search runs; more get 429.",
)  # fmt: skip
@click.option(
    "--max-wait", type=float, default=60.0, show_default=True,
    help="Seconds a request may wait for its turn; then 503.",
)  # fmt: skip
@click.option(
    "--max-seconds", type=float, default=120.0, show_default=True,
    help="No search runs longer than this.",
)  # fmt: skip
@click.option(
    "--max-body", type=click.IntRange(min=1024), default=1 << 20, show_default=True,
    help="Largest request body in bytes; larger gets 413.",
)  # fmt: skip
@click.option(
    "--allow-weak-sandbox",
    is_flag=True,
    help="Run model code even where the kernel lacks Landlock or namespaces (see `edgestar doctor`).",
)
@friendly
def serve_cmd(
    bundle, model, ppm, step_format, device, threads, name, host, port, api_key,
    max_queue, max_wait, max_seconds, max_body, allow_weak_sandbox,
) -> None:  # fmt: skip
    """Serve a model over an OpenAI-compatible API (/v1/chat/completions) with search-backed answers."""
    from edgestar.serve import ServeConfig, model_id_for, run

    if allow_weak_sandbox:
        os.environ["EDGESTAR_ALLOW_WEAK_SANDBOX"] = "1"  # ExecutorConfig's default
    config = ServeConfig(
        model_id=name or model_id_for(bundle, model),
        host=host,
        port=port,
        api_key=api_key,
        max_queue=max_queue,
        max_wait=max_wait,
        max_seconds=max_seconds,
        max_body=max_body,
    )
    run(config, lambda: _open_solver(bundle, model, ppm, step_format, device, threads))


if __name__ == "__main__":
    main()
