"""One chat request's search for `edgestar serve`: the job that runs on the model's worker
thread, and the server-sent-event stream that reports it.

The job runs `Solver.solve` with an event hook: the hook raises `Cancelled` once the request is
cancelled (its client went away), which stops the search between expansions, and, for a
streaming request, hands settled steps (and progress, when asked) to the event loop. The stream
turns those into `chat.completion.chunk`s, in this order: the assistant role; one chunk per
settled step; `Answer: ...`; a chunk with `finish_reason`, usage and stats; `data: [DONE]`. An
SSE comment is sent after `keepalive` seconds of silence; a failure after the stream has
started is sent as `data: {"error": ...}`, which the openai client raises.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from ._serve_api import (
    ChatRequest,
    answer_text,
    chunk,
    error_body,
    finish_reason,
    stats_body,
    step_delta,
    usage,
)
from ._serve_gate import Cancelled
from .solver import Solver
from .types import SearchEvent, SolveResult, one_line

_END = object()


class Job:
    """One request's search, run on the model's worker thread."""

    def __init__(self, solver: Solver, req: ChatRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.solver, self.req, self.loop = solver, req, loop
        self.cancelled = threading.Event()
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.created = time.perf_counter()
        self.queue_seconds = 0.0

    def cancel(self) -> None:
        self.cancelled.set()

    def run(self) -> tuple[SolveResult, int]:
        self.queue_seconds = time.perf_counter() - self.created
        if self.cancelled.is_set():
            raise Cancelled("the client went away before its turn")
        s, r = self.solver, self.req
        result = s.solve(
            r.question,
            strategy=r.strategy,
            budget=r.budget,
            seed=r.seed,
            config=r.config,
            keep_tree=False,
            on_event=self._hear,
        )
        return result, _prompt_tokens(s, r.question)

    def _hear(self, e: SearchEvent) -> None:
        if self.cancelled.is_set():
            raise Cancelled("the client went away")
        if self.req.stream and (e.kind == "step" or self.req.progress):
            self.loop.call_soon_threadsafe(self.events.put_nowait, e)

    def extra(self) -> dict[str, Any]:
        return {
            "queue_seconds": round(self.queue_seconds, 6),
            "reward": getattr(self.solver.reward, "name", None),
        }


def _prompt_tokens(solver: Solver, question: str) -> int:
    """The question's prompt in tokens, where the backend can count them (else 0)."""
    tokenize = getattr(solver.policy, "tokenize", None)
    if tokenize is None:
        return 0
    return len(tokenize(solver.format.prompt(question, solver.policy.chat_prompt)))


def retrieve(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def stream(job: Job, done: asyncio.Future[Any], keepalive: float) -> AsyncIterator[str]:
    req, fmt = job.req, job.solver.format.name
    done.add_done_callback(lambda _: job.events.put_nowait(_END))
    get: asyncio.Future[Any] | None = None
    try:
        yield _sse(chunk(req, {"role": "assistant", "content": ""}))
        while True:
            if get is None:
                get = asyncio.ensure_future(job.events.get())
            ready, _ = await asyncio.wait({get}, timeout=keepalive)
            if not ready:
                yield ": keep-alive\n\n"
                continue
            item, get = get.result(), None
            if item is _END:
                break
            if item.kind == "step" and req.content == "steps":
                step = {**item.step.__dict__, "index": item.index}
                yield _sse(
                    chunk(req, {"content": step_delta(item.step, fmt)}, edgestar={"step": step})
                )
            elif item.kind == "progress":
                p = {k: getattr(item, k) for k in ("rollouts", "tokens", "nodes", "seconds")}
                yield _sse(chunk(req, None, edgestar={"progress": p}))
        try:
            result, prompt_tokens = done.result()
        except Exception as e:  # noqa: BLE001 - reported to the client, in the stream
            yield _sse(error_body(one_line(e), "server_error"))
            yield "data: [DONE]\n\n"
            return
        u = usage(result, prompt_tokens)
        yield _sse(chunk(req, {"content": answer_text(result)}))
        stats = stats_body(req, result, job.extra())
        last = {"edgestar": stats} if req.include_usage else {"usage": u, "edgestar": stats}
        yield _sse(chunk(req, {}, finish_reason(result), **last))
        if req.include_usage:
            yield _sse(chunk(req, None, usage=u))
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()  # a client that left mid-stream stops the search (no-op once it is done)
        if get is not None:
            get.cancel()
