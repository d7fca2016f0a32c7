"""edgestar: on-device reasoning for small language models."""
