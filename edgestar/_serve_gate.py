"""The queue in front of one loaded model for `edgestar serve`: one search at a time.

llama.cpp contexts are not thread-safe, and a search holds its model for its whole run, so
every search of a model runs on that model's single worker thread. At most `max_queue`
requests wait for it; one more is refused at once (429). A request that waits longer than
`max_wait` seconds for its turn is refused (503). Both refusals carry a Retry-After estimate
(recent search time x searches ahead). The slot is freed only when the worker thread has
really finished, so a cancelled or failed request never lets two searches overlap.

A job cancels by raising `Cancelled` from inside the search (the Solver's event hook checks a
flag between expansions), so a client that goes away stops its search within one expansion.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .types import EdgestarError, InputError

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a job whose client went away."""


class Refused(EdgestarError):
    """The queue cannot take the request: HTTP status 429 (full) or 503 (waited too long)."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


@dataclass(frozen=True)
class GateConfig:
    max_queue: int = 4
    """Requests that may wait while one search runs."""
    max_wait: float = 60.0
    """Seconds a request may wait for its turn."""

    def __post_init__(self) -> None:
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int):
            raise InputError(f"max_queue must be a whole number, got {self.max_queue!r}")
        if self.max_queue < 0:
            raise InputError(f"max_queue must be >= 0, got {self.max_queue}")
        if not (math.isfinite(self.max_wait) and self.max_wait > 0):
            raise InputError(
                f"max_wait must be a positive number of seconds, got {self.max_wait!r}"
            )


class SolveGate:
    """One worker thread for one model, behind a bounded, time-limited wait."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self._slot = asyncio.Semaphore(1)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgestar-search")
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=8)
        self.waiting = 0
        self.running = False
        self.counts = {"answered": 0, "failed": 0, "cancelled": 0, "queue_full": 0, "waited": 0}

    def retry_after(self) -> int:
        """Seconds until a new request would likely get its turn (at least 1)."""
        with self._lock:
            per = sum(self._recent) / len(self._recent) if self._recent else 1.0
        return max(1, math.ceil(per * (self.waiting + 1)))

    async def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Wait for the model's turn (bounded), then start `fn` on its worker thread."""
        cfg = self.config
        if self.waiting >= cfg.max_queue and (self.running or self._slot.locked()):
            self.counts["queue_full"] += 1
            raise Refused(
                429,
                f"the queue is full ({cfg.max_queue} waiting for one search at a time); retry later",
                self.retry_after(),
            )
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slot.acquire(), cfg.max_wait)
        except asyncio.TimeoutError:
            self.counts["waited"] += 1
            raise Refused(
                503,
                f"waited {cfg.max_wait:g} s for the model without getting a turn; retry later",
                self.retry_after(),
            ) from None
        finally:
            self.waiting -= 1
        loop = asyncio.get_running_loop()
        self.running = True
        try:
            fut = self._pool.submit(self._timed, fn)
        except BaseException:
            self.running = False
            self._slot.release()
            raise

        def finished(f: Future[Any]) -> None:
            # RuntimeError: the server's loop is gone (shutdown), nothing left to free
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._done, f)

        fut.add_done_callback(finished)
        return fut

    def _timed(self, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            with self._lock:
                self._recent.append(time.perf_counter() - t0)

    def _done(self, fut: Future[Any]) -> None:
        self.running = False
        e = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or isinstance(e, Cancelled):
            key = "cancelled"
        else:
            key = "answered" if e is None else "failed"
        self.counts[key] += 1
        self._slot.release()

    def stats(self) -> dict[str, Any]:
        return {"running": self.running, "waiting": self.waiting, **self.counts}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
