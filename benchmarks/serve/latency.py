"""What `edgestar serve` adds to a search, and how it holds up under concurrent clients.

    python benchmarks/serve/latency.py [--n 20] [--threads 1]

1. The same questions (edgestar.train's synthetic problems, seed 0) solved in process by the
   library and asked of `edgestar serve` (the shipped model, started as a subprocess) through
   the openai client, one at a time: per request, client wall time against the server's own
   search time (`edgestar.stats.seconds`); the difference is what HTTP, JSON and the queue add.
2. 8 clients at once against the server's default limits (4 waiting, 60 s), with the openai
   client's default retries (it honours Retry-After): how many were answered, refused, and
   the total wall time. Then the same 8 with retries off.

Prints a JSON report. Run on an otherwise idle machine for clean figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _questions(n: int) -> list[str]:
    from edgestar.train.problems import load_source

    return [p.question for p in load_source("synthetic", n, 0)]


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import openai

    import edgestar

    qs = _questions(args.n)
    with edgestar.load(threads=args.threads) as solver:
        lib = []
        for q in qs:
            t0 = time.perf_counter()
            solver.solve(q, keep_tree=False)
            lib.append(time.perf_counter() - t0)

    port = _free_port()
    exe = Path(sys.executable).with_name("edgestar")
    cmd = [str(exe), "serve", "--threads", str(args.threads), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
        wall, search = [], []
        for q in qs:
            t0 = time.perf_counter()
            r = client.chat.completions.create(
                model="edgestar-tiny", messages=[{"role": "user", "content": q}]
            )
            wall.append(time.perf_counter() - t0)
            search.append(r.model_extra["edgestar"]["stats"]["seconds"])
        overhead = [w - s for w, s in zip(wall, search, strict=True)]

        def burst(retries: int) -> dict[str, Any]:
            outcomes: list[str] = []
            barrier = threading.Barrier(8)

            def one(i: int) -> None:
                c = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=retries)
                barrier.wait()
                try:
                    c.chat.completions.create(
                        model="edgestar-tiny",
                        messages=[{"role": "user", "content": qs[i % len(qs)]}],
                        extra_body={"edgestar": {"strategy": "best_of_n", "rollouts": 64}},
                    )
                    outcomes.append("answered")
                except openai.APIStatusError as e:
                    outcomes.append(str(e.status_code))
                except Exception as e:  # noqa: BLE001 - reported as it is
                    outcomes.append(type(e).__name__)

            t0 = time.perf_counter()
            ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return {
                "retries": retries,
                "outcomes": {k: outcomes.count(k) for k in sorted(set(outcomes))},
                "wall_s": round(time.perf_counter() - t0, 3),
            }

        bursts = [burst(2), burst(0)]
        with urllib.request.urlopen(base + "/health") as h:
            queue = json.loads(h.read())["queue"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    report = {
        "n": args.n,
        "threads": args.threads,
        "library_solve_median_s": _median(lib),
        "served_request_median_s": _median(wall),
        "served_search_median_s": _median(search),
        "http_overhead_median_s": _median(overhead),
        "http_overhead_max_s": round(max(overhead), 4),
        "bursts_of_8": bursts,
        "server_queue_counts": queue,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
