"""Figures for off-the-shelf PRMs (edgestar/prm.py) on the tiny random stand-ins of tests/test_prm.py:
parity of P(good) with the torch reference of each family's published rule (F32, F16 and Q8_0 exports),
and what scoring costs inside a search on the shipped tiny policy (tokens the PRM context decoded
against the tokens of its inputs, i.e. what one uncached decode per scored path would cost).

    .venv/bin/python benchmarks/prm/measure.py            # one thread; prints JSON
    .venv/bin/python benchmarks/prm/measure.py --ppm rlhflow:MODEL.gguf   # a real-size PRM:
        # the shipped tiny policy's default search (mcts) on two questions, timing the PRM;
        # add --sequential to score a call's paths one at a time (before eval_many batching)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from test_prm import SAMPLES, SMALL, TINY, build_prm_checkpoint  # noqa: E402

import edgestar  # noqa: E402
from edgestar.prm import PRM_FAMILIES, open_prm  # noqa: E402
from edgestar.quantize.deploy import quantize_one  # noqa: E402
from edgestar.quantize.prm_reference import reference_step_probabilities  # noqa: E402
from edgestar.types import Budget  # noqa: E402

torch.set_num_threads(1)


def main() -> None:
    out: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for fam in PRM_FAMILIES:
            ck = build_prm_checkpoint(root, fam)
            named = None if PRM_FAMILIES[fam].head else fam
            ref = [p for q, s in SAMPLES for p in reference_step_probabilities(ck, fam, q, s)]
            row: dict[str, object] = {}
            for quant, kv_f32 in (("f32", True), ("f16", False), ("q8_0", False)):
                g = root / f"{fam}.{quant}.gguf"
                quantize_one(ck, "gguf", quant, g, verify=False, prm_family=named)
                prm = open_prm(g, threads=1, n_ctx=1024, kv_f32=kv_f32)
                assert prm is not None
                got = [p for q, s in SAMPLES for p in prm.step_probabilities(q, s)]
                prm.close()
                key = f"max_abs_dP_{quant}_weights_{'f32' if kv_f32 else 'f16'}_kv"
                row[key] = float(np.abs(np.array(got) - np.array(ref)).max())
            g = root / f"{fam}.f32.gguf"
            spec = str(g) if PRM_FAMILIES[fam].head else f"{fam}:{g}"
            with edgestar.load(model=TINY, ppm=spec, threads=1, n_ctx=2048) as s:
                ctx = s.reward.engine._rt.ctx
                t0 = time.perf_counter()
                r = s.solve(
                    "What is 12 + 30?", strategy="beam", budget=Budget(rollouts=4), config=SMALL
                )
                wall = time.perf_counter() - t0
                row.update(
                    scored_paths=sum(1 for n in r.tree["nodes"] if n["prior"] is not None),
                    prm_input_tokens=s.reward.tokens_evaluated,
                    prm_tokens_decoded=ctx.rows_decoded,
                    prm_decode_s=round(ctx.decode_seconds, 4),
                    solve_s=round(wall, 3),
                )
            out[fam] = row
    print(json.dumps(out, indent=1))


def real(spec: str) -> None:
    """Where a solve's time goes with a real-size PRM beside the tiny policy."""
    rows = []
    with edgestar.load(model=TINY, ppm=spec, threads=1) as s:
        ctx = s.reward.engine._rt.ctx
        for q in ("What is 48 + 37?", "Solve 3x + 7 = 22."):
            d0, r0, e0 = ctx.decode_seconds, ctx.rows_decoded, s.reward.tokens_evaluated
            c0 = ctx.decode_calls
            t0 = time.perf_counter()
            r = s.solve(q)
            rows.append(
                {
                    "question": q,
                    "solve_s": round(time.perf_counter() - t0, 2),
                    "prm_decode_s": round(ctx.decode_seconds - d0, 2),
                    "prm_decode_calls": ctx.decode_calls - c0,
                    "scored_paths": sum(1 for n in r.tree["nodes"] if n["prior"] is not None),
                    "prm_tokens_decoded": ctx.rows_decoded - r0,
                    "prm_input_tokens": s.reward.tokens_evaluated - e0,
                    "policy_tokens": r.stats.tokens_generated,
                }
            )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--ppm":
        if sys.argv[3:] == ["--sequential"]:
            from edgestar.prm import PrmReward

            def one_at_a_time(self, question, paths):  # type: ignore[no-untyped-def]
                return [self.probability(question, p) for p in paths]

            PrmReward.probabilities = one_at_a_time  # type: ignore[method-assign]
        real(sys.argv[2])
    else:
        main()
