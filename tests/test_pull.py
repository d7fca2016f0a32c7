"""`edgestar pull` against a local mock of the Hugging Face Hub's file endpoints, through the real
huggingface_hub client (HF_ENDPOINT=http://127.0.0.1:PORT, a temporary HF_HOME): a download
checked against the Hub's LFS sha256, a download cut mid-body and resumed with a Range request,
a checksum failure refused and removed, a pinned registry sha256 that the Hub's file does not
match, and offline use of the cache, `edgestar solve --model NAME` included.

The mock answers what huggingface_hub 0.36 asks (file_download.py): HEAD on
/{repo}/resolve/{revision}/{file} gets a 302 to a CDN URL with X-Repo-Commit, X-Linked-Etag (the
LFS sha256), X-Linked-Size and ETag, as the Hub does for an LFS file; the client does not follow
that absolute redirect on HEAD and GETs the CDN URL, which honours Range (206). Errors carry the
Hub's X-Error-Code. The served model is the shipped edgestar-tiny policy GGUF (2.3 MB).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

pytest.importorskip("huggingface_hub")

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "models" / "edgestar-tiny" / "policy.q4_k_m.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REF = "edgestar-test/Tiny-GGUF/tiny-q4_k_m.gguf"
SMOL = ("HuggingFaceTB/SmolLM2-360M-Instruct-GGUF", "smollm2-360m-instruct-q8_0.gguf")
CODER = ("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    data: bytes
    lfs_sha256: str
    """What the Hub says the file's sha256 is (X-Linked-Etag); a lie for the checksum test."""
    linked_etag: bool = True
    """False: HEAD has no X-Linked-Etag, only the paths-info API gives the LFS sha256."""


@dataclass
class MockHub:
    files: dict[tuple[str, str], Served] = field(default_factory=dict)
    drop_after: int | None = None
    """Cut the next CDN download after this many bytes of the file (once)."""
    stall_after: int | None = None
    """Hold the next CDN download after this many bytes until `release` is set (once)."""
    release: threading.Event = field(default_factory=threading.Event)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def add(
        self,
        repo: str,
        file: str,
        data: bytes,
        lfs_sha256: str | None = None,
        linked_etag: bool = True,
    ) -> None:
        self.files[(repo, file)] = Served(data, lfs_sha256 or sha(data), linked_etag)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> MockHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def do_POST(self) -> None:  # /api/models/{repo}/paths-info/{revision}
                path = unquote(urlsplit(self.path).path)
                hub.log.append((self.command, path, None))
                m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/paths-info/([^/]+)", path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                if not m or m.group(2) not in ("main", COMMIT):
                    return self.fail(404, "RevisionNotFound")
                out = []
                for f in parse_qs(body).get("paths", []):
                    served = hub.files.get((m.group(1), f))
                    if served is not None:
                        lfs = {
                            "oid": served.lfs_sha256,
                            "size": len(served.data),
                            "pointerSize": 134,
                        }
                        out.append(
                            {
                                "type": "file",
                                "path": f,
                                "size": len(served.data),
                                "oid": sha(f.encode())[:40],
                                "lfs": lfs,
                            }
                        )
                payload = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def fail(self, code: int, error_code: str) -> None:
                self.send_response(code)
                self.send_header("X-Error-Code", error_code)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def answer(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.log.append((self.command, path, self.headers.get("Range")))
                if path.startswith("/cdn/"):
                    return self.cdn(path[len("/cdn/") :], body)
                m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if not m:
                    return self.fail(404, "RepoNotFound")
                repo, rev, file = m.groups()
                if not any(r == repo for r, _ in hub.files):
                    return self.fail(401, "RepoNotFound")
                if rev not in ("main", COMMIT):
                    return self.fail(404, "RevisionNotFound")
                served = hub.files.get((repo, file))
                if served is None:
                    return self.fail(404, "EntryNotFound")
                self.send_response(302)
                self.send_header("Location", f"{hub.url}/cdn/{repo}/{file}")
                self.send_header("X-Repo-Commit", COMMIT)
                if served.linked_etag:
                    self.send_header("X-Linked-Etag", f'"{served.lfs_sha256}"')
                self.send_header("X-Linked-Size", str(len(served.data)))
                self.send_header("ETag", f'"{sha(file.encode())[:40]}"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def cdn(self, key: str, body: bool) -> None:
                owner, name, file = key.split("/", 2)
                served = hub.files.get((f"{owner}/{name}", file))
                if served is None:
                    return self.fail(404, "EntryNotFound")
                data, start = served.data, 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not body:
                    return
                stall = hub.stall_after
                if stall is not None and stall > start:
                    hub.stall_after = None
                    self.wfile.write(data[start:stall])
                    self.wfile.flush()
                    hub.release.wait(60)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                cut = hub.drop_after
                if cut is not None and cut > start:
                    hub.drop_after = None
                    self.wfile.write(data[start:cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def hub():
    h = MockHub().start()
    yield h
    h.stop()


@pytest.fixture
def env(tmp_path: Path, hub: MockHub) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    e.update(
        HF_HOME=str(tmp_path / "hf"),
        HF_ENDPOINT=hub.url,
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
    )
    return e


def run(env: dict[str, str], *args: str, offline: bool = False) -> subprocess.CompletedProcess:
    e = {**env, "HF_HUB_OFFLINE": "1"} if offline else env
    cmd = [sys.executable, "-m", "edgestar", *args]
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=120)


def one_line(res: subprocess.CompletedProcess) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.returncode != 0
    return lines[0]


def cache_of(env: dict[str, str], repo: str) -> Path:
    return Path(env["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}"


def snapshot_files(env: dict[str, str], repo: str) -> list[Path]:
    return sorted(p for p in (cache_of(env, repo) / "snapshots").glob("*/**/*") if p.exists())


# ------------------------------------------------------------------------------------ tests


def test_download_checks_the_lfs_sha256_and_lands_in_the_hub_cache(hub, env):
    data = TINY.read_bytes()
    hub.add("edgestar-test/Tiny-GGUF", "tiny-q4_k_m.gguf", data)
    res = run(env, "pull", REF)
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    assert (
        path == cache_of(env, "edgestar-test/Tiny-GGUF") / "snapshots" / COMMIT / REF.split("/")[-1]
    )
    assert path.read_bytes() == data
    assert Path(os.path.realpath(path)).name == sha(data)  # the hub cache's blob, named by LFS oid
    assert f"sha256 {sha(data)} matches the Hub LFS sha256" in res.stderr
    gets = [p for m, p, _ in hub.log if m == "GET" and p.startswith("/cdn/")]
    assert len(gets) == 1
    # Pulled again: found in the cache, checked again, not downloaded again.
    res = run(env, "pull", REF, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["path"] == str(path) and out["checked_against"] == "hub-lfs"
    assert len([p for m, p, _ in hub.log if m == "GET" and p.startswith("/cdn/")]) == 1


def test_a_dropped_download_leaves_nothing_under_the_final_name_and_resumes(hub, env):
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    # The client writes whole chunks of DOWNLOAD_CHUNK_SIZE (10 MiB); a chunk cut short is lost.
    # So the file is 2.5 chunks of bytes and the connection drops half way through the second.
    data = hashlib.shake_256(b"edgestar").digest(DOWNLOAD_CHUNK_SIZE * 5 // 2)
    hub.add("edgestar-test/Tiny-GGUF", "tiny-q4_k_m.gguf", data)
    hub.drop_after = DOWNLOAD_CHUNK_SIZE * 3 // 2
    res = run(env, "pull", REF)
    line = one_line(res)
    assert "download failed" in line and f"rerun `edgestar pull {REF}`" in line
    blobs = cache_of(env, "edgestar-test/Tiny-GGUF") / "blobs"
    partial = blobs / f"{sha(data)}.incomplete"
    assert partial.is_file() and partial.stat().st_size == DOWNLOAD_CHUNK_SIZE
    cut = partial.stat().st_size
    assert partial.read_bytes() == data[:cut]
    assert not (blobs / sha(data)).exists()
    assert snapshot_files(env, "edgestar-test/Tiny-GGUF") == []
    # Nothing half-written is offered to solve either.
    line = one_line(run(env, "solve", "--model", REF, "q", offline=True))
    assert f"neither a file here nor a downloaded model: run `edgestar pull {REF}`" in line

    res = run(env, "pull", REF)
    assert res.returncode == 0, res.stderr
    cdn = [(p, r) for m, p, r in hub.log if m == "GET" and p.startswith("/cdn/")]
    assert cdn[-1][1] == f"bytes={cut}-"  # the rerun resumed with a Range request
    assert len(cdn) == 2
    assert Path(res.stdout.strip()).read_bytes() == data
    assert not partial.exists()


def test_ctrl_c_during_a_download_says_how_to_resume_and_the_rerun_does(hub, env):
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    data = hashlib.shake_256(b"ctrl-c").digest(DOWNLOAD_CHUNK_SIZE * 2)
    hub.add("edgestar-test/Tiny-GGUF", "tiny-q4_k_m.gguf", data)
    hub.stall_after = DOWNLOAD_CHUNK_SIZE * 3 // 2
    partial = cache_of(env, "edgestar-test/Tiny-GGUF") / "blobs" / f"{sha(data)}.incomplete"
    # A shell that starts pytest as a background job (CI runners, `cmd &`) passes SIGINT down as
    # ignored, and Python then installs no KeyboardInterrupt handler: give the child Python's own
    # handler back, as an interactive terminal would, then run the real `python -m edgestar`.
    cmd = [sys.executable, "-c", "import runpy, signal, sys; "
           "signal.signal(signal.SIGINT, signal.default_int_handler); "
           f"sys.argv = ['edgestar', 'pull', {REF!r}]; "
           "runpy.run_module('edgestar', run_name='__main__', alter_sys=True)"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (partial.is_file() and partial.stat().st_size == DOWNLOAD_CHUNK_SIZE):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        hub.release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and out == "", (proc.returncode, out, err, hub.log)
    assert err.strip() == (
        f"edgestar: error: interrupted: rerun `edgestar pull {REF}` to resume the download"
    )
    assert not (partial.parent / sha(data)).exists()
    assert snapshot_files(env, "edgestar-test/Tiny-GGUF") == []
    res = run(env, "pull", REF)
    assert res.returncode == 0, res.stderr
    assert hub.log[-1][2] == f"bytes={DOWNLOAD_CHUNK_SIZE}-"
    assert Path(res.stdout.strip()).read_bytes() == data


def test_a_checksum_failure_is_refused_and_removed(hub, env):
    data = TINY.read_bytes()
    hub.add("edgestar-test/Tiny-GGUF", "tiny-q4_k_m.gguf", data, lfs_sha256=sha(b"other"))
    line = one_line(run(env, "pull", REF))
    assert f"sha256 {sha(data)} but the Hub's LFS metadata says {sha(b'other')}" in line
    assert "removed" in line
    blobs = cache_of(env, "edgestar-test/Tiny-GGUF") / "blobs"
    assert not any(blobs.iterdir())  # no blob under the final name, no .incomplete either
    assert snapshot_files(env, "edgestar-test/Tiny-GGUF") == []
    line = one_line(run(env, "solve", "--model", REF, "q", offline=True))
    assert f"neither a file here nor a downloaded model: run `edgestar pull {REF}`" in line


def test_without_x_linked_etag_the_paths_info_api_gives_the_lfs_sha256(hub, env):
    data = TINY.read_bytes()
    hub.add("edgestar-test/Tiny-GGUF", "tiny-q4_k_m.gguf", data, linked_etag=False)
    res = run(env, "pull", REF, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["sha256"] == sha(data)
    assert any(m == "POST" and p.endswith(f"/paths-info/{COMMIT}") for m, p, _ in hub.log)
    hub.add("edgestar-test/Tiny-GGUF", "bad.gguf", data, lfs_sha256=sha(b"x"), linked_etag=False)
    line = one_line(run(env, "pull", "edgestar-test/Tiny-GGUF/bad.gguf"))
    assert f"the Hub's LFS metadata says {sha(b'x')}" in line


def test_a_pinned_sha256_the_hub_file_does_not_match_is_refused_before_downloading(hub, env):
    hub.add(*CODER, TINY.read_bytes())  # the registry pins the real Qwen file's sha256
    line = one_line(run(env, "pull", "qwen2.5-coder-0.5b-instruct"))
    assert "the registry pins 1d9614638d18" in line and "nothing was downloaded" in line
    assert not [p for m, p, _ in hub.log if p.startswith("/cdn/")]


def test_hub_errors_are_one_line(hub, env):
    hub.add("edgestar-test/Tiny-GGUF", "tiny-q4_k_m.gguf", b"GGUF")
    assert "no Hub repo nobody/None-GGUF" in one_line(run(env, "pull", "nobody/None-GGUF/x.gguf"))
    line = one_line(run(env, "pull", "edgestar-test/Tiny-GGUF/missing.gguf"))
    assert "has no file missing.gguf" in line
    line = one_line(run(env, "pull", REF, "--revision", "v9"))
    assert "has no revision 'v9'" in line
    assert "neither a registry name" in one_line(run(env, "pull", "not-a-model"))


def test_offline_the_cache_serves_pull_and_solve_by_name(hub, env):
    data = TINY.read_bytes()
    hub.add(*SMOL, data)
    res = run(env, "pull", "smollm2-360m-instruct")
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    listed = run(env, "pull", "--list")
    assert f"cached: {path}" in next(x for x in listed.stdout.splitlines() if "smollm2-360m" in x)
    hub.stop()  # no Hub from here on

    res = run(env, "pull", "smollm2-360m-instruct", offline=True)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()) == path

    q = ["--strategy", "greedy", "--tokens", "48", "--json", "What is 2 + 3?"]
    by_name = run(env, "solve", "--model", "smollm2-360m-instruct", *q, offline=True)
    assert by_name.returncode == 0, by_name.stderr
    # The registry's format (tir) applies, on exactly the cached file: same result as naming
    # the file and the format. (The file itself declares rstar, so auto would differ.)
    by_path = run(env, "solve", "--model", str(path), "--format", "tir", *q, offline=True)
    assert by_path.returncode == 0, by_path.stderr

    def strip(out: str) -> dict:
        r = json.loads(out)
        r["stats"].pop("seconds")
        return r

    assert strip(by_name.stdout) == strip(by_path.stdout)
    # No network at solve time even where offline mode is not set: the Hub is down here.
    assert run(env, "solve", "--model", "smollm2-360m-instruct", *q).returncode == 0

    # So does `edgestar bench` (and `edgestar train head`, through the same resolve_model).
    code = (
        "from edgestar.bench import _resolve_model; "
        "p, f = _resolve_model('smollm2-360m-instruct', None); print(p, f)"
    )
    res = subprocess.run([sys.executable, "-c", code], env={**env, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.stdout.split() == [str(path), "tir"], res.stderr

    # The library entry point resolves the name the same way.
    code = (
        "import edgestar, sys; s = edgestar.load('smollm2-360m-instruct'); "
        "assert s.format.name == 'tir', s.format.name; s.close(); print('ok')"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.stdout.strip() == "ok", res.stderr

    # A registry model that was never pulled: one line saying what to pull.
    for args in (
        ["solve", "--model", "qwen2.5-0.5b-instruct", "What is 2 + 3?"],
        ["pull", "qwen2.5-0.5b-instruct"],
    ):
        assert "edgestar pull qwen2.5-0.5b-instruct" in one_line(run(env, *args, offline=True))


def test_solving_a_gguf_path_never_imports_the_hub_client():
    code = (
        "import edgestar, sys; "
        f"edgestar.load(model={str(TINY)!r}, step_format='plain').close(); "
        "assert 'huggingface_hub' not in sys.modules and 'requests' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_registry_entries_are_valid_and_checked():
    from edgestar.registry import REGISTRY, ModelSpec, lookup

    assert {
        "qwen2.5-math-1.5b-instruct",
        "qwen2.5-0.5b-instruct",
        "qwen2.5-1.5b-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
        "smollm2-360m-instruct",
        "smollm2-1.7b-instruct",
        "llama-3.2-1b-instruct",
    } == set(REGISTRY)
    assert all(
        s.quant in ("Q4_K_M", "Q8_0") and s.file.endswith(".gguf") for s in REGISTRY.values()
    )
    assert lookup("  Qwen2.5-Coder-0.5B-Instruct ") is REGISTRY["qwen2.5-coder-0.5b-instruct"]
    # The two Coder pins are the digests of the PyPI-shipped copies (benchmarks/fixtures.py).
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from fixtures import FIXTURES
    finally:
        sys.path.pop(0)
    for name in ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):
        assert REGISTRY[name].sha256 == FIXTURES[f"{name}-q4_k_m"].sha256
    for bad in (
        {"repo": "no-owner"},
        {"file": "../x.gguf"},
        {"sha256": "ABC"},
        {"step_format": "nope"},
        {"head": "models/heads/x.npz"},
    ):
        with pytest.raises(ValueError):
            ModelSpec(**{"name": "x", "repo": "a/b", "file": "f.gguf", "quant": "Q8_0", **bad})
