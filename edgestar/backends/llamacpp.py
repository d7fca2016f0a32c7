"""llama.cpp backends: `LlamaCppPolicy` (Policy) and `LlamaCppReward` (Reward) over GGUF files,
with a KV cache shaped like the search tree.

Owns how edgestar decodes on llama.cpp's low-level API (wrappers in `_llama_raw`, cache
bookkeeping in `kvtree`):

- One context per backend with a unified KV cache (n_ctx cells shared by up to n_seq_max
  sequences). `KVTree` maps token prefixes to the sequences holding their KV. A request's prompt
  is looked up there: the longest cached prefix is forked to the candidates' sequences with
  `llama_memory_seq_cp` (no copy), and only the rest is decoded.
- `LlamaCppPolicy.propose(requests)` decodes ALL requests and ALL their k candidates together:
  one `llama_decode` per step carries every live candidate's next token plus any prompt suffix
  still to evaluate (chunked at n_batch). Candidates with identical history so far (same request,
  same tokens sampled) are one row whose cell belongs to all their sequences; they split when
  their samples differ. So every decoded token is a distinct node of the token tree.
- `propose_stream(requests, refill)` (continuous batching, best-of-N's chains): the same
  scheduler, but a request is handed to `refill` the moment its last candidate ends and the
  requests it returns join the running batch as waiting groups (their prompt, the finished
  step's text and what follows, is found in the cache), so no row waits for a longer sibling.
- Sampling: the shared sampler's semantics (`sampling.candidate_rngs`, `sample_token`: one
  generator per candidate, temperature, top-p) computed for all rows of a step at once by
  `sample_rows`, which gives the same tokens and log-probabilities as `sample_token` (a test
  checks, bit for bit). Text: pieces with special tokens rendered (markers appear in the text),
  cut after the earliest stop string (`StopMatcher` semantics, checked on the new tail only); an
  end-of-generation token ends a candidate ('eos', its text not included), `max_tokens` too
  ('length'). Candidate i of a request depends only on its own generator and its logits, so it
  is the same alone, batched, in another round, or after eviction, up to float rounding of the
  logits. With F32 weights that rounding is ~1e-6 and the tests find identical trees. With
  quantized weights it is not small: llama.cpp rounds differently for a one-token batch
  (matrix-vector kernels) and for different cell placements, and Q8_0 activation quantization
  turns those ~1e-7 differences into logit changes of up to ~0.8 (measured on SmolLM2-135M
  Q8_0: batched vs one-at-a-time candidates agree on ~91% of sampled tokens, so their texts
  part ways). Multi-row batches are bit-identical to a whole-prompt pass; padding single-row
  decodes fixed the first effect but not the second and cost 40% on those steps, so it is not
  done. Benchmarks that need identical work across variants replay tokens (`recorded`/`script`).
- Flash attention is off by default: on CPU its kernels give logits that depend on the batch
  shape (0.5-0.8 measured on SmolLM2-135M) and it was slower here (2 cores) than the plain path.
- A finished candidate's sequence is KEPT (idle) when it ended at a stop string: the next step's
  prompt is its text, so expanding that child decodes only what the parent did not (the
  last sampled token and anything re-tokenization changed at the boundary). Candidates ended by
  'eos' or 'length' are terminal in every step format and are freed at once (seq_rm).
- Out of sequences or cells: idle sequences are evicted least recently used first (those whose
  cells are all shared with others cost nothing and go first when only an id is needed); if live
  candidates still do not fit, the lowest-priority group is paused (its sequences become idle)
  and resumed later from whatever is still cached, re-evaluating the rest. Results do not change.
- `tokens_evaluated` = rows llama.cpp actually decoded for the request (prompt suffix, each
  generated token that was fed back, re-evaluations); a candidate's last token is never fed.
- `prefix_cache=False` drops everything between calls and after each candidate (every prefix from
  scratch: the reference the tests compare against); `batch_candidates=False` decodes one
  candidate at a time (the tree-shared cache without batching; a benchmark variant).
- Hidden states for a reward head on the policy itself (`enable_hidden`, edgestar.head): the
  final hidden state (after the last norm, = HF `hidden_states[-1]`) of the row that sampled a
  candidate's last token becomes `Candidate.hidden`. llama.cpp returns it beside the logits from
  the same decode (embeddings on a generative context, pooling NONE; logits unchanged), but
  while it is on every row of a batch is output, so it is switched on only for decodes whose
  rows all sample (pure generation steps) and off for prompt chunks; a candidate sampled in a
  decode that also carried a prompt chunk (its first token) has no state for that token, and a
  one-token step then has `hidden=None` (the head scores it through `hidden_states`, one cached
  decode). `hidden_states(prefixes)` gives the same tensor for any text.
- `LlamaCppReward`: embeddings with LAST pooling (the last token's hidden state after the final
  norm), value head from GGUF metadata written by `edgestar.quantize.gguf_export` (all strings:
  llama.cpp's metadata API skips arrays; the weight is base64 of little-endian float32):
  score = tanh((w . h + b) / score_scale). All prefixes of a call are decoded together, each on
  its own sequence forked from its longest cached prefix (a parent's scored prefix, usually);
  scored prefixes stay cached under the same LRU policy.
- LoRA (`lora=FILE`, `lora_scale`): a GGUF LoRA adapter (quantize/lora_gguf.py, llama.cpp's
  own adapter format) is loaded with the model and set on the context at load time
  (`llama_adapter_lora_init` + `llama_set_adapters_lora`); the base file is untouched. A file
  that is not an adapter, one for another architecture, or one whose tensors do not fit the
  model (another width or depth) is refused with one line (llama.cpp's own reason). Chosen over
  merging and requantizing: see quantize/lora_gguf.py for the measured size, parity and speed.

Thread-safety: one lock per instance around every public method. `close()` frees everything;
methods called after it raise ModelError. CPU quirk: see `_llama_raw.cpu_has_amx` (extra_bufts).
Import cost: `import edgestar` never imports llama_cpp. No torch, transformers or gguf here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import InputError, ModelError
from ._batch_sampler import sample_rows, token_logprob
from ._llama_raw import (
    _GGML_SIZES,
    VALUE_HEAD_KEYS,
    GGUFInfo,
    _Batch,
    _Context,
    _Model,
    _Runtime,
    check_gguf,
    cpu_has_amx,
    llama_lib,
    read_value_head,
    render_chat_template,
)
from .base import Candidate, Proposal, Refill, StepRequest
from .kvtree import KVTree, Match, _common
from .sampling import candidate_rngs

__all__ = [
    "GGUFInfo",
    "LlamaCppPolicy",
    "LlamaCppReward",
    "check_gguf",
    "cpu_has_amx",
    "llama_lib",
    "sample_rows",
    "token_logprob",
]
_ = (_GGML_SIZES, _Model, _Context, _Batch, VALUE_HEAD_KEYS)  # re-exported for tests, tools

# --------------------------------------------------------------------------------------------
# Policy


def _check_seqs(n_seq_max: object) -> None:
    if isinstance(n_seq_max, bool) or not isinstance(n_seq_max, int) or not 1 <= n_seq_max <= 256:
        raise InputError(f"n_seq_max must be an integer in 1..256, got {n_seq_max!r}")


@dataclass(eq=False)
class _Cand:
    """One candidate being generated."""

    req: int
    idx: int
    rng: np.random.Generator
    max_new: int
    stops: tuple[str, ...]
    n_prompt: int
    seq: int = -1
    data: bytearray = field(default_factory=bytearray)
    checked: int = 0
    """Characters of the decoded text already searched for stop strings."""
    n_tokens: int = 0
    logprob: float = 0.0
    done: Candidate | None = None
    h: np.ndarray | None = None
    """Hidden state of the row that sampled the latest token (hidden recording on)."""
    h_prev: np.ndarray | None = None
    """... and of the row before it (an 'eos' candidate's step ends at its last text token)."""


@dataclass(eq=False)
class _Group:
    """Candidates of one request whose tokens so far are identical: they share every cell and
    the logits row. `pending` = how many of the last history tokens still need decoding (-1:
    not started: no sequences yet)."""

    members: list[_Cand]
    prompt: list[int]
    gen: list[int]
    pending: int = -1

    @property
    def order(self) -> tuple[int, int]:
        return (self.members[0].req, self.members[0].idx)

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.gen)

    def tokens(self, p0: int, n: int) -> list[int]:
        lp = len(self.prompt)
        if p0 >= lp:
            return self.gen[p0 - lp : p0 - lp + n]
        return (self.prompt + self.gen)[p0 : p0 + n]

    @property
    def seqs(self) -> list[int]:
        return [c.seq for c in self.members]


@dataclass
class PolicyStats:
    """Counters since construction (or `reset_stats`)."""

    requests: int = 0
    prompt_tokens: int = 0
    """Prompt tokens asked for (the sum of every request's prompt length)."""
    prompt_evaluated: int = 0
    """Of those, decoded (not found in the cache; includes re-decoding a fully cached last one)."""
    generated: int = 0
    """Tokens sampled (Candidate.n_tokens summed)."""
    rows: int = 0
    """Rows llama.cpp decoded (= sum of tokens_evaluated)."""
    boundary_events: int = 0
    boundary_tokens: int = 0
    """Cached tokens unusable because the prompt re-tokenized a cached candidate's text
    differently at its end (BPE merges across the boundary), and how often that happened."""
    pauses: int = 0
    resumed_tokens: int = 0
    """Tokens decoded again when a paused group resumed."""

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class LlamaCppPolicy:
    """Policy backend over a GGUF file (see the module docstring for the KV layout).

    n_ctx: KV cells shared by every cached prefix and live candidate. n_seq_max: sequences
    (one per live candidate or cached branch; llama.cpp allows 256). n_batch: rows per decode.
    kv_f32: F32 KV cache and no flash attention, for exact parity with torch (default F16,
    ~4e-3 drift). flash_attn: None = llama.cpp's choice. extra_bufts: llama.cpp's extra CPU buffer
    types; None = off on CPUs with AMX, where quantized models crash (see `cpu_has_amx`).
    prefix_cache / batch_candidates: see the module docstring.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_seq_max: int = 128,
        kv_f32: bool = False,
        extra_bufts: bool | None = None,
        *,
        n_batch: int = 512,
        flash_attn: bool = False,
        prefix_cache: bool = True,
        batch_candidates: bool = True,
        lora: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        _check_seqs(n_seq_max)
        if isinstance(n_ctx, int) and n_ctx > 1:
            n_seq_max = min(n_seq_max, n_ctx)  # llama.cpp wants sequences <= batch <= n_ctx
        self._rt = _Runtime(
            model_path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
            n_seq_max=n_seq_max,
            kv_f32=kv_f32,
            embeddings=False,
            extra_bufts=extra_bufts,
            n_batch=n_batch,
            flash_attn=flash_attn,
            lora=lora,
            lora_scale=lora_scale,
        )
        _, ctx, _ = self._rt.parts()
        self._tree = KVTree(ctx, ctx.n_ctx, n_seq_max)
        self.prefix_cache = bool(prefix_cache)
        self.batch_candidates = bool(batch_candidates)
        self.name = f"llamacpp:{self._rt.path.name}" + _adapter_suffix(self._rt)
        self.metadata = self._rt.info.metadata
        self.stats = PolicyStats()
        self.recorded: dict[tuple[str, int, int], list[int]] | None = None
        """Benchmark support: set to {} to record every candidate's sampled token ids, keyed
        by (request prefix, request seed, candidate index)."""
        self.script: dict[tuple[str, int, int], list[int]] | None = None
        """Benchmark support: tokens to force (a `recorded` dict from another run), so that a
        variant builds exactly the same tree; `replay_stats` = [sampled == forced, forced]."""
        self.replay_stats = [0, 0]
        self._want_hidden = False

    # -- Policy protocol ------------------------------------------------------------------

    def propose(self, requests: Sequence[StepRequest]) -> list[Proposal]:
        with self._rt.lock:
            parts = self._rt.parts()
            if not self.prefix_cache:
                self._reset()
            try:
                return self._propose(parts, requests)[0]
            except BaseException:
                self._reset()  # live sequences are in an unknown state
                raise

    def propose_stream(self, requests: Sequence[StepRequest], refill: Refill) -> int:
        """Streaming (`base.Streaming`): each request goes to `refill` the moment its last
        candidate ends, and the requests it returns start in the running batch (their prompt
        is the finished one's text plus what follows, found in the cache), so rows never wait
        for a longer sibling step. None from `refill` ends the call; the candidates still being
        generated are dropped (their prompts stay cached); returns the tokens they had."""
        with self._rt.lock:
            parts = self._rt.parts()
            if not self.prefix_cache:
                self._reset()
            try:
                return self._propose(parts, requests, refill)[1]
            except BaseException:
                self._reset()
                raise

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str | None:
        with self._rt.lock:
            model, _, _ = self._rt.parts()
            template = model.meta("tokenizer.chat_template")
            if not template:
                return None
            bos, eos = model.token_text(model.bos), model.token_text(model.eos)
        return render_chat_template(template, messages, bos_token=bos, eos_token=eos)

    def close(self) -> None:
        with self._rt.lock:
            self._rt.close()
            self._tree.clear()

    def __enter__(self) -> LlamaCppPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Token ids for `text` as a prompt (BOS per the vocabulary, markers as single ids)."""
        with self._rt.lock:
            model, _, _ = self._rt.parts()
            return model.tokenize(text)

    def logits(self, text: str, all_positions: bool = False) -> np.ndarray:
        """Next-token logits after `text` ([vocab]), or after every token of it ([n, vocab],
        evaluated from scratch). Both leave the prompt in the cache."""
        with self._rt.lock:
            model, ctx, batch = self._rt.parts()
            tokens = model.tokenize(text)
            self._check_prompt(tokens, ctx)
            try:
                return self._eval(ctx, batch, tokens, all_positions)
            except BaseException:
                self._reset()
                raise

    def eval_tokens(self, tokens: Sequence[int], hidden: bool = False) -> np.ndarray:
        """Decode token ids from their longest cached prefix (they stay cached): the logits
        after the last one ([vocab]) or, `hidden`, the final hidden state at it ([n_embd]).
        What an off-the-shelf PRM reads (`edgestar.prm`), on its own context or the policy's."""
        with self._rt.lock:
            model, ctx, batch = self._rt.parts()
            toks = [int(t) for t in tokens]
            if any(t < 0 or t >= model.n_vocab for t in toks):
                raise InputError("token id outside the vocabulary")
            self._check_prompt(toks, ctx)
            try:
                out = self._eval(ctx, batch, toks, False, hidden=hidden)
            except BaseException:
                self._reset()
                raise
            finally:
                ctx.set_hidden(False)
            return out

    def eval_many(self, token_lists: Sequence[Sequence[int]], hidden: bool = False) -> np.ndarray:
        """`eval_tokens` for several inputs at once ([n, vocab] or [n, n_embd]): each on its own
        sequence forked from its longest cached prefix; what they add is decoded together in
        chunks of n_batch rows (a history they share: one row), their last tokens asking for
        logits (hidden states: the last tokens in a decode of their own, as `eval_tokens`).
        Identical inputs are decoded once."""
        with self._rt.lock:
            model, ctx, batch = self._rt.parts()
            keys = [tuple(int(t) for t in tl) for tl in token_lists]
            for k in keys:
                if any(t < 0 or t >= model.n_vocab for t in k):
                    raise InputError("token id outside the vocabulary")
                self._check_prompt(list(k), ctx)
            index: dict[tuple[int, ...], int] = {}
            for k in keys:
                index.setdefault(k, len(index))
            out = np.zeros((len(index), model.n_embd if hidden else model.n_vocab), np.float32)
            todo = list(index)
            try:
                while todo:
                    group: list[tuple[tuple[int, ...], int, int]] = []  # (input, seq, cached)
                    while todo and len(group) < batch.capacity:
                        k = todo[0]
                        taken = {s for _, s, _ in group}
                        got, n = self._acquire(self._lookup(list(k)), len(k), 1, taken)
                        if not got:
                            if group:
                                break
                            raise ModelError("no llama.cpp sequence available")
                        group.append((k, got[0], n))
                        todo.pop(0)
                    try:
                        self._eval_group(ctx, batch, group, hidden, out, index)
                    finally:
                        for _, seq, _ in group:
                            if seq in self._tree.info:
                                self._tree.release(seq)
            except BaseException:
                self._reset()
                raise
            finally:
                ctx.set_hidden(False)
            return out[[index[k] for k in keys]]

    def _eval_group(
        self,
        ctx: _Context,
        batch: _Batch,
        group: list[tuple[tuple[int, ...], int, int]],
        hidden: bool,
        out: np.ndarray,
        index: dict[tuple[int, ...], int],
    ) -> None:
        t = self._tree
        # one row per distinct token history: siblings that start from the same cached prefix
        # share the rows of what they add in common (one cell for all of their sequences)
        node: dict[tuple[Any, ...], int] = {}
        rows: dict[int, tuple[int, int, list[int]]] = {}  # node -> (token, position, seqs)
        for k, seq, n in group:
            at = node.setdefault(("start", id(t.info[seq].tail), k[:n]), len(node))
            for p in range(n, len(k) - 1):
                at = node.setdefault((at, k[p]), len(node))
                rows.setdefault(at, (k[p], p, []))[2].append(seq)
        # (token, position, seqs, the input whose read position it is, or None)
        ordered = [(tok, p, seqs, None) for tok, p, seqs in rows.values()]  # parents first
        finals = [(k[-1], len(k) - 1, [seq], k) for k, seq, _ in group]
        n_embd = self._rt.model.n_embd  # type: ignore[union-attr]
        # logits: the last tokens ride in the same decodes; hidden states: output on makes
        # every row of a decode output, so the last tokens go alone in a decode of their own
        passes = [ordered + finals] if not hidden else [ordered, finals]
        for rows_, on in zip(passes, (False, True) if hidden else (False,), strict=True):
            ctx.set_hidden(on)
            for s0 in range(0, len(rows_), batch.capacity):
                chunk = rows_[s0 : s0 + batch.capacity]
                if not t.make_room(len(chunk)):
                    raise ModelError(f"KV cache too small ({ctx.n_ctx} cells)")
                batch.clear()
                for tok, pos, seqs, key in chunk:
                    batch.add(tok, pos, seqs, key is not None)
                if ctx.try_decode(batch) != 0:
                    raise ModelError("llama_decode failed")
                for i, (tok, _, seqs, key) in enumerate(chunk):
                    t.append(seqs, [tok])
                    if key is not None:
                        out[index[key]] = ctx.hidden(i, n_embd) if on else ctx.logits(i)
        ctx.set_hidden(False)

    def token_ids(self, text: str) -> list[int]:
        """The ids of `text` alone (special tokens as single ids, no BOS added)."""
        with self._rt.lock:
            model, _, _ = self._rt.parts()
            return model.tokenize(text, add_bos=False)

    def special_text(self, which: str) -> str:
        """'bos' or 'eos': the vocabulary's token as text ('' when it has none)."""
        with self._rt.lock:
            model, _, _ = self._rt.parts()
            tok = {"bos": model.bos, "eos": model.eos}[which]
            return model.token_text(tok) if tok >= 0 else ""

    @property
    def decode_seconds(self) -> float:
        """Seconds spent inside llama_decode since construction."""
        return self._rt.ctx.decode_seconds if self._rt.ctx is not None else 0.0

    def cache_info(self) -> dict[str, Any]:
        """The KV tree's state and counters (cells, sequences, evictions, forks)."""
        t = self._tree
        return {
            "cells_used": t.cells,
            "cells": t.n_cells,
            "seqs_used": t.n_seqs - t.seqs_free,
            "seqs": t.n_seqs,
            **t.stats.__dict__,
        }

    def reset_stats(self) -> None:
        self.stats = PolicyStats()

    # -- hidden states (a reward head on the policy's own state) ---------------------------

    def enable_hidden(self) -> None:
        """Record each candidate's final hidden state (`Candidate.hidden`) from the decodes
        that sample it: llama.cpp outputs embeddings beside the logits, no extra pass."""
        with self._rt.lock:
            _, ctx, _ = self._rt.parts()
            ctx.set_hidden(True)  # checks that this context can (pooling NONE)
            ctx.set_hidden(False)
            self._want_hidden = True

    @property
    def hidden_on(self) -> bool:
        return self._want_hidden

    @property
    def n_embd(self) -> int:
        model, _, _ = self._rt.parts()
        return model.n_embd

    def hidden_states(self, prefixes: Sequence[str]) -> np.ndarray:
        """[len(prefixes), n_embd] hidden states at each prefix's second-to-last token (the
        position that predicts its last one; see `HiddenStates`), from the cached prefix."""
        self.enable_hidden()
        with self._rt.lock:
            model, ctx, batch = self._rt.parts()
            out = np.zeros((len(prefixes), model.n_embd), dtype=np.float32)
            for i, p in enumerate(prefixes):
                toks = model.tokenize(p)
                toks = toks[:-1] if len(toks) > 1 else toks
                self._check_prompt(toks, ctx)
                try:
                    out[i] = self._eval(ctx, batch, toks, False, hidden=True)
                except BaseException:
                    self._reset()
                    raise
            return out

    def clear_cache(self) -> None:
        """Drop every cached prefix."""
        with self._rt.lock:
            self._reset()

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _check_prompt(tokens: list[int], ctx: _Context) -> None:
        if not tokens:
            raise InputError("empty prompt and the model has no BOS or EOS token")
        if len(tokens) >= ctx.n_ctx:
            raise InputError(f"prompt is {len(tokens)} tokens; the context holds {ctx.n_ctx}")

    def _reset(self) -> None:
        """Forget every cached prefix (after an error the KV state is unknown)."""
        if self._rt.ctx is not None:
            self._rt.ctx.clear()
        self._tree.clear()

    def _lookup(self, tokens: list[int]) -> Match:
        return self._tree.lookup(tokens) if self.prefix_cache else Match(0, None, 0)

    def _acquire(
        self, m: Match, n_tokens: int, n_want: int, protect: set[int]
    ) -> tuple[list[int], int]:
        """Up to n_want sequences holding the cached prefix `m` of a prompt of n_tokens tokens,
        leaving at least its last token to decode; returns them and that prefix's length."""
        t = self._tree
        n = min(m.n, n_tokens - 1)
        src = m.seq if n > 0 else None
        got: list[int] = []
        if src is not None and m.seq_len == n and not t.is_live(src):
            t.take(src)
            got.append(src)
        while len(got) < n_want:
            sid = t.alloc(protect | ({src} if src is not None else set()))
            if sid is None:
                break
            if src is None:
                t.new_empty(sid)
            else:
                t.fork(src, sid, n)
            got.append(sid)
        return got, n

    def _eval(
        self,
        ctx: _Context,
        batch: _Batch,
        tokens: list[int],
        all_positions: bool,
        hidden: bool = False,
    ) -> np.ndarray:
        """Decode `tokens` on one sequence (from its longest cached prefix, or from scratch for
        all positions); the logits after the last token, or after each (`hidden`: the hidden
        state at the last token instead)."""
        t = self._tree
        if all_positions:
            seq = t.alloc()
            if seq is None:
                raise ModelError("no llama.cpp sequence available")
            t.new_empty(seq)
            n = 0
        else:
            (seq,), n = self._acquire(self._lookup(tokens), len(tokens), 1, set())
        rows: list[np.ndarray] = []
        try:
            while n < len(tokens):
                end = min(n + batch.capacity, len(tokens))
                if hidden and end == len(tokens) and end - n > 1:
                    end -= 1  # the last token alone: hidden output makes every row output
                chunk = tokens[n:end]
                ctx.set_hidden(hidden and end == len(tokens))
                if not t.make_room(len(chunk)):
                    raise ModelError(f"KV cache too small ({ctx.n_ctx} cells)")
                batch.clear()
                if all_positions:
                    for j, tok in enumerate(chunk):
                        batch.add(tok, n + j, (seq,), True)
                else:
                    batch.add_run(chunk, n, (seq,), n + len(chunk) == len(tokens))
                if ctx.try_decode(batch) != 0:
                    raise ModelError("llama_decode failed")
                t.append([seq], chunk)
                if all_positions:
                    rows.append(ctx.logits_rows(len(chunk)).copy())
                n += len(chunk)
            if all_positions:
                return np.concatenate(rows)
            if hidden:
                return ctx.hidden(batch.n - 1, self._rt.model.n_embd)  # type: ignore[union-attr]
            return ctx.logits(batch.n - 1)
        finally:
            if seq in t.info:
                t.release(seq)

    def _propose(
        self,
        parts: tuple[_Model, _Context, _Batch],
        requests: Sequence[StepRequest],
        refill: Refill | None = None,
    ) -> tuple[list[Proposal], int]:
        """Decode the requests (and, streaming, those `refill` adds); their proposals (none when
        streaming: refill had them) and the tokens of candidates dropped unfinished."""
        model, ctx, batch = parts
        reqs: list[StepRequest] = []
        cands: list[list[_Cand]] = []
        evaluated: list[int] = []

        def add(r: StepRequest) -> list[_Group]:
            prompt = model.tokenize(r.prefix)
            self._check_prompt(prompt, ctx)
            max_new = min(r.max_tokens, ctx.n_ctx - len(prompt))
            stops = tuple(s for s in r.stop if s)
            ri = len(reqs)
            cs = [
                _Cand(ri, i, rng, max_new, stops, len(prompt))
                for i, rng in enumerate(candidate_rngs(r.seed, r.k))
            ]
            reqs.append(r)
            cands.append(cs)
            evaluated.append(0)
            self.stats.requests += 1
            self.stats.prompt_tokens += len(prompt)
            if self.batch_candidates:
                return [_Group(cs, prompt, [])]
            return [_Group([c], prompt, []) for c in cs]

        def proposal(ri: int) -> Proposal:
            got = tuple(c.done for c in cands[ri] if c.done is not None)
            assert len(got) == len(cands[ri])
            self.stats.generated += sum(c.n_tokens for c in got)
            self.stats.rows += evaluated[ri]
            return Proposal(got, evaluated[ri])

        def on_done(ri: int) -> list[_Group] | None:
            assert refill is not None
            more = refill(reqs[ri], proposal(ri))
            return None if more is None else [g for r in more for g in add(r)]

        groups = [g for r in requests for g in add(r)]
        dropped = self._run(
            model, ctx, batch, reqs, groups, evaluated, cands, on_done if refill else None
        )
        return ([] if refill else [proposal(ri) for ri in range(len(reqs))]), dropped

    # The scheduler: waiting groups start when sequences allow; each step decodes one batch with
    # every active group's next token(s); groups whose pending tokens are all fed sample.
    def _run(
        self,
        model: _Model,
        ctx: _Context,
        batch: _Batch,
        reqs: Sequence[StepRequest],
        groups: list[_Group],
        evaluated: list[int],
        cands: list[list[_Cand]],
        on_done: Callable[[int], list[_Group] | None] | None = None,
    ) -> int:
        t = self._tree
        waiting = sorted(groups, key=lambda g: g.order)
        active: list[_Group] = []
        reported: set[int] = set()
        while waiting or active:
            while waiting and (self.batch_candidates or not active):
                if not self._start(waiting, active):
                    break
            if not active:
                raise ModelError("no llama.cpp sequence available (n_seq_max too small?)")
            active.sort(key=lambda g: (g.pending > 1, g.order))
            plan: list[tuple[_Group, int]] = []
            space = batch.capacity
            for g in active:
                if space == 0:
                    break
                n = min(g.pending, space)
                plan.append((g, n))
                space -= n
            need = batch.capacity - space
            # hidden states come with every row once on: only when every row samples
            ctx.set_hidden(self._want_hidden and all(n == 1 == g.pending for g, n in plan))
            if not t.make_room(need):
                self._pause_last(active, waiting)
                continue
            batch.clear()
            fed: list[tuple[_Group, list[int]]] = []
            sampling: list[_Group] = []
            for g, n in plan:
                p0 = g.length - g.pending
                toks = g.tokens(p0, n)
                last = n == g.pending
                batch.add_run(toks, p0, g.seqs, last)
                fed.append((g, toks))
                if last:
                    sampling.append(g)
            rc = ctx.try_decode(batch)
            if rc == 1:  # no slot although the count says there is room: evict, else pause
                if not t._evict_one(set(), for_cells=True):
                    self._pause_last(active, waiting)
                continue
            if rc != 0:
                raise ModelError(f"llama_decode failed ({rc})")
            for g, toks in fed:
                t.append(g.seqs, toks)
                g.pending -= len(toks)
                evaluated[g.members[0].req] += len(toks)
            if sampling:
                done = set(map(id, sampling))
                active = [g for g in active if id(g) not in done]
                active += self._sample(model, ctx, reqs, sampling)
                if on_done is None:
                    continue
                for ri in sorted({c.req for g in sampling for c in g.members}):
                    if ri in reported or any(c.done is None for c in cands[ri]):
                        continue
                    reported.add(ri)
                    new = on_done(ri)
                    if new is None:
                        return self._drop_all(active, waiting)
                    waiting = sorted(waiting + new, key=lambda g: g.order)
        return 0

    def _drop_all(self, active: list[_Group], waiting: list[_Group]) -> int:
        """End a streaming call early: every unfinished candidate is let go (its prompt stays
        cached). Returns the tokens they had generated."""
        n = 0
        for g in active + waiting:
            for c in g.members:
                if c.done is None:
                    n += c.n_tokens
                    if c.seq >= 0:
                        self._finish(c, self._cand(c, "length"))
                    c.done = c.done or self._cand(c, "length")
        return n

    def _start(self, waiting: list[_Group], active: list[_Group]) -> bool:
        """Give the first waiting group sequences (splitting it if too few are free). With other
        groups active it starts only if the next step has room for all of them and its prompt."""
        g = waiting[0]
        t = self._tree
        hist = g.prompt + g.gen
        m = self._lookup(hist)
        if self.prefix_cache:
            for a in active:  # a prefix being evaluated right now: share it once it is cached
                done = a.length - a.pending
                if a.pending > 1 and _common(a.prompt, hist, 0) > max(m.n, done):
                    return False
        protect = {s for a in active for s in a.seqs}
        if m.seq is not None:
            protect.add(m.seq)
        if active:
            need = sum(a.pending for a in active) + len(hist) - min(m.n, len(hist) - 1)
            if not t.make_room(need, protect):
                return False
        seqs, n = self._acquire(m, len(hist), len(g.members), protect)
        if not seqs:
            return False
        waiting.pop(0)
        if len(seqs) < len(g.members):
            waiting.insert(0, _Group(g.members[len(seqs) :], g.prompt, list(g.gen)))
            g.members = g.members[: len(seqs)]
        for c, s in zip(g.members, seqs, strict=True):
            c.seq = s
        g.pending = len(hist) - n
        if g.gen:  # a paused group resuming
            self.stats.resumed_tokens += g.pending - 1
        else:
            self.stats.prompt_evaluated += g.pending
            self._count_boundary(hist, m)
        active.append(g)
        return True

    def _count_boundary(self, prompt: list[int], m: Match) -> None:
        """A cached sequence whose text starts the prompt but whose tokens diverge from the
        prompt's near its end: the candidate's text re-tokenized differently."""
        if m.seq is None or m.n >= m.seq_len or m.seq_len - m.n > 8 or m.seq not in self._tree.info:
            return
        model = self._rt.model
        assert model is not None
        cached = self._tree.tokens(m.seq)
        if len(cached) < m.seq_len:
            return
        have = b"".join(model.piece(x) for x in cached[m.n : m.seq_len])
        want = b"".join(model.piece(x) for x in prompt[m.n : m.n + 16])
        if want.startswith(have):
            self.stats.boundary_events += 1
            self.stats.boundary_tokens += m.seq_len - m.n

    def _pause_last(self, active: list[_Group], waiting: list[_Group]) -> None:
        if len(active) <= 1:
            ctx = self._rt.ctx
            raise ModelError(
                f"KV cache too small ({ctx.n_ctx if ctx else '?'} cells) for one candidate"
            )
        g = max(active, key=lambda x: x.order)
        active.remove(g)
        for c in g.members:
            self._tree.release(c.seq)  # kept while room allows: resuming may find it all
            c.seq = -1
        g.pending = -1
        waiting.append(g)
        waiting.sort(key=lambda x: x.order)
        self.stats.pauses += 1

    def _finish(self, c: _Cand, cand: Candidate) -> None:
        c.done = cand
        if not self.prefix_cache:
            self._tree.drop(c.seq)
        else:
            if cand.finish != "stop":  # terminal: keep only its prompt (if nobody else does)
                self._tree.truncate(c.seq, c.n_prompt)
            if c.seq in self._tree.info:
                self._tree.release(c.seq)
        c.seq = -1

    def _sample(
        self, model: _Model, ctx: _Context, reqs: Sequence[StepRequest], groups: list[_Group]
    ) -> list[_Group]:
        logits = ctx.logits_rows(len(groups))
        hid = ctx.hidden_rows(len(groups), model.n_embd) if ctx.hidden_on else None
        draws: list[list[tuple[int, float]]] = [[] for _ in groups]
        by_params: dict[tuple[float, float], list[int]] = {}
        for i, g in enumerate(groups):
            r = reqs[g.members[0].req]
            by_params.setdefault((r.temperature, r.top_p), []).append(i)
        for (temp, top_p), idx in by_params.items():
            rows = logits[idx] if len(idx) < len(groups) else logits
            got = sample_rows(rows, temp, top_p, [[c.rng for c in groups[i].members] for i in idx])
            for i, d in zip(idx, got, strict=True):
                draws[i] = d
        if self.script is not None or self.recorded is not None:
            draws = self._replay(reqs, groups, draws, logits)
        out: list[_Group] = []
        for gi, (g, ds) in enumerate(zip(groups, draws, strict=True)):
            split: dict[int, list[_Cand]] = {}
            row = hid[gi].copy() if hid is not None else None
            for c, (tok, lp) in zip(g.members, ds, strict=True):
                c.h_prev, c.h = c.h, row
                c.n_tokens += 1
                c.logprob += lp
                if model.is_eog(tok):
                    self._finish(c, self._cand(c, "eos"))
                    continue
                c.data += model.piece(tok)
                hit = self._stop(c)
                if hit is not None:
                    self._finish(c, Candidate(hit[0], c.n_tokens, "stop", hit[1], c.logprob, c.h))
                elif c.n_tokens >= c.max_new:
                    self._finish(c, self._cand(c, "length"))
                else:
                    split.setdefault(tok, []).append(c)
            for tok, members in split.items():
                out.append(_Group(members, g.prompt, [*g.gen, tok], pending=1))
        return out

    def _replay(
        self,
        reqs: Sequence[StepRequest],
        groups: list[_Group],
        draws: list[list[tuple[int, float]]],
        logits: np.ndarray,
    ) -> list[list[tuple[int, float]]]:
        """Benchmark support: record each candidate's tokens, or force them from `script`."""
        out = []
        for i, (g, ds) in enumerate(zip(groups, draws, strict=True)):
            row = []
            for c, (tok, lp) in zip(g.members, ds, strict=True):
                r = reqs[c.req]
                key = (r.prefix, r.seed, c.idx)
                forced = self.script.get(key) if self.script is not None else None
                if forced is not None and c.n_tokens < len(forced):
                    self.replay_stats[1] += 1
                    if forced[c.n_tokens] == tok:
                        self.replay_stats[0] += 1
                    else:
                        tok = forced[c.n_tokens]
                        lp = token_logprob(logits[i], r.temperature, tok)
                if self.recorded is not None:
                    self.recorded.setdefault(key, []).append(tok)
                row.append((tok, lp))
            out.append(row)
        return out

    @staticmethod
    def _cand(c: _Cand, finish: str) -> Candidate:
        # 'eos': the end token is not in the text, so the step's last token is the one before
        h = c.h_prev if finish == "eos" else c.h
        return Candidate(
            c.data.decode("utf-8", errors="replace"), c.n_tokens, finish, None, c.logprob, h
        )

    @staticmethod
    def _stop(c: _Cand) -> tuple[str, str] | None:
        """`StopMatcher.check` on the whole text, searching only where a new match can be."""
        if not c.stops:
            return None
        text = c.data.decode("utf-8", errors="replace")
        w0 = max(0, c.checked - max(len(s) for s in c.stops) - 4)
        c.checked = len(text)
        best: tuple[int, str] | None = None
        for s in c.stops:
            i = text.find(s, w0)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        if best is None:
            return None
        i, s = best
        return text[: i + len(s)], s


# --------------------------------------------------------------------------------------------
# Reward (PPM)


class LlamaCppReward:
    """Reward backend (PPM) over a GGUF file exported from a ppm checkpoint.

    All prefixes of a call are decoded together, each on its own sequence forked from its
    longest cached prefix; the pooled LAST-token hidden state h gives
    score = tanh((w . h + b) / score_scale). Scored prefixes stay cached (LRU); scores depend on
    earlier calls only through float rounding (~1e-7). `prefix_cache=False` clears the cache
    before every call.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_seq_max: int = 64,
        kv_f32: bool = False,
        extra_bufts: bool | None = None,
        *,
        n_batch: int = 512,
        prefix_cache: bool = True,
        lora: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        _check_seqs(n_seq_max)
        if isinstance(n_ctx, int) and n_ctx > 1:
            n_seq_max = min(n_seq_max, n_ctx)  # llama.cpp wants sequences <= batch <= n_ctx
        self._rt = _Runtime(
            model_path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
            n_seq_max=n_seq_max,
            kv_f32=kv_f32,
            embeddings=True,
            extra_bufts=extra_bufts,
            n_batch=n_batch,
            flash_attn=False,
            lora=lora,
            lora_scale=lora_scale,
        )
        try:
            self.weight, self.bias, self.score_scale = self._read_head()
        except BaseException:
            self._rt.close()
            raise
        _, ctx, _ = self._rt.parts()
        self._tree = KVTree(ctx, ctx.n_ctx, n_seq_max)
        self.prefix_cache = bool(prefix_cache)
        self.tokens_evaluated = 0
        self.name = f"llamacpp-ppm:{self._rt.path.name}" + _adapter_suffix(self._rt)

    def _read_head(self) -> tuple[np.ndarray, float, float]:
        model, _, _ = self._rt.parts()
        return read_value_head(model, self._rt.path)

    def hidden_states(self, prefixes: Sequence[str]) -> np.ndarray:
        """[len(prefixes), hidden] last-token hidden states (after the final norm)."""
        with self._rt.lock:
            model, ctx, batch = self._rt.parts()
            toks = [model.tokenize(p) for p in prefixes]
            for tk in toks:
                if not tk:
                    raise InputError("empty prefix and the model has no BOS or EOS token")
                if len(tk) > ctx.n_ctx:
                    raise InputError(f"prefix is {len(tk)} tokens; the context holds {ctx.n_ctx}")
            if not self.prefix_cache:
                self._reset()
            uniq: dict[tuple[int, ...], int] = {}
            for tk in toks:
                uniq.setdefault(tuple(tk), len(uniq))
            hs = np.zeros((len(uniq), model.n_embd), dtype=np.float64)
            try:
                self._embed(model, ctx, batch, [list(k) for k in uniq], hs)
            except BaseException:
                self._reset()
                raise
            return hs[[uniq[tuple(tk)] for tk in toks]]

    def _embed(
        self, model: _Model, ctx: _Context, batch: _Batch, toks: list[list[int]], out: np.ndarray
    ) -> None:
        t = self._tree
        todo = list(range(len(toks)))
        while todo:
            # a wave: as many prefixes as sequences and cells allow, each from its cached prefix
            wave: list[tuple[int, int, int]] = []  # (index, seq, first position to decode)
            need = 0
            while todo:
                i = todo[0]
                tk = toks[i]
                m = t.lookup(tk) if self.prefix_cache else Match(0, None, 0)
                n = min(m.n, len(tk) - 1)
                protect = {s for _, s, _ in wave} | ({m.seq} if m.seq is not None else set())
                if not t.make_room(need + len(tk) - n, protect):
                    if wave:
                        break
                    raise ModelError(f"KV cache too small ({ctx.n_ctx} cells)")
                src = m.seq if n > 0 else None
                if src is not None and m.seq_len == n and not t.is_live(src):
                    t.take(src)
                    seq = src
                else:
                    got = t.alloc(protect)
                    if got is None:
                        if wave:
                            break
                        raise ModelError("no llama.cpp sequence available")
                    seq = got
                    if src is None:
                        t.new_empty(seq)
                    else:
                        t.fork(src, seq, n)
                wave.append((i, seq, n))
                need += len(tk) - n
                todo.pop(0)
            rows = [(i, seq, p) for i, seq, n in wave for p in range(n, len(toks[i]))]
            for s0 in range(0, len(rows), batch.capacity):
                chunk = rows[s0 : s0 + batch.capacity]
                batch.clear()
                for i, seq, p in chunk:
                    batch.add(toks[i][p], p, (seq,), p == len(toks[i]) - 1)
                if ctx.try_decode(batch) != 0:
                    raise ModelError("llama_decode failed (KV cache full?)")
                self.tokens_evaluated += len(chunk)
                for i, seq, p in chunk:
                    t.append([seq], [toks[i][p]])
                    if p == len(toks[i]) - 1:
                        out[i] = ctx.seq_embedding(seq, model.n_embd)
            for _, seq, _ in wave:
                if self.prefix_cache:
                    t.release(seq)
                else:
                    t.drop(seq)

    def _reset(self) -> None:
        if self._rt.ctx is not None:
            self._rt.ctx.clear()
        self._tree.clear()

    def score(self, prefixes: Sequence[str]) -> list[float]:
        if not prefixes:
            return []
        h = self.hidden_states(prefixes)
        r = h @ self.weight + self.bias
        return [float(x) for x in np.tanh(r / self.score_scale)]

    def close(self) -> None:
        with self._rt.lock:
            self._rt.close()
            self._tree.clear()

    def __enter__(self) -> LlamaCppReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _adapter_suffix(rt: _Runtime) -> str:
    return f"+lora:{rt.adapter.path.name}" if rt.adapter is not None else ""
