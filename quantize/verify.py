"""Parity verification of exported models: `verify_gguf`, `verify_onnx`, `verify_requant`.

Owns the checks that run after every export (and inside `edgestar deploy`), their tolerance
table (`TOLERANCES`, one row per quant type) and their report (`VerifyReport`, written as
`<file>.verify.json` and `<file>.verify.md` beside the checked file). A failed check raises
`ModelError` with a one-line summary, AFTER the report is written, so the numbers are on disk.

What is compared (reference = the source HF checkpoint on torch, `TorchReference`; for
`verify_requant` = the source GGUF on llama.cpp):

- tokenizer: ids of a fixed string set (digits, code, every rStar marker of `Marker.ALL` alone
  and run together, the EOS text, Unicode, whitespace runs, a whole rstar solution) must be
  IDENTICAL (`TOKENIZER_STRINGS`). Always exact, whatever the quant.
- logits: every position of each fixed prompt (`PROMPTS`): max and mean |diff|, and top-1
  agreement (share of positions whose argmax is the same: teacher-forced, so one early flip
  does not poison the rest).
- greedy: the target backend's own decode path (`propose`, temperature 0, `GREEDY_TOKENS`
  tokens) against the reference's argmax decode; agreement = leading tokens the target
  reproduces / tokens generated, summed over prompts (a token counts when the target's text
  starts with the reference's text up to and including it).
- PPM only: score drift (max |diff| of tanh-squashed scores over the pair prefixes) and pairwise
  ranking agreement on held pairs (`PAIR_GROUPS`: sibling steps under one parent, the shape of
  PPM training pairs): the share of pairs whose order (sign of score difference) the target
  keeps.
- file size and load time (the runtime object's constructor, file -> ready).

llama.cpp runs with an F32 KV cache and flash attention off (`kv_f32=True`), so the drift
measured is the file's (export + weight quantization), not the F16 cache's (~3e-3 on its own).

Tolerances: measured here (2-core Xeon, 1 thread) on tiny random checkpoints of `train.tiny`
and on a real third-party GGUF (SmolLM2-135M), then loosened by a margin; the comment above
`TOLERANCES` has the figures. Logit drift is judged relative to the reference logits' standard
deviation, so one table serves a toy (std 0.2) and a real model (std 6). Random tiny models have
nearly flat logits, so near-ties flip under quantization: the max drift is bounded only for
f32/f16/bf16, and the low-bit rows lean on the agreement shares; a model exported from the wrong
checkpoint fails every row by far (top-1 agreement 0, mean drift 1.1 x std).

Needs torch + transformers for the torch reference (the [quantize] extra), llama-cpp-python for
GGUF targets, onnxruntime (+ edgestar.backends.onnx) for ONNX targets.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.checkpoint import META_FILE, atomic_write_text, read_meta
from edgestar.formats import RSTAR, Marker, rstar_solution
from edgestar.types import InputError, ModelError

__all__ = [
    "GREEDY_TOKENS",
    "PAIR_GROUPS",
    "PROMPTS",
    "TOKENIZER_STRINGS",
    "TOLERANCES",
    "Check",
    "Tolerance",
    "TorchReference",
    "VerifyReport",
    "tolerance_for",
    "verify_gguf",
    "verify_onnx",
    "verify_requant",
]

# --------------------------------------------------------------------------------------------
# Fixed inputs (data)

_Q1 = "What is (12 + 7) * 3?"
_Q2 = "A box holds 24 pencils. How many pencils are in 5 boxes?"
_SOL1 = rstar_solution([("Add 12 and 7.", "x = 12 + 7")], "print(x * 3)", "57", "57")
_P1 = RSTAR.prompt(_Q1)
_P2 = RSTAR.prompt(_Q2)

TOKENIZER_STRINGS: tuple[str, ...] = (
    "",
    "0 1 12 123 1234 12345 3.14159 -42 1e10 1/2 2**10 007 1,000,000",
    "def solve(n):\n    total = sum(i * i for i in range(n))\n    return total  # done\n",
    "print(f'{x:.2f}') if x >= 0 else None; y = {'a': [1, 2]}[\"a\"]",
    *Marker.ALL,
    "".join(Marker.ALL),
    f"{Marker.CODE}\nx=1\n{Marker.END_STEP}{Marker.OUTPUT}1{Marker.END_OUTPUT}",
    "h\u00e9llo w\u00f6rld \u2014 \u4f60\u597d\uff0c\u4e16\u754c \U0001f600\U0001f44d\U0001f3fd "
    "\u2211\u222b\u221a\u03c0 \u03b1 \u03b2 \u00bd \u00a0 \u200b",
    "  leading and trailing spaces   \n\n\t\ttabs\r\nCRLF      wide    gaps\n\n\n",
    "I'm you'll they've can't 'quoted' \"double\" \\boxed{\\frac{1}{2}}",
    RSTAR.prompt(_Q1) + _SOL1,
)
"""Strings whose token ids must be identical to the reference's (the EOS text is added)."""

PROMPTS: tuple[str, ...] = (
    _P1,
    RSTAR.prompt(_Q1) + _SOL1,
    _P2 + "# Step 1: Multiply the pencils per box by the boxes.\n",
    "def f(x):\n    return x ** 2 + 1  # 3.14159\n\nprint(f(12))\n",
)
"""Prompts whose logits are compared at every position and which start the greedy decodes."""

GREEDY_TOKENS = 16

_STEPS_1 = (
    "# Step 1: Add 12 and 7.\nx = 12 + 7\n<end_of_step>\n",
    "# Step 1: Multiply 12 by 3.\nx = 12 * 3\n<end_of_step>\n",
    "# Step 1: Subtract 7 from 12.\nx = 12 - 7\n<end_of_step>\n",
    "# Step 1: The answer is 57.\nprint(57)\n<end_of_code>\n",
)
_STEPS_2 = (
    "# Step 1: Multiply 24 by 5.\nn = 24 * 5\n<end_of_step>\n",
    "# Step 1: Add 24 and 5.\nn = 24 + 5\n<end_of_step>\n",
    "# Step 1: Divide 24 by 5.\nn = 24 / 5\n<end_of_step>\n",
    "# Step 1: Count the boxes.\nboxes = 5\n<end_of_step>\n",
)
_PARENT_3 = _P1 + "# Step 1: Add 12 and 7.\nx = 12 + 7\n<end_of_step>\n"
_STEPS_3 = (
    "# Step 2: Multiply by 3.\ny = x * 3\nprint(y)\n<end_of_code>\n",
    "# Step 2: Add 3.\ny = x + 3\nprint(y)\n<end_of_code>\n",
    "# Step 2: Square it.\ny = x ** 2\nprint(y)\n<end_of_code>\n",
    "<output>57<end_of_output>\n<answer>The answer is \\boxed{57}<end_of_answer>",
)
PAIR_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (_P1, _STEPS_1),
    (_P2, _STEPS_2),
    (_PARENT_3, _STEPS_3),
)
"""(parent prefix, sibling continuations): every pair of siblings under one parent is a held
pair (3 groups x 6 pairs = 18 pairs over 12 prefixes)."""


def _pair_prefixes(
    groups: Sequence[tuple[str, Sequence[str]]],
) -> tuple[list[str], list[tuple[int, int]]]:
    prefixes: list[str] = []
    pairs: list[tuple[int, int]] = []
    for parent, kids in groups:
        base = len(prefixes)
        prefixes += [parent + k for k in kids]
        pairs += [(base + i, base + j) for i in range(len(kids)) for j in range(i + 1, len(kids))]
    return prefixes, pairs


# --------------------------------------------------------------------------------------------
# Tolerances (data)


@dataclass(frozen=True)
class Tolerance:
    """Bounds one verification must meet. None: measured and reported, not checked."""

    rel_max: float | None
    """max |logit diff| over all positions of all prompts, in units of the reference logits'
    standard deviation."""
    rel_mean: float | None
    """mean |logit diff|, same unit."""
    top1: float
    """minimum share of positions whose argmax agrees."""
    greedy: float
    """minimum greedy-continuation token agreement share."""
    score_max: float | None
    """PPM: max |score diff| (scores in (-1, 1))."""
    ranking: float
    """PPM: minimum share of held pairs ranked the same way."""


# Measured on this machine (2-core Xeon, 1 thread, kv_f32). Logit drift is in units of the
# reference logits' standard deviation ("x std") so that bounds carry over between a random toy
# (std 0.16-0.32) and a real model (SmolLM2-135M: std 5.9); absolute figures are reported too.
# Tiny: 16 random checkpoints (train.tiny "test" 64-wide and "edgestar-tiny" 256-wide, seeds 0-3,
# policy and PPM) vs torch, worst case of each figure. Real: SmolLM2-135M-Instruct's Q4_1 GGUF
# requantized by llama.cpp, vs that Q4_1 file (both sides carry llama.cpp's 8-bit activation
# quantization, so this is an upper-side figure for a fresh quantization).
#   quant   max x std       mean x std      top-1          greedy  score max  ranking
#           tiny    real    tiny    real    tiny   real    tiny    tiny       tiny
#   f32     4.1e-6  -       6.0e-7  -       1.0    -       1.0     9.4e-7     1.0  (onnx 4e-6)
#   f16     4.0e-3  0.25    6.9e-4  0.027   0.980  0.971   0.75    1.1e-3     1.0
#   bf16    3.6e-2  -       6.0e-3  -       0.976  -       0.98    6.8e-3     0.94
#   q8_0    0.11    0.43    1.7e-2  0.038   0.925  0.971   0.41    2.9e-2     0.94
#   q6_k    0.27    0.82    5.0e-2  0.069   0.877  0.939   0.27    0.11       0.83
#   q5_k_m  0.62    1.67    0.10    0.153   0.762  0.857   0.25    0.16       0.72
#   q4_k_m  0.99    1.12    0.19    0.141   0.587  0.878   0.19    0.39       0.83
#   q4_0    1.36    2.65    0.23    0.290   0.496  0.710   0.13    0.35       0.72
#   int8    0.17    -       2.6e-2  -       0.933  -       0.58    5.6e-2     0.78
#   int4    1.34    -       0.21    -       0.556  -       0.13    0.38       0.72
#   wrong checkpoint (same tokenizer, other seed; f32 or q4_0 file): max 5.5-6.8 x std, mean
#   1.12-1.13 x std, top-1 0.000, greedy 0.0, ranking 0.28-0.39: every row fails it on top-1
#   and mean drift.
# Bounds: mean drift ~3x the worst seen (tiny or real), shares the worst minus a margin. The
# max drift is a tail statistic over vocab x positions values that grows with the vocabulary:
# it is bounded for f32/f16/bf16 only (an export bug shows there first) and reported elsewhere.
# Greedy is the noisiest share (random tiny models have flat logits: one early flip costs the
# rest of that prompt, a quarter of the total), so its bounds are low; top-1 (teacher-forced)
# and the PPM ranking carry the low-bit rows. Re-measure on a trained checkpoint before
# tightening anything; `tol=` overrides the table per call.
TOLERANCES: dict[str, Tolerance] = {
    # quant: rel_max, rel_mean, top1, greedy, score_max, ranking
    "f32": Tolerance(5e-3, 5e-4, 0.99, 0.75, 1e-3, 0.94),
    "f16": Tolerance(0.1, 1e-2, 0.95, 0.5, 1e-2, 0.94),
    "bf16": Tolerance(0.3, 3e-2, 0.9, 0.5, 5e-2, 0.83),
    "q8_0": Tolerance(None, 0.1, 0.85, 0.25, 0.1, 0.8),
    "q6_k": Tolerance(None, 0.2, 0.75, 0.15, 0.3, 0.7),
    "q5_k_m": Tolerance(None, 0.35, 0.6, 0.1, 0.5, 0.6),
    "q4_k_m": Tolerance(None, 0.5, 0.45, 0.05, 0.7, 0.6),
    "q4_0": Tolerance(None, 0.6, 0.35, 0.05, 0.75, 0.55),
    "int8": Tolerance(None, 0.1, 0.8, 0.3, 0.2, 0.67),
    "int4": Tolerance(None, 0.6, 0.35, 0.05, 0.75, 0.55),
}
"""quant name -> bounds (`tolerance_for` maps aliases: fp32 -> f32)."""

_ALIASES = {"fp32": "f32", "float32": "f32", "fp16": "f16", "float16": "f16"}


def tolerance_for(quant: str) -> Tolerance:
    q = _ALIASES.get(quant.lower(), quant.lower())
    try:
        return TOLERANCES[q]
    except KeyError:
        raise InputError(
            f"no verification tolerance for quant {quant!r}; known: {', '.join(TOLERANCES)}"
        ) from None


# --------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Check:
    """One verified quantity against its bound."""

    name: str
    value: float | None
    bound: float | None
    op: str
    """'<=' (value must not exceed bound), '>=' (must reach it), '==' (exact)."""
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    """Everything one verification measured; `passed` when every check did."""

    target: Path
    kind: str
    """'gguf' or 'onnx'."""
    role: str
    quant: str
    reference: str
    """What the target was compared with: 'torch:<ckpt>' or 'gguf:<file>'."""
    file_bytes: int
    load_seconds: float
    seconds: float
    threads: int
    tolerance: Tolerance
    checks: tuple[Check, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    """Raw figures: logits_max, logits_mean (absolute), logits_rel_max, logits_rel_mean (x the
    reference logits' std, ref_logit_std), top1, greedy, greedy_exact, score_max,
    ranking, n_positions, n_pairs, tokenizer_strings, tokenizer_mismatches, ..."""
    runtime: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def summary(self) -> str:
        """One line: the verdict and the failed checks (or the headline figures)."""
        head = f"{self.target.name} ({self.kind} {self.quant}, {self.role}) vs {self.reference}"
        if self.passed:
            m = self.metrics
            parts = [
                f"logits mean drift {_fmt(m.get('logits_rel_mean'))} x std",
                f"top-1 {_fmt(m.get('top1'))}",
            ]
            if m.get("ranking") is not None:
                parts.append(f"ranking {_fmt(m.get('ranking'))}")
            return f"{head}: passed ({', '.join(parts)})"
        bad = "; ".join(
            f"{c.name} {_fmt(c.value)} {_NEG[c.op]} {_fmt(c.bound)}"
            + (f" ({c.detail})" if c.detail else "")
            for c in self.failures
        )
        return f"{head}: verification FAILED: {bad}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = str(self.target)
        d["passed"] = self.passed
        return _jsonable(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_markdown(self) -> str:
        m = self.metrics
        lines = [
            f"# Verification of `{self.target.name}`: {'PASSED' if self.passed else 'FAILED'}",
            "",
            f"- kind: {self.kind}, quant: {self.quant}, role: {self.role}",
            f"- reference: {self.reference}",
            f"- size: {self.file_bytes:,} bytes ({self.file_bytes / 1e6:.2f} MB)",
            f"- load: {self.load_seconds:.3f} s; verification: {self.seconds:.2f} s (+ "
            f"reference {m.get('reference_seconds', 0):.2f} s); "
            f"threads: {self.threads}" + (f"; runtime: {self.runtime}" if self.runtime else ""),
            f"- positions compared: {m.get('n_positions', 0)}; greedy tokens: "
            f"{m.get('greedy_tokens', 0)}; tokenizer strings: {m.get('tokenizer_strings', 0)}"
            + (f"; held pairs: {m['n_pairs']}" if m.get("n_pairs") else ""),
            "",
            "| check | value | bound | result |",
            "|---|---|---|---|",
        ]
        for c in self.checks:
            res = "ok" if c.passed else "**FAIL**"
            detail = f" ({c.detail})" if c.detail else ""
            bound = f"{c.op} {_fmt(c.bound)}" if c.bound is not None else "(reported only)"
            lines.append(f"| {c.name} | {_fmt(c.value)} | {bound} | {res}{detail} |")
        info = [
            (k, m[k])
            for k in ("ref_logit_std", "greedy_exact", "score_mean")
            if m.get(k) is not None
        ]
        if info:
            lines += ["", "Also measured: " + ", ".join(f"{k} {_fmt(v)}" for k, v in info)]
        if m.get("tokenizer_mismatches"):
            lines += ["", "Tokenizer mismatches:"]
            lines += [f"- `{s}`" for s in m["tokenizer_mismatches"]]
        return "\n".join(lines) + "\n"

    def write(self, where: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
        """Write `<base>.verify.json` and `<base>.verify.md`; return their paths. `where`: None
        -> beside the target (base = the target's path); a folder other than the target ->
        base = folder / target name; anything else is the base itself."""
        p = Path(where) if where is not None else self.target
        base = p / self.target.name if p.is_dir() and p.resolve() != self.target.resolve() else p
        j = base.with_name(base.name + ".verify.json")
        md = base.with_name(base.name + ".verify.md")
        atomic_write_text(j, self.to_json() + "\n")
        atomic_write_text(md, self.to_markdown())
        return j, md


_NEG = {"<=": ">", ">=": "<", "==": "!="}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) < 1e-3 or abs(v) >= 1e4:
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# --------------------------------------------------------------------------------------------
# Reference (torch)


@dataclass(frozen=True)
class _Greedy:
    ids: tuple[int, ...]
    """Generated ids (an EOS id last when the model ended)."""
    texts: tuple[str, ...]
    """texts[n] = decode(ids[:n + 1]) (special tokens kept)."""
    eos: bool


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class TorchReference:
    """The source checkpoint's outputs on torch (float32, CPU), computed once on first use and
    reused for every target verified against it (deploy checks F32 and quantized files)."""

    def __init__(
        self,
        ckpt_dir: str | os.PathLike[str],
        *,
        prompts: Sequence[str] | None = None,
        threads: int = 1,
        greedy_tokens: int = GREEDY_TOKENS,
    ) -> None:
        self.path = Path(ckpt_dir)
        self.meta = read_meta(self.path)
        self.role = self.meta.role
        self.prompts = tuple(PROMPTS if prompts is None else prompts)
        if not self.prompts or not all(isinstance(p, str) and p for p in self.prompts):
            raise InputError("prompts must be non-empty strings")
        self.threads = _check_threads(threads)
        self.greedy_tokens = greedy_tokens
        self.pair_prefixes, self.pairs = _pair_prefixes(PAIR_GROUPS)
        self._done = False
        self.strings: tuple[str, ...] = ()
        self.string_ids: list[list[int]] = []
        self.prompt_ids: list[list[int]] = []
        self.logits: list[np.ndarray] = []
        self.greedy: list[_Greedy] = []
        self.scores: list[float] | None = None
        self._longest = 0
        self.seconds = 0.0

    def compute(self) -> TorchReference:
        if self._done:
            return self
        import torch

        from edgestar.backends.torch_backend import TorchPolicy, TorchReward

        t0 = time.perf_counter()
        with _torch_threads(self.threads), torch.inference_mode():
            pol = TorchPolicy(self.path, device="cpu", dtype="float32")
            try:
                eos = pol.tokenizer.eos_token
                self.strings = TOKENIZER_STRINGS + ((eos + "after eos",) if eos else ())
                self.string_ids = [pol.encode(s) for s in self.strings]
                self.prompt_ids = [pol.encode(p) for p in self.prompts]
                for ids in self.prompt_ids:
                    out = pol.model(input_ids=torch.tensor([ids]), use_cache=False)
                    self.logits.append(out.logits[0].float().numpy().copy())
                self.greedy = [self._greedy(pol, ids) for ids in self.prompt_ids]
                self._longest = max(
                    len(pol.encode(x)) for x in (*self.pair_prefixes, *self.prompts, *self.strings)
                )
            finally:
                pol.close()
            if self.role == "ppm":
                rw = TorchReward(self.path, device="cpu", dtype="float32")
                try:
                    self.scores = rw.score(self.pair_prefixes)
                finally:
                    rw.close()
        self.seconds = time.perf_counter() - t0
        self._done = True
        return self

    def _greedy(self, pol: Any, ids: list[int]) -> _Greedy:
        import torch

        out = pol.model(input_ids=torch.tensor([ids]), use_cache=True)
        cache = out.past_key_values
        gen: list[int] = []
        texts: list[str] = []
        eos = False
        for _ in range(self.greedy_tokens):
            tok = int(out.logits[0, -1].float().argmax())
            gen.append(tok)
            if tok in pol.eos_ids:
                eos = True
                break
            texts.append(pol._decode(gen))
            if len(gen) == self.greedy_tokens:
                break
            out = pol.model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
        return _Greedy(tuple(gen), tuple(texts), eos)

    @property
    def n_ctx(self) -> int:
        """A context that holds every prompt plus its greedy continuation."""
        return max(256, self._longest + self.greedy_tokens + 16)


# --------------------------------------------------------------------------------------------
# Targets


class _Target:
    """What a verified file must offer: ids, all-position logits, greedy decode, scores."""

    role: str
    load_seconds: float
    runtime: str

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def logits(self, text: str, ids: list[int]) -> np.ndarray:
        raise NotImplementedError

    def greedy(self, prompt: str, n: int) -> tuple[str, int, str]:
        """(text, n_tokens, finish) of the backend's own temperature-0 decode."""
        from edgestar.backends.base import StepRequest

        (p,) = self.policy.propose(
            [StepRequest(prompt, k=1, seed=0, max_tokens=n, temperature=0.0, top_p=1.0)]
        )
        c = p.candidates[0]
        return c.text, c.n_tokens, c.finish

    def scores(self, prefixes: Sequence[str]) -> list[float]:
        raise NotImplementedError

    policy: Any = None
    reward: Any = None

    def close(self) -> None:
        for obj in (self.policy, self.reward):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()


class _GGUFTarget(_Target):
    def __init__(self, path: Path, role: str, n_ctx: int, threads: int, kv_f32: bool) -> None:
        from edgestar.backends.llamacpp import LlamaCppPolicy, LlamaCppReward

        self.role = role
        kw: dict[str, Any] = dict(n_ctx=n_ctx, n_threads=threads, kv_f32=kv_f32)
        t0 = time.perf_counter()
        if role == "ppm":
            self.reward = LlamaCppReward(path, **kw)
            self.load_seconds = time.perf_counter() - t0
            try:
                self.policy = LlamaCppPolicy(path, n_seq_max=2, **kw)
            except BaseException:
                self.close()
                raise
        else:
            self.policy = LlamaCppPolicy(path, n_seq_max=2, **kw)
            self.load_seconds = time.perf_counter() - t0
        self.runtime = f"llama-cpp-python {_version('llama_cpp_python') or '?'}"

    def encode(self, text: str) -> list[int]:
        return list(self.policy.tokenize(text))

    def logits(self, text: str, ids: list[int]) -> np.ndarray:
        return np.asarray(self.policy.logits(text, all_positions=True), dtype=np.float32)

    def scores(self, prefixes: Sequence[str]) -> list[float]:
        return list(self.reward.score(list(prefixes)))


class _OnnxTarget(_Target):
    def __init__(self, path: Path, role: str, threads: int) -> None:
        onnx_backend = _onnx_backend()
        self.role = role
        t0 = time.perf_counter()
        if role == "ppm":
            self.reward = onnx_backend.OnnxReward(path, device="cpu", threads=threads)
            self.load_seconds = time.perf_counter() - t0
            try:
                self.policy = onnx_backend.OnnxPolicy(path, device="cpu", threads=threads)
            except BaseException:
                self.close()
                raise
        else:
            self.policy = onnx_backend.OnnxPolicy(path, device="cpu", threads=threads)
            self.load_seconds = time.perf_counter() - t0
        self.runtime = f"onnxruntime {_version('onnxruntime') or '?'}"

    def encode(self, text: str) -> list[int]:
        return list(self.policy.encode(text))

    def logits(self, text: str, ids: list[int]) -> np.ndarray:
        fn = getattr(self.policy, "logits", None)
        if callable(fn):
            return np.asarray(fn(text, all_positions=True), dtype=np.float32)
        sess = getattr(self.policy, "_sess", None)
        if sess is None or not hasattr(sess, "run"):
            raise ModelError(
                "edgestar.backends.onnx.OnnxPolicy offers no logits(text, all_positions=True) "
                "(and no session to run): cannot compare logits"
            )
        lg, _, _ = sess.run(np.array([ids], dtype=np.int64), None, 0)
        return np.asarray(lg[0], dtype=np.float32)

    def scores(self, prefixes: Sequence[str]) -> list[float]:
        return list(self.reward.score(list(prefixes)))


def _onnx_backend() -> Any:
    """edgestar.backends.onnx, or a ModelError saying what is missing."""
    try:
        from edgestar.backends import onnx as onnx_backend
    except ImportError as e:
        raise ModelError(
            f"ONNX verification needs edgestar.backends.onnx and onnxruntime ({e}); install the "
            "[onnx] extra"
        ) from None
    if not hasattr(onnx_backend, "OnnxPolicy"):
        raise ModelError("edgestar.backends.onnx has no OnnxPolicy yet: ONNX is not available")
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ModelError(
            f"ONNX verification needs onnxruntime ({e}): pip install onnxruntime"
        ) from None
    return onnx_backend


def onnx_available() -> str | None:
    """None when ONNX export + runtime are usable here, else the reason they are not."""
    try:
        _onnx_backend()
        import optimum.exporters.onnx  # noqa: F401

        from edgestar.quantize import onnx_export  # noqa: F401
    except ModelError as e:
        return str(e)
    except ImportError as e:
        return f"ONNX export is not available ({e}); install the [quantize] extra"
    return None


# --------------------------------------------------------------------------------------------
# Comparison


def _compare(
    target: _Target,
    *,
    strings: Sequence[str],
    ref_string_ids: Sequence[Sequence[int]],
    prompts: Sequence[str],
    ref_prompt_ids: Sequence[Sequence[int]],
    ref_logits: Sequence[np.ndarray],
    ref_greedy: Sequence[_Greedy] | None,
    greedy_tokens: int,
    pair_prefixes: Sequence[str],
    pairs: Sequence[tuple[int, int]],
    ref_scores: Sequence[float] | None,
    tol: Tolerance,
) -> tuple[list[Check], dict[str, Any]]:
    checks: list[Check] = []
    m: dict[str, Any] = {}

    # tokenizer
    bad: list[str] = []
    for s, want in zip(strings, ref_string_ids, strict=True):
        got = target.encode(s)
        if list(got) != list(want):
            bad.append(_short(s))
    m["tokenizer_strings"] = len(strings)
    m["tokenizer_mismatches"] = bad
    checks.append(
        Check(
            "tokenizer ids equal",
            float(len(strings) - len(bad)),
            float(len(strings)),
            "==",
            not bad,
            f"{len(bad)} strings differ" if bad else "",
        )
    )

    # logits, all positions
    diffs: list[np.ndarray] = []
    agree = total = 0
    ref_std: list[float] = []
    skipped = 0
    for p, ids, ref in zip(prompts, ref_prompt_ids, ref_logits, strict=True):
        if list(target.encode(p)) != list(ids):
            skipped += 1
            continue
        got = target.logits(p, list(ids))
        if got.shape != ref.shape:
            raise ModelError(
                f"logits of shape {got.shape} where the reference has {ref.shape} (vocabulary "
                "size differs?)"
            )
        d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        diffs.append(d)
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
        total += len(ids)
        ref_std.append(float(ref.std()))
    if diffs:
        lmax = float(max(d.max() for d in diffs))
        lmean = float(np.mean(np.concatenate([d.ravel() for d in diffs])))
        top1 = agree / total
        std = float(np.mean(ref_std))
        rmax, rmean = (lmax / std, lmean / std) if std > 0 else (math.inf, math.inf)
        m.update(
            logits_max=lmax,
            logits_mean=lmean,
            logits_rel_max=rmax,
            logits_rel_mean=rmean,
            top1=top1,
            n_positions=total,
            ref_logit_std=std,
        )
    else:
        lmax = lmean = rmax = rmean = top1 = math.nan
    detail = f"{skipped} prompts skipped: ids differ" if skipped else ""
    checks.append(_le("logits max drift (x ref std)", rmax, tol.rel_max, _abs(lmax, detail)))
    checks.append(_le("logits mean drift (x ref std)", rmean, tol.rel_mean, _abs(lmean)))
    checks.append(_ge("top-1 agreement", top1, tol.top1))

    # greedy continuations
    if ref_greedy is not None:
        agreed = gen = exact = 0
        for p, g in zip(prompts, ref_greedy, strict=True):
            text, n_tok, finish = target.greedy(p, greedy_tokens)
            k = _greedy_agreement(g, text, n_tok, finish)
            agreed += k
            gen += len(g.ids)
            exact += int(k == len(g.ids))
        share = agreed / gen if gen else 1.0
        m.update(greedy=share, greedy_exact=f"{exact}/{len(prompts)}", greedy_tokens=gen)
        checks.append(_ge("greedy agreement", share, tol.greedy, f"{agreed}/{gen} tokens"))

    # PPM
    if ref_scores is not None:
        got_s = target.scores(pair_prefixes)
        ds = np.abs(np.array(got_s) - np.array(ref_scores))
        same = sum(
            int(np.sign(got_s[i] - got_s[j]) == np.sign(ref_scores[i] - ref_scores[j]))
            for i, j in pairs
        )
        rank = same / len(pairs) if pairs else 1.0
        m.update(
            score_max=float(ds.max()),
            score_mean=float(ds.mean()),
            ranking=rank,
            n_pairs=len(pairs),
        )
        checks.append(_le("PPM score max abs diff", float(ds.max()), tol.score_max))
        checks.append(_ge("PPM pair ranking agreement", rank, tol.ranking, f"{same}/{len(pairs)}"))
    return checks, m


def _greedy_agreement(g: _Greedy, text: str, n_tokens: int, finish: str) -> int:
    """Leading reference tokens the target reproduced (an incomplete UTF-8 piece counts when
    the token that completes it does)."""
    k = 0
    for n, t in enumerate(g.texts, 1):
        if text.startswith(t):
            k = n
        elif not t.endswith("\ufffd"):  # a partial character is judged with the token
            break  # that completes it
    if g.eos and k == len(g.texts) and finish == "eos" and n_tokens == len(g.ids):
        k = len(g.ids)
    return k


def _abs(v: float, detail: str = "") -> str:
    a = f"abs {_fmt(v)}" if math.isfinite(v) else ""
    return "; ".join(x for x in (a, detail) if x)


def _le(name: str, v: float, bound: float | None, detail: str = "") -> Check:
    ok = not math.isnan(v) and (bound is None or v <= bound)
    return Check(name, None if math.isnan(v) else v, bound, "<=", ok, detail)


def _ge(name: str, v: float, bound: float, detail: str = "") -> Check:
    ok = math.isfinite(v) and v >= bound
    return Check(name, None if math.isnan(v) else v, bound, ">=", ok, detail)


def _short(s: str, n: int = 40) -> str:
    r = repr(s)
    return r if len(r) <= n else r[: n - 3] + "..."


# --------------------------------------------------------------------------------------------
# Public entry points


def verify_gguf(
    ckpt_dir: str | os.PathLike[str],
    gguf_path: str | os.PathLike[str],
    *,
    role: str | None = None,
    prompts: Sequence[str] | None = None,
    tol: Tolerance | None = None,
    threads: int = 1,
    quant: str | None = None,
    kv_f32: bool = True,
    reference: TorchReference | None = None,
    report_to: str | os.PathLike[str] | None = None,
    write: bool = True,
    check: bool = True,
) -> VerifyReport:
    """Verify a GGUF file against the HF checkpoint it came from (torch reference).

    `role` defaults to the checkpoint's edgestar.json; `quant` to the file's own type (read
    from its header: general.file_type); `tol` to `TOLERANCES[quant]`. The report is written
    beside the file (or at `report_to`, see `VerifyReport.write`) unless `write=False`; with
    `check` (default) a failed check then raises ModelError with the one-line summary.
    `reference` reuses a computed TorchReference (it must be for the same checkpoint)."""
    from edgestar.backends.llamacpp import check_gguf

    path = Path(gguf_path)
    info = check_gguf(path)
    ref = _reference(ckpt_dir, reference, prompts, threads)
    role = _role(ref, role)
    q = quant or gguf_quant_name(info.metadata)
    t = tol or tolerance_for(q)
    t0 = time.perf_counter()
    target = _GGUFTarget(path, role, ref.n_ctx, threads, kv_f32)
    try:
        checks, m = _compare_with_ref(target, ref, role, t)
    finally:
        target.close()
    rep = VerifyReport(
        target=path,
        kind="gguf",
        role=role,
        quant=q,
        reference=f"torch:{ref.path}",
        file_bytes=path.stat().st_size,
        load_seconds=round(target.load_seconds, 4),
        seconds=round(time.perf_counter() - t0, 3),
        threads=threads,
        tolerance=t,
        checks=tuple(checks),
        metrics=m,
        runtime=target.runtime,
    )
    return _finish(rep, report_to, write, check)


def verify_onnx(
    ckpt_dir: str | os.PathLike[str],
    onnx_dir: str | os.PathLike[str],
    *,
    role: str | None = None,
    prompts: Sequence[str] | None = None,
    tol: Tolerance | None = None,
    threads: int = 1,
    quant: str | None = None,
    reference: TorchReference | None = None,
    report_to: str | os.PathLike[str] | None = None,
    write: bool = True,
    check: bool = True,
) -> VerifyReport:
    """Verify an ONNX export folder (edgestar.quantize.onnx_export) against its checkpoint.

    `quant` defaults to the folder's edgestar.json provenance (onnx.quant: fp32 / int8 /
    int4). Same report and failure behaviour as `verify_gguf`; ModelError with a clear message
    when the ONNX backend or onnxruntime is not installed."""
    path = Path(onnx_dir)
    _onnx_backend()
    if not (path / "model.onnx").is_file():
        raise ModelError(f"{path}: not an ONNX export folder (no model.onnx)")
    ref = _reference(ckpt_dir, reference, prompts, threads)
    role = _role(ref, role)
    q = quant or onnx_quant_name(path)
    t = tol or tolerance_for(q)
    t0 = time.perf_counter()
    target = _OnnxTarget(path, role, threads)
    try:
        checks, m = _compare_with_ref(target, ref, role, t)
    finally:
        target.close()
    rep = VerifyReport(
        target=path,
        kind="onnx",
        role=role,
        quant=_ALIASES.get(q, q),
        reference=f"torch:{ref.path}",
        file_bytes=sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
        load_seconds=round(target.load_seconds, 4),
        seconds=round(time.perf_counter() - t0, 3),
        threads=threads,
        tolerance=t,
        checks=tuple(checks),
        metrics=m,
        runtime=target.runtime,
    )
    return _finish(rep, report_to, write, check)


def verify_requant(
    src_gguf: str | os.PathLike[str],
    out_gguf: str | os.PathLike[str],
    *,
    quant: str | None = None,
    prompts: Sequence[str] | None = None,
    tol: Tolerance | None = None,
    threads: int = 1,
    kv_f32: bool = True,
    report_to: str | os.PathLike[str] | None = None,
    write: bool = True,
    check: bool = True,
) -> VerifyReport:
    """Verify a GGUF re-quantized from another GGUF (no checkpoint at hand): both load, the
    tokenizer ids are equal, and logits drift (all positions of the fixed prompts, through
    `LlamaCppPolicy.logits`) stays within `tol`; for a PPM also score drift and pair ranking
    (through `LlamaCppReward`). No greedy check: the reference is not torch. Default `tol`: the
    target quant's row, loosened to the source's own row when the source is quantized too
    (`source_tolerance`: a Q4_1 reference is itself noisy)."""
    from edgestar.backends.llamacpp import check_gguf

    src, out = Path(src_gguf), Path(out_gguf)
    src_info, out_info = check_gguf(src), check_gguf(out)
    role = str(src_info.metadata.get("edgestar.role") or "policy")
    out_role = str(out_info.metadata.get("edgestar.role") or "policy")
    q = quant or gguf_quant_name(out_info.metadata)
    t = tol or looser(tolerance_for(q), source_tolerance(src_info.metadata))
    threads = _check_threads(threads)
    ps = tuple(PROMPTS if prompts is None else prompts)
    t0 = time.perf_counter()
    ref = _GGUFTarget(src, role, 1024, threads, kv_f32)
    try:
        strings = TOKENIZER_STRINGS
        ref_sids = [ref.encode(s) for s in strings]
        ref_pids = [ref.encode(p) for p in ps]
        prefixes, pairs = _pair_prefixes(PAIR_GROUPS)
        longest = max(len(i) for i in [*ref_pids, *ref_sids, *map(ref.encode, prefixes)])
        n_ctx = max(256, longest + 16)
        if n_ctx > 1024:
            ref.close()
            ref = _GGUFTarget(src, role, n_ctx, threads, kv_f32)
        ref_logits = [ref.logits(p, ids) for p, ids in zip(ps, ref_pids, strict=True)]
        ref_scores = ref.scores(prefixes) if role == "ppm" else None
    finally:
        ref.close()
    target = _GGUFTarget(out, role, n_ctx, threads, kv_f32)
    try:
        checks, m = _compare(
            target,
            strings=strings,
            ref_string_ids=ref_sids,
            prompts=ps,
            ref_prompt_ids=ref_pids,
            ref_logits=ref_logits,
            ref_greedy=None,
            greedy_tokens=0,
            pair_prefixes=prefixes,
            pairs=pairs,
            ref_scores=ref_scores,
            tol=t,
        )
    finally:
        target.close()
    if out_role != role:
        checks.append(Check("role", None, None, "==", False, f"{out_role} != {role}"))
    rep = VerifyReport(
        target=out,
        kind="gguf",
        role=role,
        quant=q,
        reference=f"gguf:{src}",
        file_bytes=out.stat().st_size,
        load_seconds=round(target.load_seconds, 4),
        seconds=round(time.perf_counter() - t0, 3),
        threads=threads,
        tolerance=t,
        checks=tuple(checks),
        metrics=m,
        runtime=target.runtime,
    )
    return _finish(rep, report_to, write, check)


# --------------------------------------------------------------------------------------------
# helpers


def _check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive whole number, got {threads!r}")
    return threads


def _reference(
    ckpt_dir: str | os.PathLike[str],
    reference: TorchReference | None,
    prompts: Sequence[str] | None,
    threads: int,
) -> TorchReference:
    if reference is not None:
        if Path(reference.path).resolve() != Path(ckpt_dir).resolve():
            raise InputError(f"reference was computed for {reference.path}, not {ckpt_dir}")
        if prompts is not None and tuple(prompts) != reference.prompts:
            raise InputError("reference was computed for other prompts")
        return reference.compute()
    ckpt = Path(ckpt_dir)
    if not (ckpt / META_FILE).is_file():
        raise ModelError(f"{ckpt}: not an edgestar checkpoint (no {META_FILE})")
    return TorchReference(ckpt, prompts=prompts, threads=threads).compute()


def _role(ref: TorchReference, role: str | None) -> str:
    if role is None:
        return ref.role
    if role not in ("policy", "ppm"):
        raise InputError(f"role must be 'policy' or 'ppm', got {role!r}")
    if role == "ppm" and ref.role != "ppm":
        raise InputError(f"{ref.path} is a {ref.role} checkpoint: it has no value head to verify")
    return role


def _compare_with_ref(
    target: _Target, ref: TorchReference, role: str, tol: Tolerance
) -> tuple[list[Check], dict[str, Any]]:
    prefixes, pairs = ref.pair_prefixes, ref.pairs
    checks, m = _compare(
        target,
        strings=ref.strings,
        ref_string_ids=ref.string_ids,
        prompts=ref.prompts,
        ref_prompt_ids=ref.prompt_ids,
        ref_logits=ref.logits,
        ref_greedy=ref.greedy,
        greedy_tokens=ref.greedy_tokens,
        pair_prefixes=prefixes,
        pairs=pairs,
        ref_scores=ref.scores if role == "ppm" else None,
        tol=tol,
    )
    m["reference_seconds"] = round(ref.seconds, 3)
    return checks, m


def _finish(
    rep: VerifyReport, report_to: str | os.PathLike[str] | None, write: bool, check: bool
) -> VerifyReport:
    if write:
        rep.write(report_to)
    if check and not rep.passed:
        raise ModelError(rep.summary())
    return rep


# general.file_type (llama_ftype) -> edgestar quant name (only these have a TOLERANCES row)
_FILE_TYPES: dict[int, str] = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    7: "q8_0",
    15: "q4_k_m",
    17: "q5_k_m",
    18: "q6_k",
    32: "bf16",
}
# other llama_ftype values a third-party source may have -> the row that stands in for it
_SOURCE_ROWS: dict[int, str] = {3: "q4_0", 8: "q5_k_m", 9: "q5_k_m", 14: "q4_k_m", 16: "q5_k_m"}


def looser(a: Tolerance, b: Tolerance | None) -> Tolerance:
    """The bound-by-bound looser of two tolerances (None = unbounded wins)."""
    if b is None:
        return a

    def hi(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else max(x, y)

    return Tolerance(
        rel_max=hi(a.rel_max, b.rel_max),
        rel_mean=hi(a.rel_mean, b.rel_mean),
        top1=min(a.top1, b.top1),
        greedy=min(a.greedy, b.greedy),
        score_max=hi(a.score_max, b.score_max),
        ranking=min(a.ranking, b.ranking),
    )


def source_tolerance(metadata: dict[str, Any]) -> Tolerance | None:
    """The extra looseness a quantized reference brings (llama.cpp computes its matmuls with
    8-bit activations and its weights carry their own rounding): None for an F32 source, the
    source's own row when it has one, a stand-in row for other llama.cpp types (Q4_1 -> q4_0),
    the q4_0 row for anything else."""
    ft = metadata.get("general.file_type")
    try:
        ft = 0 if ft is None else int(ft)
    except (TypeError, ValueError):
        return TOLERANCES["q4_0"]
    if ft == 0:
        return None
    name = _FILE_TYPES.get(ft) or _SOURCE_ROWS.get(ft, "q4_0")
    return TOLERANCES[name]


def gguf_quant_name(metadata: dict[str, Any]) -> str:
    """edgestar's quant name for a GGUF header's general.file_type."""
    ft = metadata.get("general.file_type")
    if ft is None:
        return "f32"
    try:
        return _FILE_TYPES[int(ft)]
    except (KeyError, ValueError, TypeError):
        raise InputError(
            f"GGUF file type {ft} has no verification tolerance; pass quant= or tol="
        ) from None


def onnx_quant_name(onnx_dir: str | os.PathLike[str]) -> str:
    """The quant recorded in an ONNX folder's edgestar.json provenance (fp32 when absent)."""
    p = Path(onnx_dir)
    if not (p / META_FILE).is_file():
        return "f32"
    prov = read_meta(p).provenance.get("onnx") or {}
    q = str(prov.get("quant", "fp32"))
    return _ALIASES.get(q, q)


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
