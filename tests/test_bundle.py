"""Bundle manifests: validated before loading; tampering and truncation are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgestar.bundle import MANIFEST, read_bundle, write_manifest
from edgestar.types import ModelError


def make(tmp_path: Path) -> Path:
    (tmp_path / "policy.gguf").write_bytes(b"GGUF" + b"\x01" * 100)
    (tmp_path / "ppm.gguf").write_bytes(b"GGUF" + b"\x02" * 100)
    write_manifest(
        tmp_path,
        {
            "name": "t",
            "step_format": "rstar",
            "policy": {"file": "policy.gguf", "kind": "gguf", "quant": "q8_0"},
            "ppm": {"file": "ppm.gguf", "kind": "gguf", "quant": "q8_0"},
            "files": {"policy.gguf": {}, "ppm.gguf": {}},
            "search": {"strategy": "mcts", "width": 4},
        },
    )
    return tmp_path


def test_roundtrip(tmp_path: Path):
    b = read_bundle(make(tmp_path))
    assert b.policy.quant == "q8_0" and b.ppm is not None and b.search["width"] == 4


def test_tampered_file_is_refused(tmp_path: Path):
    root = make(tmp_path)
    data = bytearray((root / "ppm.gguf").read_bytes())
    data[50] ^= 0xFF
    (root / "ppm.gguf").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        read_bundle(root)


def test_truncated_file_is_refused(tmp_path: Path):
    root = make(tmp_path)
    (root / "policy.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="bytes"):
        read_bundle(root)


def test_missing_file_and_bad_manifests(tmp_path: Path):
    root = make(tmp_path)
    (root / "ppm.gguf").unlink()
    with pytest.raises(ModelError, match="missing"):
        read_bundle(root)
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        read_bundle(root)
    (root / MANIFEST).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelError, match="not an edgestar-bundle"):
        read_bundle(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not an edgestar bundle"):
        read_bundle(empty)
    with pytest.raises(ModelError, match="does not exist"):
        read_bundle(tmp_path / "nowhere")


def test_paths_must_stay_inside(tmp_path: Path):
    root = make(tmp_path)
    m = json.loads((root / MANIFEST).read_text())
    m["policy"]["file"] = "../evil.gguf"
    (root / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ModelError, match="inside the bundle"):
        read_bundle(root)
