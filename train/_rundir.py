"""A training run on disk: its report (TrainReport, StepInfo), content hashes and the run
fingerprint inputs, atomic torch saves, and RunDir, the output folder life cycle (resumable
.state/, then the finished checkpoint committed by rename)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgestar.checkpoint import META_FILE, read_meta
from edgestar.types import InputError, ModelError

STATE_DIR = ".state"
STATE_FILE = "state.pt"
STATE_VERSION = 1


# ------------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class TrainReport:
    """What a finished run did. Losses are means over micro-batches; `eval_metrics[i]` holds
    epoch i's held-out metrics (always 'loss'; the PPM adds 'pairwise_accuracy')."""

    steps: int
    epochs: int
    n_train: int
    n_eval: int
    first_loss: float
    """Mean training loss of the first optimizer step (the starting point)."""
    final_loss: float
    """Mean training loss over the last epoch run."""
    epoch_losses: tuple[float, ...]
    eval_losses: tuple[float, ...]
    eval_metrics: tuple[dict[str, float], ...]
    tokens: int
    """Real (non-pad) tokens through the model in training steps."""
    tokens_per_s: float
    """`tokens` / time spent in training steps (forward, backward, optimizer)."""
    seconds: float
    """Wall time of the loop (evaluation and state saves included), summed over resumed
    segments (work lost to a kill is not counted)."""
    device: str
    dtype: str
    resumed: bool = False

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("epoch_losses", "eval_losses", "eval_metrics"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainReport:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("epoch_losses", "eval_losses", "eval_metrics"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)


@dataclass(frozen=True)
class StepInfo:
    """Passed to `on_step` after every optimizer step (and after any state save)."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    tokens: int
    state_saved: bool


# ------------------------------------------------------------------------------ hashing, I/O


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(*parts: Any) -> str:
    """sha256 of the JSON of `parts` (what a resumed run must share with the killed one)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def checkpoint_identity(ckpt: Path) -> dict[str, Any]:
    """A cheap identity of a checkpoint folder for fingerprints: resolved path, file names and
    sizes, and edgestar.json's text (no hashing of multi-GB weight files). A single-file base
    (a GGUF) is its own one-file list."""
    if ckpt.is_file():
        return {
            "path": str(ckpt.resolve()),
            "files": [(ckpt.name, ckpt.stat().st_size)],
            "meta": "",
        }
    files = sorted(
        (p.name, p.stat().st_size) for p in ckpt.iterdir() if p.is_file() and p.name[0] != "."
    )
    meta = (ckpt / META_FILE).read_text("utf-8") if (ckpt / META_FILE).is_file() else ""
    return {"path": str(ckpt.resolve()), "files": files, "meta": meta}


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save into a temp file beside `path`, fsync, rename: never a half-written state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------- run dir


class RunDir:
    """The output folder of one run (see the module docstring for the protocol).

    `status` after construction: 'fresh' (start from scratch), 'resume' (a saved state is there)
    or 'complete' (the finished checkpoint is there and `resume=True`: nothing to do).
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, resume: bool, force: bool) -> None:
        out = Path(out_dir)
        self.out = out
        self.state_dir = out / STATE_DIR
        self.state_path = self.state_dir / STATE_FILE
        self.partial = out.parent / f".{out.name}.partial"
        self.status = self._prepare(resume=resume, force=force)

    @staticmethod
    def _complete(folder: Path) -> bool:
        """edgestar.json plus a model's config.json, or a LoRA adapter's adapter_config.json."""
        weights = ("config.json", "adapter_config.json")
        return (folder / META_FILE).is_file() and any((folder / w).is_file() for w in weights)

    def _prepare(self, *, resume: bool, force: bool) -> str:
        out, partial = self.out, self.partial
        if force:
            for p in (out, partial):
                if p.exists():
                    shutil.rmtree(p)
            return "fresh"
        if partial.exists():
            if not resume:
                raise InputError(
                    f"{partial}: an interrupted run's checkpoint is there; pass resume=True to "
                    "finish it or force=True to start over"
                )
            if self._complete(partial):
                self._commit_partial()  # killed between writing and renaming: finish it
                return "complete"
            shutil.rmtree(partial)  # killed while writing it: the saved state rewrites it
        if not out.exists():
            return "fresh"
        if not out.is_dir():
            raise InputError(f"{out}: exists and is not a folder")
        if self._complete(out) and not self.state_dir.exists():
            if resume:
                return "complete"
            raise InputError(
                f"{out}: a checkpoint is already there; pass force=True to overwrite it "
                "or resume=True to keep it"
            )
        if not resume:
            raise InputError(
                f"{out}: already exists; pass resume=True to continue an interrupted run "
                "or force=True to start over"
            )
        others = [p.name for p in out.iterdir() if p.name != STATE_DIR]
        if others:
            raise InputError(
                f"{out}: holds files that are not a training state ({', '.join(sorted(others))}); "
                "refusing to resume into it"
            )
        if self.state_dir.exists():
            for stale in self.state_dir.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        return "resume" if self.state_path.is_file() else "fresh"

    def load_state(self, device: torch.device) -> dict[str, Any]:
        try:
            state = torch.load(self.state_path, map_location=device, weights_only=False)
        except Exception as e:
            raise ModelError(f"{self.state_path}: unreadable training state ({e})") from e
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ModelError(f"{self.state_path}: not a training state of this version")
        return state

    def save_state(self, state: dict[str, Any]) -> None:
        _atomic_torch_save(state, self.state_path)

    def commit(self, write: Callable[[Path], None]) -> Path:
        """`write(folder)` fills the partial folder (writing edgestar.json last); then it
        replaces `out_dir`."""
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        write(self.partial)
        if not self._complete(self.partial):
            raise ModelError(
                f"{self.partial}: the writer left no (adapter_)config.json / {META_FILE}"
            )
        for f in self.partial.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(self.partial)
        self._commit_partial()
        return self.out

    def _commit_partial(self) -> None:
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        if self.out.exists():
            self.out.rmdir()  # only ever the (now empty) run folder; fails loudly otherwise
        os.replace(self.partial, self.out)
        _fsync_dir(self.out.parent)

    def stored_report(self) -> TrainReport:
        prov = read_meta(self.out).provenance
        if "report" not in prov:
            raise ModelError(f"{self.out}: edgestar.json has no training report")
        return TrainReport.from_json(prov["report"])
