"""A process reward head on the policy's own hidden state: the file format, its binding to one
model file, and scoring.

rStar-Math scores steps with a second model (the PPM). On a small device the policy's own final
hidden state (after the last norm, Hugging Face's `hidden_states[-1]`) already carries most of
that signal, and llama.cpp returns it beside the logits from the decode that samples a step
(`Candidate.hidden`), so a small head on it scores every step with no extra forward pass and no
second model in memory.

- Input: the hidden state at the position that sampled the step's last token (see
  `edgestar.backends.base.HiddenStates`), standardized with the training set's mean and scale.
- Network: a linear layer, or an MLP with ReLU hidden layers; score = tanh(output), in (-1, 1).
- File: one `.npz` (numpy's zip of arrays: `mean`, `scale`, `w0`, `b0`, `w1`, ...; `meta`: the
  UTF-8 JSON of the head's metadata as uint8). Why npz: numpy is already a runtime dependency,
  `np.load(allow_pickle=False)` reads only plain arrays (no code), and the runtime install has
  no safetensors or gguf package. A head for a 896-wide model is ~4 kB (linear) to ~0.5 MB (MLP).
- Binding: `meta.model_sha256` is the sha256 of the GGUF file it was trained on; a head is
  refused, with one line, by any other file (another quantization of the same weights included:
  whether those score alike has not been measured, so they are not accepted). A head trained on
  a base GGUF with a LoRA adapter applied (a bundle whose base comes from a package) also names
  the adapter file's sha256, `meta.adapter_sha256`: the adapter changes the hidden states the
  head reads, so such a head needs that base AND that adapter, and a head without one is refused
  on an adapted policy (and one with it on the bare base).

`HeadReward` puts a head on a policy as a `Reward`: nodes whose candidate carried a hidden state
are scored from it (`score_hidden`); any other prefix (a step the runtime wrote, a backend that
does not record states) costs one cached decode through `policy.hidden_states`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .types import InputError, ModelError

__all__ = [
    "HEAD_FILE",
    "HEAD_FORMAT",
    "Head",
    "HeadReward",
    "file_sha256",
    "find_head",
    "is_head_path",
    "load_head",
    "save_head",
]

HEAD_FORMAT = "edgestar-head/1"
HEAD_FILE = "head.npz"
FEATURE = "final_norm_hidden_at_last_sampling_position"
PRM_FEATURE = "final_norm_hidden_at_prm_read_token"
"""An off-the-shelf PRM's head (`edgestar.prm`): no standardization, raw output = the logit of
P(good step) at the token the PRM family reads; not usable as a head on a policy."""
FEATURES = (FEATURE, PRM_FEATURE)


@dataclass(frozen=True)
class Head:
    """A value head: standardize, then Linear (-> ReLU -> Linear)*, then tanh."""

    weights: tuple[np.ndarray, ...] = field(repr=False)
    """w0 [n_embd, h1], w1 [h1, h2], ..., last [h_k, 1]."""
    biases: tuple[np.ndarray, ...] = field(repr=False)
    mean: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    model_sha256: str
    model_name: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    adapter_sha256: str | None = None
    """The sha256 of the GGUF LoRA adapter that was applied to the model when the head was
    trained; None: trained on the bare model file."""
    """Training provenance (problems, loss, held-out figures); free-form JSON."""

    def __post_init__(self) -> None:
        if len(self.weights) < 1 or len(self.weights) != len(self.biases):
            raise ModelError("head: needs as many bias vectors as weight matrices (>= 1)")
        d = self.mean.shape[0] if self.mean.ndim == 1 else -1
        if d < 1 or self.scale.shape != (d,) or not np.all(self.scale > 0):
            raise ModelError("head: mean/scale must be vectors of one length, scale > 0")
        width = d
        for w, b in zip(self.weights, self.biases, strict=True):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ModelError(f"head: layer shapes do not chain ({w.shape}, {b.shape})")
            width = w.shape[1]
        if width != 1:
            raise ModelError(f"head: the last layer must have one output, not {width}")
        arrays = (self.mean, self.scale, *self.weights, *self.biases)
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ModelError("head: non-finite weights")
        if len(self.model_sha256) != 64:
            raise ModelError("head: model_sha256 must be a 64-digit sha256")
        if self.adapter_sha256 is not None and len(self.adapter_sha256) != 64:
            raise ModelError("head: adapter_sha256 must be a 64-digit sha256")

    @property
    def n_embd(self) -> int:
        return int(self.mean.shape[0])

    @property
    def kind(self) -> str:
        return "linear" if len(self.weights) == 1 else f"mlp{len(self.weights)}"

    def raw(self, hidden: np.ndarray) -> np.ndarray:
        """Pre-squash outputs for [n, n_embd] (or one [n_embd]) hidden states."""
        h = np.asarray(hidden, dtype=np.float64)
        one = h.ndim == 1
        h = np.atleast_2d(h)
        if h.shape[1] != self.n_embd:
            raise InputError(f"head expects {self.n_embd}-wide hidden states, got {h.shape[1]}")
        x = (h - self.mean) / self.scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < last:
                x = np.maximum(x, 0.0)
        out = x[:, 0]
        return out[0] if one else out

    def score(self, hidden: np.ndarray) -> np.ndarray:
        """Scores in (-1, 1) (higher: more likely on a correct path)."""
        return np.tanh(self.raw(hidden))


# ------------------------------------------------------------------------------ file format


_BOUND = ("format", "model_sha256", "adapter_sha256")


def save_head(head: Head, path: str | os.PathLike[str]) -> Path:
    """Write `head` as an .npz file (atomically); returns the path."""
    p = Path(path)
    meta = {
        "format": HEAD_FORMAT,
        "feature": head.meta.get("feature", FEATURE),
        "model_sha256": head.model_sha256,
        "model_name": head.model_name,
        "n_embd": head.n_embd,
        "kind": head.kind,
        **{k: v for k, v in head.meta.items() if k not in _BOUND},
    }
    if head.adapter_sha256 is not None:
        meta["adapter_sha256"] = head.adapter_sha256
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        "mean": head.mean.astype("<f4"),
        "scale": head.scale.astype("<f4"),
    }
    for i, (w, b) in enumerate(zip(head.weights, head.biases, strict=True)):
        arrays[f"w{i}"] = w.astype("<f4")
        arrays[f"b{i}"] = b.astype("<f4")
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, p)
    return p


def is_head_path(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a head: an .npz file, or a folder holding head.npz."""
    p = Path(path)
    return (p.suffix == ".npz" and not p.is_dir()) or (p.is_dir() and (p / HEAD_FILE).is_file())


def load_head(path: str | os.PathLike[str]) -> Head:
    """Read a head file (or a folder with head.npz); a bad file is one-line ModelError."""
    p = Path(path)
    if p.is_dir():
        p = p / HEAD_FILE
    if not p.is_file():
        raise ModelError(f"{p}: no such head file")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays.pop("meta").astype(np.uint8)).decode("utf-8"))
    except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise ModelError(f"{p}: not an edgestar head file ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise ModelError(f"{p}: not an edgestar head file (format {meta.get('format')!r})")
    if meta.get("feature", FEATURE) not in FEATURES:
        raise ModelError(f"{p}: head reads feature {meta.get('feature')!r}, unknown here")
    n = sum(1 for k in arrays if k.startswith("w"))
    try:
        weights = tuple(arrays[f"w{i}"].astype(np.float64) for i in range(n))
        biases = tuple(arrays[f"b{i}"].astype(np.float64) for i in range(n))
        mean, scale = arrays["mean"].astype(np.float64), arrays["scale"].astype(np.float64)
    except KeyError as e:
        raise ModelError(f"{p}: head file lacks array {e}") from None
    known = ("format", "model_sha256", "adapter_sha256", "model_name", "n_embd", "kind")
    adapter = meta.get("adapter_sha256")
    try:
        return Head(
            weights,
            biases,
            mean,
            scale,
            model_sha256=str(meta.get("model_sha256", "")),
            model_name=str(meta.get("model_name", "")),
            meta={k: v for k, v in meta.items() if k not in known},
            adapter_sha256=None if adapter is None else str(adapter),
        )
    except ModelError as e:
        raise ModelError(f"{p}: {e}") from None


_sha_lock = threading.Lock()
_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for this process (a 0.5 GB model
    takes ~0.9 s to hash here)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _sha_lock:
        got = _sha_cache.get(key)
    if got is not None:
        return got
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    with _sha_lock:
        _sha_cache[key] = h.hexdigest()
    return h.hexdigest()


def find_head(model_path: str | os.PathLike[str], dirs: Sequence[Path]) -> Path | None:
    """The first head file under `dirs` bound to this model file's sha256, if any."""
    heads = []
    size = Path(model_path).stat().st_size
    for f in (f for d in dirs if d.is_dir() for f in sorted(d.glob("**/*.npz"))):
        try:
            h = load_head(f)
        except ModelError:
            continue
        if h.meta.get("feature", FEATURE) != FEATURE:
            continue  # an off-the-shelf PRM's head (edgestar.prm): not a head on a policy
        if h.adapter_sha256 is not None:
            continue  # trained with an adapter applied: not a head for the bare file
        if h.meta.get("model_bytes", size) == size:  # a cheap filter before hashing
            heads.append((f, h))
    if not heads:
        return None
    want = file_sha256(model_path)
    return next((f for f, h in heads if h.model_sha256 == want), None)


# ------------------------------------------------------------------------------ as a Reward


def _check_adapter(head: Head, where: str, adapter: str | os.PathLike[str] | None) -> None:
    """A head reads hidden states of the model AS RUN: with the adapter it was trained with."""
    want = head.adapter_sha256
    if adapter is None:
        if want is not None:
            raise ModelError(
                f"{where}: this head was trained with a LoRA adapter applied (sha256 "
                f"{want[:16]}...); load the model with that adapter"
            )
        return
    got = file_sha256(adapter)
    if want is None:
        raise ModelError(
            f"{where}: this head was trained on the bare model, not with the adapter "
            f"{Path(adapter).name} (it changes the hidden states the head reads)"
        )
    if got != want:
        raise ModelError(
            f"{where}: this head belongs to LoRA adapter sha256 {want[:16]}..., not "
            f"{Path(adapter).name} (sha256 {got[:16]}...)"
        )


class HeadReward:
    """A head on a policy's hidden states, as a `Reward`.

    `model_path`: the policy's model file; the head must be bound to its sha256 (else one-line
    ModelError). `adapter_path`: the GGUF LoRA adapter applied to that model, if any; the head
    must name the same adapter's sha256, or none when there is none. `check=False` skips both
    (a torch checkpoint of the same weights, in tests). The policy stays owned by its caller:
    `close()` leaves it open.
    """

    def __init__(
        self,
        policy: Any,
        head: Head | str | os.PathLike[str],
        *,
        model_path: str | os.PathLike[str] | None = None,
        adapter_path: str | os.PathLike[str] | None = None,
        check: bool = True,
    ) -> None:
        where = "" if isinstance(head, Head) else str(head)
        self.head = head if isinstance(head, Head) else load_head(head)
        if self.head.meta.get("feature", FEATURE) != FEATURE:
            raise ModelError(
                f"{where or 'head'}: this is the head of a process reward model "
                f"({self.head.meta.get('prm_family', '?')}); pass its GGUF as --ppm instead"
            )
        if not (hasattr(policy, "hidden_states") and hasattr(policy, "enable_hidden")):
            raise ModelError(f"{policy.name}: this backend gives no hidden states for a head")
        if check:
            if model_path is None:
                raise ModelError("a head is bound to a GGUF file: give the policy's model path")
            got = file_sha256(model_path)
            if got != self.head.model_sha256:
                raise ModelError(
                    f"{where or 'head'}: this head belongs to model sha256 "
                    f"{self.head.model_sha256[:16]}... ({self.head.model_name or '?'}), not "
                    f"{Path(model_path).name} (sha256 {got[:16]}...); train one for it with "
                    "`edgestar train head`"
                )
            _check_adapter(self.head, where or "head", adapter_path)
        n = int(getattr(policy, "n_embd", self.head.n_embd))
        if n != self.head.n_embd:
            raise ModelError(f"head is {self.head.n_embd} wide, the model's hidden size is {n}")
        policy.enable_hidden()
        self.policy = policy
        self.name = f"head:{self.head.kind}:{Path(where).name or self.head.model_name}"
        self.hidden_calls = 0
        """Prefixes scored by a decode (no recorded hidden state); the rest cost nothing."""

    def score_hidden(self, hidden: np.ndarray) -> list[float]:
        return [float(x) for x in np.atleast_1d(self.head.score(hidden))]

    def score(self, prefixes: Sequence[str]) -> list[float]:
        if not prefixes:
            return []
        self.hidden_calls += len(prefixes)
        return self.score_hidden(self.policy.hidden_states(prefixes))

    def close(self) -> None:
        pass
