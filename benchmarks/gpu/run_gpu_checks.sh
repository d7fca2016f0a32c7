#!/usr/bin/env bash
# GPU checks for edgestar on a CUDA machine with no network (what was run on the lent H100).
# Expects, in .whl/: llama_slim.tar.gz (llama-cpp-python 0.3.36 sdist without vendored
# models/docs), wheels of transformers 4.57.6, tokenizers 0.22.2, huggingface-hub 0.36.2, gguf,
# math-verify (+ latex2sympy2_extended, antlr4-python3-runtime), diskcache, and bnb/ (the
# bitsandbytes 0.50.2 wheel unpacked with only its CUDA 13.0 library). Writes logs to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_checks.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.whl/bnb
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . || exit 1
t0=$(date +%s)
mkdir -p /tmp/llb && tar xzf .whl/llama_slim.tar.gz -C /tmp/llb
( cd /tmp/llb/llama_cpp_python-0.3.36 && CMAKE_BUILD_PARALLEL_LEVEL=16 \
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_CUDA_NCCL=OFF" \
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . ) \
  || echo "llama-cpp-python CUDA build FAILED"
echo "llama-cpp-python CUDA build: $(( $(date +%s) - t0 )) s"
export PYTHONFAULTHANDLER=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'bf16:', torch.cuda.is_bf16_supported())"
python3 -c "import transformers, bitsandbytes; print('transformers', transformers.__version__, 'bitsandbytes', bitsandbytes.__version__)"
python3 -c "import onnxruntime as ort; print('onnxruntime', ort.__version__, ort.get_available_providers())"
python3 -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__)"
python3 -c "import llama_cpp; print('gpu offload:', llama_cpp.llama_supports_gpu_offload())"
ls -la /tmp/site/llama_cpp/lib 2>/dev/null | head; du -sh /tmp/site/llama_cpp/lib
(cd /tmp/site/llama_cpp && tar czf "$OUT/llama_cuda_lib.tar.gz" lib) && ls -la "$OUT"
cd /tmp
python3 -m pytest -q -p no:cacheprovider -rs "$OLDPWD/tests/test_train.py" -m gpu 2>&1 | tail -n 40
python3 -m pytest -q -p no:cacheprovider -rs -x "$OLDPWD/tests/test_gpu.py" 2>&1 | tail -n 60
python3 - <<'PY'
# Decode throughput of the batched llama.cpp backend, CPU vs CUDA offload (random edgestar-tiny).
import time, tempfile, pathlib
from edgestar.train.tiny import make_tiny_checkpoint
from edgestar.quantize.gguf_export import export_gguf
from edgestar.backends.llamacpp import LlamaCppPolicy
from edgestar.backends.base import StepRequest
d = pathlib.Path(tempfile.mkdtemp())
g = export_gguf(make_tiny_checkpoint(d / "p", "edgestar-tiny"), d / "p.gguf", dtype="f16")
for ngl in (0, -1):
    for k in (1, 16):
        with LlamaCppPolicy(str(g), n_ctx=4096, n_threads=4, n_gpu_layers=ngl) as pol:
            reqs = [StepRequest(prefix="What is 12 + 30?", k=k, seed=s, max_tokens=128, stop=()) for s in range(3)]
            pol.propose(reqs[:1])
            t = time.perf_counter(); props = pol.propose(reqs); dt = time.perf_counter() - t
        n = sum(c.n_tokens for p in props for c in p.candidates)
        print(f"gpu_layers={ngl} k={k}: {n / dt:.0f} generated tok/s ({n} tokens, {dt:.2f}s, 4 threads)")
PY
