"""Step formats: rstar's markers and parsing, plain's blank-line steps, prompts."""

from __future__ import annotations

import pytest

from edgestar.formats import FORMATS, PLAIN, RSTAR, Marker, get_format, rstar_solution
from edgestar.types import InputError


def test_rstar_prompt_is_the_papers():
    p = RSTAR.prompt("What is 2+2?")
    assert p == (
        "<|user|>:\nWhat is 2+2?\n<|assistant|>: Let's think step by step and solve the problem "
        "with code.\n<code>\n"
    )


def test_rstar_solution_parses_back_step_by_step():
    sol = rstar_solution([("add them", "x = 2 + 2")], "print(x)", "4", "4")
    assert sol.startswith("# Step 1: add them\nx = 2 + 2\n<end_of_step>\n")
    doc = RSTAR.prompt("What is 2+2?") + sol
    assert doc.count("<code>") == 1
    assert (
        "# Now print the final answer\nprint(x)\n<end_of_code>\n<output>4<end_of_output>\n" in sol
    )
    assert sol.endswith("<answer>The answer is \\boxed{4}<end_of_answer>")


@pytest.mark.parametrize(
    "text, stop, kind, code, answer",
    [
        ("# Step 1: x\nx = 1\n<end_of_step>", Marker.END_STEP, "code", "# Step 1: x\nx = 1", None),
        ("print(x)\n<end_of_code>", Marker.END_CODE, "final", "print(x)", None),
        ("<answer>so \\boxed{5}<end_of_answer>", Marker.END_ANSWER, "answer", None, "5"),
        ("<answer>no box<end_of_answer>", Marker.END_ANSWER, "invalid", None, None),
        ("x = 1 and then it stopped", None, "invalid", None, None),
        ("it is \\boxed{3}", None, "answer", None, "3"),
    ],
)
def test_rstar_parse(text, stop, kind, code, answer):
    s = RSTAR.parse(text, "stop" if stop else "length", stop)
    assert (s.kind, s.code, s.answer) == (kind, code, answer)
    assert s.text == text + "\n"


def test_rstar_output_is_capped():
    out = RSTAR.render_output("9" * 10_000)
    assert out.startswith(Marker.OUTPUT) and out.endswith(Marker.END_OUTPUT + "\n")
    assert len(out) < RSTAR.max_output_chars + 50


def test_plain_format():
    assert PLAIN.parse("First, 2+2=4.\n\n", "stop", "\n\n").kind == "text"
    assert PLAIN.parse("So \\boxed{4}", "eos", None).answer == "4"
    assert PLAIN.parse("trailing", "eos", None).kind == "invalid"
    assert PLAIN.parse("so 12 + 30 = 42.", "eos", None).answer == "42"
    assert PLAIN.parse("so 12 + 30 = 42.", "length", None).kind == "invalid"
    chat = PLAIN.prompt("Q?", lambda msgs: f"<user>{msgs[0]['content']}</user><bot>")
    assert chat.startswith("<user>Q?") and chat.endswith("<bot>")
    assert PLAIN.prompt("Q?", lambda msgs: None).startswith("Question: Q?")


def test_registry():
    assert set(FORMATS) == {"rstar", "plain", "tir"}
    with pytest.raises(InputError, match="unknown step format"):
        get_format("cot")


def test_reference_solutions_in_tir_read_back_and_run():
    """Every generator solution reads back into its parts (rstar_solution(parts) is the same
    text) and, written in tir, is one python block whose code prints the answer, then the
    boxed answer: what SFT teaches a chat model, parsed as the search will parse it."""
    from edgestar.executor import Executor
    from edgestar.formats import TIR, rstar_parts, solution_in
    from edgestar.train.problems import load_source

    skills = "synthetic:everyday_arithmetic,everyday_word,linear_equation,fraction_arithmetic"
    probs = load_source(skills, n=40, seed=3, with_solution=True)
    with Executor() as ex:
        for p in probs:
            assert p.solution is not None
            parts = rstar_parts(p.solution)
            assert rstar_solution(*parts) == p.solution
            tir = solution_in("tir", p.solution)
            code_end = tir.index("```\n", tir.index("```python") + 3) + 4
            first = TIR.parse(tir[:code_end], "stop", "```\n")
            assert first.kind == "code" and first.code is not None
            ran = ex.run(first.code)
            assert ran.ok, (p.question, ran)
            assert tir[code_end:].startswith(TIR.render_output(ran.stdout))
            last = TIR.parse(tir[code_end + len(TIR.render_output(ran.stdout)) :], "eos", None)
            assert last.kind == "answer" and last.answer == p.answer
    assert solution_in("rstar", probs[0].solution or "") == probs[0].solution
    with pytest.raises(InputError):
        rstar_parts("print(1)")
    with pytest.raises(InputError):
        solution_in("plain", probs[0].solution or "")
