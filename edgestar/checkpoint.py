"""The checkpoint contract shared by train/, quantize/ and the torch backend.

A checkpoint is a Hugging Face-format folder:

    config.json, model.safetensors, tokenizer files   (as transformers saves them)
    value_head.safetensors                            (PPM only: tensors "weight" [1, hidden], "bias" [1])
    edgestar.json                                     (this module's `CheckpointMeta`)

The PPM is the policy's causal-LM backbone plus a scalar value head on the last token's final
hidden state (after the final norm): r = w . h + b, score = tanh(r / score_scale) in (-1, 1)
(rStar-Math's reference squashes with tanh(r / 5) at inference).

This module is torch-free: it reads and writes JSON (and safetensors headers, lazily).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .types import ModelError

META_FILE = "edgestar.json"
VALUE_HEAD_FILE = "value_head.safetensors"
SCHEMA_VERSION = 1
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@dataclass(frozen=True)
class CheckpointMeta:
    role: str  # "policy" | "ppm"
    step_format: str = "rstar"
    special_tokens: tuple[str, ...] = ()
    value_head: dict[str, Any] | None = None
    """PPM only: {"hidden_size": H, "score_scale": 5.0, "squash": "tanh"}."""
    provenance: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.role not in ("policy", "ppm"):
            raise ModelError(f"edgestar.json role must be 'policy' or 'ppm', got {self.role!r}")
        if self.role == "ppm" and not self.value_head:
            raise ModelError("a ppm checkpoint needs value_head in edgestar.json")

    @property
    def score_scale(self) -> float:
        return float((self.value_head or {}).get("score_scale", 5.0))

    def to_json(self) -> str:
        d = asdict(self)
        d["special_tokens"] = list(self.special_tokens)
        return json.dumps(d, indent=2, sort_keys=True)


def read_meta(ckpt: str | os.PathLike[str]) -> CheckpointMeta:
    p = Path(ckpt) / META_FILE
    if not p.is_file():
        raise ModelError(f"{ckpt}: not an edgestar checkpoint (no {META_FILE})")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{p}: unreadable ({e})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{p}: expected a JSON object")
    known = {"role", "step_format", "special_tokens", "value_head", "provenance", "schema"}
    d = {k: v for k, v in d.items() if k in known}
    d["special_tokens"] = tuple(d.get("special_tokens", ()))
    try:
        return CheckpointMeta(**d)
    except TypeError as e:
        raise ModelError(f"{p}: {e}") from None


def write_meta(ckpt: str | os.PathLike[str], meta: CheckpointMeta) -> None:
    atomic_write_text(Path(ckpt) / META_FILE, meta.to_json() + "\n")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; files we publish follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def param_count(ckpt: str | os.PathLike[str]) -> int:
    """Parameters of a checkpoint's backbone: the tensors of its model*.safetensors files (the
    value head is not counted), read from the headers only; 0 when there are none or they
    cannot be read."""
    import math

    try:
        from safetensors import safe_open

        total = 0
        for f in sorted(Path(ckpt).glob("model*.safetensors")):
            with safe_open(str(f), "np") as sf:
                for k in sf.keys():  # noqa: SIM118 - safe_open is not a dict
                    total += math.prod(sf.get_slice(k).get_shape())
        return total
    except Exception:
        return 0
