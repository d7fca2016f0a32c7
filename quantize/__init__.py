"""edgestar.quantize: checkpoint -> GGUF / ONNX, quantization, parity verification, bundles."""
