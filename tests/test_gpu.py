"""CUDA paths, checked where a GPU exists (skipped elsewhere): llama.cpp layer offload, the torch
backend on CUDA, ONNX Runtime's CUDA provider. bitsandbytes and bf16 training are in
tests/test_train.py (marked gpu). benchmarks/gpu/run_gpu_checks.sh runs them all on a CUDA
machine with no network."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

TEXTS = ["What is (12 + 7) * 3?", "x = 12 + 7\nprint(x * 3)"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from edgestar.train.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("gpu") / "policy", "edgestar-tiny")


@pytest.fixture(scope="module")
def gguf_f32(tiny: Path) -> Path:
    from edgestar.quantize.gguf_export import export_gguf

    return export_gguf(tiny, tiny.parent / "policy.f32.gguf", dtype="f32")


_OFFLOAD_CHECK = """
import sys
import numpy as np
from edgestar.backends.llamacpp import LlamaCppPolicy
texts = {texts!r}
with LlamaCppPolicy(sys.argv[1], n_ctx=512, n_threads=1, kv_f32=True) as cpu:
    ref = [np.asarray(cpu.logits(t)) for t in texts]
with LlamaCppPolicy(sys.argv[1], n_ctx=512, n_threads=1, kv_f32=True, n_gpu_layers=-1) as gpu:
    got = [np.asarray(gpu.logits(t)) for t in texts]
for a, b in zip(ref, got):
    assert np.abs(a - b).max() < 1e-2 and a.argmax() == b.argmax(), np.abs(a - b).max()
print("offload ok")
"""


def _needs_offload() -> None:
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        pytest.skip("llama-cpp-python was built without GPU offload")


def test_llamacpp_offload_matches_cpu(gguf_f32: Path):
    # In a child process: a llama.cpp build that crashes must fail this test, not the run.
    import subprocess
    import sys

    _needs_offload()
    code = _OFFLOAD_CHECK.format(texts=TEXTS)
    res = subprocess.run([sys.executable, "-c", code, str(gguf_f32)], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr[-2000:]}"
    assert "offload ok" in res.stdout


def test_solver_auto_device_uses_cuda(gguf_f32: Path):
    import subprocess
    import sys

    _needs_offload()
    cmd = [sys.executable, "-m", "edgestar", "solve", "--model", str(gguf_f32), "--format",
           "rstar", "--device", "auto", "--rollouts", "4", "--json", "What is 2 + 3?"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr[-2000:]}"


def test_torch_backend_cuda_matches_cpu(tiny: Path):
    import torch

    from edgestar.backends.base import StepRequest
    from edgestar.backends.torch_backend import TorchPolicy

    req = StepRequest(prefix="What is 2 + 3?", k=4, seed=1, max_tokens=24, temperature=0.0)
    cpu = TorchPolicy(tiny, device="cpu").propose([req])[0]
    gpu = TorchPolicy(tiny, device="cuda", dtype=torch.float32).propose([req])[0]
    assert [c.text for c in cpu.candidates] == [c.text for c in gpu.candidates]


def test_onnx_cuda_provider(tiny: Path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (onnxruntime-gpu is not installed)")
    pytest.importorskip("optimum")
    from edgestar.backends.base import StepRequest
    from edgestar.backends.onnx import OnnxPolicy
    from edgestar.quantize.onnx_export import export_onnx

    onnx_dir = export_onnx(tiny, tiny.parent / "onnx")
    req = StepRequest(prefix="What is 2 + 3?", k=2, seed=1, max_tokens=16, temperature=0.0)
    cpu = OnnxPolicy(onnx_dir, device="cpu").propose([req])[0]
    gpu = OnnxPolicy(onnx_dir, device="cuda").propose([req])[0]
    assert [c.text for c in cpu.candidates] == [c.text for c in gpu.candidates]
