"""Tests for the tree-shaped KV cache of the llama.cpp backends (edgestar/backends/llamacpp.py,
kvtree.py): forked + batched decoding against evaluating every prefix from scratch, a seeded
MCTS with the cache on and off, eviction, the evaluated/unique token ratio, the batched sampler.

Test models (made here with train/tiny.py + quantize/gguf_export.py, F32, F32 KV cache):
- "ascii": a tiny random Llama over a tokenizer whose only merges involve non-ASCII bytes, with
  a constant hidden dimension that pushes every token but printable ASCII, newline and the step
  markers far down. Its text re-tokenizes to exactly the ids it generated (as a trained model's
  mostly does; a random model over a BPE vocabulary emits non-canonical splits and invalid
  UTF-8 all the time), and the markers end a step every ~12 tokens, so MCTS grows a real tree.
- "ppm": a tiny random PPM (value head in the GGUF metadata).

Measured (2-core Xeon, 1 thread): forked/batched logits vs from scratch max |diff| 6e-7;
MCTS tree (24 rollouts, width 4, depth <= 5): ~140 nodes, evaluated/unique tokens 0.89 with the
cache (below 1: a leaf's last sampled token and its step suffix are in the tree but were never
decoded), 3.0 without it (prompt shared by a request's candidates only), 9.6 one candidate at a
time from scratch. Whole file ~15 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")

from safetensors.torch import load_file, save_file  # noqa: E402

from edgestar.backends import llamacpp as lc  # noqa: E402
from edgestar.backends.base import StepRequest  # noqa: E402
from edgestar.backends.kvtree import KVTree  # noqa: E402
from edgestar.backends.sampling import StopMatcher, candidate_rngs, sample_token  # noqa: E402
from edgestar.formats import RSTAR, Marker  # noqa: E402
from edgestar.quantize.gguf_export import export_gguf  # noqa: E402
from edgestar.search import run_search  # noqa: E402
from edgestar.train.tiny import TinyConfig, build_tokenizer, make_tiny_checkpoint  # noqa: E402
from edgestar.types import Budget, InputError, SearchConfig  # noqa: E402

pytestmark = [pytest.mark.llama, pytest.mark.torch]
torch.set_num_threads(1)

KW = dict(n_threads=1, kv_f32=True)
QUESTION = "What is 3 + 4?"
PROMPT = RSTAR.prompt(QUESTION) + RSTAR.solution_prefix
CFG = SearchConfig(width=4, max_step_tokens=32, max_depth=5, temperature=1.0)
BUDGET = Budget(rollouts=24)


def _ascii_checkpoint(root: Path) -> Path:
    tok = build_tokenizer(["\u00e9\u00e8\u00ea " * 50, "\u00fc\u00f6 " * 50], vocab_size=268)
    ck = make_tiny_checkpoint(root / "ascii", TinyConfig(seed=1), tokenizer=tok)
    path = ck / "model.safetensors"
    sd = {k: (v * 4.0 if v.ndim == 2 else v).contiguous() for k, v in load_file(str(path)).items()}
    d = 0  # residual dimension kept at 1.0: no layer writes to it
    sd["model.embed_tokens.weight"][:, d] = 1.0
    for k in sd:
        if k.endswith(("o_proj.weight", "down_proj.weight")):
            sd[k][d, :] = 0.0
    vocab = tok.get_vocab()
    markers = {vocab[m] for m in (Marker.END_STEP, Marker.END_CODE, Marker.END_ANSWER)}
    lm = sd["lm_head.weight"]
    for s, i in vocab.items():
        text = tok.convert_tokens_to_string([s])
        ok = len(text) == 1 and (32 <= ord(text) < 127 or text == "\n")
        lm[i, d] = 1.0 if i in markers else (0.0 if ok else -200.0)
    save_file(sd, str(path), metadata={"format": "pt"})
    return ck


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kvcache")
    ppm = make_tiny_checkpoint(root / "ppm", TinyConfig(seed=3), role="ppm")
    return {
        "ascii": export_gguf(_ascii_checkpoint(root), root / "ascii.gguf"),
        "ppm": export_gguf(ppm, root / "ppm.gguf"),
    }


def _tree_json(tree) -> str:  # type: ignore[no-untyped-def]
    """The tree as JSON, logprobs to 1e-3 (they carry the logits' float rounding, ~1e-6)."""
    d = tree.to_dict()
    for n in d["nodes"]:
        n["logprob"] = round(n["logprob"], 3)
    return json.dumps(d, sort_keys=True)


def _unique_tokens(pol: lc.LlamaCppPolicy, tree) -> int:  # type: ignore[no-untyped-def]
    """Distinct token prefixes over every node's tokenized prefix (nodes of the token trie)."""
    trie: dict[int, dict] = {}
    n = 0
    for node in tree.nodes:
        d = trie
        for t in pol.tokenize(tree.prefix(node)):
            if t not in d:
                d[t] = {}
                n += 1
            d = d[t]
    return n


def _mcts(path: Path, **kw):  # type: ignore[no-untyped-def]
    n_ctx = kw.pop("n_ctx", 2048)
    with lc.LlamaCppPolicy(path, n_ctx=n_ctx, **KW, **kw) as pol:
        res, tree = run_search(
            QUESTION, policy=pol, fmt=RSTAR, strategy="mcts", budget=BUDGET, config=CFG, seed=5
        )
        return res, tree, _unique_tokens(pol, tree), pol.stats, pol.cache_info()


# ------------------------------------------------------------------------------ sampler


@pytest.mark.parametrize("vocab", [300, 49152])
def test_sample_rows_is_sample_token(vocab: int) -> None:
    rng = np.random.default_rng(0)
    for trial in range(12):
        scale = [0.01, 0.5, 3.0, 8.0][trial % 4]  # flat (top-p falls back) to peaky
        x = (rng.standard_normal((3, vocab)) * scale).astype(np.float32)
        x[1, :5] = x[1].max()  # exact ties
        for temp in (0.0, 0.7, 1.3):
            for top_p in (0.5, 0.95, 1.0):
                a = [candidate_rngs(trial, 2) for _ in range(3)]
                b = [candidate_rngs(trial, 2) for _ in range(3)]
                got = lc.sample_rows(x, temp, top_p, a)
                want = [[sample_token(x[i], temp, top_p, r) for r in b[i]] for i in range(3)]
                assert got == want
                assert [r.random() for rs in a for r in rs] == [r.random() for rs in b for r in rs]
                tok, lp = want[0][0]
                assert lc.token_logprob(x[0], temp, tok) == pytest.approx(lp, abs=1e-9)


# ------------------------------------------------------------------------------ KV tree


class _Mem:
    """A fake llama.cpp memory: which positions each sequence holds."""

    def __init__(self) -> None:
        self.seqs: dict[int, set[int]] = {}

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self.seqs.setdefault(dst, set()).update(p for p in self.seqs[src] if p0 <= p < p1)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        hi = p1 if p1 >= 0 else 1 << 30
        self.seqs[seq] = {p for p in self.seqs.get(seq, set()) if not (max(p0, 0) <= p < hi)}


def test_kvtree_bookkeeping() -> None:
    mem = _Mem()
    t = KVTree(mem, n_cells=40, n_seqs=3)

    def grow(seq: int, toks: list[int]) -> None:
        n = t.seq_len(seq)
        mem.seqs.setdefault(seq, set()).update(range(n, n + len(toks)))
        t.append([seq], toks)

    a = t.alloc()
    assert a is not None
    t.new_empty(a)
    grow(a, list(range(10)))
    assert t.lookup(list(range(12))).n == 10 and t.lookup([0, 1, 9]).n == 2
    b = t.alloc()
    assert b is not None
    t.fork(a, b, 6)  # a partial prefix: splits a's run
    grow(b, [60, 61])
    assert t.tokens(b) == [0, 1, 2, 3, 4, 5, 60, 61] and mem.seqs[b] == set(range(8))
    assert t.cells == 12 and t.exclusive(a) == 4 and t.exclusive(b) == 2
    t.release(a)
    t.release(b)
    m = t.lookup([0, 1, 2, 3, 4, 5, 60, 7])
    assert (m.n, m.seq) == (7, b)
    c = t.alloc()
    assert c is not None
    t.fork(b, c, 7)
    t.release(c)
    assert t.exclusive(c) == 0  # everything c holds, b holds too
    assert t.alloc() is not None  # no free id: evicts c first (it frees no cell)
    assert c not in t.info and t.cells == 12
    assert t.make_room(32)  # 28 free -> evicts a (least recently used, 4 exclusive cells)
    assert a not in t.info and t.cells == 8 and t.lookup(list(range(10))).n == 6
    t.take(b)
    assert not t.make_room(40)  # b is live: never evicted
    assert t.truncate(b, 6) == 2 and t.tokens(b) == list(range(6)) and t.cells == 6


def test_kvtree_evicts_twins_that_cover_each_other() -> None:
    # Two siblings that decoded the same text share every cell: neither alone frees a cell, so
    # an eviction that only looked for exclusive cells would fill the cache for good (seen in a
    # greedy-first search: the greedy candidate and an identical sample).
    mem = _Mem()
    t = KVTree(mem, n_cells=20, n_seqs=4)
    a = t.alloc()
    assert a is not None
    t.new_empty(a)
    mem.seqs[a] = set(range(4))
    t.append([a], [1, 2, 3, 4])
    b = t.alloc()
    assert b is not None
    t.fork(a, b, 4)
    mem.seqs[b] = set(range(4))
    t.append([a, b], list(range(10, 26)))  # both grow by the same 16 tokens: 20 cells in all
    t.release(a)
    t.release(b)
    assert t.cells == 20 and t.exclusive(a) == 0 and t.exclusive(b) == 0
    assert t.make_room(10)
    assert t.cells == 0 and not t.info


# ------------------------------------------------------------------------------ logits


def test_forked_batched_logits_equal_scratch(models) -> None:  # type: ignore[no-untyped-def]
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=512, **KW) as pol:
        model, ctx, batch = pol._rt.parts()
        t = pol._tree
        prompt = model.tokenize(PROMPT)
        n = len(prompt)
        suffixes = [[40, 41, 42], [40, 41, 43], [44], [40, 45, 46, 47]]
        want = [
            pol.logits(PROMPT + "".join(model.token_text(x) for x in s), True) for s in suffixes
        ]
        for s, w in zip(suffixes, want, strict=True):  # the suffixes re-tokenize to themselves
            assert w.shape[0] == n + len(s)
        pol.clear_cache()
        (root,), _ = pol._acquire(t.lookup(prompt), n + 1, 1, set())  # a fresh sequence
        batch.clear()
        batch.add_run(prompt, 0, (root,), True)
        ctx.decode(batch)
        t.append([root], prompt)
        seqs = [root]
        for _ in suffixes[1:]:
            s = t.alloc()
            assert s is not None
            t.fork(root, s, n)
            seqs.append(s)
        # step 1: token 40 is shared by sequences 0, 1, 3 (one row, three sequences)
        got: dict[tuple[int, int], np.ndarray] = {}
        steps = [[(40, [0, 1, 3]), (44, [2])], [(41, [0, 1]), (45, [3])], [(42, [0]), (43, [1]), (46, [3])], [(47, [3])]]  # fmt: skip
        for j, rows in enumerate(steps):
            batch.clear()
            for tok, who in rows:
                batch.add(tok, n + j, [seqs[i] for i in who], True)
            ctx.decode(batch)
            lg = ctx.logits_rows(len(rows))
            for r, (tok, who) in enumerate(rows):
                t.append([seqs[i] for i in who], [tok])
                for i in who:
                    got[(i, j)] = lg[r].copy()
        diffs = [np.abs(got[(i, j)] - want[i][n + j]).max() for (i, j) in got]
        assert max(diffs) < 1e-4, max(diffs)
        assert t.cells == n + 8  # 8 distinct tokens after the prompt, one cell each
        # a partial fork (the first 10 prompt tokens) + a different continuation
        s = t.alloc()
        assert s is not None
        t.fork(seqs[2], s, 10)
        tail = prompt[10:]
        batch.clear()
        batch.add_run(tail, 10, (s,), True)
        ctx.decode(batch)
        assert np.abs(ctx.logits(batch.n - 1) - want[0][n - 1]).max() < 1e-4


# ------------------------------------------------------------------------------ propose


def test_candidates_same_alone_batched_and_across_requests(models) -> None:  # type: ignore[no-untyped-def]
    r1 = StepRequest(PROMPT, k=6, seed=3, max_tokens=24, temperature=1.0, stop=RSTAR.stop)
    r2 = StepRequest(PROMPT + "x = 1\n", k=3, seed=4, max_tokens=24, temperature=0.7)

    def key(p):  # type: ignore[no-untyped-def]
        return [(c.text, c.n_tokens, c.finish, c.stop) for c in p.candidates]

    with lc.LlamaCppPolicy(models["ascii"], n_ctx=1024, **KW) as pol:
        both = pol.propose([r1, r2])
        calls = pol._rt.ctx.decode_calls
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=1024, batch_candidates=False, **KW) as pol:
        a1, a2 = pol.propose([r1]) + pol.propose([r2])
        alone_calls = pol._rt.ctx.decode_calls
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=1024, prefix_cache=False, **KW) as pol:
        (k1,) = pol.propose([StepRequest(**{**r1.__dict__, "k": 1})])
    assert key(both[0]) == key(a1) and key(both[1]) == key(a2)
    assert key(k1) == key(a1)[:1]  # candidate 0 of k=6 is candidate 0 of k=1
    for x, y in zip(both[0].candidates + both[1].candidates, a1.candidates + a2.candidates, strict=True):  # fmt: skip
        assert x.logprob == pytest.approx(y.logprob, abs=1e-4)
    assert len({c.text for c in both[0].candidates}) > 3
    assert calls < alone_calls / 3  # one decode per step for all 9 candidates
    # stop strings: the batched cut equals StopMatcher on the whole text
    stop = ("<end_of_step>", "= 1")
    (p,) = pol_propose(models["ascii"], StepRequest(PROMPT, k=8, seed=9, max_tokens=32, stop=stop))
    (q,) = pol_propose(models["ascii"], StepRequest(PROMPT, k=8, seed=9, max_tokens=32))
    for c, full in zip(p.candidates, q.candidates, strict=True):
        hit = StopMatcher(stop).check(full.text)
        assert (c.text, c.stop) == (hit if hit else (full.text, None))


def pol_propose(path: Path, req: StepRequest) -> list:  # type: ignore[type-arg]
    with lc.LlamaCppPolicy(path, n_ctx=1024, **KW) as pol:
        return pol.propose([req])


def test_tokens_evaluated_counts_decoded_rows(models) -> None:  # type: ignore[no-untyped-def]
    req = StepRequest(PROMPT, k=4, seed=1, max_tokens=32, temperature=1.0, stop=RSTAR.stop)
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=1024, **KW) as pol:
        (p,) = pol.propose([req])
        rows = pol._rt.ctx.rows_decoded
        assert p.tokens_evaluated == rows
        n_prompt = len(pol.tokenize(PROMPT))
        assert p.tokens_evaluated <= n_prompt + sum(c.n_tokens - 1 for c in p.candidates)
        # a child of a candidate that ended at a stop string decodes only what its parent did
        # not: the parent's last token and the step suffix "\n"
        (c,) = [c for c in p.candidates if c.finish == "stop"][:1]
        child = PROMPT + c.text + RSTAR.step_suffix
        (q,) = pol.propose([StepRequest(child, k=1, seed=2, max_tokens=4, temperature=1.0)])
        assert len(pol.tokenize(child)) == n_prompt + c.n_tokens + 1
        assert q.tokens_evaluated == 2 + q.candidates[0].n_tokens - 1


# ------------------------------------------------------------------------------ MCTS


def test_mcts_same_tree_cache_on_off_and_ratio(models) -> None:  # type: ignore[no-untyped-def]
    on, tree_on, uniq, stats, info = _mcts(models["ascii"])
    off, tree_off, _, _, _ = _mcts(models["ascii"], prefix_cache=False, batch_candidates=False)
    assert _tree_json(tree_on) == _tree_json(tree_off)
    assert max(n.depth for n in tree_on.nodes) >= 4 and len(tree_on) > 60  # a multi-level tree
    ratio = on.stats.tokens_evaluated / uniq
    ratio_off = off.stats.tokens_evaluated / uniq
    print(f"evaluated/unique: cache {ratio:.3f}, from scratch {ratio_off:.3f}, unique {uniq}")
    assert ratio <= 1.05
    assert ratio_off > 5 * ratio
    assert info["forks"] > 0 and stats.prompt_evaluated < stats.prompt_tokens / 10


def test_eviction_and_pauses_keep_the_tree(models) -> None:  # type: ignore[no-untyped-def]
    _, tree, _, _, _ = _mcts(models["ascii"])
    # 6 sequences and 160 cells for a tree of ~2,700 distinct tokens: idle branches are evicted
    # and re-evaluated when revisited
    _, small, _, _, info = _mcts(models["ascii"], n_seq_max=6, n_ctx=160)
    assert _tree_json(small) == _tree_json(tree)
    assert info["evicted_seqs"] > 10
    # 8 candidates of 32 tokens after an ~80-token prompt need ~330 cells; with 200 some groups
    # are paused (their sequences idle) and resumed from what is still cached
    reqs = [
        StepRequest(PROMPT, k=8, seed=6, max_tokens=32, temperature=1.0),
        StepRequest(PROMPT + "y", k=2, seed=7, max_tokens=32, temperature=1.0),
    ]
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=200, n_seq_max=8, **KW) as pol:
        tight = pol.propose(reqs)
        stats = pol.stats
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=2048, **KW) as pol:
        roomy = pol.propose(reqs)
    for a, b in zip(tight, roomy, strict=True):
        assert [(c.text, c.finish) for c in a.candidates] == [
            (c.text, c.finish) for c in b.candidates
        ]
    assert stats.pauses > 0 and stats.resumed_tokens > 0
    # the second request shares the first one's prompt: evaluated once, then forked
    assert roomy[1].tokens_evaluated == 1 + sum(c.n_tokens - 1 for c in roomy[1].candidates)
    print(
        f"evictions {info['evicted_seqs']}, pauses {stats.pauses}, resumed {stats.resumed_tokens}"
    )


# ------------------------------------------------------------------------------ streaming


class _Rounds:
    """The policy without `propose_stream`: chains advance in rounds of `propose`."""

    def __init__(self, pol: lc.LlamaCppPolicy) -> None:
        self.pol, self.name = pol, pol.name

    def propose(self, requests):  # type: ignore[no-untyped-def]
        return self.pol.propose(requests)

    def chat_prompt(self, messages):  # type: ignore[no-untyped-def]
        return self.pol.chat_prompt(messages)

    def close(self) -> None:
        pass


def _chains(path: Path, streamed: bool):  # type: ignore[no-untyped-def]
    cfg = SearchConfig(n=6, max_step_tokens=32, max_depth=5, temperature=1.0)
    with lc.LlamaCppPolicy(path, n_ctx=2048, **KW) as pol:
        res, tree = run_search(QUESTION, policy=pol if streamed else _Rounds(pol), fmt=RSTAR,
                               strategy="best_of_n", budget=Budget(rollouts=6), config=cfg,
                               seed=5)  # fmt: skip
        paths = sorted(
            tuple(n.text for n in tree.path(leaf)) for leaf in tree.nodes if not leaf.children
        )
        return res, paths, pol._rt.ctx.decode_calls


def test_streamed_chains_are_the_same_chains_in_fewer_decodes(models) -> None:  # type: ignore[no-untyped-def]
    res, paths, calls = _chains(models["ascii"], streamed=True)
    ref, ref_paths, ref_calls = _chains(models["ascii"], streamed=False)
    assert paths == ref_paths and len(paths) == 6 and max(map(len, paths)) >= 3
    assert res.stats.tokens_generated == ref.stats.tokens_generated
    # every row keeps decoding while a sibling's step is longer: fewer, fuller decodes
    print(f"decodes: streamed {calls}, rounds {ref_calls}")
    assert calls < ref_calls


def test_a_stream_ended_early_drops_its_rows_and_keeps_the_cache(models) -> None:  # type: ignore[no-untyped-def]
    reqs = [StepRequest(PROMPT, k=1, seed=s, max_tokens=32, temperature=1.0) for s in range(4)]
    seen: list = []

    def refill(req, prop):  # type: ignore[no-untyped-def]
        seen.append(prop)
        return None  # the first request to finish ends the call

    later = StepRequest(PROMPT + "x", k=3, seed=9, max_tokens=16, temperature=1.0)
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=1024, **KW) as pol:
        dropped = pol.propose_stream(reqs, refill)
        assert len(seen) == 1 and dropped > 0
        assert not any(pol._tree.is_live(q) for q in list(pol._tree.info))  # all let go
        (after,) = pol.propose([later])
    with lc.LlamaCppPolicy(models["ascii"], n_ctx=1024, **KW) as pol:
        (fresh,) = pol.propose([later])
    assert [c.text for c in after.candidates] == [c.text for c in fresh.candidates]


# ------------------------------------------------------------------------------ reward


def test_reward_cached_batched_equals_scratch(models) -> None:  # type: ignore[no-untyped-def]
    parent = PROMPT + "x = 3 + 4\n<end_of_step>\n"
    kids = [parent + s for s in ("print(x)\n<end_of_code>\n", "y = x\n<end_of_step>\n", "z")]
    with lc.LlamaCppReward(models["ppm"], n_ctx=512, prefix_cache=False, **KW) as rw:
        want = rw.score([parent, *kids])
        scratch_tokens = rw.tokens_evaluated
    with lc.LlamaCppReward(models["ppm"], n_ctx=512, **KW) as rw:
        got = rw.score([parent]) + rw.score(kids)  # the children fork the parent's prefix
        cached_tokens = rw.tokens_evaluated
        again = rw.score([*kids, parent, kids[0]])  # all cached: each re-decodes its last token
        assert rw.tokens_evaluated == cached_tokens + 4
    assert np.abs(np.array(got) - np.array(want)).max() < 1e-4
    assert np.abs(np.array(again) - np.array(want[1:] + want[:2])).max() < 1e-4
    assert cached_tokens < scratch_tokens / 2
    with lc.LlamaCppReward(models["ppm"], n_ctx=128, n_seq_max=2, **KW) as rw:  # evictions
        assert np.abs(np.array(rw.score([parent, *kids])) - np.array(want)).max() < 1e-4


# ------------------------------------------------------------------------------ bench


def test_bench_smoke(models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgestar.bench import run_bench

    rep = run_bench(
        model=models["ascii"],
        out_dir=tmp_path / "b",
        threads=1,
        widths=(2,),
        runs=1,
        questions=(QUESTION,),
        progress=False,
        tokens=48,
        n_ctx=1024,
        quiet_wait=0,
    )
    d = json.loads(rep.json_path.read_text())
    for k in ("evaluated_per_unique_token", "batched_vs_single_decode", "speedup_vs_naive"):
        assert d[k] > 0 and d[k] == getattr(rep, k)
    assert d["same_tree"]["identical"]  # F32 weights, replayed tokens
    assert d["mcts"]["naive"]["evaluated_per_unique"] > d["mcts"]["batched"]["evaluated_per_unique"]
    assert rep.md_path.read_text().startswith("# edgestar bench")
    assert rep.png_path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="already holds"):
        run_bench(model=models["ascii"], out_dir=tmp_path / "b", progress=False)
