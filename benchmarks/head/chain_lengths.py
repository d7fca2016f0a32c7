"""How long the chains of a head-training collection ran, and how often each length answered
right: the evidence for a chain token cap (SearchConfig.max_chain_tokens).

    python benchmarks/head/chain_lengths.py RUN_DIR [--edges 200,300,400,500,700,1000]

RUN_DIR is an `edgestar train head` output folder; its states-*.npz files carry, for every node
of every search, its parent, kind, generated tokens and (for answers) whether it was right.
A chain is a path from the root to a leaf; its length is the tokens generated along it.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def chains(run: Path) -> list[tuple[int, str, bool]]:
    """(tokens, leaf kind, right?) for every chain of every problem in the run."""
    out = []
    for f in sorted(run.glob("states-*.npz")):
        meta: list[dict[str, Any]] = json.loads(bytes(np.load(f)["meta"]).decode())
        by: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for n in meta:
            by[n["problem"]][n["id"]] = n
        for nodes in by.values():
            parents = {n["parent"] for n in nodes.values()}
            for n in nodes.values():
                if n["id"] in parents:
                    continue  # not a leaf
                tokens, cur = 0, n
                while cur is not None:
                    tokens += cur["tokens"]
                    cur = nodes.get(cur["parent"])
                out.append((tokens, n["kind"], bool(n.get("correct"))))
    return out


def main() -> None:
    args = sys.argv[1:]
    edges = [0, 200, 300, 400, 500, 700, 1000]
    if "--edges" in args:
        i = args.index("--edges")
        edges = [0] + [int(x) for x in args[i + 1].split(",")]
        del args[i : i + 2]
    if len(args) != 1 or not Path(args[0]).is_dir():
        sys.exit("usage: chain_lengths.py RUN_DIR [--edges 200,300,...]")
    rows = chains(Path(args[0]))
    if not rows:
        sys.exit(f"{args[0]}: no states-*.npz with chains")
    print("| chain tokens | chains | answered | right |")
    print("|---|---|---|---|")
    for lo, hi in zip(edges, [*edges[1:], None], strict=True):
        sel = [r for r in rows if r[0] >= lo and (hi is None or r[0] < hi)]
        span = f"{lo}-{hi - 1}" if hi is not None else f">= {lo}"
        answered = sum(1 for r in sel if r[1] == "answer")
        print(f"| {span} | {len(sel)} | {answered} | {sum(1 for r in sel if r[2])} |")
    print(f"| all | {len(rows)} | {sum(1 for r in rows if r[1] == 'answer')} | "
          f"{sum(1 for r in rows if r[2])} |")  # fmt: skip


if __name__ == "__main__":
    main()
