"""ONNX Runtime backend: `OnnxPolicy` and `OnnxReward` on a folder written by
`edgestar.quantize.onnx_export` (model.onnx with past key values + tokenizer.json +
edgestar.json; see that module for the folder's contract).

Owns:
- `OnnxPolicy`: the `Policy` protocol with KV tensors kept per prefix as numpy arrays. A
  request's prefix is evaluated once (prefill with zero-length past tensors, or only the new
  suffix when a cached prefix's tokens start it), its present KV is repeated to k rows and the k
  candidates are decoded together, batch = k, token by token, with the shared sampler
  (`sampling.candidate_rngs`, `sample_token`, `StopMatcher`). Semantics mirror `TorchPolicy`
  exactly: stop strings on decoded text with special tokens kept, finish 'stop' / 'eos' /
  'length', finished rows leave the batch, the same context-length budget.
- `OnnxReward`: the `Reward` protocol on a PPM export whose graph has the extra output
  "reward" (raw r = w . h + b at every position); score = tanh(r[last] / score_scale), with
  score_scale from edgestar.json's value_head.
- `PrefixKVCache`: a small LRU from token tuples to (KV arrays, last-position output), bounded
  by entries and bytes. A lookup returns the longest cached token tuple that starts the new
  ids, so only the rest is evaluated. The policy caches each request's prefix and each finished
  candidate's row (key = the tokens fed so far, last = the logits the final token was sampled
  from), so proposing from a child node evaluates only what re-tokenisation changed; the reward
  caches every scored prefix, so a child is scored from its parent's KV. Keys are token ids,
  never text, so a hit is exact by construction; the only effect of the cache on answers is
  float rounding (~1e-6 in logits) from evaluating a suffix against cached KV instead of the
  whole prefix.
- `chat_prompt`: the tokenizer's chat template (chat_template.jinja, else tokenizer_config.json)
  rendered with jinja2's ImmutableSandboxedEnvironment the way transformers does it
  (trim_blocks, lstrip_blocks, loopcontrols, tojson without HTML escaping, raise_exception,
  strftime_now, {% generation %} blocks passed through, special tokens as variables).

Runtime only: imports numpy at module level and onnxruntime, tokenizers, jinja2 lazily (so
`import edgestar` never loads onnxruntime); never torch, transformers or optimum. Files are
checked before onnxruntime sees them: a missing or garbage model.onnx, tokenizer.json or
edgestar.json is a one-line ModelError.

Tokenisation mirrors `torch_backend.encode_prefix` with the `tokenizers` library: special
tokens (markers) become their ids, a BOS goes in front when the tokenizer's post-processor adds
one, an empty prefix becomes [EOS] when there is no BOS. Decoding keeps special tokens and does
no clean-up, like TorchPolicy.

Devices: "cpu"; "auto" = CUDAExecutionProvider when onnxruntime has it, else CPU; "cuda"
requires it; "tensorrt" (opt-in, not part of "auto": TensorRT rebuilds engines for every new
sequence length unless shape profiles are configured) = TensorRT, CUDA, CPU. Providers are
always passed explicitly. KV stays in host numpy arrays between calls (correctness first; on a
GPU, IO binding would avoid the copies).

Threads: each instance holds one lock, so concurrent calls are serialised rather than
corrupted (the session is thread-safe, the prefix cache is not). For parallel work, make one
instance per thread and split the cores with `threads=` (intra-op threads per session;
inter-op is 1).

Departs from STACK.md: nothing; the ONNX notes there (optimum inputs, zero-length past,
explicit providers) are what this reads.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import META_FILE, CheckpointMeta, read_meta
from ..types import InputError, ModelError, one_line
from .base import Candidate, Proposal, StepRequest
from .sampling import StopMatcher, candidate_rngs, sample_token

__all__ = [
    "MODEL_FILE",
    "REWARD_OUTPUT",
    "VALUE_HEAD_NODE_PREFIX",
    "OnnxPolicy",
    "OnnxReward",
    "PrefixKVCache",
    "check_onnx_header",
    "resolve_providers",
]

MODEL_FILE = "model.onnx"
REWARD_OUTPUT = "reward"
"""Extra graph output of a PPM export: raw reward r at every position, [batch, sequence]."""
VALUE_HEAD_NODE_PREFIX = "/value_head/"
"""Names of the nodes the exporter appends for the value head (excluded from quantization)."""
TOKENIZER_FILE = "tokenizer.json"

_NP_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}

# --------------------------------------------------------------------------------- helpers


def _read_json(path: Path, required: bool = False) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise ModelError(f"{path.parent}: no {path.name}")
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable ({one_line(e)})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return d


def check_onnx_header(path: str | os.PathLike[str]) -> Path:
    """ModelError unless `path` is a non-empty file that starts like an ONNX ModelProto
    (field 1, ir_version, varint: byte 0x08). Cheap; onnxruntime does the full parse."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p.parent}: no {p.name} (not an ONNX export folder)")
    try:
        with open(p, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise ModelError(f"{p}: unreadable ({one_line(e)})") from None
    if len(head) < 2 or head[0] != 0x08:
        raise ModelError(f"{p}: not an ONNX model (bad header)")
    return p


def _check_threads(threads: int | None) -> None:
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InputError(f"threads must be a positive whole number, got {threads!r}")


def resolve_providers(device: str) -> list[str]:
    """Execution providers for `device`, always ending with CPUExecutionProvider."""
    import onnxruntime as ort

    avail = set(ort.get_available_providers())
    cpu = ["CPUExecutionProvider"]
    if device == "cpu":
        return cpu
    if device == "auto":
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in avail else []) + cpu
    if device == "cuda":
        if "CUDAExecutionProvider" not in avail:
            raise InputError("device 'cuda' requested but onnxruntime has no CUDAExecutionProvider")
        return ["CUDAExecutionProvider", *cpu]
    if device == "tensorrt":
        if "TensorrtExecutionProvider" not in avail:
            raise InputError(
                "device 'tensorrt' requested but onnxruntime has no TensorrtExecutionProvider"
            )
        extra = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in avail else []
        return ["TensorrtExecutionProvider", *extra, *cpu]
    raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'tensorrt', got {device!r}")


# ------------------------------------------------------------------------------- tokenizer


def _token_str(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return str(v["content"])
    return None


class _Tokenizer:
    """tokenizer.json through the `tokenizers` library + the special tokens transformers
    would read from tokenizer_config.json / special_tokens_map.json."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        tj = path / TOKENIZER_FILE
        if not tj.is_file():
            raise ModelError(f"{path}: no {TOKENIZER_FILE}")
        try:
            self.tok = Tokenizer.from_file(str(tj))
        except Exception as e:  # tokenizers raises Exception subclasses with long messages
            raise ModelError(f"{tj}: cannot load the tokenizer ({one_line(e)})") from None
        cfg = _read_json(path / "tokenizer_config.json")
        smap = _read_json(path / "special_tokens_map.json")
        self.special: dict[str, Any] = {}
        for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
            s = _token_str(cfg.get(key)) or _token_str(smap.get(key))
            if s is not None:
                self.special[key] = s
        extra = cfg.get("additional_special_tokens") or smap.get("additional_special_tokens")
        if isinstance(extra, list):
            self.special["additional_special_tokens"] = [
                t for t in (_token_str(x) for x in extra) if t is not None
            ]
        self.bos_id = self._id(self.special.get("bos_token"))
        self.eos_id = self._id(self.special.get("eos_token"))
        self.pad_id = self._id(self.special.get("pad_token"))
        self.adds_bos = self.bos_id is not None and self.tok.encode(
            "0", add_special_tokens=True
        ).ids[:1] == [self.bos_id]
        self.chat_template = self._chat_template(path, cfg)

    def _id(self, s: str | None) -> int | None:
        if s is None:
            return None
        i = self.tok.token_to_id(s)
        return int(i) if i is not None else None

    @staticmethod
    def _chat_template(path: Path, cfg: dict[str, Any]) -> str | None:
        jf = path / "chat_template.jinja"
        if jf.is_file():
            try:
                return jf.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ModelError(f"{jf}: unreadable ({one_line(e)})") from None
        t = cfg.get("chat_template")
        if isinstance(t, list):  # [{"name": ..., "template": ...}]
            named = {d.get("name"): d.get("template") for d in t if isinstance(d, dict)}
            t = named.get("default")
        return t if isinstance(t, str) and t else None

    def __len__(self) -> int:
        return int(self.tok.get_vocab_size(with_added_tokens=True))

    def encode_prefix(self, text: str) -> list[int]:
        """Same ids as torch_backend.encode_prefix on the HF tokenizer."""
        ids: list[int] = list(self.tok.encode(text, add_special_tokens=False).ids)
        if self.adds_bos and self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id, *ids]
        if not ids:
            if self.eos_id is None:
                raise InputError("empty prefix and the tokenizer has no BOS or EOS token")
            ids = [self.eos_id]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tok.decode(list(ids), skip_special_tokens=False))


def _render_chat(template: str, messages: Sequence[dict[str, str]], special: dict[str, Any]) -> str:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(Extension):  # transformers' {% generation %} marks assistant text
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_passthrough")
            return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _passthrough(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template).render(
        messages=list(messages), tools=None, documents=None, add_generation_prompt=True, **special
    )


# ---------------------------------------------------------------------------------- session


class _Session:
    """One onnxruntime session over an optimum decoder-with-past graph."""

    def __init__(self, path: Path, device: str, threads: int | None) -> None:
        import onnxruntime as ort

        model = check_onnx_header(path / MODEL_FILE)
        providers = resolve_providers(device)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads is not None:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        try:
            self.sess = ort.InferenceSession(str(model), sess_options=so, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf / ...
            raise ModelError(f"{model}: onnxruntime cannot load it ({one_line(e)})") from None
        self.providers = list(self.sess.get_providers())
        inputs = {i.name: i for i in self.sess.get_inputs()}
        outputs = {o.name: o for o in self.sess.get_outputs()}
        for need in ("input_ids", "attention_mask"):
            if need not in inputs:
                raise ModelError(f"{model}: graph has no input {need!r} (not a decoder export)")
        if "logits" not in outputs:
            raise ModelError(f"{model}: graph has no output 'logits'")
        self.has_position_ids = "position_ids" in inputs
        self.has_reward = REWARD_OUTPUT in outputs
        self.past_names = [n for n in inputs if n.startswith("past_key_values.")]
        if not self.past_names:
            raise ModelError(f"{model}: graph has no past_key_values inputs (export with past)")
        self.present_names = [n.replace("past_key_values.", "present.", 1) for n in self.past_names]
        missing = [n for n in self.present_names if n not in outputs]
        if missing:
            raise ModelError(f"{model}: graph lacks outputs {missing[:2]} for its past inputs")
        cfg = _read_json(path / "config.json")
        self.kv_shapes: list[tuple[int, int]] = []
        self.kv_dtypes: list[Any] = []
        for n in self.past_names:
            shape = inputs[n].shape
            heads, dim = (shape[1], shape[3]) if len(shape) == 4 else (None, None)
            if not isinstance(heads, int) or not isinstance(dim, int):
                heads = cfg.get("num_key_value_heads") or cfg.get("num_attention_heads")
                dim = cfg.get("head_dim") or (
                    cfg["hidden_size"] // cfg["num_attention_heads"]
                    if cfg.get("hidden_size") and cfg.get("num_attention_heads")
                    else None
                )
            if not isinstance(heads, int) or not isinstance(dim, int):
                raise ModelError(f"{model}: cannot tell the KV shape of input {n!r}")
            self.kv_shapes.append((heads, dim))
            self.kv_dtypes.append(_NP_TYPES.get(inputs[n].type, np.float32))
        self.int_types = {
            n: _NP_TYPES.get(inputs[n].type, np.int64)
            for n in ("input_ids", "attention_mask", "position_ids")
            if n in inputs
        }
        vshape = outputs["logits"].shape
        self.vocab = vshape[-1] if vshape and isinstance(vshape[-1], int) else None
        mp = cfg.get("max_position_embeddings")
        self.max_positions = int(mp) if isinstance(mp, int) and mp > 0 else None

    def empty_past(self, batch: int) -> list[np.ndarray]:
        return [
            np.zeros((batch, h, 0, d), dtype=t)
            for (h, d), t in zip(self.kv_shapes, self.kv_dtypes, strict=True)
        ]

    def run(
        self,
        ids: np.ndarray,
        past: list[np.ndarray] | None,
        past_len: int,
        logits: bool = True,
        reward: bool = False,
    ) -> tuple[np.ndarray | None, list[np.ndarray], np.ndarray | None]:
        """Evaluate `ids` [B, S] after `past` (KV of length past_len, or None = empty); return
        (logits [B, S, V] or None, present KV, reward [B, S] or None)."""
        b, s = ids.shape
        feeds: dict[str, np.ndarray] = {
            "input_ids": ids.astype(self.int_types["input_ids"], copy=False),
            "attention_mask": np.ones((b, past_len + s), dtype=self.int_types["attention_mask"]),
        }
        if self.has_position_ids:
            pos = np.arange(past_len, past_len + s, dtype=self.int_types["position_ids"])
            feeds["position_ids"] = np.broadcast_to(pos, (b, s)).copy()
        kv = past if past is not None else self.empty_past(b)
        feeds.update(zip(self.past_names, kv, strict=True))
        names = (["logits"] if logits else []) + ([REWARD_OUTPUT] if reward else [])
        outs = self.sess.run(names + self.present_names, feeds)
        lg = outs.pop(0) if logits else None
        rw = outs.pop(0) if reward else None
        return lg, list(outs), rw


# ------------------------------------------------------------------------------ prefix cache


@dataclass
class _Entry:
    kv: list[np.ndarray]
    last: np.ndarray
    nbytes: int


class PrefixKVCache:
    """LRU map from token tuples to (KV arrays of batch 1, last-position output), bounded by
    `max_entries` and `max_bytes` (KV + last). Not thread-safe (the backends lock around it)."""

    def __init__(self, max_entries: int = 32, max_bytes: int = 256 * 1024 * 1024) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise InputError(f"cache entries must be a whole number >= 0, got {max_entries!r}")
        self.max_entries = max_entries
        self.max_bytes = int(max_bytes)
        self._d: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    def lookup(self, ids: Sequence[int]) -> tuple[tuple[int, ...], _Entry] | None:
        """The longest cached key that `ids` starts with (possibly all of `ids`)."""
        best: tuple[int, ...] | None = None
        n = len(ids)
        for key in self._d:
            m = len(key)
            if m <= n and (best is None or m > len(best)) and tuple(ids[:m]) == key:
                best = key
        if best is None:
            self.misses += 1
            return None
        self.hits += 1
        self._d.move_to_end(best)
        return best, self._d[best]

    def put(self, key: tuple[int, ...], kv: list[np.ndarray], last: np.ndarray) -> None:
        if self.max_entries == 0 or not key:
            return
        nbytes = sum(a.nbytes for a in kv) + last.nbytes
        if nbytes > self.max_bytes:
            return
        old = self._d.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._d[key] = _Entry(kv, last, nbytes)
        self.nbytes += nbytes
        while self._d and (len(self._d) > self.max_entries or self.nbytes > self.max_bytes):
            _, e = self._d.popitem(last=False)
            self.nbytes -= e.nbytes

    def clear(self) -> None:
        self._d.clear()
        self.nbytes = 0


def _load_common(
    model_dir: str | os.PathLike[str], device: str, threads: int | None
) -> tuple[Path, CheckpointMeta | None, _Tokenizer, _Session]:
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: no such ONNX model folder")
    _check_threads(threads)
    check_onnx_header(path / MODEL_FILE)
    meta = read_meta(path) if (path / META_FILE).exists() else None
    tok = _Tokenizer(path)
    sess = _Session(path, device, threads)
    if sess.vocab is not None and len(tok) > sess.vocab:
        raise ModelError(
            f"{path}: the tokenizer has {len(tok)} tokens but the model's vocabulary is "
            f"{sess.vocab}"
        )
    for s in meta.special_tokens if meta else ():
        ids = tok.tok.encode(s, add_special_tokens=False).ids
        if len(ids) != 1:
            raise ModelError(f"{path}: special token {s!r} is not one token (ids {ids})")
    return path, meta, tok, sess


def _check_len(n: int, max_positions: int | None) -> None:
    if max_positions is not None and n > max_positions:
        raise InputError(f"prefix is {n} tokens; the model's context holds {max_positions}")


# ----------------------------------------------------------------------------------- policy


class OnnxPolicy:
    """`Policy` on an ONNX export folder (see the module docstring).

    `Proposal.tokens_evaluated` = prefix tokens not found in the prefix cache + generated tokens
    (an EOS counts as generated); with a cold cache that equals TorchPolicy's prefix + generated.
    `cache_entries=0` turns the prefix cache off.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        device: str = "auto",
        threads: int | None = None,
        name: str | None = None,
        cache_entries: int = 32,
        cache_mb: float = 256.0,
    ) -> None:
        path, meta, tok, sess = _load_common(model_dir, device, threads)
        self.path = path
        self.meta = meta
        self.tokenizer = tok
        self._sess: _Session | None = sess
        self.providers = sess.providers
        self.max_positions = sess.max_positions
        eos: set[int] = set() if tok.eos_id is None else {tok.eos_id}
        gen_eos = _read_json(path / "generation_config.json").get("eos_token_id")
        if gen_eos is not None:
            eos.update(int(t) for t in (gen_eos if isinstance(gen_eos, list) else [gen_eos]))
        self.eos_ids = frozenset(eos)
        self.cache = PrefixKVCache(cache_entries, int(cache_mb * 1024 * 1024))
        self.name = name or f"onnx:{path.name}"
        self._lock = threading.Lock()

    # -- Policy protocol

    def propose(self, requests: Sequence[StepRequest]) -> list[Proposal]:
        with self._lock:
            if self._sess is None:
                raise ModelError(f"{self.name}: policy is closed")
            return [self._propose_one(self._sess, r) for r in requests]

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str | None:
        template = self.tokenizer.chat_template
        if not template:
            return None
        try:
            return str(_render_chat(template, messages, self.tokenizer.special))
        except Exception as e:  # jinja2 errors, bad message dicts
            raise ModelError(f"{self.name}: chat template failed ({one_line(e)})") from e

    def close(self) -> None:
        with self._lock:
            self._sess = None
            self.cache.clear()

    # -- internals

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode_prefix(text)

    def _prefix_state(
        self, sess: _Session, ids: list[int]
    ) -> tuple[list[np.ndarray], np.ndarray, int]:
        """KV of `ids` (batch 1), the logits after it, and how many tokens were evaluated."""
        hit = self.cache.lookup(ids)
        if hit is not None and len(hit[0]) == len(ids):
            return hit[1].kv, hit[1].last, 0
        start = len(hit[0]) if hit is not None else 0
        past = hit[1].kv if hit is not None else None
        lg, kv, _ = sess.run(np.array([ids[start:]], dtype=np.int64), past, start)
        assert lg is not None
        last = np.array(lg[0, -1], dtype=np.float32)
        self.cache.put(tuple(ids), kv, last)
        return kv, last, len(ids) - start

    def _propose_one(self, sess: _Session, req: StepRequest) -> Proposal:
        k = req.k
        ids = self.encode(req.prefix)
        n_prompt = len(ids)
        budget = req.max_tokens
        if self.max_positions is not None:
            _check_len(n_prompt, self.max_positions)
            # The last generated token is never fed back, hence the + 1.
            budget = min(budget, self.max_positions - n_prompt + 1)

        kv, last, n_eval = self._prefix_state(sess, ids)
        if k > 1:
            kv = [np.repeat(a, k, axis=0) for a in kv]
        logits = np.broadcast_to(last, (k, last.shape[-1]))
        past_len = n_prompt

        rngs = candidate_rngs(req.seed, k)
        matcher = StopMatcher(req.stop)
        toks: list[list[int]] = [[] for _ in range(k)]
        logprobs = [0.0] * k
        results: list[Candidate | None] = [None] * k
        active = list(range(k))  # candidate index of each batch row
        while active:
            keep_rows: list[int] = []
            feed: list[int] = []
            for row, ci in enumerate(active):
                tok, lp = sample_token(logits[row], req.temperature, req.top_p, rngs[ci])
                logprobs[ci] += lp
                if tok in self.eos_ids:
                    results[ci] = Candidate(
                        self.tokenizer.decode(toks[ci]),
                        len(toks[ci]) + 1,
                        "eos",
                        None,
                        logprobs[ci],
                    )
                    self._cache_row(ids, toks[ci], kv, row, logits[row])
                    continue
                toks[ci].append(tok)
                text = self.tokenizer.decode(toks[ci])
                hit = matcher.check(text) if matcher.stops else None
                if hit is not None:
                    results[ci] = Candidate(hit[0], len(toks[ci]), "stop", hit[1], logprobs[ci])
                elif len(toks[ci]) >= budget:
                    results[ci] = Candidate(text, len(toks[ci]), "length", None, logprobs[ci])
                else:
                    keep_rows.append(row)
                    feed.append(tok)
                    continue
                self._cache_row(ids, toks[ci][:-1], kv, row, logits[row])
            if not keep_rows:
                break
            if len(keep_rows) < len(active):
                kv = [a[keep_rows] for a in kv]
            active = [active[r] for r in keep_rows]
            lg, kv, _ = sess.run(np.array(feed, dtype=np.int64).reshape(-1, 1), kv, past_len)
            assert lg is not None
            logits = lg[:, -1, :]
            past_len += 1

        cands = tuple(c for c in results if c is not None)
        assert len(cands) == k
        return Proposal(cands, n_eval + sum(c.n_tokens for c in cands))

    def _cache_row(
        self, ids: list[int], fed: list[int], kv: list[np.ndarray], row: int, logits: np.ndarray
    ) -> None:
        """Cache one finished candidate: KV of ids + fed tokens and the logits after them."""
        if not fed or self.cache.max_entries == 0:
            return  # nothing beyond the prefix, which is cached already
        key = (*ids, *fed)
        self.cache.put(
            key,
            [np.ascontiguousarray(a[row : row + 1]) for a in kv],
            np.array(logits, dtype=np.float32),
        )


# ----------------------------------------------------------------------------------- reward


class OnnxReward:
    """`Reward` on a PPM ONNX export (graph output "reward"): scores in (-1, 1).

    Each prefix is looked up in the prefix cache; prefixes that share the same cached prefix
    (siblings under one parent) are evaluated together, right-padded, in batches of up to
    `batch_size` rows: under the causal mask a real token never sees the padding after it, so
    each row's last real token gets its unpadded reward (TorchReward's argument).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        device: str = "auto",
        threads: int | None = None,
        batch_size: int = 16,
        name: str | None = None,
        cache_entries: int = 64,
        cache_mb: float = 256.0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive whole number, got {batch_size!r}")
        path = Path(model_dir)
        if path.is_dir() and not (path / META_FILE).is_file():
            raise ModelError(f"{path}: no {META_FILE} (a PPM export needs its value_head meta)")
        path, meta, tok, sess = _load_common(model_dir, device, threads)
        assert meta is not None
        if meta.role != "ppm":
            raise ModelError(f"{path}: edgestar.json role is {meta.role!r}, not 'ppm'")
        vh = meta.value_head or {}
        if vh.get("squash", "tanh") != "tanh":
            raise ModelError(f"{path}: value head squash {vh.get('squash')!r} is not supported")
        if not sess.has_reward:
            raise ModelError(
                f"{path}: graph has no {REWARD_OUTPUT!r} output (re-export the PPM checkpoint "
                "with edgestar.quantize.onnx_export.export_onnx)"
            )
        self.score_scale = meta.score_scale
        if not (self.score_scale > 0):
            raise ModelError(f"{path}: value_head score_scale must be positive")
        self.path = path
        self.meta = meta
        self.tokenizer = tok
        self._sess: _Session | None = sess
        self.providers = sess.providers
        self.max_positions = sess.max_positions
        pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
        self.pad_id = int(pad if pad is not None else 0)
        self.batch_size = batch_size
        self.cache = PrefixKVCache(cache_entries, int(cache_mb * 1024 * 1024))
        self.name = name or f"onnx-ppm:{path.name}"
        self._lock = threading.Lock()

    def score(self, prefixes: Sequence[str]) -> list[float]:
        r = self.raw_rewards(prefixes)
        return [float(np.tanh(x / self.score_scale)) for x in r]

    def raw_rewards(self, prefixes: Sequence[str]) -> list[float]:
        """r = w . h + b before squashing."""
        with self._lock:
            if self._sess is None:
                raise ModelError(f"{self.name}: reward model is closed")
            return self._raw(self._sess, prefixes)

    def close(self) -> None:
        with self._lock:
            self._sess = None
            self.cache.clear()

    def _raw(self, sess: _Session, prefixes: Sequence[str]) -> list[float]:
        encoded = [self.tokenizer.encode_prefix(p) for p in prefixes]
        for ids in encoded:
            _check_len(len(ids), self.max_positions)
        out: list[float | None] = [None] * len(encoded)
        groups: dict[tuple[int, ...], tuple[_Entry | None, list[int]]] = {}
        for i, ids in enumerate(encoded):
            hit = self.cache.lookup(ids)
            if hit is not None and len(hit[0]) == len(ids):
                out[i] = float(hit[1].last)
                continue
            key = hit[0] if hit is not None else ()
            groups.setdefault(key, (hit[1] if hit is not None else None, []))[1].append(i)
        for key, (entry, rows) in groups.items():
            rows.sort(key=lambda i: len(encoded[i]))
            start = len(key)
            for c in range(0, len(rows), self.batch_size):
                chunk = rows[c : c + self.batch_size]
                sufs = [encoded[i][start:] for i in chunk]
                width = max(len(s) for s in sufs)
                batch = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
                for j, s in enumerate(sufs):
                    batch[j, : len(s)] = s
                past = None
                if entry is not None:
                    past = [np.repeat(a, len(chunk), axis=0) for a in entry.kv]
                _, kv, rw = sess.run(batch, past, start, logits=False, reward=True)
                assert rw is not None
                for j, i in enumerate(chunk):
                    n = len(sufs[j])
                    r = float(rw[j, n - 1])
                    out[i] = r
                    self.cache.put(
                        tuple(encoded[i]),
                        [np.ascontiguousarray(a[j : j + 1, :, : start + n]) for a in kv],
                        np.array(r, dtype=np.float64),
                    )
        return [float(x) for x in out]  # type: ignore[arg-type]
