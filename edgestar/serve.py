"""`edgestar serve`: an OpenAI-compatible HTTP endpoint that answers with a search.

    pip install 'edgestar[serve]'
    edgestar serve                      # the shipped model on http://127.0.0.1:8080/v1

Routes: `POST /v1/chat/completions` (plain, or `stream: true` as server-sent events),
`GET /v1/models`, `GET /v1/models/{id}`, and `GET /health` (queue state, no key needed).

This module owns the server: its config, the routes, auth, body limit, error JSON and the
uvicorn run. What a request means and the response shapes are edgestar._serve_api; the queue
in front of the model is edgestar._serve_gate; one request's search and its event stream are
edgestar._serve_job. Streaming sends the chosen path's steps as the search settles them
(SearchEvent: greedy settles each step as it is decoded, beam the steps all its beams share,
MCTS and best-of-N the whole path when they stop), then the answer, then the stats.

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
import socket
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._serve_api import (
    ApiError,
    Defaults,
    completion_body,
    error_body,
    model_body,
    models_body,
    parse_chat_request,
)
from ._serve_gate import GateConfig, Refused, SolveGate
from ._serve_job import Job, retrieve, stream
from .solver import Solver
from .types import EdgestarError, InputError, one_line

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
    """The default served name: a registry name as given (`edgestar pull NAME`), a model file's
    stem, a folder's name, the bundle's name, or the shipped one's."""
    if model is not None:
        p = Path(model)
        if p.suffix == ".gguf":
            return p.stem
        return p.name if p.exists() else str(model)
    from .bundle import default_bundle_path, read_bundle

    path = bundle if bundle is not None else default_bundle_path()
    return read_bundle(path).name if path is not None else "edgestar"


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
    jobs: weakref.WeakSet[Job] = weakref.WeakSet()  # cancelled all at once when the server stops

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
        except RecursionError:
            raise ApiError(400, "the request body's JSON is nested too deeply") from None
        except json.JSONDecodeError as e:
            raise ApiError(
                400,
                f"the request body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
            ) from None

    async def chat(request: Request) -> Response:
        authorize(request)
        req = parse_chat_request(await read_json(request), cfg.model_id, defaults)
        job = Job(solver, req, asyncio.get_running_loop())
        jobs.add(job)
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
        done.add_done_callback(retrieve)  # a cancelled job's exception is expected, not lost
        if req.stream:
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(
                stream(job, done, cfg.keepalive), media_type="text/event-stream", headers=headers
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
    app.state.jobs = jobs
    return app


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or one readable error."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise EdgestarError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise EdgestarError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def run(cfg: ServeConfig, open_solver: Callable[[], Solver]) -> None:
    """Listen, load the model (`open_solver`), then serve it until interrupted (Ctrl-C)."""
    require_extra()
    import uvicorn

    if cfg.api_key is None and not cfg.loopback:
        print(
            f"edgestar: warning: listening on {cfg.host} without --api-key: anyone who can "
            "reach this port can run searches",
            file=sys.stderr,
        )
    sock = listen(cfg.host, cfg.port)  # a port in use fails here, before the model loads
    try:
        with open_solver() as solver:
            if solver.executor is not None:
                solver.executor.start()  # a machine without the sandbox's layers stops here
            app = make_app(solver, cfg)
            host, port = sock.getsockname()[:2]
            url = f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"
            b = solver.budget
            budget = ", ".join(
                f"{k}={getattr(b, k)}"
                for k in ("rollouts", "tokens", "seconds", "nodes")
                if getattr(b, k) is not None
            )
            print(
                f"edgestar: serving {cfg.model_id!r} at {url} (default search: "
                f"{solver.strategy}, {budget}; at most {cfg.max_seconds:g} s each, "
                f"{cfg.max_queue} waiting)",
                file=sys.stderr,
                flush=True,
            )
            config = uvicorn.Config(
                app, log_level=cfg.log_level, timeout_graceful_shutdown=5, lifespan="off"
            )
            server = uvicorn.Server(config)
            try:
                server.run(sockets=[sock])
            except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on
                pass
            finally:
                for job in list(app.state.jobs):
                    job.cancel()  # a search nobody waits for any more stops at its next step
                app.state.gate.close()
    finally:
        sock.close()


__all__ = [
    "EXTRA_HINT",
    "ServeConfig",
    "listen",
    "make_app",
    "model_id_for",
    "require_extra",
    "run",
]
