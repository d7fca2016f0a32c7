"""The model registry: friendly names for GGUF files on the Hugging Face Hub, as data.

`edgestar pull NAME` downloads the entry's file into the hub's own cache; `edgestar solve --model
NAME` (and `edgestar.load("NAME")`) then finds it there, offline. Each entry names the repo and
file, the step format edgestar uses for it (`tir` for every chat model here: Qwen2.5-Math's
tool-integrated reasoning, see edgestar/formats.py), the sha256 when one is pinned, and the
reward head trained for it (a file in models/heads/) when one ships. None ships yet, so every
`head` is None.

What was and was not checked (nothing here can reach the Hub, so no entry was fetched from it):
- The repo and file names are the ones that public projects download from (their
  huggingface.co/.../resolve/main/... URLs, `hf_hub_download` calls and model tables); they were
  not confirmed against the Hub itself.
- A pinned sha256 is one that several independent public projects pin for that exact hub file,
  and, for the two Qwen2.5-Coder files, also the digest measured here on the copies that ship
  inside PyPI packages (benchmarks/fixtures.py), whose package says it is that hub file. An
  entry without a pin is checked against the Hub's LFS sha256 (the X-Linked-Etag of the file)
  at pull time instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .formats import FORMATS

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9][a-z0-9.\-]*")


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: a friendly name for one GGUF file in one Hub repo."""

    name: str
    repo: str
    """Hub repo id, "owner/name"."""
    file: str
    """The GGUF file's path inside the repo."""
    quant: str
    step_format: str = "tir"
    sha256: str | None = None
    """Pinned sha256 of the file, or None: then the Hub's LFS sha256 is the reference."""
    head: str | None = None
    """File name in models/heads/ of the edgestar reward head trained for this model, if any."""
    note: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"registry name {self.name!r}: lowercase letters, digits, . and -")
        if self.repo.count("/") != 1 or not all(self.repo.split("/")):
            raise ValueError(f"{self.name}: repo must be 'owner/name', got {self.repo!r}")
        if not self.file.endswith(".gguf") or self.file.startswith("/") or ".." in self.file:
            raise ValueError(f"{self.name}: file must be a relative .gguf path, got {self.file!r}")
        if self.step_format not in FORMATS:
            raise ValueError(f"{self.name}: step format {self.step_format!r} is not in FORMATS")
        if self.sha256 is not None and not _HEX64.fullmatch(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lowercase hex digits")
        if self.head is not None and (not self.head.endswith(".npz") or "/" in self.head):
            raise ValueError(f"{self.name}: head must be a file name in models/heads/ (.npz)")


REGISTRY: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        # Qwen publishes no GGUF of Qwen2.5-Math; bartowski's conversion (Apache-2.0) is the one
        # public projects use. sha256 pinned by several of them at revision 951ed2ae (986,048,832
        # bytes); not fetched here.
        ModelSpec(
            name="qwen2.5-math-1.5b-instruct",
            repo="bartowski/Qwen2.5-Math-1.5B-Instruct-GGUF",
            file="Qwen2.5-Math-1.5B-Instruct-Q4_K_M.gguf",
            quant="Q4_K_M",
            sha256="9614a50f03c897028920ca0dc4365da570bf587f9ee7768261216fe370b37e8e",
            note="math specialist; the model rStar-Math's tir format comes from",
        ),
        # Qwen's own GGUF repo (Apache-2.0). Unpinned: no published digest was found; the Hub's
        # LFS sha256 is checked at pull time. File name not confirmed against the Hub.
        ModelSpec(
            name="qwen2.5-0.5b-instruct",
            repo="Qwen/Qwen2.5-0.5B-Instruct-GGUF",
            file="qwen2.5-0.5b-instruct-q4_k_m.gguf",
            quant="Q4_K_M",
        ),
        # Qwen's own GGUF repo. sha256 pinned by several public projects (1,117,320,736 bytes;
        # one records it as the x-linked-etag the Hub reports at revision 91cad511); not
        # fetched here.
        ModelSpec(
            name="qwen2.5-1.5b-instruct",
            repo="Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            file="qwen2.5-1.5b-instruct-q4_k_m.gguf",
            quant="Q4_K_M",
            sha256="6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
        ),
        # Qwen's own GGUF repo. sha256 measured here on the copy inside PyPI packages
        # (benchmarks/fixtures.py, 491,400,064 bytes; the package names this repo at revision
        # ebb20151 as its source) and pinned for the hub file by many public projects.
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            quant="Q4_K_M",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            note="benchmarks/qwen2.5-coder-0.5b/report.md measures tir on it",
        ),
        # As above: measured here on the PyPI copy (1,117,320,768 bytes), pinned for the hub
        # file by many public projects.
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            quant="Q4_K_M",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        # Hugging Face's own GGUF repo publishes only Q8_0 for 360M. Unpinned (LFS check).
        ModelSpec(
            name="smollm2-360m-instruct",
            repo="HuggingFaceTB/SmolLM2-360M-Instruct-GGUF",
            file="smollm2-360m-instruct-q8_0.gguf",
            quant="Q8_0",
        ),
        # Hugging Face's own GGUF repo. Unpinned (LFS check).
        ModelSpec(
            name="smollm2-1.7b-instruct",
            repo="HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF",
            file="smollm2-1.7b-instruct-q4_k_m.gguf",
            quant="Q4_K_M",
        ),
        # Meta's repo is gated and has no GGUF; bartowski's conversion is ungated (Llama 3.2
        # Community License). Unpinned (LFS check).
        ModelSpec(
            name="llama-3.2-1b-instruct",
            repo="bartowski/Llama-3.2-1B-Instruct-GGUF",
            file="Llama-3.2-1B-Instruct-Q4_K_M.gguf",
            quant="Q4_K_M",
        ),
    )
}


def lookup(name: str) -> ModelSpec | None:
    """The registry entry for a friendly name (case does not matter), or None."""
    return REGISTRY.get(name.strip().lower())
