"""Open a policy or reward model from a path, choosing the backend by what the path holds:
a `.gguf` file runs on llama.cpp, a folder with model.onnx on ONNX Runtime, a Hugging Face
checkpoint folder on torch (only when torch is installed). Backends are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..types import ModelError
from .base import Policy, Reward


def _onnx_dir(path: Path) -> Path | None:
    """The ONNX model folder `path` names: the folder itself or its model.onnx file."""
    if path.is_file() and path.suffix == ".onnx":
        return path.parent
    if path.is_dir() and (path / "model.onnx").is_file():
        return path
    return None


def open_policy(
    path: Path,
    device: str,
    threads: int | None,
    n_ctx: int,
    gpu_layers: int = -1,
    lora: Path | None = None,
) -> Policy:
    """`gpu_layers`: layers offloaded when `device` is cuda (-1: all). `lora`: a GGUF LoRA
    adapter applied at load time (llama.cpp only)."""
    if path.is_file() and path.suffix == ".gguf":
        from .llamacpp import LlamaCppPolicy

        ngl = gpu_layers if device == "cuda" else 0
        return LlamaCppPolicy(
            str(path), n_ctx=n_ctx, n_threads=threads, n_gpu_layers=ngl, lora=lora
        )
    if lora is not None:
        raise ModelError(f"a LoRA adapter needs a .gguf base model (llama.cpp), not {path}")
    if (onnx_dir := _onnx_dir(path)) is not None:
        from .onnx import OnnxPolicy

        return OnnxPolicy(str(onnx_dir), device=device, threads=threads)
    if path.is_dir() and (path / "config.json").is_file():
        return _torch_backend().TorchPolicy(str(path), device=device, threads=threads)
    if not path.exists():
        raise ModelError(f"model {path} does not exist")
    raise ModelError(
        f"{path} is not a model edgestar can load (a .gguf file or a checkpoint folder)"
    )


def open_reward(
    path: Path, device: str, threads: int | None, n_ctx: int, gpu_layers: int = -1
) -> Reward:
    if path.is_file() and path.suffix == ".gguf":
        from .llamacpp import LlamaCppReward

        ngl = gpu_layers if device == "cuda" else 0
        return LlamaCppReward(str(path), n_ctx=n_ctx, n_threads=threads, n_gpu_layers=ngl)
    if (onnx_dir := _onnx_dir(path)) is not None:
        from .onnx import OnnxReward

        return OnnxReward(str(onnx_dir), device=device, threads=threads)
    if path.is_dir() and (path / "config.json").is_file():
        return _torch_backend().TorchReward(str(path), device=device, threads=threads)
    if not path.exists():
        raise ModelError(f"reward model {path} does not exist")
    raise ModelError(f"{path} is not a reward model edgestar can load")


def _torch_backend() -> Any:
    try:
        from . import torch_backend
    except ImportError as e:
        raise ModelError(
            f"this checkpoint needs torch + transformers ({e.name} is missing): "
            "pip install 'edgestar[torch]', or use a GGUF bundle"
        ) from None
    return torch_backend
