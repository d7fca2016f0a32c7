"""`edgestar pull`: fetch a GGUF model from the Hugging Face Hub, check it, and find it offline.

A model is named either by the registry (edgestar/registry.py: `qwen2.5-coder-0.5b-instruct`)
or as `OWNER/REPO/FILE.gguf`. `pull_model` downloads it with huggingface_hub into the hub's own
cache (HF_HOME / HF_HUB_CACHE; resumable, with its progress bar), then checks the file's
sha256 against the registry's pinned value, else against the Hub's LFS sha256 (the file's
X-Linked-Etag, or the paths-info API's `lfs.oid` where a response lacks that header). Where both
exist and differ, nothing is downloaded. A file that does not match is
removed from the cache (its blob and its snapshot entry) and refused with one line.

The hub client writes a download to `blobs/<sha256>.incomplete` and renames it only once every
byte has arrived, so an interrupted download leaves nothing under the final name; the next pull
resumes it with an HTTP Range request.

`resolve_model` is what `edgestar solve --model NAME` and `edgestar.load("NAME")` use: it looks in
the local cache only (no network call, ever) and, for a model that is not there, says what to
pull. huggingface_hub is imported only inside these functions: `import edgestar` and a solve
from a .gguf path never import it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundle import sha256_file
from .registry import REGISTRY, ModelSpec, lookup
from .types import InputError, ModelError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_MISSING_HUB = (
    "edgestar pull needs huggingface_hub, which is not installed: "
    "pip install 'huggingface_hub>=0.36,<1'"
)


@dataclass(frozen=True)
class HubRef:
    """A GGUF file on the Hub: a registry entry's, or one named as OWNER/REPO/FILE."""

    repo: str
    file: str
    spec: ModelSpec | None = None

    @property
    def label(self) -> str:
        return self.spec.name if self.spec else f"{self.repo}/{self.file}"


@dataclass(frozen=True)
class PullResult:
    ref: HubRef
    path: Path
    """The file in the hub cache (a snapshot entry that links to its blob)."""
    sha256: str
    size: int
    checked_against: str
    """"pinned" (the registry's sha256) or "hub-lfs" (the Hub's LFS sha256 for the file)."""
    revision: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.ref.label,
            "repo": self.ref.repo,
            "file": self.ref.file,
            "revision": self.revision,
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.size,
            "checked_against": self.checked_against,
        }


def hub_ref(text: str) -> HubRef | None:
    """`text` as a registry name or OWNER/REPO/FILE.gguf, else None (no file system look-up)."""
    spec = lookup(text)
    if spec is not None:
        return HubRef(spec.repo, spec.file, spec)
    parts = text.strip().split("/")
    if (
        len(parts) >= 3
        and text.endswith(".gguf")
        and all(parts)
        and not any(p in (".", "..") for p in parts)
        and not text.startswith(("/", "~"))
    ):
        return HubRef("/".join(parts[:2]), "/".join(parts[2:]))
    return None


def parse_ref(text: str) -> HubRef:
    ref = hub_ref(text)
    if ref is None:
        raise InputError(
            f"{text!r} is neither a registry name (`edgestar pull --list`) nor OWNER/REPO/FILE.gguf"
        )
    return ref


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise ModelError(_MISSING_HUB) from None
    return huggingface_hub


def cached_path(ref: HubRef, revision: str = "main") -> Path | None:
    """The cached file for `ref` at `revision` (a branch, tag or commit), or None. Local only."""
    hub = _hub()
    found = hub.try_to_load_from_cache(ref.repo, ref.file, revision=revision)
    return Path(found) if isinstance(found, str) else None


def resolve_model(model: str | os.PathLike[str]) -> tuple[Path, ModelSpec | None]:
    """What `--model` names: an existing path as it is; a registry name or OWNER/REPO/FILE.gguf
    as its file in the hub cache (never a network call). Anything else comes back as a path, for
    the loader to report. A pullable model that is not cached is a one-line ModelError."""
    path = Path(model)
    if path.exists():
        return path, None
    ref = hub_ref(str(model))
    if ref is None:
        return path, None
    found = cached_path(ref)
    if found is None:
        what = "is not downloaded" if ref.spec else "is neither a file here nor a downloaded model"
        raise ModelError(
            f"{model} {what}: run `edgestar pull {model}` first (nothing is fetched at solve time)"
        )
    return found, ref.spec


def is_model_name(text: str) -> bool:
    """Whether `text` names a pullable model rather than a path that exists."""
    return not Path(text).exists() and hub_ref(text) is not None


def _remove_from_cache(path: Path) -> None:
    """Drop a bad download: its snapshot entry and, when that is a link, the blob it names."""
    blob = Path(os.path.realpath(path))
    path.unlink(missing_ok=True)
    if blob != path and blob.parent.name == "blobs":
        blob.unlink(missing_ok=True)


def _check(ref: HubRef, path: Path, expected: str, against: str, revision: str) -> PullResult:
    got = sha256_file(path)
    if got != expected:
        _remove_from_cache(path)
        what = "the registry pins" if against == "pinned" else "the Hub's LFS metadata says"
        raise ModelError(
            f"{ref.label}: sha256 {got} but {what} {expected}; the download was removed"
        )
    return PullResult(ref, path, got, path.stat().st_size, against, revision)


def _verify_cached(ref: HubRef, path: Path, revision: str) -> PullResult:
    """Offline: check a cached file against the pin, else against its blob's name (the hub
    cache names an LFS blob by the sha256 the Hub gave for it)."""
    blob = Path(os.path.realpath(path)).name
    if ref.spec and ref.spec.sha256:
        return _check(ref, path, ref.spec.sha256, "pinned", revision)
    if _HEX64.fullmatch(blob):
        return _check(ref, path, blob, "hub-lfs", revision)
    raise ModelError(f"{ref.label}: the cached file has no sha256 to check against")


def pull_model(text: str, revision: str = "main") -> PullResult:
    """Download (or find in the cache) the model `text` names, check its sha256, and return
    where it is. Offline (HF_HUB_OFFLINE=1) it checks the cached copy instead."""
    ref = parse_ref(text)
    hub = _hub()
    from huggingface_hub import constants, errors
    from requests import RequestException

    if constants.HF_HUB_OFFLINE:
        found = cached_path(ref, revision)
        if found is None:
            raise ModelError(
                f"{ref.label} is not in the cache and HF_HUB_OFFLINE is set: "
                f"run `edgestar pull {text}` where the Hub can be reached"
            )
        return _verify_cached(ref, found, revision)
    pin = ref.spec.sha256 if ref.spec else None
    try:
        url = hub.hf_hub_url(ref.repo, ref.file, revision=revision)
        meta = hub.get_hf_file_metadata(url)
        lfs = meta.etag if meta.etag and _HEX64.fullmatch(meta.etag) else None
        if lfs is None and meta.commit_hash:  # no X-Linked-Etag: ask the paths-info API
            info = hub.HfApi().get_paths_info(ref.repo, [ref.file], revision=meta.commit_hash)
            lfs = next((f.lfs.sha256 for f in info if getattr(f, "lfs", None)), None)
        if pin and lfs and pin != lfs:
            raise ModelError(
                f"{ref.label}: the Hub's file has sha256 {lfs} but the registry pins {pin}; "
                "refusing it (nothing was downloaded)"
            )
        expected, against = (pin, "pinned") if pin else (lfs, "hub-lfs")
        if expected is None:
            raise ModelError(
                f"{ref.label}: the Hub gives no LFS sha256 for it and the registry pins none; "
                "refusing an unchecked download"
            )
        path = Path(hub.hf_hub_download(ref.repo, ref.file, revision=revision))
    except errors.GatedRepoError:
        raise ModelError(f"{ref.repo} is gated: accept its terms on the Hub and log in") from None
    except errors.RepositoryNotFoundError:
        raise ModelError(f"no Hub repo {ref.repo} (or it is private)") from None
    except errors.RevisionNotFoundError:
        raise ModelError(f"{ref.repo} has no revision {revision!r}") from None
    except errors.LocalEntryNotFoundError as e:
        raise ModelError(f"{ref.label}: cannot reach the Hub and it is not cached ({e})") from None
    except errors.EntryNotFoundError:
        raise ModelError(f"{ref.repo} has no file {ref.file} at {revision}") from None
    except errors.HfHubHTTPError as e:
        raise ModelError(f"{ref.label}: the Hub refused: {str(e).splitlines()[0]}") from None
    except (RequestException, OSError) as e:
        found = cached_path(ref, revision)
        if found is not None and not isinstance(e, errors.FileMetadataError):
            return _verify_cached(ref, found, revision)
        raise ModelError(
            f"{ref.label}: download failed ({type(e).__name__}: {str(e).splitlines()[0]}); "
            f"rerun `edgestar pull {text}` to resume it"
        ) from None
    return _check(ref, path, expected, against, revision)


@dataclass(frozen=True)
class RegistryRow:
    spec: ModelSpec
    path: Path | None
    """Where it is cached, or None."""


def registry_status() -> list[RegistryRow]:
    """Every registry entry with its cached file, if any (local only)."""
    return [RegistryRow(s, cached_path(HubRef(s.repo, s.file, s))) for s in REGISTRY.values()]
