"""`edgestar train` (evolve, head) and `edgestar data` (compare): the training commands. Each parses
options, builds a config, calls one function of edgestar.train and prints. Registered on the
main group by cli.py; torch and the rest of train/ load only when a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgestar._cli_common import _float_list, _suite, friendly
from edgestar.types import InputError


@click.group()
def train() -> None:
    """Self-evolution of the policy and the PPM (needs the [train] extra)."""


@train.command("evolve")
@click.option("--recipe", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Run folder, e.g. runs/NAME.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option(
    "--ray-address",
    help="Fan rollouts out on Ray ('local' starts one here, 'auto' joins a cluster).",
)
@click.option(
    "--round0-adapter",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A GGUF LoRA adapter (e.g. the shipped model's) to stand for round 0 instead of the "
    "bootstrap SFT; the rounds continue it.",
)
@friendly
def train_evolve(
    recipe: Path, out: Path, resume: bool, ray_address: str | None, round0_adapter: Path | None
) -> None:
    """Run a recipe's rounds: problems -> rollouts -> datasets -> SFT + PPM -> round report."""
    from edgestar.train.evolve import evolve
    from edgestar.train.recipe import load_recipe

    report = evolve(
        load_recipe(recipe),
        out,
        resume=resume,
        ray_address=ray_address,
        progress=sys.stderr.isatty(),
        round0_adapter=round0_adapter,
    )
    click.echo((out / "report.md").read_text())
    click.echo(
        f"{len(report.rounds)} round(s) in {report.seconds:.0f}s; run folder {out}", err=True
    )


@train.command("head")
@click.option(
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The GGUF model whose own hidden states the head reads.",
)
@click.option(
    "--problems",
    "problems",
    multiple=True,
    required=True,
    help="Problem source with known answers (repeat): synthetic[:skills], "
    "reasoning-gym:NAME, or a .jsonl file.",
)
@click.option(
    "--holdout",
    "holdout",
    multiple=True,
    help="Source used only for evaluation (repeat): a generator never trained on.",
)
@click.option(
    "--exclude",
    "exclude",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A .jsonl evaluation file whose questions are never searched (repeat).",
)
@click.option("-n", "n", type=int, default=48, show_default=True, help="Problems per source.")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Run folder (resumed when it exists): head.npz, report.{json,md}, states.",
)
@click.option(
    "--format",
    "step_format",
    type=click.Choice(["auto", "tir", "rstar", "plain"]),
    default="auto",
    show_default=True,
    help="Step format; auto: what the model declares, else tir for a chat model, else plain.",
)
@click.option(
    "--strategy",
    type=click.Choice(["mcts", "best_of_n", "beam"]),
    default="mcts",
    show_default=True,
    help="The search that collects: mcts backs terminal values up; best_of_n and beam label each "
    "step by the answers below it (best_of_n: every token reaches an answer).",
)
@click.option("--rollouts", type=int, default=8, show_default=True)
@click.option("--width", type=int, default=4, show_default=True)
@click.option("--max-step-tokens", type=int, default=256, show_default=True)
@click.option(
    "--code-first",
    is_flag=True,
    help="tir: open every chain inside a code block, as `edgestar solve` does for a chat model, "
    "so the head learns from the chains it will rank.",
)
@click.option(
    "--loss",
    type=click.Choice(["outcome", "pairwise", "regression", "both"]),
    default="outcome",
    show_default=True,
    help="outcome: right/wrong of the answer steps (ranks finished chains); pairwise, regression, "
    "both: step losses (sibling steps, Q).",
)
@click.option(
    "--mlp", type=int, default=0, show_default=True, help="Hidden width of an MLP head (0: linear)."
)
@click.option(
    "--l2",
    default="0.1,0.3,1,3,10",
    show_default=True,
    help="Ridge penalty on the head's weights; a comma list (e.g. 0,0.01,0.1,1) is chosen by "
    "5-fold cross-validation over the training problems.",
)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--max-collect-minutes",
    type=float,
    help="Stop searching new shards after this long and fit on those done.",
)
@click.option(
    "--ray-address",
    help="Fan the search out on Ray ('local' starts one here, 'auto' joins a cluster).",
)
@click.option(
    "--lora",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A GGUF LoRA adapter applied to --model throughout; the head is bound to both.",
)
@friendly
def train_head_cmd(
    model, problems, holdout, exclude, n, out, step_format, strategy, rollouts, width,
    max_step_tokens, code_first, loss, mlp, l2, threads, seed, max_collect_minutes, ray_address,
    lora,
) -> None:  # fmt: skip
    """Train a process reward head on MODEL's own hidden states (search, record, fit)."""
    from edgestar.solver import auto_format
    from edgestar.train.head import HeadTrainConfig, train_head

    cfg = HeadTrainConfig(
        problems=tuple(problems), holdout=tuple(holdout), exclude=tuple(map(str, exclude)),
        n=n, seed=seed,
        step_format=auto_format(model) if step_format == "auto" else step_format,
        strategy=strategy, rollouts=rollouts,
        width=width, max_step_tokens=max_step_tokens, code_first=code_first, loss=loss,
        l2=_float_list(l2, "--l2"),
        hidden=(mlp,) if mlp else (), threads=threads, shard_size=2,
        max_collect_seconds=None if max_collect_minutes is None else 60 * max_collect_minutes,
    )  # fmt: skip
    if lora is not None and not lora.is_file():
        raise InputError(f"adapter {lora} does not exist")
    report = train_head(
        model, out, cfg, progress=sys.stderr.isatty(), ray_address=ray_address, lora=lora
    )
    click.echo(report.to_markdown())
    click.echo(f"head written to {out / 'head.npz'}", err=True)


@click.group()
def data() -> None:
    """Training-data tools."""


@data.command("compare")
@click.option(
    "--weak",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    help="The smaller policy (.gguf or checkpoint).",
)
@click.option(
    "--strong",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    help="The larger policy.",
)
@click.option(
    "--problems",
    "spec",
    required=True,
    help="Problem source: .jsonl, 'synthetic[:skills]' or 'reasoning-gym:NAME'.",
)
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--samples-strong",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Samples per problem for the strong policy; the weak one gets P_strong/P_weak times as many.",
)
@click.option(
    "--format",
    "step_format",
    type=click.Choice(["rstar", "plain"]),
    default="rstar",
    show_default=True,
)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@friendly
def data_compare(weak, strong, spec, n, samples_strong, step_format, threads, seed, out) -> None:
    """Sample two policies at matched compute; compare coverage, diversity and FPR."""
    from edgestar.train.compare import compare, compare_markdown

    problems = _suite(spec, n, seed)
    report = compare(
        weak,
        strong,
        problems,
        samples_strong=samples_strong,
        out_dir=out,
        seed=seed,
        threads=threads,
        step_format=step_format,
    )
    click.echo(compare_markdown(report))
