"""The `tir` step format (Qwen2.5-Math tool-integrated reasoning for any chat model): parsing,
prompts, the search running its code blocks in the sandbox (scripted policy), `--format auto`,
and the whole path through llama.cpp on a tiny random Qwen2 with a chat template.

The scripted policy sees the fallback prompt (it has no chat template), so its script is keyed
by the text after "Answer: ".
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgestar.backends.fake import ScriptedPolicy, _tokens
from edgestar.executor import Executor
from edgestar.formats import PLAIN, RSTAR, TIR, TIR_EXEMPLARS, TIR_INSTRUCTION, get_format
from edgestar.search import run_search
from edgestar.types import Budget, InputError, SearchConfig

Q = "What is the greatest common divisor of 462 and 1071?"
START = "Answer: "
INTRO = "Use Python's gcd.\n\n"
# A code block with a blank line inside: the paragraph stop cuts it there, and the search must
# decode on to the closing fence (the script answers that continuation separately).
CODE_HEAD = "```python\nimport math\n\n"
CODE_TAIL = "print(math.gcd(462, 1071))\n```\n"
OUT21 = TIR.render_output("21")


def out(text: str) -> str:
    return TIR.render_output(text)


@pytest.fixture(scope="module")
def executor():
    ex = Executor()
    yield ex
    ex.close()


def solve(script: dict, executor, fmt=TIR, strategy="greedy", **cfg):
    pol = ScriptedPolicy(script, start=START)
    res, tree = run_search(Q, policy=pol, fmt=fmt, strategy=strategy, budget=Budget(rollouts=1),
                           config=SearchConfig(**cfg), runner=executor)  # fmt: skip
    return res, tree, pol


# ------------------------------------------------------------------------------ format as data


def test_registry_and_prompt():
    assert get_format("tir") is TIR and TIR.executes_code and TIR.chat
    msgs: list = []
    p = TIR.prompt(Q, lambda m: msgs.extend(m) or "<chat>")
    assert p == "<chat>"
    assert msgs == [{"role": "user", "content": f"{Q}\n{TIR_INSTRUCTION}"}]
    assert TIR_INSTRUCTION.endswith("put your final answer within \\boxed{}.")
    # Exemplars become earlier turns; a system message only when asked for.
    fs = dataclasses.replace(TIR, exemplars=TIR_EXEMPLARS, system="Be exact.")
    msgs.clear()
    fs.prompt(Q, lambda m: msgs.extend(m) or "")
    roles = [m["role"] for m in msgs]
    assert roles == ["system"] + ["user", "assistant"] * len(TIR_EXEMPLARS) + ["user"]
    assert msgs[2]["content"] == TIR_EXEMPLARS[0][1]
    # Without a chat template: a plain-text prompt that still carries the instruction.
    assert TIR.prompt(Q, lambda m: None).endswith(f"{Q}\n{TIR_INSTRUCTION}\nAnswer: ")
    with pytest.raises(Exception, match="on_error"):
        dataclasses.replace(TIR, on_error="retry")


def test_exemplars_are_true(executor):
    """The few-shot solutions' outputs are what their code prints."""
    for _, sol in TIR_EXEMPLARS:
        step = TIR.parse(sol.split("```output")[0].split("\n\n", 1)[1], "stop", "```\n")
        assert step.kind == "code"
        printed = sol.split("```output\n", 1)[1].split("\n```", 1)[0]
        r = executor.run(step.code or "")
        assert r.ok and r.stdout.strip() == printed


def test_parse():
    assert TIR.parse(INTRO, "stop", "\n\n").kind == "text"
    s = TIR.parse(CODE_HEAD + CODE_TAIL, "stop", "```\n")
    assert s.kind == "code" and s.code == "import math\n\nprint(math.gcd(462, 1071))"
    bare = TIR.parse("```\nprint(1)\n```\n", "stop", "```\n")
    assert bare.kind == "code" and bare.code == "print(1)"
    # A block the model labels as output (made up) or another language is not run.
    assert TIR.parse("```output\n5\n```\n", "stop", "```\n").kind == "text"
    assert TIR.parse("```bash\nls\n```\n", "stop", "```\n").kind == "text"
    assert TIR.parse("So it is \\boxed{21}.", "eos", None).answer == "21"
    assert TIR.parse("The answer is 21.", "eos", None).answer == "21"
    # Cut inside a block: nothing to run, the branch ends.
    assert TIR.parse(CODE_HEAD + "print(", "length", None).kind == "invalid"
    assert TIR.parse("", "stop", "\n\n").kind == "invalid"
    # Only tir continues a step that stopped inside an open block.
    assert TIR.continue_stop(CODE_HEAD, "stop") == ("```\n",)
    assert TIR.continue_stop("Intro ```x``` done\n\n", "stop") is None
    assert TIR.continue_stop(CODE_HEAD, "length") is None
    assert RSTAR.continue_stop(CODE_HEAD, "stop") is None
    assert PLAIN.continue_stop(CODE_HEAD, "stop") is None
    assert out("21") == "```output\n21\n```\n"


# ------------------------------------------------------------------------------ search


def gcd_script(final: str = "The answer is \\boxed{21}.") -> dict:
    return {
        "": [INTRO],
        INTRO: [CODE_HEAD + CODE_TAIL],  # the policy is cut at the blank line ...
        INTRO + CODE_HEAD: [CODE_TAIL],  # ... and asked to go on to the closing fence
        INTRO + CODE_HEAD + CODE_TAIL + OUT21: [final],
    }


def test_greedy_runs_the_block_and_appends_its_output(executor):
    res, tree, pol = solve(gcd_script(), executor)
    assert res.answer == "21" and res.stopped_by == "done"
    kinds = [n.kind for n in tree.path(tree.nodes[-1])]
    assert kinds == ["text", "code", "answer"]
    code = tree.nodes[2]
    assert code.text == CODE_HEAD + CODE_TAIL + OUT21 and code.stdout.strip() == "21"
    assert code.code == "import math\n\nprint(math.gcd(462, 1071))"
    assert res.stats.executions == 1 and pol.calls == 4  # 3 steps + 1 continuation
    assert res.steps[1].output == OUT21


def test_earlier_blocks_are_on_the_path(executor):
    b1 = "```python\nx = 6 * 7\nprint(x)\n```\n"
    b2 = "```python\nprint(x + 1)\n```\n"
    script = {"": [b1], b1 + out("42"): [b2], b1 + out("42") + b2 + out("43"): ["\\boxed{43}"]}
    res, tree, _ = solve(script, executor)
    assert res.answer == "43"
    assert [n.stdout.strip() for n in tree.nodes[1:3]] == ["42", "43"]


BAD = "```python\nprint(y)\n```\n"
GOOD = "```python\ny = 5\nprint(y * 2)\n```\n"


def error_script(err_text: str) -> dict:
    shown = BAD + out(err_text)
    return {"": [BAD], shown: [GOOD], shown + GOOD + out("10"): ["So \\boxed{10}."]}


def test_failed_block_shows_its_error_or_ends_the_branch(executor):
    err = executor.run("print(y)").error
    assert err and "NameError" in err
    res, tree, _ = solve(error_script(err), executor)
    assert res.answer == "10"
    failed = tree.nodes[1]
    assert failed.kind == "code" and failed.error == err and failed.output == out(err)
    # The failed block is not run again under the next one (it would fail the prefix).
    assert tree.path_code(tree.nodes[2]) == "y = 5\nprint(y * 2)"
    res2, tree2, _ = solve(
        error_script(err), executor, fmt=dataclasses.replace(TIR, on_error="end")
    )
    assert res2.answer is None and tree2.nodes[1].kind == "error"


def test_answer_that_contradicts_the_last_output(executor):
    # The boxed answer comes after a reasoning paragraph, not right after the block: it is
    # checked against the last printed output on the path all the same.
    script = gcd_script("So the gcd is 21.\n\n")
    script[INTRO + CODE_HEAD + CODE_TAIL + OUT21 + "So the gcd is 21.\n\n"] = ["\\boxed{7}"]
    res, tree, _ = solve(script, executor, check_answer=True)
    assert res.answer is None and tree.nodes[-1].error.startswith("the boxed answer contradicts")
    res, _, _ = solve(script, executor, check_answer=False)
    assert res.answer == "7"
    # tir keeps such an answer by default (its format's choice); a format that checks ends it
    res, _, _ = solve(script, executor)
    assert not TIR.check_answer and res.answer == "7"
    res, _, _ = solve(script, executor, fmt=dataclasses.replace(TIR, check_answer=True))
    assert res.answer is None


def test_code_first_opens_every_chain_inside_a_block(executor):
    # The runtime writes the opening fence; the model is asked to go on from inside the block,
    # and its first step is that block (the fence included), run like any other. Its blank line
    # still needs the continuation to the closing fence.
    body, tail = "import math\n\n", CODE_TAIL
    opened = TIR.code_opener + body + tail + OUT21
    script = {TIR.code_opener: [body + tail], TIR.code_opener + body: [tail],
              opened: ["The answer is \\boxed{21}."]}  # fmt: skip
    res, tree, _ = solve(script, executor, code_first=True)
    assert TIR.code_opener == "```python\n" and res.answer == "21"
    first = tree.nodes[1]
    assert first.kind == "code" and first.text == opened and first.stdout.strip() == "21"
    assert [n.kind for n in tree.path(tree.nodes[-1])] == ["code", "answer"]
    # the opener is written, not generated: only the model's tokens count
    assert first.n_tokens == _tokens(body) + _tokens(tail)
    # every chain of a search opens the same way; later steps are not forced
    for strategy in ("best_of_n", "beam", "mcts"):
        pol = ScriptedPolicy(script, start=START)
        res, tree = run_search(Q, policy=pol, fmt=TIR, strategy=strategy, budget=Budget(rollouts=2),
                               config=SearchConfig(code_first=True), runner=executor)  # fmt: skip
        assert res.answer == "21", strategy
        assert all(tree.nodes[c].text.startswith("```python\n") for c in tree.root.children)
    # off (the SearchConfig default), the model writes its own first step
    res, tree, _ = solve(gcd_script(), executor)
    assert tree.nodes[1].text == INTRO
    # a format with no code blocks refuses it
    with pytest.raises(InputError, match="code_first"):
        solve(gcd_script(), executor, fmt=PLAIN, code_first=True)


def test_a_block_continued_past_a_blank_line_stays_within_the_chain_cap(executor):
    # The first step stops at the blank line inside its block; decoding it on to the closing
    # fence may not take the chain past max_chain_tokens (it ends there, as invalid).
    cap = _tokens(INTRO) + _tokens(CODE_HEAD) + 2
    for strategy in ("greedy", "best_of_n", "mcts"):
        pol = ScriptedPolicy(gcd_script(), start=START)
        res, tree = run_search(Q, policy=pol, fmt=TIR, strategy=strategy, budget=Budget(rollouts=1),
                               config=SearchConfig(max_chain_tokens=cap), runner=executor)  # fmt: skip
        ends = [n for n in tree.nodes if n.kind == "invalid"]
        assert res.answer is None and ends, strategy
        assert all(sum(p.n_tokens for p in tree.path(n)) <= cap for n in tree.nodes), strategy
        assert ends[0].error == f"chain token cap {cap} reached", strategy


def test_search_strategies_run_tir(executor):
    for strategy in ("best_of_n", "beam", "mcts"):
        pol = ScriptedPolicy(gcd_script(), start=START)
        res, _ = run_search(Q, policy=pol, fmt=TIR, strategy=strategy,
                            budget=Budget(rollouts=2), runner=executor)  # fmt: skip
        assert res.answer == "21", strategy


# ------------------------------------------------------------------------------ llama.cpp


@pytest.fixture(scope="module")
def tiny_chat_qwen2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random Qwen2 exported to GGUF (declares edgestar.step_format=rstar), and a copy
    with that key removed: a third-party chat model as far as edgestar can tell."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from edgestar.quantize.gguf_export import export_gguf
    from edgestar.train.tiny import TinyConfig, make_tiny_checkpoint

    root = tmp_path_factory.mktemp("tir-qwen2")
    ckpt = make_tiny_checkpoint(root / "ckpt", TinyConfig(arch="qwen2", seed=5))
    own = export_gguf(ckpt, root / "own.gguf")
    chat = root / "chat.gguf"
    cmd = [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(own), str(chat),
           "--remove-metadata", "edgestar.step_format", "--remove-metadata", "edgestar.role",
           "--force"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return {"own": own, "chat": chat}


@pytest.mark.llama
def test_auto_format(tiny_chat_qwen2, tmp_path: Path):
    from edgestar.gguf_meta import read_string_kv
    from edgestar.solver import auto_format

    own, chat = tiny_chat_qwen2["own"], tiny_chat_qwen2["chat"]
    assert read_string_kv(chat, "tokenizer.chat_template")
    assert auto_format(own) == "rstar"  # edgestar's own model declares its format
    assert auto_format(chat) == "tir"  # a chat model gets code-executing steps
    bare = tmp_path / "bare.gguf"
    cmd = [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(chat), str(bare),
           "--remove-metadata", "tokenizer.chat_template", "--force"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    assert auto_format(bare) == "plain"
    # the default search follows the format: a chat model in tir draws 8 chains, each opened
    # inside a code block, and votes (on a real model code first beat the model's own first
    # step, and the vote beat greedy; MCTS costs minutes there), a model
    # without a chat template decodes greedily, edgestar's own keeps MCTS
    import edgestar

    for path, fmt, strategy in ((own, "rstar", "mcts"), (chat, "tir", "best_of_n"),
                                (bare, "plain", "greedy")):  # fmt: skip
        with edgestar.load(model=path, threads=1, device="cpu") as s:
            assert (s.format.name, s.strategy) == (fmt, strategy)
            if strategy == "best_of_n":
                assert (s.budget.rollouts, s.config.select) == (8, "count")
                assert s.config.max_chain_tokens == 600  # a runaway chain ends
                assert s.config.code_first and s.config.n == 8  # one wave, all code first
        with edgestar.load(model=path, step_format="rstar", threads=1, device="cpu") as s:
            assert s.strategy == "mcts"
    # with a reward head bound to the chat model, the head is loaded and scores the steps, but
    # the code-first chains' vote is still counted, ties to the policy: the shipped head ranks
    # them at chance
    import numpy as np

    from edgestar.head import Head, HeadReward, file_sha256, save_head

    with edgestar.load(model=chat, threads=1, device="cpu") as s:
        width = s.policy.n_embd
    rng = np.random.default_rng(0)
    head = Head((rng.normal(0, 0.1, (width, 1)),), (np.zeros(1),), np.zeros(width),
                np.ones(width), model_sha256=file_sha256(chat))  # fmt: skip
    path = save_head(head, tmp_path / "chat.head.npz")
    with edgestar.load(model=chat, ppm=path, threads=1, device="cpu") as s:
        assert (s.strategy, s.budget.rollouts, s.config.select) == ("best_of_n", 8, "count")
        assert isinstance(s.reward, HeadReward) and s.config.code_first


@pytest.mark.llama
def test_tir_end_to_end_through_llamacpp(tiny_chat_qwen2, tmp_path: Path):
    from click.testing import CliRunner

    from edgestar.cli import main

    tree_path = tmp_path / "tree.json"
    args = ["solve", "--model", str(tiny_chat_qwen2["chat"]), "--threads", "1", "--strategy",
            "greedy", "--json", "--tree-out", str(tree_path), Q]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["stats"]["tokens_generated"] > 0
    tree = json.loads(tree_path.read_text())
    # --format auto chose tir: the question went through the file's own chat template
    # (train/tiny.CHAT_TEMPLATE: "<|user|>:\n...\n<|assistant|>:") with the TIR instruction.
    assert tree["prompt"] == f"<|user|>:\n{Q}\n{TIR_INSTRUCTION}\n<|assistant|>:"
    nodes = tree["nodes"][1:]
    assert nodes and all(n["kind"] in ("text", "code", "answer", "invalid", "error") for n in nodes)
    for n in nodes:
        # Every step the search kept is a whole TIR step: a paragraph, a closed block with its
        # output appended, or a terminal.
        if n["kind"] == "text":
            assert n["text"].endswith("\n\n") and n["text"].count("```") % 2 == 0
        if n["kind"] == "code":
            assert n["text"].endswith(n["output"]) and n["output"].startswith("```output\n")
    res = CliRunner().invoke(main, [*args[:3], "--format", "nope", Q])
    assert res.exit_code != 0 and "nope" in res.output


# ------------------------------------------------------------------------------ the real model


@pytest.mark.slow
@pytest.mark.llama
def test_qwen_coder_writes_and_runs_code():
    """Qwen2.5-Coder-0.5B-Instruct (the benchmark fixture, if fetched): greedy tir writes a
    block, the sandbox runs it, the answer is what it printed."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fixtures import FixtureError, verify

    try:
        model = verify("qwen2.5-coder-0.5b-instruct-q4_k_m")
    except FixtureError as e:
        pytest.skip(str(e))
    import edgestar

    with edgestar.load(model=model, threads=1) as solver:
        assert solver.format is TIR
        r = solver.solve(Q, strategy="greedy", budget=Budget(rollouts=1, tokens=768))
    assert r.answer == "21" and r.stats.executions >= 1
    assert any(s.output and "21" in s.output for s in r.steps)


@pytest.mark.slow
@pytest.mark.llama
def test_qwen_coder_picks_up_its_shipped_head():
    """`edgestar solve --model` on the Qwen2.5-Coder-0.5B fixture (if fetched) loads the head in
    models/heads/ made for that file by itself and names it in --json stats."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fixtures import FixtureError, verify

    try:
        model = verify("qwen2.5-coder-0.5b-instruct-q4_k_m")
    except FixtureError as e:
        pytest.skip(str(e))
    from click.testing import CliRunner

    from edgestar.cli import main

    res = CliRunner().invoke(
        main,
        ["solve", "--model", str(model), "--strategy", "greedy", "--threads", "1", "--json", Q],
    )
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)["stats"]
    assert stats["reward"] == "head:linear:qwen2.5-coder-0.5b-instruct-q4_k_m.head.npz"


def test_auto_format_of_checkpoint_folders(tmp_path: Path):
    from edgestar.solver import auto_format

    hf = tmp_path / "hf"
    hf.mkdir()
    assert auto_format(hf) == "plain"
    (hf / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    assert auto_format(hf) == "tir"
    (hf / "tokenizer_config.json").write_text("{not json")
    assert auto_format(hf) == "plain"
    (hf / "chat_template.jinja").write_text("{{ x }}")
    assert auto_format(hf) == "tir"


@pytest.mark.llama
@pytest.mark.torch
def test_train_head_on_a_chat_model_uses_tir(tiny_chat_qwen2, tmp_path: Path):
    """`edgestar train head` on a third-party chat model searches in the format `--format auto`
    gives it (tir), here with every chain opened in a code block (--code-first, the runtime's
    default for a chat model), and records its states. A random model rarely finishes a step, so the fit may
    find nothing to learn from: then it says so in one line, as bad input would."""
    from click.testing import CliRunner

    from edgestar.cli import main

    model, out = tiny_chat_qwen2["chat"], tmp_path / "run"
    args = ["train", "head", "--model", str(model), "--problems", "synthetic:integer_arithmetic",
            "-n", "4", "--rollouts", "2", "--width", "2", "--max-step-tokens", "24",
            "--code-first", "--out", str(out)]  # fmt: skip
    res = CliRunner().invoke(main, args)
    collect = json.loads((out / "config.json").read_text())["collect"]
    assert collect["step_format"] == "tir" and collect["code_first"] is True
    assert sorted(out.glob("states-*.npz")), "no states were recorded"
    if res.exit_code != 0:
        assert res.output.strip().count("\n") == 0 and "to learn from" in res.output
    else:  # the head says which chains it learnt from
        from edgestar.head import load_head

        assert load_head(out / "head.npz").meta["code_first"] is True
