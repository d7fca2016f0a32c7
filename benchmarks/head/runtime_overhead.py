"""What a reward head costs the default search at run time: the seconds spent scoring (the
head's dot products, plus a cached decode for each step that carried no recorded hidden state)
as a share of each solve's wall time.

    python benchmarks/head/runtime_overhead.py MODEL.gguf HEAD.npz SUITE.jsonl [-n 8] [--threads 2]

Loads the model as `edgestar solve --model MODEL.gguf --ppm HEAD.npz` does (its default search:
best-of-4 in tir, majority vote, ties to the head), wraps the head's two scoring entry points
with timers and solves the first n problems of the suite. Recording the hidden state during
decoding is the other part of the cost (0.17% of wall time, benchmarks/head/overhead.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import edgestar
from edgestar.train.problems import load_source


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("head")
    ap.add_argument("suite")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    spent = {"s": 0.0, "calls": 0}

    def timed(fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args)
            finally:
                spent["s"] += time.perf_counter() - t
                spent["calls"] += 1

        return wrapper

    with edgestar.load(model=a.model, ppm=a.head, threads=a.threads, device="cpu") as solver:
        reward = solver.reward
        reward.score = timed(reward.score)  # type: ignore[union-attr,method-assign]
        reward.score_hidden = timed(reward.score_hidden)  # type: ignore[union-attr,method-assign]
        shares, walls = [], []
        for p in load_source(a.suite)[: a.n]:
            before = dict(spent)
            t = time.perf_counter()
            r = solver.solve(p.question)
            wall = time.perf_counter() - t
            head_s = spent["s"] - before["s"]
            shares.append(head_s / wall)
            walls.append(wall)
            print(f"{p.id}: {wall:.1f} s, head {head_s * 1000:.0f} ms "
                  f"({head_s / wall:.2%}), {spent['calls'] - before['calls']} calls, "
                  f"{r.stats.reward_calls} reward calls, answer {r.answer}")  # fmt: skip
        print(f"\n{len(walls)} problems, median wall {statistics.median(walls):.1f} s; head share "
              f"of wall time: median {statistics.median(shares):.2%}, max {max(shares):.2%}; "
              f"prefixes decoded for want of a recorded state: {reward.hidden_calls}")  # type: ignore[union-attr]  # fmt: skip


if __name__ == "__main__":
    main()
