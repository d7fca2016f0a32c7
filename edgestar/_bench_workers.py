"""The worker side of `edgestar bench`: each variant runs in its own process
(`python -m edgestar._bench_workers --worker SPEC.json OUT.json`) so its peak RSS is its own:
raw llama.cpp decode, and one seeded MCTS run per variant (naive `Llama`, tree cache one
candidate at a time, tree cache batched), with the naive baseline `NaiveLlamaPolicy`."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .types import Budget, SearchConfig


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _raw_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """llama-bench style decode: a prompt of the benchmark's length, then one token per sequence
    per decode; 1 sequence, then w sequences forked from the prompt."""
    from .backends.llamacpp import LlamaCppPolicy

    ws = list(spec["widths"])
    n_gen = 64
    with LlamaCppPolicy(
        spec["model"], n_ctx=spec["n_ctx"], n_threads=spec["threads"], n_seq_max=max(ws) + 1
    ) as pol:
        model, ctx, batch = pol._rt.parts()
        prompt = model.tokenize(spec["questions"][0])
        batch.clear()
        batch.add_run(prompt, 0, (0,), True)
        ctx.decode(batch)
        tok = int(ctx.logits(batch.n - 1).argmax())
        out: dict[str, float] = {}
        for w in [1, *ws]:
            for s in range(1, w + 1):
                ctx.seq_rm(s)
                ctx.seq_cp(0, s, -1, -1)
            t = time.perf_counter()
            for j in range(n_gen):
                batch.clear()
                for s in range(1, w + 1):
                    batch.add(tok, len(prompt) + j, (s,), True)
                ctx.decode(batch)
            out[str(w)] = w * n_gen / (time.perf_counter() - t)
            for s in range(1, w + 1):
                ctx.seq_rm(s)
    single = out.pop("1")
    if 1 in ws:
        out["1"] = single
    return {"single_tok_s": single, "widths": out, "rss_mb": _rss_mb()}


class NaiveLlamaPolicy:
    """The path a user writes with llama-cpp-python's high-level `Llama` class: one sequence;
    for every candidate `reset()`, `eval()` of the whole prompt, then one `eval([token])` per
    generated token; sampling by the shared sampler (`sample_rows` = `sample_token`) from the
    last logits; stop strings as `StopMatcher`. Only for the benchmark.

    AMX: `Llama` has no option for llama.cpp's extra buffer types, which crash quantized models
    on AMX CPUs (see `_llama_raw.cpu_has_amx`), so `llama_model_default_params` is wrapped
    while the model loads to turn them off there, as LlamaCppPolicy does."""

    def __init__(self, path: str, n_ctx: int, threads: int) -> None:
        import llama_cpp
        import llama_cpp.llama_cpp as raw

        from .backends._llama_raw import cpu_has_amx, llama_lib

        llama_lib()  # silences llama.cpp's log
        orig = raw.llama_model_default_params
        amx = cpu_has_amx()

        def params() -> Any:
            p = orig()
            p.use_extra_bufts = not amx
            return p

        raw.llama_model_default_params = params
        try:
            self.llm = llama_cpp.Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_batch=512,
                n_ubatch=512,
                n_threads=threads,
                n_threads_batch=threads,
                flash_attn=False,
                verbose=False,
            )
        finally:
            raw.llama_model_default_params = orig
        self.raw = raw
        self.name = f"naive-llama:{Path(path).name}"
        m = self.llm._model
        self.vocab = m.vocab
        self.add_bos, self.bos = bool(m.add_bos_token()), int(m.token_bos())
        self.n_vocab = int(raw.llama_vocab_n_tokens(self.vocab))
        self.script: dict[tuple[str, int, int], list[int]] | None = None
        self.replay_stats = [0, 0]

    def tokenize(self, text: str) -> list[int]:
        ids = self.llm._model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if self.add_bos and self.bos >= 0 and (not ids or ids[0] != self.bos):
            ids.insert(0, self.bos)
        return ids

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str | None:
        from .backends.llamacpp import render_chat_template

        tpl = self.llm.metadata.get("tokenizer.chat_template")
        if not tpl:
            return None
        m = self.llm._model
        bos = m.detokenize([m.token_bos()], special=True).decode("utf-8", "replace")
        eos = m.detokenize([m.token_eos()], special=True).decode("utf-8", "replace")
        return render_chat_template(tpl, messages, bos_token=bos, eos_token=eos)

    def propose(self, requests: Sequence[Any]) -> list[Any]:
        import numpy as np

        from .backends.base import Candidate, Proposal
        from .backends.llamacpp import sample_rows, token_logprob
        from .backends.sampling import StopMatcher, candidate_rngs

        out = []
        for r in requests:
            prompt = self.tokenize(r.prefix)
            max_new = min(r.max_tokens, self.llm.n_ctx() - len(prompt))
            stopper = StopMatcher(r.stop)
            cands, evaluated = [], 0
            for i, rng in enumerate(candidate_rngs(r.seed, r.k)):
                forced = self.script.get((r.prefix, r.seed, i)) if self.script else None
                self.llm.reset()
                self.llm.eval(prompt)
                evaluated += len(prompt)
                data, n, lp_sum, cand = bytearray(), 0, 0.0, None
                while cand is None:
                    ptr = self.raw.llama_get_logits_ith(self.llm._ctx.ctx, -1)
                    x = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
                    tok, lp = sample_rows(x[None, :], r.temperature, r.top_p, [[rng]])[0][0]
                    if forced is not None and n < len(forced):
                        self.replay_stats[1] += 1
                        if forced[n] == tok:
                            self.replay_stats[0] += 1
                        else:
                            tok, lp = forced[n], token_logprob(x, r.temperature, forced[n])
                    n += 1
                    lp_sum += lp
                    if self.raw.llama_vocab_is_eog(self.vocab, tok):
                        cand = Candidate(data.decode("utf-8", "replace"), n, "eos", None, lp_sum)
                        break
                    data += self.llm._model.detokenize([tok], special=True)
                    text = data.decode("utf-8", "replace")
                    hit = stopper.check(text)
                    if hit is not None:
                        cand = Candidate(hit[0], n, "stop", hit[1], lp_sum)
                    elif n >= max_new:
                        cand = Candidate(text, n, "length", None, lp_sum)
                    else:
                        self.llm.eval([tok])
                        evaluated += 1
                cands.append(cand)
            out.append(Proposal(tuple(cands), evaluated))
        return out

    def close(self) -> None:
        self.llm.close()


def _unique_tokens(tokenize: Callable[[str], list[int]], tree: Any) -> int:
    """Nodes of the token trie over every tree node's tokenized prefix."""
    trie: dict[int, Any] = {}
    n = 0
    for node in tree.nodes:
        d = trie
        for t in tokenize(tree.prefix(node)):
            nxt = d.get(t)
            if nxt is None:
                nxt = d[t] = {}
                n += 1
            d = nxt
    return n


def _tree_json(tree: Any) -> tuple[str, list[float]]:
    """The tree's JSON without the candidates' logprobs (each variant computes them from its
    own logits), and those logprobs."""
    d = tree.to_dict()
    lps = [node.pop("logprob") for node in d["nodes"]]
    return json.dumps(d, sort_keys=True), lps


def _mcts_worker(spec: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import replace

    from .formats import get_format
    from .search import run_search

    variant = spec["variant"]
    decode_s = [0.0]
    policy: Any
    if variant == "naive":
        import llama_cpp.llama_cpp as raw

        policy = NaiveLlamaPolicy(spec["model"], spec["n_ctx"], spec["threads"])
        orig = raw.llama_decode

        def timed(ctx: Any, batch: Any) -> int:
            t = time.perf_counter()
            try:
                return int(orig(ctx, batch))
            finally:
                decode_s[0] += time.perf_counter() - t

        raw.llama_decode = timed
        tokenize = policy.tokenize
    elif variant == "onnx":
        from .backends import onnx as ob

        policy = ob.OnnxPolicy(spec["model"], device="cpu", threads=spec["threads"])
        orig_run = ob._Session.run

        def timed_run(self: Any, *a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig_run(self, *a, **k)
            finally:
                decode_s[0] += time.perf_counter() - t

        ob._Session.run = timed_run  # type: ignore[method-assign]
        tokenize = policy.encode
    else:
        from .backends.llamacpp import LlamaCppPolicy

        policy = LlamaCppPolicy(
            spec["model"],
            n_ctx=spec["n_ctx"],
            n_threads=spec["threads"],
            batch_candidates=variant != "single",
        )
        tokenize = policy.tokenize
    if spec.get("record"):
        policy.recorded = {}
    if spec.get("script"):
        rows = json.loads(Path(spec["script"]).read_text())
        policy.script = {(p, s, i): t for p, s, i, t in rows}
    fmt = get_format(spec["format"])
    if spec.get("stop"):
        fmt = replace(fmt, stop=tuple(spec["stop"]))
    config = SearchConfig(width=spec["width"], max_step_tokens=spec["step_tokens"])
    budget = Budget(rollouts=None, tokens=spec["tokens"])
    wall = gen = evaluated = unique = nodes = 0.0
    trees: list[str] = []
    logprobs: list[list[float]] = []
    d0 = policy.decode_seconds if variant in ("batched", "single") else 0.0
    for qi, q in enumerate(spec["questions"]):
        t = time.perf_counter()
        res, tree = run_search(
            q, policy=policy, fmt=fmt, strategy="mcts", budget=budget, config=config, seed=qi
        )
        wall += time.perf_counter() - t
        gen += res.stats.tokens_generated
        evaluated += res.stats.tokens_evaluated
        nodes += len(tree) - 1
        unique += _unique_tokens(tokenize, tree)
        tj, lps = _tree_json(tree)
        trees.append(tj)
        logprobs.append(lps)
    if variant in ("batched", "single"):
        decode_s[0] = policy.decode_seconds - d0
    out: dict[str, Any] = {
        "wall_s": wall,
        "generated": gen,
        "gen_tok_s": gen / wall,
        "evaluated": evaluated,
        "unique": unique,
        "evaluated_per_unique": evaluated / max(unique, 1),
        "decode_s": decode_s[0],
        "python_overhead_share": 1.0 - decode_s[0] / wall,
        "nodes": nodes,
        "trees": trees,
        "logprobs": logprobs,
        "rss_mb": _rss_mb(),
    }
    if spec.get("script"):
        agree, total = policy.replay_stats
        out["replay_agreement"] = agree / total if total else None
    if variant in ("batched", "single"):
        out["cache"] = {**policy.stats.as_dict(), **policy.cache_info()}
    if spec.get("record"):
        rows = [[p, s, i, t] for (p, s, i), t in policy.recorded.items()]
        Path(spec["record"]).write_text(json.dumps(rows))
    policy.close()
    return out


def _worker_main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    res = _raw_worker(spec) if spec["kind"] == "raw" else _mcts_worker(spec)
    Path(out_path).write_text(json.dumps(res))


# ============================================================================ report


if __name__ == "__main__":  # worker entry: python -m edgestar._bench_workers --worker SPEC OUT
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2], sys.argv[3])
    else:
        print(
            "usage: python -m edgestar._bench_workers --worker SPEC.json OUT.json", file=sys.stderr
        )
        sys.exit(2)
