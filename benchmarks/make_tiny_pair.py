"""Make the folder `edgestar bench --onnx-dir` reads: ONE tiny model in four encodings.

A random-init checkpoint of train/tiny.py's "edgestar-tiny" preset (Llama, 256 x 4 layers,
~3.7M parameters, byte-level BPE of 1024), exported by quantize/ as
  policy-f32.gguf   (gguf_export, f32)      policy-q8_0.gguf  (gguf_quant, q8_0)
  onnx-fp32/        (onnx_export)           onnx-int8/        (onnx_export.quantize_onnx int8)
so llama.cpp and ONNX Runtime can be compared on the same weights at similar precision
(f32 vs fp32, q8_0 vs dynamic int8). Needs the [quantize] extra (torch, optimum).

    .venv/bin/python benchmarks/make_tiny_pair.py OUT_DIR [--force]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from edgestar.quantize.gguf_export import export_gguf
from edgestar.quantize.gguf_quant import quantize_gguf
from edgestar.quantize.onnx_export import export_onnx, quantize_onnx
from edgestar.train.tiny import make_tiny_checkpoint


def make_tiny_pair(out: Path, force: bool = False, seed_preset: str = "edgestar-tiny") -> Path:
    if out.exists():
        if not force:
            raise SystemExit(f"{out} exists (use --force)")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_tiny_checkpoint(Path(tmp) / "ckpt", seed_preset)
        f32 = export_gguf(ckpt, out / "policy-f32.gguf")
        quantize_gguf(f32, out / "policy-q8_0.gguf", "q8_0")
        fp32 = export_onnx(ckpt, out / "onnx-fp32")
        quantize_onnx(fp32, out / "onnx-int8", "int8")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    print(make_tiny_pair(a.out, a.force))
