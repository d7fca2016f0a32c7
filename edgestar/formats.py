"""Step formats: how a question becomes a prompt and how generated text becomes steps.

Three formats, all plain data in the `FORMATS` registry:

- `rstar`: rStar-Math's code-augmented chain of thought (Guan et al., 2025; SEEDS.md). The
  solution opens with `<code>`; each step is reasoning as `# Step k:` comments plus Python code,
  ending in `<end_of_step>`; the last code step prints the answer and ends in `<end_of_code>`;
  the runtime appends the interpreter's output as `<output>...<end_of_output>`; the final step is
  `<answer>... \\boxed{...}<end_of_answer>`. All markers are special tokens of edgestar's models.
- `plain`: any instruction-tuned chat model. The question goes through the model's own chat
  template; steps are separated by a blank line; the answer is in `\\boxed{}`. No code runs.
- `tir`: any chat model, with code. Qwen2.5-Math's tool-integrated reasoning (TIR): the model's
  own chat template and the instruction `TIR_INSTRUCTION`; a step is a paragraph of reasoning
  (ends at a blank line) or a ```` ```python ```` block (ends at its closing fence: a blank line
  inside an open block does not end the step, the search decodes on with `code_stop`). The
  runtime runs every block in the sandbox after the earlier blocks on the path and appends
  ```` ```output\\n...\\n``` ````. A block that fails shows its error the same way
  (`on_error='show'`, as TIR does) or ends the branch (`on_error='end'`, as rstar does).

A step's kind decides what the search does with it:
  'code'   run its code (with all earlier code on the path); a failure drops the branch
           (tir: its output, or its error under on_error='show', is appended to the step)
  'final'  run it, append its output; the answer step comes next
  'answer' terminal; its \\boxed{} content is the answer
  'text'   plain reasoning, nothing to run (tir: a reasoning paragraph)
  'invalid' terminal without an answer (length cut, end of text without one)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .answer import extract_answer, extract_boxed
from .types import InputError


class Marker:
    """rStar-Math's special tokens, in one place."""

    USER = "<|user|>"
    ASSISTANT = "<|assistant|>"
    CODE = "<code>"
    END_STEP = "<end_of_step>"
    END_CODE = "<end_of_code>"
    OUTPUT = "<output>"
    END_OUTPUT = "<end_of_output>"
    ANSWER = "<answer>"
    END_ANSWER = "<end_of_answer>"

    ALL = (USER, ASSISTANT, CODE, END_STEP, END_CODE, OUTPUT, END_OUTPUT, ANSWER, END_ANSWER)


@dataclass(frozen=True)
class ParsedStep:
    kind: str  # 'code' | 'final' | 'answer' | 'text' | 'invalid'
    text: str
    """The step as it goes into the path (what later prompts see)."""
    code: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class StepFormat:
    """A step format as data; `parse` and `prompt` interpret it."""

    name: str
    stop: tuple[str, ...]
    step_suffix: str
    """Appended after each step's generated text (which already ends in its stop string)."""
    executes_code: bool
    special_tokens: tuple[str, ...] = ()
    prompt_template: str = "{question}"
    solution_prefix: str = ""
    """Text placed after the prompt, before the first step."""
    user_template: str = "{question}"
    """plain: the user message handed to the model's chat template."""
    output_template: str = ""
    """rstar: how the runtime appends the final code's output."""
    max_output_chars: int = 512
    chat: bool = False
    """Render the prompt with the model's own chat template when it has one."""
    system: str | None = None
    """A system message for the chat template (None: the template's default)."""
    exemplars: tuple[tuple[str, str], ...] = ()
    """Few-shot (question, solution) pairs, given as earlier chat turns."""
    code_stop: tuple[str, ...] = ()
    """tir: the stop strings that end a step which is inside an open code block."""
    output_every_step: bool = False
    """tir: every code step's printed output is appended (rstar: only the final code's)."""
    on_error: str = "end"
    """What a code step that fails does: 'end' its branch, or 'show' the error as its output
    and go on (the failed code is then not run again under later steps)."""
    check_answer: bool = True
    """A boxed answer that contradicts the last code's printed output ends its branch as
    invalid (`SearchConfig.check_answer`, when set, overrides this for one search)."""
    error_template: str = "{error}"
    code_opener: str = ""
    """tir: the opening of a code block. With `SearchConfig.code_first` the runtime writes it at
    the start of every solution's first step (the model does not generate it), so the model
    computes in code before it reasons in words."""

    def __post_init__(self) -> None:
        if self.on_error not in ("end", "show"):
            raise InputError(f"on_error must be 'end' or 'show', got {self.on_error!r}")

    def prompt(
        self,
        question: str,
        chat: Callable[[Sequence[dict[str, str]]], str | None] | None = None,
    ) -> str:
        """The text before the first step, for `question`."""
        if self.chat and chat is not None:
            messages = [{"role": "system", "content": self.system}] if self.system else []
            for q, a in self.exemplars:
                messages.append({"role": "user", "content": self.user_template.format(question=q)})
                messages.append({"role": "assistant", "content": a})
            messages.append(
                {"role": "user", "content": self.user_template.format(question=question)}
            )
            rendered = chat(messages)
            if rendered is not None:
                return rendered + self.solution_prefix
        shots = "".join(
            self.prompt_template.format(question=q) + a + "\n\n" for q, a in self.exemplars
        )
        return shots + self.prompt_template.format(question=question) + self.solution_prefix

    def parse(self, text: str, finish: str, stop: str | None) -> ParsedStep:
        """Interpret one generated candidate (text includes its stop string, if any)."""
        if self.name == "rstar":
            return _parse_rstar(self, text, finish, stop)
        if self.name == "tir":
            return _parse_tir(self, text, finish)
        return _parse_plain(self, text, finish)

    def continue_stop(self, text: str, finish: str) -> tuple[str, ...] | None:
        """tir: a candidate that stopped inside an open code block is not a whole step yet;
        the stop strings to decode on with (None: the candidate is complete)."""
        if finish == "stop" and self.code_stop and _open_block(text):
            return self.code_stop
        return None

    def answer_step(self, answer: str) -> str:
        """rstar: the final answer step, as the reference solutions write it."""
        return f"{Marker.ANSWER}The answer is \\boxed{{{answer}}}{Marker.END_ANSWER}"

    def render_error(self, error: str) -> str:
        """tir (on_error='show'): a failed step's error, shown as its output."""
        return self.render_output(self.error_template.format(error=error))

    def render_output(self, stdout: str) -> str:
        out = stdout.strip()
        if len(out) > self.max_output_chars:
            out = out[: self.max_output_chars] + "..."
        return self.output_template.format(output=out)


def _strip_markers(text: str) -> str:
    for m in (Marker.CODE, Marker.END_STEP, Marker.END_CODE):
        text = text.replace(m, "")
    return text.strip("\n")


def _parse_rstar(fmt: StepFormat, text: str, finish: str, stop: str | None) -> ParsedStep:
    step = text + fmt.step_suffix
    if stop == Marker.END_ANSWER or Marker.ANSWER in text:
        ans = extract_boxed(text)
        if ans is None:
            return ParsedStep("invalid", step)
        return ParsedStep("answer", step, answer=ans)
    if stop == Marker.END_CODE:
        return ParsedStep("final", step, code=_strip_markers(text))
    if stop == Marker.END_STEP:
        return ParsedStep("code", step, code=_strip_markers(text))
    # Ended without a marker: a bare boxed answer is still an answer, anything else is cut off.
    ans = extract_boxed(text)
    if ans is not None:
        return ParsedStep("answer", step, answer=ans)
    return ParsedStep("invalid", step)


def _parse_plain(fmt: StepFormat, text: str, finish: str) -> ParsedStep:
    ans = extract_boxed(text)
    if ans is not None:
        return ParsedStep("answer", text, answer=ans)
    if finish == "stop":
        # An empty step says nothing and gains nothing.
        return ParsedStep("text" if text.strip() else "invalid", text)
    if finish == "eos":
        # The model finished without \boxed{}: small chat models often do. Take the answer it
        # states ("the answer is X"), else its last number, as evaluation harnesses do.
        ans = extract_answer(text, last_number=True)
        if ans is not None:
            return ParsedStep("answer", text, answer=ans)
    return ParsedStep("invalid", text)


_FENCE = "```"
_CODE_BLOCK = re.compile(r"```[ \t]*(python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _open_block(text: str) -> bool:
    """Whether `text` ends inside a fenced block (an odd number of fences)."""
    return text.count(_FENCE) % 2 == 1


def _parse_tir(fmt: StepFormat, text: str, finish: str) -> ParsedStep:
    if _open_block(text):
        # Cut inside a code block (token limit, or the model ended mid-code): nothing to run.
        return ParsedStep("invalid", text)
    blocks = [
        m.group(2)
        for m in _CODE_BLOCK.finditer(text)
        if m.group(1) or not m.group(2).lstrip().startswith(("output", "text"))
    ]
    if blocks:
        # A step ends at its block's closing fence, so there is one; the runtime runs it and
        # appends its output, and the model goes on after that.
        return ParsedStep("code", text, code="\n".join(b.strip("\n") for b in blocks))
    return _parse_plain(fmt, text, finish)


RSTAR = StepFormat(
    name="rstar",
    stop=(Marker.END_STEP, Marker.END_CODE, Marker.END_ANSWER),
    step_suffix="\n",
    executes_code=True,
    special_tokens=Marker.ALL,
    prompt_template=(
        f"{Marker.USER}:\n{{question}}\n{Marker.ASSISTANT}: "
        "Let's think step by step and solve the problem with code."
    ),
    solution_prefix=f"\n{Marker.CODE}\n",
    output_template=f"{Marker.OUTPUT}{{output}}{Marker.END_OUTPUT}\n",
)

PLAIN = StepFormat(
    name="plain",
    stop=("\n\n",),
    step_suffix="",
    executes_code=False,
    prompt_template="Question: {question}\nAnswer: Let's think step by step.\n",
    chat=True,
    user_template=(
        "{question}\n\nSolve this step by step. Separate the steps with a blank line and put "
        "the final answer in \\boxed{{}}."
    ),
)

TIR_INSTRUCTION = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)
"""Qwen2.5-Math's tool-integrated-reasoning instruction, word for word."""
_TIR_INSTRUCTION_T = TIR_INSTRUCTION.replace("{}", "{{}}")  # as a str.format template

TIR_EXEMPLARS: tuple[tuple[str, str], ...] = (
    (
        "A shop sells pencils at 35 cents each. How many dollars do 24 pencils cost?",
        "24 pencils at 35 cents each cost 24 * 35 cents; there are 100 cents in a dollar.\n\n"
        "```python\ncost_cents = 24 * 35\nprint(cost_cents / 100)\n```\n"
        "```output\n8.4\n```\nThe pencils cost \\boxed{8.4} dollars.",
    ),
    (
        "What is the remainder when 7^100 is divided by 13?",
        "Python's three-argument pow computes the power modulo 13 exactly.\n\n"
        "```python\nprint(pow(7, 100, 13))\n```\n"
        "```output\n9\n```\nThe remainder is \\boxed{9}.",
    ),
)
"""Optional few-shot turns for `tir` (worked in the format, checked by running their code)."""

TIR = StepFormat(
    name="tir",
    stop=("\n\n", "```\n"),
    step_suffix="",
    executes_code=True,
    chat=True,
    prompt_template="Question: {question}\n" + _TIR_INSTRUCTION_T + "\nAnswer: ",
    user_template="{question}\n" + _TIR_INSTRUCTION_T,
    code_stop=("```\n",),
    output_every_step=True,
    output_template="```output\n{output}\n```\n",
    on_error="show",
    # A chat model often derives its answer from what the code printed: the fraction 309/817
    # from `(309, 817)`, "Sunday" from the remainder 2. On greedy tir paths the check fired 8
    # times (Qwen2.5-Coder-1.5B zero-shot: 3, 0.5B with exemplars: 5) and 5 of those boxed
    # answers were right: on one chain it can only turn an answer into none
    # (benchmarks/qwen2.5-coder-1.5b/report.md).
    check_answer=False,
    code_opener="```python\n",
)

FORMATS: dict[str, StepFormat] = {f.name: f for f in (RSTAR, PLAIN, TIR)}


def get_format(name: str) -> StepFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(
            f"unknown step format {name!r}; choose from {', '.join(FORMATS)}"
        ) from None


_STEP_NUM = re.compile(r"#\s*Step\s+(\d+)")


def rstar_solution(
    steps: Sequence[tuple[str, str]], final_code: str, output: str, answer: str
) -> str:
    """Write a complete rstar-format solution from parts: the text that follows `RSTAR.prompt()`
    (which already ends with the opening `<code>`), so prompt + solution is one whole document.

    `steps` are (reasoning, code) pairs; `final_code` prints the answer; `output` is what it
    printed. Used by the training data generator and tests so that nothing else hand-builds the
    format.
    """
    parts: list[str] = []
    for i, (reason, code) in enumerate(steps, 1):
        comment = "\n".join(
            f"# {line}" if j else f"# Step {i}: {line}"
            for j, line in enumerate(reason.splitlines() or [""])
        )
        parts.append(f"{comment}\n{code.strip()}\n{Marker.END_STEP}{RSTAR.step_suffix}")
    parts.append(
        f"# Now print the final answer\n{final_code.strip()}\n{Marker.END_CODE}{RSTAR.step_suffix}"
    )
    parts.append(RSTAR.render_output(output))
    parts.append(RSTAR.answer_step(answer))
    return "".join(parts)


def tir_solution(
    steps: Sequence[tuple[str, str]], final_code: str, output: str, answer: str
) -> str:
    """The same solution as `rstar_solution`, written in the `tir` format: the text that follows
    `TIR.prompt()`. One ```` ```python ```` block carries the steps (each step's reasoning as
    comments above its code) and the final print; the runtime's ```` ```output ```` follows it;
    then the boxed answer. As steps: the block is one step (it ends at its closing fence, is
    run, and gets its output appended), the answer sentence the next.

    One block rather than one block per step: a block that does not print shows an empty
    output, and a short solution is what a 135M model can learn to write (issue 14).
    """
    lines: list[str] = []
    for reason, code in steps:
        lines += [f"# {line}".rstrip() for line in reason.splitlines() or [""]]
        lines.append(code.strip())
    lines.append(final_code.strip())
    block = "\n".join(line for line in "\n".join(lines).splitlines() if line.strip())
    return (
        f"```python\n{block}\n```\n"
        + TIR.render_output(output)
        + f"The answer is \\boxed{{{answer}}}."
    )


_RSTAR_STEP = re.compile(
    rf"(.*?)(?:{re.escape(Marker.END_STEP)}|{re.escape(Marker.END_CODE)})\n?", re.DOTALL
)
_STEP_HEAD = re.compile(r"^# (?:Step \d+: )?")
_RSTAR_OUTPUT = re.compile(
    rf"{re.escape(Marker.OUTPUT)}(.*?){re.escape(Marker.END_OUTPUT)}", re.DOTALL
)


def rstar_parts(solution: str) -> tuple[list[tuple[str, str]], str, str, str]:
    """Read a solution written by `rstar_solution` back into its parts (steps, final code,
    output, answer), so it can be written in another format (`tir_solution`). Raises InputError
    for text that is not such a solution."""
    head, sep, tail = solution.partition(Marker.END_CODE)
    ans = extract_boxed(tail)
    out = _RSTAR_OUTPUT.search(tail)
    if not sep or ans is None or out is None:
        raise InputError("not a complete rstar solution (no final code, output or answer)")
    chunks = [m.group(1) for m in _RSTAR_STEP.finditer(head + Marker.END_CODE)]
    steps: list[tuple[str, str]] = []
    for chunk in chunks[:-1]:
        reason, code = [], []
        for line in chunk.strip("\n").splitlines():
            if line.startswith("#") and not code:
                reason.append(_STEP_HEAD.sub("", line, count=1))
            else:
                code.append(line)
        steps.append(("\n".join(reason), "\n".join(code)))
    final = "\n".join(
        line
        for line in chunks[-1].strip("\n").splitlines()
        if line != "# Now print the final answer"
    )
    return steps, final, out.group(1), ans


def solution_in(fmt: StepFormat | str, rstar_text: str) -> str:
    """A reference solution (as the generator stores it, in rstar) in step format `fmt`."""
    name = fmt if isinstance(fmt, str) else fmt.name
    if name == "rstar":
        return rstar_text
    if name == "tir":
        return tir_solution(*rstar_parts(rstar_text))
    raise InputError(f"reference solutions cannot be written in the {name!r} format")
