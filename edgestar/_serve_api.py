"""The OpenAI chat-completions protocol for `edgestar serve`, without any web framework.

It owns: the `reasoning_effort` table (effort -> search budget, as data); `parse_chat_request`,
which turns a request body into a validated, frozen `ChatRequest` or raises one `ApiError`
(an HTTP status plus OpenAI's error JSON); and the response shapes (`chat.completion`,
`chat.completion.chunk`, `/v1/models`). `edgestar.serve` puts these behind Starlette.

What a request means here:
- The question is the last message, which must come from the user (text, or text parts).
  Earlier turns and system/developer messages are not given to the model: edgestar's step
  formats hold one problem, and a search starts from the question alone. The response names
  what was left out (`edgestar.ignored`), so a client can tell.
- The budget is, first match wins: budgets in the `edgestar` field, else `reasoning_effort`'s
  row of EFFORT, else the loaded bundle's default; a search never runs past the server's
  `max_seconds` (a larger `seconds` is refused).
- `temperature`, `top_p`, `max_tokens` and the other sampling fields are ignored: the search
  sets sampling (the `edgestar` field can). `n` must be 1; tools, logprobs and structured
  response formats are refused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from .formats import Marker
from .search import STRATEGIES
from .types import Budget, InputError, SearchConfig, SolveResult, StepView, check_question

EFFORT: dict[str, dict[str, Any]] = {
    "minimal": {"strategy": "greedy", "budget": {"rollouts": 1}},
    "low": {"budget": {"rollouts": 4}},
    "medium": {"budget": {"rollouts": 8}},
    "high": {"budget": {"rollouts": 32}},
}
"""`reasoning_effort` -> search. A row without a strategy keeps the loaded model's default
search (the bundle's own, greedy for edgestar-smol; for a model served with `--model`,
best-of-8 code-first chains in tir, greedy in plain, MCTS in rstar) with the row's budget."""

EDGESTAR_FIELDS: dict[str, type] = {
    "strategy": str,
    "rollouts": int,
    "tokens": int,
    "seconds": float,
    "nodes": int,
    "seed": int,
    "width": int,
    "n": int,
    "beam_width": int,
    "c_uct": float,
    "temperature": float,
    "top_p": float,
    "max_step_tokens": int,
    "max_depth": int,
    "select": str,
    "progress": bool,
    "content": str,
}
"""What the `edgestar` extra field may hold, and each value's type."""

BUDGET_FIELDS = ("rollouts", "tokens", "seconds", "nodes")
CONTENT_MODES = ("steps", "answer")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class ApiError(Exception):
    """A request the server refuses: HTTP status, one-line message, OpenAI error type/code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.code, self.param, self.headers = code, param, headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(
    message: str, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class Defaults:
    """What a request gets when it asks for nothing: the loaded model's own search settings."""

    strategy: str
    budget: Budget
    config: SearchConfig
    max_seconds: float

    def __post_init__(self) -> None:
        if not (self.max_seconds > 0):
            raise InputError(f"max_seconds must be positive, got {self.max_seconds!r}")


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request: one question and how to search for its answer."""

    model: str
    question: str
    strategy: str
    budget: Budget
    config: SearchConfig
    seed: int = 0
    stream: bool = False
    include_usage: bool = False
    progress: bool = False
    """Streaming: also send progress chunks (`choices: []`, `edgestar.progress`)."""
    content: str = "steps"
    """'steps': the chosen path's steps, then the answer; 'answer': the answer only."""
    effort: str | None = None
    ignored: tuple[str, ...] = ()
    created: int = field(default_factory=lambda: int(time.time()))
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex[:24])


def _typed(value: Any, want: type, param: str) -> Any:
    if want is bool:
        ok = isinstance(value, bool)
    elif want is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, want) and not isinstance(value, bool)
    if not ok:
        name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        raise _bad(f"{param} must be {name[want]}, got {value!r}", param)
    return value


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, p in enumerate(content):
            if not isinstance(p, dict) or p.get("type") != "text" or "text" not in p:
                raise _bad(f"{param}[{i}]: only text content parts are supported", param)
            parts.append(_typed(p["text"], str, f"{param}[{i}].text"))
        return "\n".join(parts)
    raise _bad(f"{param} must be a string or a list of text parts", param)


def _question(messages: Any) -> tuple[str, tuple[str, ...]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise _bad(f"messages[{i}] must be an object with a role in {', '.join(ROLES)}")
    last = messages[-1]
    if last["role"] != "user":
        raise _bad(
            f"the last message must come from the user (got {last['role']}): it is the question",
            "messages",
        )
    try:
        question = check_question(_text(last.get("content"), f"messages[{len(messages) - 1}]"))
    except InputError as e:
        raise _bad(str(e), "messages") from None
    ignored = []
    system = sum(1 for m in messages[:-1] if m["role"] in ("system", "developer"))
    turns = len(messages) - 1 - system
    if system:
        ignored.append(f"{system} system message{'s' * (system > 1)}")
    if turns:
        ignored.append(f"{turns} earlier turn{'s' * (turns > 1)}")
    return question, tuple(ignored)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n must be 1: one search gives one answer", "n")
    for key in ("tools", "functions"):
        if body.get(key):
            raise _bad(f"{key} are not supported: edgestar answers with a search", key)
    if body.get("logprobs"):
        raise _bad("logprobs are not supported", "logprobs")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise _bad("only the text response_format is supported", "response_format")


def parse_chat_request(body: Any, model_id: str, defaults: Defaults) -> ChatRequest:
    """Validate a `/v1/chat/completions` body; raise ApiError (400, 404) on the first problem."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model is required (GET /v1/models lists it)", "model")
    if model != model_id:
        raise ApiError(
            404,
            f"model {model!r} is not served here; this server serves {model_id!r}",
            param="model",
            code="model_not_found",
        )
    question, ignored = _question(body.get("messages"))
    _refuse_unsupported(body)
    stream = _typed(False if body.get("stream") is None else body["stream"], bool, "stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise _bad("stream_options must be an object", "stream_options")
    include_usage = _typed(opts.get("include_usage", False), bool, "stream_options.include_usage")

    effort = body.get("reasoning_effort")
    if effort is not None and effort not in EFFORT:
        raise _bad(
            f"reasoning_effort must be one of {', '.join(EFFORT)}, got {effort!r}",
            "reasoning_effort",
        )
    ext = body.get("edgestar") or {}
    if not isinstance(ext, dict):
        raise _bad("edgestar must be an object", "edgestar")
    for key, value in ext.items():
        if key not in EDGESTAR_FIELDS:
            raise _bad(
                f"unknown edgestar field {key!r}; known: {', '.join(EDGESTAR_FIELDS)}",
                f"edgestar.{key}",
            )
        _typed(value, EDGESTAR_FIELDS[key], f"edgestar.{key}")

    row = EFFORT[effort] if effort is not None else {}
    strategy = ext.get("strategy", row.get("strategy", defaults.strategy))
    if strategy not in STRATEGIES:
        raise _bad(
            f"edgestar.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}",
            "edgestar.strategy",
        )
    content = ext.get("content", "steps")
    if content not in CONTENT_MODES:
        raise _bad(
            f"edgestar.content must be one of {', '.join(CONTENT_MODES)}", "edgestar.content"
        )
    seed = ext.get("seed", body.get("seed"))
    seed = 0 if seed is None else _typed(seed, int, "seed")

    given = {k: ext[k] for k in BUDGET_FIELDS if k in ext}
    cap = defaults.max_seconds
    if given.get("seconds", 0) > cap:
        raise _bad(
            f"edgestar.seconds is {given['seconds']}; this server allows at most {cap:g} "
            "seconds per search",
            "edgestar.seconds",
        )
    try:
        if given:
            budget = Budget(**{"rollouts": None, **given})
        elif row:
            budget = Budget(**{"rollouts": None, **row["budget"]})
        else:
            budget = defaults.budget
        if budget.seconds is None or budget.seconds > cap:
            budget = replace(budget, seconds=cap)
    except InputError as e:
        raise _bad(str(e), "edgestar") from None
    over = {k: v for k, v in ext.items() if k in SearchConfig.__dataclass_fields__}
    try:
        config = replace(defaults.config, **over)
    except InputError as e:
        raise _bad(str(e), "edgestar") from None
    return ChatRequest(
        model=model,
        question=question,
        strategy=strategy,
        budget=budget,
        config=config,
        seed=seed,
        stream=stream,
        include_usage=include_usage,
        progress=ext.get("progress", False),
        content=content,
        effort=effort,
        ignored=ignored,
    )


# ---------------------------------------------------------------------- responses
def render_step(step: StepView, step_format: str) -> str:
    """A step as chat text: rstar's code and output as Markdown code blocks, its markers
    dropped; tir and plain steps are Markdown already."""
    if step_format != "rstar":
        return step.text.strip()
    if step.code is None:
        text = step.text
        for m in Marker.ALL:
            text = text.replace(m, "")
        return text.strip()
    out = f"```python\n{step.code.strip()}\n```"
    if step.output:
        shown = step.output.replace(Marker.OUTPUT, "").replace(Marker.END_OUTPUT, "").strip()
        out += f"\n```output\n{shown}\n```"
    if step.error:
        out += f"\n(error: {step.error})"
    return out


def step_delta(step: StepView, step_format: str) -> str:
    return render_step(step, step_format) + "\n\n"


def answer_text(result: SolveResult) -> str:
    if result.answer is not None:
        return f"Answer: {result.answer}"
    return (
        f"(no answer found: the search stopped by {result.stopped_by} before any path ended in one)"
    )


def content_text(req: ChatRequest, result: SolveResult, step_format: str) -> str:
    """The message content; equal to the streamed deltas joined."""
    steps = (
        "" if req.content == "answer" else "".join(step_delta(s, step_format) for s in result.steps)
    )
    return steps + answer_text(result)


def finish_reason(result: SolveResult) -> str:
    return "length" if result.answer is None and result.stopped_by != "done" else "stop"


def usage(result: SolveResult, prompt_tokens: int) -> dict[str, int]:
    """completion_tokens: every token the search generated, on every branch it tried."""
    gen = result.stats.tokens_generated
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": gen,
        "total_tokens": prompt_tokens + gen,
    }


def stats_body(req: ChatRequest, result: SolveResult, extra: dict[str, Any]) -> dict[str, Any]:
    """The `edgestar` field of a response: what the search did."""
    b = req.budget
    return {
        "answer": result.answer,
        "score": result.score,
        "strategy": result.strategy,
        "stopped_by": result.stopped_by,
        "seed": result.seed,
        "reasoning_effort": req.effort,
        "budget": {k: getattr(b, k) for k in BUDGET_FIELDS if getattr(b, k) is not None},
        "stats": {**result.stats.__dict__, **extra},
        "candidates": [list(c) for c in result.candidates],
        "steps": [s.__dict__.copy() for s in result.steps],
        "ignored": list(req.ignored),
    }


def completion_body(
    req: ChatRequest,
    result: SolveResult,
    step_format: str,
    prompt_tokens: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": req.id,
        "object": "chat.completion",
        "created": req.created,
        "model": req.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content_text(req, result, step_format),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage(result, prompt_tokens),
        "edgestar": stats_body(req, result, extra),
    }


def chunk(
    req: ChatRequest,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; delta None gives a chunk without choices (usage, progress)."""
    body: dict[str, Any] = {
        "id": req.id,
        "object": "chat.completion.chunk",
        "created": req.created,
        "model": req.model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    body.update(extra)
    return body


def models_body(model_id: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(model_id, created)]}


def model_body(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "edgestar"}
