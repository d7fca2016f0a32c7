"""A/B of best-of-4 chain decoding on llama.cpp: streamed (each chain asks for its next step the
moment its last one ends, `LlamaCppPolicy.propose_stream`) against rounds of `propose` (every
chain waits for the longest step of the round), same code otherwise, alternating per problem.

    python benchmarks/qwen2.5-coder-0.5b/stream_ab.py [--items 8] [--threads 2]

Prints one line per (problem, mode): seconds, generated tokens, llama_decode calls, answer; then
per mode the median seconds, generated tokens per second and tokens per decode call. The two
modes' chains differ after the first step (batch shape changes the float path), so compare the
rates, not single problems. Output of one run: search-streamed/stream_ab.txt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fixtures import fixture_path  # noqa: E402

import edgestar  # noqa: E402


class Rounds:
    """The policy without propose_stream: chains advance in rounds of propose."""

    def __init__(self, policy) -> None:  # type: ignore[no-untyped-def]
        self.p, self.name = policy, policy.name

    def propose(self, requests):  # type: ignore[no-untyped-def]
        return self.p.propose(requests)

    def chat_prompt(self, messages):  # type: ignore[no-untyped-def]
        return self.p.chat_prompt(messages)

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    ap.add_argument("--items", type=int, default=8, help="every 4th suite problem, this many")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    m = edgestar.load(model=fixture_path(a.fixture), threads=a.threads)
    pol = m.policy
    rounds = Rounds(pol)
    suite = HERE / "tir-vs-plain" / "suite.jsonl"
    items = [json.loads(line) for line in suite.open()][::4][: a.items]
    rows = []
    for it in items:
        for mode in ("stream", "rounds"):
            m.policy = pol if mode == "stream" else rounds
            c0 = pol._rt.ctx.decode_calls
            t = time.perf_counter()
            r = m.solve(it["question"])
            dt = time.perf_counter() - t
            calls = pol._rt.ctx.decode_calls - c0
            rows.append((it["id"], mode, round(dt, 1), r.stats.tokens_generated, calls, r.answer))
            print(*rows[-1], flush=True)
    for mode in ("stream", "rounds"):
        rs = [r for r in rows if r[1] == mode]
        print(
            mode,
            "median s",
            statistics.median(r[2] for r in rs),
            "tok/s",
            round(sum(r[3] for r in rs) / sum(r[2] for r in rs), 1),
            "tokens/decode",
            round(sum(r[3] for r in rs) / sum(r[4] for r in rs), 2),
        )


if __name__ == "__main__":
    main()
