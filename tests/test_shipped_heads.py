"""The reward heads shipped in models/heads/: each loads, is bound to one model file, and has a
card that names that file's sha256 and size (numpy only; no model needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgestar.head import FEATURE, load_head

HEADS = Path(__file__).resolve().parents[1] / "models" / "heads"
FILES = sorted(HEADS.glob("*.npz"))


def test_there_is_a_shipped_head() -> None:
    assert FILES, "models/heads/ ships no head"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_head_is_bound_and_carded(path: Path) -> None:
    head = load_head(path)
    assert re.fullmatch(r"[0-9a-f]{64}", head.model_sha256)
    assert head.meta.get("feature", FEATURE) == FEATURE and head.adapter_sha256 is None
    assert path.stat().st_size < 64_000  # a few kB: no second model
    card = path.with_name(path.name.removesuffix(".head.npz") + ".md")
    text = card.read_text(encoding="utf-8")
    assert head.model_sha256 in text
    assert f"{head.meta['model_bytes']:,}" in text
    assert head.meta["loss"] in text and path.name in text
