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

Split in four (this module re-exports what the others define): `_verify_data` (the fixed
inputs and the tolerance table), `_verify_models` (the torch reference and the llama.cpp / ONNX
targets), `_verify_report` (Check, VerifyReport), and here the comparison and the entry points.

Needs torch + transformers for the torch reference (the [quantize] extra), llama-cpp-python for
GGUF targets, onnxruntime (+ edgestar.backends.onnx) for ONNX targets.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.checkpoint import META_FILE, read_meta
from edgestar.types import InputError, ModelError

from ._verify_data import (
    _ALIASES,
    GREEDY_TOKENS,
    PAIR_GROUPS,
    PROMPTS,
    TOKENIZER_STRINGS,
    TOLERANCES,
    Tolerance,
    _pair_prefixes,
    tolerance_for,
)
from ._verify_models import (
    TorchReference,
    _check_threads,
    _GGUFTarget,
    _Greedy,
    _onnx_backend,
    _OnnxTarget,
    _Target,
    onnx_available,
)
from ._verify_report import Check, VerifyReport, _fmt

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
    "onnx_available",
    "tolerance_for",
    "verify_gguf",
    "verify_onnx",
    "verify_requant",
]

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
    lora: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Verify a GGUF file against the HF checkpoint it came from (torch reference).

    `lora`: a GGUF LoRA adapter applied to the file at load time; the reference is then the
    checkpoint with that adapter merged into its weights (train/lora.py `merge_adapter`).

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
    lora_path = Path(lora) if lora is not None else None
    target = _GGUFTarget(path, role, ref.n_ctx, threads, kv_f32, lora_path)
    try:
        checks, m = _compare_with_ref(target, ref, role, t)
    finally:
        target.close()
    rep = VerifyReport(
        target=lora_path or path,  # a LoRA check's report goes beside the adapter
        kind="gguf" if lora_path is None else f"gguf lora on {path.name}",
        role=role,
        quant=q,
        reference=f"torch:{ref.path}",
        file_bytes=path.stat().st_size + (lora_path.stat().st_size if lora_path else 0),
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
