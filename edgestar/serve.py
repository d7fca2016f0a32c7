"""`edgestar serve`: an OpenAI-compatible HTTP endpoint that answers with a search.

    pip install 'edgestar[serve]'
    edgestar serve                      # the shipped model on http://127.0.0.1:8080/v1

Routes: `POST /v1/chat/completions` (plain, or `stream: true` as server-sent events),
`GET /v1/models`, `GET /v1/models/{id}`, and `GET /health` (queue state, no key needed).

Streaming sends, in order: a chunk with the assistant role; one chunk per step of the chosen
path as the search settles it (SearchEvent: greedy settles each step as it is decoded, beam
the steps all its beams share, MCTS and best-of-N the whole path when they stop); the answer;
a chunk with `finish_reason`, `usage` and the search's stats (`edgestar`); `data: [DONE]`.
With `edgestar.progress` set, chunks without choices also report the search's progress; SSE
comments keep an idle connection alive. A failure after the stream has started is sent as
`data: {"error": ...}`, which the openai client raises.

Safety: it listens on 127.0.0.1 unless told otherwise; `api_key` makes every /v1 route need
`Authorization: Bearer KEY` (401); bodies over `max_body` bytes are refused (413); bad JSON or
a bad field is one 400 with OpenAI's error JSON. One search runs at a time on the loaded model
(edgestar._serve_gate: a bounded queue, 429 when full, 503 after waiting too long, both with
Retry-After); a client that disconnects cancels its search at the next expansion.

The web stack (Starlette, uvicorn) is the optional `serve` extra, imported only here, inside
functions: `import edgestar` does not load it.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import ipaddress
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._serve_api import (
    ApiError,
    ChatRequest,
    Defaults,
    answer_text,
    chunk,
    completion_body,
    error_body,
    finish_reason,
    model_body,
    models_body,
    parse_chat_request,
    stats_body,
    step_delta,
    usage,
)
from ._serve_gate import Cancelled, GateConfig, Refused, SolveGate
from .solver import Solver
from .types import EdgestarError, InputError, SearchEvent, SolveResult, one_line

EXTRA_HINT = "edgestar serve needs its web server: pip install 'edgestar[serve]'"


@dataclass(frozen=True)
class ServeConfig:
    """How the server listens and how much it takes on."""

    model_id: str
    """The name clients pass as `model` (and /v1/models lists)."""
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    max_queue: int = 4
    max_wait: float = 60.0
    max_seconds: float = 120.0
    """No search runs longer (a request's own budget may be smaller)."""
    max_body: int = 1 << 20
    keepalive: float = 5.0
    """Seconds of silence on a stream before an SSE comment is sent."""
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not self.model_id or not isinstance(self.model_id, str):
            raise InputError("the served model needs a name")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise InputError(f"port must be a whole number, got {self.port!r}")
        if not 0 <= self.port <= 65535:
            raise InputError(f"port must be in 0..65535, got {self.port}")
        if self.api_key is not None and not self.api_key.strip():
            raise InputError("the API key is empty")
        if isinstance(self.max_body, bool) or not isinstance(self.max_body, int):
            raise InputError(f"max_body must be a whole number of bytes, got {self.max_body!r}")
        if self.max_body < 1024:
            raise InputError(f"max_body must be at least 1024 bytes, got {self.max_body}")
        for name in ("max_seconds", "keepalive"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < float("inf")):
                raise InputError(f"{name} must be a positive number of seconds, got {v!r}")
        GateConfig(self.max_queue, self.max_wait)  # validates both

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def require_extra() -> None:
    """Raise one readable line when the `serve` extra is not installed."""
    missing = []
    for name in ("starlette", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise EdgestarError(f"{EXTRA_HINT} (missing: {', '.join(missing)})")


def model_id_for(bundle: str | Path | None, model: str | Path | None) -> str:
    """The default served name: the model file's stem, the bundle's name, or the shipped one."""
    if model is not None:
        p = Path(model)
        return p.stem if p.suffix == ".gguf" else p.name
    from .bundle import default_bundle_path, read_bundle

    path = bundle if bundle is not None else default_bundle_path()
    return read_bundle(path).name if path is not None else "edgestar"


# ---------------------------------------------------------------------- one request's search
_END = object()


class _Job:
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


def _retrieve(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _stream(job: _Job, done: asyncio.Future[Any], cfg: ServeConfig) -> AsyncIterator[str]:
    req, fmt = job.req, job.solver.format.name
    done.add_done_callback(lambda _: job.events.put_nowait(_END))
    get: asyncio.Future[Any] | None = None
    try:
        yield _sse(chunk(req, {"role": "assistant", "content": ""}))
        while True:
            if get is None:
                get = asyncio.ensure_future(job.events.get())
            ready, _ = await asyncio.wait({get}, timeout=cfg.keepalive)
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


# ---------------------------------------------------------------------- the app
def make_app(solver: Solver, cfg: ServeConfig) -> Any:
    """The Starlette application serving `solver` under `cfg`."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    gate = SolveGate(GateConfig(cfg.max_queue, cfg.max_wait))
    defaults = Defaults(solver.strategy, solver.budget, solver.config, cfg.max_seconds)
    created = int(time.time())
    key = cfg.api_key.encode() if cfg.api_key else None

    def authorize(request: Request) -> None:
        if key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key):
            raise ApiError(
                401,
                "missing or wrong API key: send Authorization: Bearer KEY",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def read_json(request: Request) -> Any:
        too_big = ApiError(
            413,
            f"the request body is larger than this server's limit of {cfg.max_body} bytes",
            code="request_too_large",
        )
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ApiError(400, "bad Content-Length header")
            if int(length) > cfg.max_body:
                raise too_big
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > cfg.max_body:
                raise too_big
            parts.append(part)
        if not parts:
            raise ApiError(400, "the request body is empty; send a JSON object")
        try:
            return json.loads(b"".join(parts).decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "the request body is not valid UTF-8") from None
        except json.JSONDecodeError as e:
            raise ApiError(
                400,
                f"the request body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
            ) from None

    async def chat(request: Request) -> Response:
        authorize(request)
        req = parse_chat_request(await read_json(request), cfg.model_id, defaults)
        job = _Job(solver, req, asyncio.get_running_loop())
        try:
            fut = await gate.submit(job.run)
        except Refused as e:
            raise ApiError(
                e.status,
                str(e),
                type="rate_limit_error" if e.status == 429 else "server_error",
                code="queue_full" if e.status == 429 else "queue_timeout",
                headers={"Retry-After": str(e.retry_after)},
            ) from None
        done = asyncio.wrap_future(fut)
        done.add_done_callback(_retrieve)  # a cancelled job's exception is expected, not lost
        if req.stream:
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(
                _stream(job, done, cfg), media_type="text/event-stream", headers=headers
            )
        try:
            while not done.done():
                await asyncio.wait({done}, timeout=0.25)
                if not done.done() and await request.is_disconnected():
                    job.cancel()  # nobody will read the answer: stop at the next expansion
                    return Response(status_code=499)
        finally:
            if not done.done():
                job.cancel()
        try:
            result, prompt_tokens = done.result()
        except InputError as e:
            raise ApiError(400, str(e)) from None
        except Exception as e:  # noqa: BLE001 - one line to the client, not a traceback
            raise ApiError(500, one_line(e), type="server_error") from None
        fmt = solver.format.name
        return JSONResponse(completion_body(req, result, fmt, prompt_tokens, job.extra()))

    async def models(request: Request) -> Response:
        authorize(request)
        return JSONResponse(models_body(cfg.model_id, created))

    async def one_model(request: Request) -> Response:
        authorize(request)
        if request.path_params["model"] != cfg.model_id:
            raise ApiError(
                404, f"no model {request.path_params['model']!r} here", code="model_not_found"
            )
        return JSONResponse(model_body(cfg.model_id, created))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": cfg.model_id, "queue": gate.stats()})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(
            error_body(msg, "invalid_request_error"),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        return JSONResponse(error_body(one_line(exc), "server_error"), status_code=500)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model:path}", one_model, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    app.state.gate = gate
    return app


def run(cfg: ServeConfig, open_solver: Callable[[], Solver]) -> None:
    """Load the model (`open_solver`), then serve it until interrupted (Ctrl-C)."""
    require_extra()
    import uvicorn

    if cfg.api_key is None and not cfg.loopback:
        print(
            f"edgestar: warning: listening on {cfg.host} without --api-key: anyone who can "
            "reach this port can run searches",
            file=sys.stderr,
        )
    with open_solver() as solver:
        if solver.executor is not None:
            solver.executor.start()  # a machine without the sandbox's kernel layers stops here
        app = make_app(solver, cfg)
        b = solver.budget
        budget = ", ".join(
            f"{k}={getattr(b, k)}"
            for k in ("rollouts", "tokens", "seconds", "nodes")
            if getattr(b, k) is not None
        )
        print(
            f"edgestar: serving {cfg.model_id!r} at http://{cfg.host}:{cfg.port}/v1 "
            f"(default search: {solver.strategy}, {budget}; at most {cfg.max_seconds:g} s each, "
            f"{cfg.max_queue} waiting)",
            file=sys.stderr,
            flush=True,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=cfg.host,
                port=cfg.port,
                log_level=cfg.log_level,
                timeout_graceful_shutdown=5,
                lifespan="off",
            )
        )
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on
            if not server.started:
                raise
        finally:
            app.state.gate.close()
        if not server.started:
            raise EdgestarError(f"could not listen on {cfg.host}:{cfg.port} (see above)")


__all__ = ["EXTRA_HINT", "ServeConfig", "make_app", "model_id_for", "require_extra", "run"]
