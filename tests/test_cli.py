"""The `edgestar` command line: errors are one line and a non-zero exit; a tiny random Llama
solves end to end through the torch backend; batch mode survives bad lines and keeps output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgestar.cli import main

RUN = CliRunner()


def invoke(*args: str):
    return RUN.invoke(main, list(args), catch_exceptions=False)


def one_error_line(res) -> str:
    err = res.stderr.strip().splitlines()
    assert len(err) == 1, res.stderr
    assert "Traceback" not in res.output + res.stderr
    return err[0]


@pytest.mark.parametrize(
    "args, expect",
    [
        (["solve"], "nothing to solve"),
        (["solve", "   "], "question is empty"),
        (["solve", "x" * (1 << 20)], "limit is"),
        (["solve", "--model", "/no/such.gguf", "q"], "does not exist"),
        (["solve", "--rollouts", "0", "--model", "/no/such.gguf", "q"], ""),
        (["solve", "--ppm", "x.gguf", "q"], "--ppm needs --model"),
        (["solve", "--output", "o.jsonl"], "--output needs --input"),
        (
            ["eval", "--suite", "synthetic", "-n", "2", "--temperature", "-1", "--out", "/no/x"],
            "temperature must be >= 0",
        ),  # fmt: skip
    ],
)
def test_bad_input_is_one_line(args, expect):
    res = invoke(*args)
    assert res.exit_code != 0
    assert expect in one_error_line(res)


def test_non_utf8_question_is_refused():
    # What a shell passes for invalid UTF-8 bytes: surrogate escapes.
    res = invoke("solve", b"caf\xe9?".decode("utf-8", "surrogateescape"))
    assert res.exit_code != 0 and "UTF-8" in one_error_line(res)


def test_truncated_and_wrong_format_model_files(tmp_path: Path):
    bad = tmp_path / "m.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 4)
    assert "not a GGUF" in one_error_line(invoke("solve", "--model", str(bad), "q"))
    bad.write_bytes(b"GGUF" + b"\xff" * 60)
    res = invoke("solve", "--model", str(bad), "q")
    assert res.exit_code != 0 and one_error_line(res)
    txt = tmp_path / "m.txt"
    txt.write_text("hello")
    assert "not a model" in one_error_line(invoke("solve", "--model", str(txt), "q"))


def test_negative_budget_is_refused(tmp_path: Path):
    res = invoke("solve", "--model", str(tmp_path), "--tokens", "-5", "q")
    assert res.exit_code != 0
    one_error_line(res)


def test_light_import_has_no_torch():
    code = (
        "import edgestar, sys; edgestar.load; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
        "assert 'llama_cpp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_console_script_prints_no_traceback():
    exe = Path(sys.executable).with_name("edgestar")
    res = subprocess.run([str(exe), "solve", ""], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip() == "edgestar: error: question is empty"


# ----------------------------------------------------------------------- end to end (torch)
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    pytest.importorskip("torch")
    from edgestar.train.tiny import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    return (
        make_tiny_checkpoint(root / "policy", "test", role="policy"),
        make_tiny_checkpoint(root / "ppm", "test", role="ppm"),
    )


@pytest.mark.torch
@pytest.mark.slow
def test_solve_end_to_end_through_torch(tiny, tmp_path: Path):
    policy, ppm = tiny
    tree = tmp_path / "tree.html"
    res = invoke(
        "solve", "--model", str(policy), "--ppm", str(ppm), "--format", "rstar",
        "--strategy", "mcts", "--rollouts", "2", "--width", "2", "--temperature", "1.0",
        "--json", "--tree-out", str(tree), "--threads", "1", "What is 2 + 3?",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["strategy"] == "mcts" and out["stopped_by"] in ("rollouts", "done", "tokens")
    assert out["stats"]["tokens_generated"] > 0 and out["stats"]["nodes"] >= 2
    page = tree.read_text()
    assert page.startswith("<!doctype html>") and '"nodes"' in page
    # Same seed, same answer and tree.
    again = invoke(
        "solve", "--model", str(policy), "--ppm", str(ppm), "--format", "rstar",
        "--strategy", "mcts", "--rollouts", "2", "--width", "2", "--temperature", "1.0",
        "--json", "--threads", "1", "What is 2 + 3?",
    )  # fmt: skip
    again_out = json.loads(again.stdout)
    assert again_out["answer"] == out["answer"] and again_out["steps"] == out["steps"]


@pytest.mark.torch
@pytest.mark.slow
def test_batch_mode_reports_bad_lines_and_keeps_the_rest(tiny, tmp_path: Path):
    policy, _ = tiny
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_bytes(
        b'{"id": "a", "question": "What is 1 + 1?"}\n'
        b"{not json\n"
        b'{"id": "c"}\n'
        b"\xff\xfe\n"
        b'{"id": "e", "question": "What is 2 + 2?"}\n'
    )
    args = [
        "solve",
        "--model",
        str(policy),
        "--format",
        "rstar",
        "--strategy",
        "greedy",
        "--tokens",
        "40",
        "--threads",
        "1",
        "--input",
        str(inp),
        "--output",
        str(outp),
    ]
    res = invoke(*args)
    assert res.exit_code == 1
    rows = [json.loads(line) for line in outp.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]
    assert [("error" in r) for r in rows] == [False, True, True, True, False]
    assert rows[0]["id"] == "a" and "tokens_generated" in rows[0]
    assert "in.jsonl:2: malformed JSON" in res.stderr
    # An existing output is never overwritten without --force.
    res2 = invoke(*args)
    assert res2.exit_code == 2 and "exists" in one_error_line(res2)
    assert len(outp.read_text().splitlines()) == 5


@pytest.mark.torch
@pytest.mark.llama
@pytest.mark.slow
def test_solve_end_to_end_through_llamacpp(tiny, tmp_path: Path):
    from edgestar.quantize.gguf_export import export_gguf

    policy, ppm = tiny
    pol_gguf = export_gguf(policy, tmp_path / "policy.gguf", dtype="f32")
    ppm_gguf = export_gguf(ppm, tmp_path / "ppm.gguf", dtype="f32")
    tree = tmp_path / "tree.json"
    args = ["solve", "--model", str(pol_gguf), "--ppm", str(ppm_gguf), "--strategy", "mcts",
            "--rollouts", "2", "--width", "2", "--threads", "1", "--json", "What is 2 + 3?"]  # fmt: skip
    res = invoke(*args, "--tree-out", str(tree))
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["stats"]["tokens_generated"] > 0 and out["stats"]["nodes"] >= 1
    # The step format came from the GGUF's own metadata: rstar's prompt.
    assert json.loads(tree.read_text())["prompt"].startswith("<|user|>:")
    assert json.loads(invoke(*args).stdout)["steps"] == out["steps"]  # same seed, same path


def test_strategy_choices_are_the_search_registry():
    """--strategy lists the names without importing the search package; they must agree."""
    from edgestar._cli_common import SELECTS, STRATEGY_NAMES
    from edgestar.search import STRATEGIES

    assert sorted(STRATEGY_NAMES) == sorted(STRATEGIES)
    assert SELECTS == ["majority", "count", "weighted", "max"]
    res = RUN.invoke(main, ["eval", "--suite", "synthetic", "-n", "1", "--strategy", "dfs",
                            "--out", "/no/such"])  # fmt: skip
    assert res.exit_code == 2 and "best_of_n:weighted" in res.output + res.stderr
