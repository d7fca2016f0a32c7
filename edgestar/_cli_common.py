"""What every `edgestar` command shares: the one-line error contract (`fail`, `friendly`), the
model and search option sets, and small parsers (budgets, JSONL questions, suites, int lists).
Private; the commands live in cli.py (edgestar.cli) and train/_cli.py (`edgestar train`, `data`).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from edgestar.types import SELECT_RULES, Budget, EdgestarError, InputError, SearchConfig

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USAGE = 2
EXIT_FAILED = 1


def fail(msg: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"edgestar: error: {msg}", err=True)
    sys.exit(code)


def friendly(fn: F) -> F:
    """Turn any exception into one readable line and a non-zero exit (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except EdgestarError as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as e:
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            fail(f"{e.strerror or e}{where}", EXIT_FAILED)
        except Exception as e:  # noqa: BLE001 - the CLI must never print a traceback
            if os.environ.get("EDGESTAR_DEBUG"):
                raise
            fail(f"internal error: {type(e).__name__}: {e} (EDGESTAR_DEBUG=1 shows more)", 70)

    return wrapper  # type: ignore[return-value]


def model_options(fn: F) -> F:
    opts = [
        click.option(
            "--bundle",
            type=click.Path(path_type=Path),
            help="Bundle folder, or a shipped bundle's name: edgestar-smol, edgestar-tiny "
            "(default: the shipped default model).",
        ),
        click.option(
            "--model",
            type=click.Path(path_type=Path),
            help="A bare policy model: .gguf file or checkpoint folder.",
        ),
        click.option(
            "--ppm",
            type=click.Path(path_type=Path),
            help="Reward for --model: a PPM (.gguf or checkpoint folder), an off-the-shelf PRM "
            "GGUF (`edgestar quantize`; FAMILY:FILE.gguf when its metadata does not name the "
            "family) or a head file bound to the --model GGUF (`edgestar train head`); a head "
            "in models/heads/ made for the --model file is used unless this says none.",
        ),
        click.option(
            "--format",
            "step_format",
            type=click.Choice(["auto", "tir", "rstar", "plain"]),
            help="Step format. auto (default): what the model declares (edgestar's own: "
            "rstar), else tir (code-executing steps) for a chat model, else plain.",
        ),
        click.option(
            "--device",
            type=click.Choice(["auto", "cpu", "cuda"]),
            default="auto",
            show_default=True,
        ),
        click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the model."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


STRATEGY_NAMES = ["greedy", "best_of_n", "beam", "mcts"]
"""The CLI's --strategy choices: edgestar.search.STRATEGIES' keys, listed here so the CLI starts
without importing the search package (tests/test_cli.py checks they agree)."""
SELECTS = list(SELECT_RULES)


code_first_option = click.option(
    "--code-first/--no-code-first",
    default=None,
    help="tir: start every chain inside a Python block, so the model computes in code before it "
    "reasons in words (default: the model's; on for a chat model).",
)


def search_options(fn: F) -> F:
    opts = [
        click.option(
            "--strategy",
            type=click.Choice(STRATEGY_NAMES),
            help="Search strategy (default: the bundle's, else mcts).",
        ),
        click.option("--rollouts", type=int, help="Budget: rollouts (complete trajectories)."),
        click.option("--tokens", type=int, help="Budget: generated tokens."),
        click.option("--seconds", type=float, help="Budget: wall-clock seconds."),
        click.option("--nodes", type=int, help="Budget: tree nodes."),
        click.option("--width", type=int, help="Candidate steps per expansion."),
        click.option("-n", "--samples", "n", type=int, help="best_of_n: number of samples."),
        click.option("--beam-width", type=int, help="beam: beams kept per step."),
        click.option("--temperature", type=float, help="Sampling temperature."),
        click.option(
            "--select",
            type=click.Choice(SELECTS),
            help="How the final answer is chosen among finished answers.",
        ),
        code_first_option,
        click.option("--seed", type=int, default=0, show_default=True),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _budget(base: Budget, rollouts: Any, tokens: Any, seconds: Any, nodes: Any) -> Budget:
    given = {
        k: v
        for k, v in dict(rollouts=rollouts, tokens=tokens, seconds=seconds, nodes=nodes).items()
        if v is not None
    }
    if not given:
        return base
    # Limits given on the command line replace the default ones.
    return Budget(**{"rollouts": None, **given})


def _config(base: SearchConfig, **over: Any) -> SearchConfig:
    from dataclasses import replace

    return replace(base, **{k: v for k, v in over.items() if v is not None})


def _open_solver(
    bundle: Any,
    model: Any,
    ppm: Any,
    step_format: Any,
    device: str,
    threads: Any,
    lora: Any = None,
):
    import edgestar

    if ppm is not None and model is None:
        raise InputError("--ppm needs --model (a bundle brings its own PPM)")
    if lora is not None and model is None:
        raise InputError("--lora needs --model FILE.gguf (the base the adapter was trained on)")
    return edgestar.load(
        bundle,
        model=model,
        ppm=ppm,
        step_format=step_format,
        device=device,
        threads=threads,
        lora=lora,
    )


lora_option = click.option(
    "--lora",
    type=click.Path(path_type=Path),
    help="A GGUF LoRA adapter applied to the --model GGUF at load time (llama.cpp).",
)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, record or None, error or None) for each non-blank line."""
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield i, None, "not valid UTF-8"
                continue
            except json.JSONDecodeError as e:
                yield i, None, f"malformed JSON ({e.msg})"
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("question"), str):
                yield i, None, 'expected an object with a "question" string'
                continue
            yield i, rec, None


def _suite(spec: str, n: int | None, seed: int) -> list[Any]:
    from edgestar.train.problems import load_source

    problems = load_source(spec, n, seed)
    if not problems:
        raise InputError(f"suite {spec} has no problems")
    return problems


def _float_list(text: str | None, what: str) -> tuple[float, ...]:
    """'0,0.01,0.1' -> (0.0, 0.01, 0.1); each must be a finite number >= 0."""
    try:
        vals = tuple(float(x) for x in (text or "").split(",") if x.strip())
    except ValueError:
        raise InputError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if not vals or any(not (v >= 0 and v < float("inf")) for v in vals):
        raise InputError(f"{what} must be one or more numbers >= 0, got {text!r}")
    return vals


def _int_list(text: str | None, what: str) -> list[int]:
    if not text:
        return []
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(
            f"{what} must be whole numbers separated by commas, got {text!r}"
        ) from None
    if any(v < 1 for v in vals):
        raise InputError(f"{what} must be positive, got {text!r}")
    return vals
