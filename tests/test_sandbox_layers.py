"""The sandbox's kernel layers one at a time, and what happens without them (issue 13).

Each layer is shown to hold on its own by switching the others off (EDGESTAR_SANDBOX_SIMULATE_
MISSING, with weak sandboxing explicitly allowed): Landlock alone keeps the hook-frame race and
a loaded shared library's constructor inside the step's directory; the noexec tmpfs alone
keeps a step-written shared library from being mapped at all. Without the layers, an Executor
and `edgestar solve` refuse to run model code with one line that names the opt-in, and run
with it; `edgestar doctor` prints the layers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_sandbox_escapes
from click.testing import CliRunner
from test_sandbox_escapes import RACE, build_so, hostname, load_so_code

from edgestar import _landlock
from edgestar.executor import (
    SIMULATE_ENV,
    WEAK_ENV,
    Executor,
    ExecutorConfig,
    WeakSandboxError,
)
from edgestar.types import InputError

MODS = ("math", "typing", "operator")
cc = test_sandbox_escapes.cc  # the C compiler fixture


def weak(monkeypatch: pytest.MonkeyPatch, missing: str) -> Iterator[Executor]:
    monkeypatch.setenv(SIMULATE_ENV, missing)
    with Executor(ExecutorConfig(allowed_modules=MODS, allow_weak_sandbox=True)) as e:
        e.start()
        yield e


@pytest.fixture()
def landlock_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Executor]:
    if _landlock.abi_version() < 1:
        pytest.skip("Landlock is not available in this kernel")
    yield from weak(monkeypatch, "namespaces,seccomp")


@pytest.fixture()
def namespaces_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Executor]:
    gen = weak(monkeypatch, "landlock,seccomp")
    e = next(gen)
    if not e.info["layers"]["mount_ns"]:
        pytest.skip("mount namespaces are not available here")
    yield e
    gen.close()


def test_landlock_alone_stops_the_hook_frame_race(landlock_only: Executor, tmp_path: Path) -> None:
    layers = landlock_only.info["layers"]
    assert layers["landlock_abi"] >= 1 and not layers["mount_ns"] and not layers["seccomp"]
    marker = tmp_path / "written"
    code = RACE + (
        "for rel, mode in (('etc/hostname', 'r'), "
        f"({str(marker).lstrip('/')!r}, 'w')):\n"
        "    try:\n        f = race_open(rel, mode)\n        print('OPENED', rel)\n"
        "    except OSError as e:\n        print('refused', kind(e))\n"
    )
    r = landlock_only.run(code)
    assert r.stdout == "refused PermissionError\nrefused PermissionError\n", r
    assert not marker.exists()


def test_landlock_alone_confines_a_loaded_library(
    landlock_only: Executor,
    cc: str,
    tmp_path: Path,
) -> None:
    """Without the noexec tmpfs the library loads and its constructor runs, as native code no
    Python hook sees; Landlock still keeps it from reading /etc/hostname or writing outside."""
    marker = tmp_path / "created-by-constructor"
    r = landlock_only.run(load_so_code(build_so(cc, tmp_path, marker)))
    assert "RAN:" in r.stdout, r  # it did run
    assert hostname() not in r.stdout.replace("RAN:", "") and not marker.exists(), r


def test_parent_kills_what_a_step_leaves_running(
    landlock_only: Executor, cc: str, tmp_path: Path
) -> None:
    """Without seccomp and the PID namespace (and as root, so RLIMIT_NPROC does not bite), a
    loaded library's constructor forks a sleeper that would outlive the step. The zygote, its
    subreaper, finds it after the step, kills it and fails the step, whatever the step said."""
    extra = "if (fork() == 0) { sleep(30); _exit(0); }"
    r = landlock_only.run(load_so_code(build_so(cc, tmp_path, tmp_path / "m", extra)))
    assert not r.ok and "left 1 process(es) running" in (r.error or ""), r
    zygote = landlock_only.info["pid"]
    assert Path(f"/proc/{zygote}/task/{zygote}/children").read_text().split() == []
    r = landlock_only.run("print(1)")
    assert r.ok and r.stdout == "1\n", r


def test_noexec_tmpfs_alone_refuses_to_map_a_library(
    namespaces_only: Executor,
    cc: str,
    tmp_path: Path,
) -> None:
    assert namespaces_only.info["layers"]["landlock_abi"] == 0
    marker = tmp_path / "created-by-constructor"
    r = namespaces_only.run(load_so_code(build_so(cc, tmp_path, marker)))
    assert "load failed: ImportError" in r.stdout and "constructor did not run" in r.stdout, r
    assert not marker.exists()


# --- degradation is explicit ----------------------------------------------------------------


def test_missing_layers_refuse_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIMULATE_ENV, "landlock,namespaces")
    monkeypatch.delenv(WEAK_ENV, raising=False)
    with (
        Executor(ExecutorConfig(allowed_modules=MODS)) as e,
        pytest.raises(WeakSandboxError) as err,
    ):
        e.run("print(1)")
    msg = str(err.value)
    assert "\n" not in msg and "Landlock" in msg and "--allow-weak-sandbox" in msg
    with Executor(ExecutorConfig(allowed_modules=MODS, allow_weak_sandbox=True)) as e:
        r = e.run("print(1)")
        assert r.ok and r.stdout == "1\n", r
        assert e.info["layers"]["landlock_abi"] == 0 and not e.info["layers"]["pid_ns"]
    monkeypatch.setenv(WEAK_ENV, "1")
    assert ExecutorConfig().allow_weak_sandbox is True
    with pytest.raises(InputError):
        ExecutorConfig(allow_weak_sandbox="yes")  # type: ignore[arg-type]


def test_full_sandbox_needs_no_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIMULATE_ENV, raising=False)
    monkeypatch.delenv(WEAK_ENV, raising=False)
    with Executor(ExecutorConfig(allowed_modules=MODS)) as e:
        try:
            info = e.start()
        except WeakSandboxError as err:
            pytest.skip(f"this machine lacks a kernel layer: {err}")
        layers = info["layers"]
        assert layers["landlock_abi"] >= 1 and layers["mount_ns"] and layers["net_ns"]
        assert layers["step_uid"] != 0 and layers["caps_dropped"]
        assert layers["pid_ns"] or os.geteuid() != 0  # as root: one per step


@pytest.mark.llama
def test_solve_refuses_without_the_kernel_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp")
    from edgestar.cli import main

    monkeypatch.setenv(SIMULATE_ENV, "landlock,namespaces")
    monkeypatch.delenv(WEAK_ENV, raising=False)
    run = CliRunner()
    res = run.invoke(main, ["solve", "--threads", "1", "What is 12 + 30?"])
    assert res.exit_code != 0
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.output, res.output
    assert "--allow-weak-sandbox" in err[0] and "Landlock" in err[0], err
    res = run.invoke(main, ["solve", "--threads", "1", "--allow-weak-sandbox", "What is 12 + 30?"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip()


def test_doctor_prints_the_layers() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "edgestar.cli", "doctor"], capture_output=True, text=True
    )
    names = [line.split("  ")[0] for line in res.stdout.splitlines()]
    assert names[:2] == ["Landlock", "unprivileged user"], res.stdout
    assert {"seccomp", "rlimits", "PID namespace"} <= {n.strip() for n in names}
    if res.returncode == 0:
        assert "every kernel layer" in res.stdout and " OFF " not in res.stdout
    else:
        assert "--allow-weak-sandbox" in res.stderr and "Traceback" not in res.stderr


def test_a_non_root_user_gets_the_same_kernel_layers() -> None:
    """Started by an unprivileged user (here `nobody`, with a world-readable interpreter), the
    worker makes its namespaces inside a user namespace: Landlock, mount/network namespaces,
    the noexec tmpfs, no capabilities; no PID namespace per step (that needs root)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become an unprivileged user")
    py = next((p for p in (sys.executable, "/usr/bin/python3") if _world_usable(p)), None)
    if py is None:
        pytest.skip("no interpreter that an unprivileged user may run")
    import edgestar

    top = tempfile.mkdtemp(prefix="edgestar-nonroot-")
    try:
        os.chmod(top, 0o755)
        pkg = Path(top) / "esnr"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        src = Path(edgestar.__file__).parent
        for name in (
            "executor",
            "_sandbox_worker",
            "_landlock",
            "_sandbox_kernel",
            "_seccomp",
            "types",
        ):
            shutil.copy(src / f"{name}.py", pkg / f"{name}.py")
        subprocess.run(["chmod", "-R", "a+rX", top], check=True)
        code = RACE + "print(os.getuid())\nprint(race_open('etc/hostname', 'r').read())\n"
        script = (
            f"import sys, json\nsys.path.insert(0, {top!r})\n"
            "from esnr.executor import Executor, ExecutorConfig\n"
            "c = ExecutorConfig(allowed_modules=('math', 'typing', 'operator'))\n"
            "with Executor(c) as e:\n"
            f"    r = e.run({code!r})\n"
            "    print(json.dumps([r.stdout, r.error, e.info['layers']]))\n"
        )
        res = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", py, "-c", script],
            capture_output=True, text=True, cwd="/", timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        stdout, error, layers = json.loads(res.stdout.strip().splitlines()[-1])
        assert layers["user_ns"] and layers["mount_ns"] and layers["landlock_abi"] >= 1, layers
        assert layers["step_uid"] == 65534 and layers["caps_dropped"], layers
        assert stdout == "0\n" and "Permission denied" in error, (stdout, error)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _world_usable(path: str) -> bool:
    real = os.path.realpath(path)
    parts = real.split("/")
    for i in range(2, len(parts)):
        if not os.stat("/".join(parts[:i])).st_mode & 0o001:
            return False
    return bool(os.stat(real).st_mode & 0o005 == 0o005)


def test_a_temp_dir_closed_to_others_is_refused_not_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, with the temp dir inside a directory `nobody` cannot enter, steps could not
    reach their own directories: the unprivileged-user layer is reported off and the Executor
    refuses with one line, rather than failing every step."""
    if os.geteuid() != 0:
        pytest.skip("the drop to nobody happens only as root")
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(closed / "inner"))
    monkeypatch.delenv(WEAK_ENV, raising=False)
    monkeypatch.delenv(SIMULATE_ENV, raising=False)
    with (
        Executor(ExecutorConfig(allowed_modules=MODS)) as e,
        pytest.raises(WeakSandboxError) as err,
    ):
        e.run("print(1)")
    assert "unprivileged user" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("abi", range(1, 8))
def test_landlock_binding_on_each_abi(abi: int, tmp_path: Path) -> None:
    """The binding builds a correct ruleset for every ABI a kernel may have (JetPack 6's 5.15
    has ABI 1): reads under a read root, writes in the write dir, nothing else."""
    have = _landlock.abi_version()
    if have < abi:
        pytest.skip(f"this kernel has Landlock ABI {have}")
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            _landlock.restrict((sys.base_prefix,), (str(work),), abi=abi)
            code = 0
            try:
                Path("/etc/hostname").read_text()
                code |= 2
            except PermissionError:
                pass
            try:
                outside.write_text("x")
                code |= 4
            except PermissionError:
                pass
            (work / "a").write_text("x")  # allowed
            Path(os.__file__).read_bytes()  # allowed (under the read root)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (work / "a").read_text() == "x" and not outside.exists()
