"""Deployable bundles: a folder with `bundle.json` plus the policy and PPM model files.

The PPM may be a head on the policy's own hidden state ({"file": "head.npz", "kind": "head"}):
bundle.json then names the model file and its head, and loading checks that they belong together.

The manifest names every file with its size and SHA-256, the step format, the quant types, the
device profile it was sized for, the versions that made it and the default search settings.
`read_bundle` validates all of it before any model is loaded: a missing, truncated or tampered
file is refused with one readable line. `write_manifest` (used by `edgestar deploy`) is the only
code that writes one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write_text
from .types import ModelError

MANIFEST = "bundle.json"
BUNDLE_FORMAT = "edgestar-bundle"
BUNDLE_VERSION = 1
MODEL_KINDS = ("gguf", "onnx", "head")
"""head: a reward head on the policy's hidden state (edgestar.head), an .npz bound to the
policy GGUF's sha256; only as the ppm entry."""


@dataclass(frozen=True)
class ModelEntry:
    file: str
    kind: str  # gguf | onnx
    quant: str = "f32"


@dataclass(frozen=True)
class Bundle:
    root: Path
    name: str
    step_format: str
    policy: ModelEntry
    ppm: ModelEntry | None
    profile: str = "laptop-cpu"
    alternates: dict[str, dict[str, ModelEntry]] = field(default_factory=dict)
    """Other encodings of the same models, e.g. {"onnx": {"policy": ..., "ppm": ...}}."""
    search: dict[str, Any] = field(default_factory=dict)
    """Default search settings: strategy, width, rollouts, tokens, ..."""
    versions: dict[str, str] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)
    """How to run it: threads, n_ctx, gpu_layers (they override the profile's)."""

    def path(self, entry: ModelEntry) -> Path:
        return self.root / entry.file


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _entry(d: Any, where: str) -> ModelEntry:
    if not isinstance(d, dict) or not isinstance(d.get("file"), str):
        raise ModelError(f"bundle manifest: {where} must be an object with a 'file'")
    kind = d.get("kind", "gguf")
    if kind not in MODEL_KINDS:
        raise ModelError(f"bundle manifest: {where} kind {kind!r} is not one of {MODEL_KINDS}")
    if Path(d["file"]).is_absolute() or ".." in Path(d["file"]).parts:
        raise ModelError(f"bundle manifest: {where} file must be inside the bundle")
    return ModelEntry(file=d["file"], kind=kind, quant=str(d.get("quant", "f32")))


def read_bundle(root: str | os.PathLike[str], verify: bool = True) -> Bundle:
    """Parse and validate a bundle folder; with `verify`, check every file's size and hash."""
    root = Path(root)
    mpath = root / MANIFEST
    if not root.is_dir():
        raise ModelError(f"bundle {root} does not exist or is not a folder")
    if not mpath.is_file():
        raise ModelError(f"{root} is not an edgestar bundle (no {MANIFEST})")
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{mpath}: unreadable manifest ({e})") from None
    if not isinstance(m, dict) or m.get("format") != BUNDLE_FORMAT:
        raise ModelError(f"{mpath}: not an {BUNDLE_FORMAT} manifest")
    if m.get("version") != BUNDLE_VERSION:
        raise ModelError(f"{mpath}: manifest version {m.get('version')!r} is not supported")
    files = m.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelError(f"{mpath}: manifest lists no files")
    policy = _entry(m.get("policy"), "policy")
    ppm = _entry(m["ppm"], "ppm") if m.get("ppm") else None
    if policy.kind == "head":
        raise ModelError(f"{mpath}: the policy cannot be a head")
    alternates = {
        enc: {role: _entry(e, f"alternates.{enc}.{role}") for role, e in roles.items()}
        for enc, roles in (m.get("alternates") or {}).items()
    }
    named = [policy] + ([ppm] if ppm else []) + [e for r in alternates.values() for e in r.values()]
    for e in named:
        if e.file not in files:
            raise ModelError(f"{mpath}: {e.file} is used but has no checksum in 'files'")
    if verify:
        for name, info in files.items():
            p = root / name
            if not p.is_file():
                raise ModelError(f"bundle file {name} is missing from {root}")
            size = p.stat().st_size
            if size != info.get("bytes"):
                raise ModelError(
                    f"bundle file {name} is {size} bytes, manifest says {info.get('bytes')}"
                )
            if sha256_file(p) != info.get("sha256"):
                raise ModelError(f"bundle file {name} fails its checksum (tampered or corrupt)")
    return Bundle(
        root=root,
        name=str(m.get("name", root.name)),
        step_format=str(m.get("step_format", "rstar")),
        policy=policy,
        ppm=ppm,
        profile=str(m.get("profile", "laptop-cpu")),
        alternates=alternates,
        search=dict(m.get("search") or {}),
        versions=dict(m.get("versions") or {}),
        runtime=dict(m.get("runtime") or {}),
    )


def write_manifest(root: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    """Fill in sizes and checksums for every file in manifest['files'] and write bundle.json."""
    root = Path(root)
    m = dict(manifest)
    m["format"], m["version"] = BUNDLE_FORMAT, BUNDLE_VERSION
    m["files"] = {
        name: {"bytes": (root / name).stat().st_size, "sha256": sha256_file(root / name)}
        for name in m.get("files", {})
    }
    atomic_write_text(root / MANIFEST, json.dumps(m, indent=2, sort_keys=True) + "\n")
    return root / MANIFEST


def default_bundle_path() -> Path | None:
    """The bundle shipped with edgestar (models/ in a checkout, edgestar/models when installed),
    or None when none is installed. EDGESTAR_BUNDLE overrides it."""
    env = os.environ.get("EDGESTAR_BUNDLE")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for cand in (here / "models" / "edgestar-tiny", here.parent / "models" / "edgestar-tiny"):
        if (cand / MANIFEST).is_file():
            return cand
    return None
