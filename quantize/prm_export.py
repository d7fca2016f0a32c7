"""`edgestar quantize` for an off-the-shelf process reward model checkpoint (`edgestar.prm`).

- `detect_prm_family(ckpt)`: a checkpoint whose tensors include a family's head tensors
  (`PrmFamily.checkpoint_tensors`: Skywork's `v_head.summary.*`, Qwen2.5-Math-PRM's `score.*`)
  is that family's PRM. Families that read the LM's logits (Math-Shepherd, RLHFlow) have no
  head to recognise: they are named (`edgestar quantize --prm FAMILY`).
- `export_prm`: the backbone goes through the normal GGUF export (`gguf_export.export_gguf`,
  then llama.cpp quantization for k-quants), without the head tensors and with the family,
  the head file's name and the tokenizer's BOS text in the metadata (`gguf_meta.PRM_KEYS`).
  A head becomes an edgestar head file beside the GGUF (`<stem>.prm-head.npz`, feature
  `PRM_FEATURE`, bound to the final GGUF's sha256) whose raw output is the logit of P(good):
  Skywork's Linear(h, 1) as it is; Qwen's Linear(h, h) -> ReLU -> Linear(h, 2) with the last
  layer folded to class 1 minus class 0 (softmax(z)[1] = sigmoid(z1 - z0), exact).
- re-quantizing a converted PRM GGUF (`edgestar quantize prm.gguf --quant q4_k_m`) keeps the
  metadata (llama.cpp copies it) and `rebind_prm_head` binds a copy of its head to the new file.
- verification: one fixed question and steps, scored by the torch reference of the published
  rule (`prm_reference`) and by edgestar through llama.cpp (F32 KV); the largest difference of
  P(good) is reported (`details["prm_parity"]`) and an F32 export must agree within 1e-4.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.checkpoint import CheckpointMeta
from edgestar.gguf_meta import PRM_KEYS
from edgestar.head import PRM_FEATURE, Head, file_sha256, save_head
from edgestar.prm import PRM_FAMILIES, PrmFamily, _family_of, _load_prm_head, open_prm
from edgestar.types import InputError, ModelError

from ._deploy_report import QuantizeResult
from .gguf_export import DTYPES, export_gguf
from .gguf_quant import QUANTS, quantize_gguf
from .prm_reference import checkpoint_tensor_names, read_tensors, reference_step_probabilities

__all__ = [
    "HEAD_SUFFIX",
    "VERIFY_SAMPLE",
    "detect_prm_family",
    "export_prm",
    "rebind_prm_head",
]

HEAD_SUFFIX = ".prm-head.npz"
VERIFY_SAMPLE = (
    "Tom has 12 apples and buys 30 more. How many apples does he have?",
    ("He starts with 12 apples.", "12 + 30 = 42", "The answer is \\boxed{42}."),
)
F32_BOUND = 1e-4


def detect_prm_family(ckpt: str | os.PathLike[str]) -> str | None:
    """The family whose head tensors the checkpoint holds, or None."""
    p = Path(ckpt)
    if not (p / "config.json").is_file():
        return None
    names = set(checkpoint_tensor_names(p))
    hits = [
        f.name
        for f in PRM_FAMILIES.values()
        if f.checkpoint_tensors and set(f.checkpoint_tensors) <= names
    ]
    return hits[0] if hits else None


def _bos_text(ckpt: Path) -> str:
    try:
        cfg = json.loads((ckpt / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    bos = cfg.get("bos_token") if isinstance(cfg, dict) else None
    if isinstance(bos, dict):
        bos = bos.get("content")
    return bos if isinstance(bos, str) else ""


def _head(ckpt: Path, fam: PrmFamily, hidden: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    t = read_tensors(ckpt, list(fam.checkpoint_tensors))
    if fam.head == "value":
        w, b = t["v_head.summary.weight"], t["v_head.summary.bias"]
        if w.shape != (1, hidden) or b.shape != (1,):
            raise ModelError(f"{ckpt}: v_head.summary is {w.shape}/{b.shape}, not [1, {hidden}]")
        return [w.T.astype(np.float64)], [b.astype(np.float64)]
    w0, b0, w2, b2 = (t[f"score.{i}.{k}"] for i in (0, 2) for k in ("weight", "bias"))
    if w0.shape != (hidden, hidden) or b0.shape != (hidden,) or w2.shape != (2, hidden):
        raise ModelError(f"{ckpt}: score head shapes {w0.shape}, {w2.shape} do not fit {hidden}")
    diff_w = (w2[1].astype(np.float64) - w2[0])[:, None]
    diff_b = np.array([float(b2[1]) - float(b2[0])])
    return [w0.T.astype(np.float64), diff_w], [b0.astype(np.float64), diff_b]


def export_prm(
    ckpt: str | os.PathLike[str],
    out: str | os.PathLike[str],
    quant: str = "q8_0",
    *,
    family: str | None = None,
    force: bool = False,
    verify: bool = True,
    threads: int = 1,
) -> QuantizeResult:
    """Convert a PRM checkpoint folder to `out` (.gguf) plus, for a head family, its head file."""
    t0 = time.perf_counter()
    s, o = Path(ckpt), Path(out)
    found = detect_prm_family(s)
    if family is not None and family not in PRM_FAMILIES:
        raise InputError(f"unknown PRM family {family!r}; known: {', '.join(PRM_FAMILIES)}")
    if family and found and family != found:
        raise InputError(f"{s} holds a {found} head, not a {family} PRM")
    name = family or found
    if name is None:
        raise InputError(f"{s}: no PRM head found; name the family with --prm")
    fam = PRM_FAMILIES[name]
    if fam.checkpoint_tensors and not found:
        raise ModelError(
            f"{s}: a {name} checkpoint needs tensors {', '.join(fam.checkpoint_tensors)}"
        )
    if quant not in DTYPES and quant not in QUANTS:
        raise InputError(
            f"unknown GGUF quant {quant!r}; choose from {', '.join([*DTYPES, *QUANTS])}"
        )
    if o.suffix != ".gguf":
        raise InputError(f"{o}: the output must be a .gguf file")
    if o.exists() and not force:
        raise InputError(f"{o} exists; pass force=True to overwrite")
    cfg = json.loads((s / "config.json").read_text(encoding="utf-8"))
    hidden = int(cfg.get("hidden_size") or 0)
    weights, biases = _head(s, fam, hidden) if fam.head else ([], [])
    head_name = o.stem + HEAD_SUFFIX
    kv = {
        PRM_KEYS["role"]: "prm",
        PRM_KEYS["family"]: fam.name,
        PRM_KEYS["bos"]: json.dumps(_bos_text(s)),
    }
    if fam.head:
        kv[PRM_KEYS["head"]] = head_name
    kw: dict[str, Any] = dict(
        meta=CheckpointMeta(role="policy", step_format="plain"),
        drop_prefixes=tuple(sorted({n.split(".")[0] + "." for n in fam.checkpoint_tensors})),
        extra_kv=kv,
        need_lm_head=fam.reads == "logits",
    )
    details: dict[str, Any] = {"prm_family": fam.name}
    if quant in DTYPES:
        export_gguf(s, o, dtype=quant, force=force, **kw)
    else:
        f32 = o.with_name(f".{o.name}.f32.tmp")
        try:
            export_gguf(s, f32, dtype="f32", force=True, **kw)
            qr = quantize_gguf(f32, o, quant, force=force, n_threads=threads)
            details["type_counts"] = [list(x) for x in qr.type_counts]
        finally:
            with contextlib.suppress(OSError):
                f32.unlink()
    if fam.head:
        head = Head(
            tuple(weights),
            tuple(biases),
            np.zeros(hidden),
            np.ones(hidden),
            model_sha256=file_sha256(o),
            model_name=o.name,
            meta={
                "feature": PRM_FEATURE,
                "prm_family": fam.name,
                "model_bytes": o.stat().st_size,
                "source": str(s.resolve().name),
            },
        )
        save_head(head, o.parent / head_name)
        details["head"] = str(o.parent / head_name)
    if verify:
        details["prm_parity"] = _verify(s, o, fam, threads)
        if quant == "f32" and details["prm_parity"]["max_abs_diff"] > F32_BOUND:
            raise ModelError(
                f"{o}: PRM scores differ from the torch reference by "
                f"{details['prm_parity']['max_abs_diff']:.2e} (> {F32_BOUND}); output kept"
            )
    src_bytes = sum(p.stat().st_size for p in s.glob("*.safetensors") if p.is_file())
    return QuantizeResult(
        src=s,
        to="gguf",
        quant=quant,
        out=o,
        out_bytes=o.stat().st_size,
        src_bytes=src_bytes,
        seconds=round(time.perf_counter() - t0, 3),
        verify=None,
        details=details,
    )


def _verify(ckpt: Path, gguf: Path, fam: PrmFamily, threads: int) -> dict[str, Any]:
    question, steps = VERIFY_SAMPLE
    ref = reference_step_probabilities(ckpt, fam.name, question, steps)
    prm = open_prm(gguf, threads=threads, n_ctx=1024, kv_f32=True)
    if prm is None:
        raise ModelError(f"{gguf}: written without its PRM metadata")
    try:
        got = prm.step_probabilities(question, steps)
    finally:
        prm.close()
    if len(got) != len(ref):
        raise ModelError(f"{gguf}: {len(got)} step scores against {len(ref)} from torch")
    diff = max(abs(a - b) for a, b in zip(got, ref, strict=True))
    return {"steps": len(ref), "max_abs_diff": diff, "torch": ref, "llamacpp": got}


def rebind_prm_head(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path | None:
    """After `out` was re-quantized from the PRM GGUF `src`: a copy of src's head bound to
    `out` (`<out stem>.prm-head.npz`), or None when src is no PRM with a head."""
    s, o = Path(src), Path(out)
    fam, meta = _family_of(s, None)
    if fam is None or not fam.head:
        return None
    h = _load_prm_head(s, fam, meta)
    meta2 = {**h.meta, "model_bytes": o.stat().st_size, "requantized_from": s.name}
    head = Head(
        h.weights, h.biases, h.mean, h.scale,
        model_sha256=file_sha256(o), model_name=o.name, meta=meta2,
    )  # fmt: skip
    return save_head(head, o.parent / (o.stem + HEAD_SUFFIX))
