"""Read a GGUF file's metadata without loading the model (via the `gguf` package's reader).

Used to learn what a model declares (edgestar.step_format, edgestar.role, the chat template)
before choosing how to run it, and to check that a file is a GGUF at all before handing it to
llama.cpp, which may abort the process on garbage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .types import ModelError

GGUF_MAGIC = b"GGUF"


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """Raise ModelError unless `path` is a readable file that starts like a GGUF."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {p} does not exist")
    try:
        with open(p, "rb") as f:
            head = f.read(24)
    except OSError as e:
        raise ModelError(f"model file {p} is unreadable ({e.strerror})") from None
    if len(head) < 24 or head[:4] != GGUF_MAGIC:
        raise ModelError(f"{p} is not a GGUF model file")
    return p


def read_kv(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All metadata key/values of a GGUF file (strings, numbers, and arrays as lists)."""
    p = check_gguf(path)
    try:
        from gguf import GGUFReader, GGUFValueType

        reader = GGUFReader(p, "r")
    except Exception as e:  # truncated or corrupt file
        raise ModelError(f"{p} is not a valid GGUF file ({type(e).__name__}: {e})") from None
    out: dict[str, Any] = {}
    for name, fld in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        try:
            vt = fld.types[0] if fld.types else None
            if vt == GGUFValueType.STRING:
                out[name] = bytes(fld.parts[fld.data[0]]).decode("utf-8", errors="replace")
            elif vt == GGUFValueType.ARRAY:
                if len(fld.types) > 1 and fld.types[1] == GGUFValueType.STRING:
                    continue  # token lists: large and not needed here
                out[name] = [fld.parts[i].tolist()[0] for i in fld.data]
            else:
                out[name] = fld.parts[fld.data[0]].tolist()[0]
        except (IndexError, ValueError):
            continue
    return out


def read_string_kv(path: str | os.PathLike[str], key: str) -> str | None:
    v = read_kv(path).get(key)
    return v if isinstance(v, str) else None


PRM_KEYS = {
    # an off-the-shelf process reward model converted by `edgestar quantize` (edgestar.prm);
    # all values are strings, like every edgestar.* key (llama.cpp's metadata API skips arrays)
    "role": "edgestar.role",  # "prm"
    "family": "edgestar.prm.family",  # a key of edgestar.prm.PRM_FAMILIES
    "head": "edgestar.prm.head",  # the head file's name, beside the GGUF (hidden-state families)
    "bos": "edgestar.prm.bos",  # the checkpoint tokenizer's BOS text as JSON ('""': none)
}
