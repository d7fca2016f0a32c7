"""What recording the policy's hidden state (for a reward head) costs a search: the same seeded
search twice on one GGUF model, hidden-state output off and on, trees compared.

    python benchmarks/head/overhead.py MODEL.gguf [--problems 2] [--rollouts 2] [--width 3]

Hidden output does not change the logits, so both runs build the same tree (checked); the
difference in wall and llama_decode time is the recording's cost. One thread by default.
"""

from __future__ import annotations

import argparse
import json
import time

from edgestar.backends.llamacpp import LlamaCppPolicy
from edgestar.formats import get_format
from edgestar.search import run_search
from edgestar.train.problems import load_source
from edgestar.types import Budget, SearchConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--problems", type=int, default=2)
    ap.add_argument("--source", default="synthetic:integer_arithmetic,linear_equation")
    ap.add_argument("--format", default="plain")
    ap.add_argument("--rollouts", type=int, default=2)
    ap.add_argument("--width", type=int, default=3)
    ap.add_argument("--max-step-tokens", type=int, default=160)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    probs = load_source(a.source, a.problems, seed=123)
    cfg = SearchConfig(width=a.width, max_step_tokens=a.max_step_tokens, max_depth=10)
    out = {}
    texts = {}
    for hidden in (False, True):
        pol = LlamaCppPolicy(a.model, n_ctx=4096, n_threads=a.threads)
        if hidden:
            pol.enable_hidden()
        t0 = time.perf_counter()
        tok, texts[hidden] = 0, []
        for p in probs:
            r, tree = run_search(p.question, policy=pol, fmt=get_format(a.format),
                                 strategy="mcts", budget=Budget(rollouts=a.rollouts),
                                 config=cfg, seed=7)  # fmt: skip
            tok += r.stats.tokens_generated
            texts[hidden].append([n.text for n in tree.nodes])
            if hidden:
                recorded = sum(n.hidden is not None for n in tree.nodes[1:])
                out["nodes_with_state"] = out.get("nodes_with_state", 0) + recorded
                out["nodes"] = out.get("nodes", 0) + len(tree.nodes) - 1
        out[f"hidden_{hidden}"] = {
            "wall_s": round(time.perf_counter() - t0, 2),
            "decode_s": round(pol.decode_seconds, 2),
            "tokens": tok,
        }
        pol.close()
    out["same_trees"] = texts[False] == texts[True]
    off, on = out["hidden_False"], out["hidden_True"]
    out["overhead_wall"] = round(on["wall_s"] / off["wall_s"] - 1, 4)
    out["overhead_decode"] = round(on["decode_s"] / off["decode_s"] - 1, 4)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
