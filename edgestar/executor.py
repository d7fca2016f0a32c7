"""Sandboxed execution of model-written Python steps: `ExecutorConfig`, `ExecResult`, `Executor`,
`WeakSandboxError`, and `sandbox_report` (what `edgestar doctor` prints).

rStar-Math's policy writes each step as Python that must run; its output goes back into the
prompt and a step whose code fails ends the branch. This module runs that code so that a
hostile or merely broken step cannot hurt the process running the search.

    with Executor(ExecutorConfig(timeout_s=2.0)) as ex:
        r = ex.run("print(x * 2)", prefix="x = 21")
        r.ok, r.stdout                                  # True, "42\\n"

Security model
--------------
Model-written code is attacker-controlled input. The boundary is enforced by the Linux kernel,
in layers that hold even against native code running in the step (a shared library's
constructor, a memory-corruption bug in CPython, numpy or sympy). The Python-level checks
(audit hook, trimmed builtins, AST check) stay, but only as defence in depth and for clear
error messages: the step's own Python process can reach them, so they are not the boundary.

Kernel layers (`edgestar doctor` prints which are active):
  - Landlock (Linux >= 5.13; edgestar/_landlock.py): reads only under the Python prefixes and
    the package directories the allowed modules come from (+ /dev/null, /dev/urandom);
    read/write/create only in the step's own directory; no execve anywhere; no TCP (ABI 4);
    no signals or abstract unix sockets to processes outside the step (ABI 6). The kernel
    resolves `..`, symlinks and /proc magic links itself, so races against the audit hook's
    path check and symlinks inside a read root gain nothing. Applied with no_new_privs in the
    step process, after the zygote's imports and before the step's code.
  - An unprivileged identity: started as root, a step runs as `nobody` (65534), which empties
    its capability sets; started as a normal user, the worker makes its namespaces in a new
    user namespace and each step drops every capability there. When the interpreter lives
    under a directory `nobody` cannot enter (/root/.pyenv on this machine), the worker mounts,
    in its own mount namespace, a tmpfs over that directory holding only read-only bind mounts
    of the interpreter's directories.
  - Namespaces: the worker lives in fresh mount, network (no interface but a loopback that is
    down), IPC and UTS (host name "edgestar-sandbox") namespaces; as root each step is PID 1
    of a fresh PID namespace, so the kernel kills whatever it might leave when it ends, and
    the zygote is not even visible to it.
  - Each step's directory is a private tmpfs (16 MiB, 4,096 inodes) mounted noexec, nosuid,
    nodev: no shared object written there can be mapped executable, so `_imp.create_dynamic`
    of a step-written .so fails. Unmounting it removes everything in it, at any depth.
  - PR_SET_DUMPABLE 0 in the zygote and every step: /proc/<pid>/mem and ptrace are closed
    between them (Landlock also keeps /proc out of reach). PR_SET_PDEATHSIG: a step dies with
    the zygote.
  - seccomp (x86-64; edgestar/_seccomp.py): EPERM for fork/vfork/clone/clone3, execve(at),
    kill/tkill (tgkill only to itself), ptrace, process_vm_*, socket(pair), mknod, chown,
    link, symlink, mount and namespace calls, module loading, kexec, bpf, perf_event_open,
    io_uring, userfaultfd, memfd_create, System V and POSIX IPC, keyctl, open_by_handle_at,
    pidfd_*, setrlimit and prlimit64 with new limits, setpgid/setsid, scheduler changes.
  - rlimits: RLIMIT_AS = the zygote's address space + `memory_mb`; RLIMIT_CPU = `cpu_s` (hard
    `cpu_s`+1, SIGKILL); RLIMIT_FSIZE 1 MiB; RLIMIT_NOFILE 64; RLIMIT_CORE 0; RLIMIT_NPROC 0
    (for an unprivileged user, a kernel-enforced no-fork).

The verdict comes from the parent. The zygote enforces the wall clock with SIGKILL and reads
timeouts, CPU and memory exhaustion and crashes from what the kernel reports (exit status,
signal, rusage). As each step's subreaper it then checks that nothing is left below it; a
leftover is killed and fails the step. The child's own report only says how its Python code
ended (printed output, an exception): a step that forges it (writing its own result frame, or
erasing the audit hook's record of refusals through frames) can make its own step look
successful, but cannot make a refused action succeed, since the kernel refused it.

Degradation is explicit. Where the kernel lacks Landlock, the mount and network namespaces,
seccomp (on x86-64) or a way to drop privileges (macOS; JetPack 5's 5.10 kernel), `run` raises
`WeakSandboxError`, one line naming the missing layers and the opt-in: `--allow-weak-sandbox`
on the command line, `ExecutorConfig(allow_weak_sandbox=True)`, or EDGESTAR_ALLOW_WEAK_SANDBOX=1.
Nothing is silently weaker. A non-root user gets every layer but the per-step PID namespace
(that needs root); without it, no step can start a process (RLIMIT_NPROC, seccomp) and the
parent's check still kills leftovers.

Out of scope: side channels (timing, cache, the page cache), kernel bugs (a kernel exploit
beats every layer here), denial of service below the limits (a step may use `memory_mb` of
RAM, 16 MiB of tmpfs and its CPU time), and reading what the step's process already holds: it
is a fork of the zygote, so it sees the zygote's memory (the allowed modules, the config the
caller sent; nothing secret is put there) and os.uname()/os.getpid()-style facts.

Tested (tests/test_sandbox_escapes.py, tests/test_sandbox_layers.py): the issue-13 escapes, a
gc callback that runs inside the audit hook and races its path check to read /etc/hostname
and write outside; the same race at /proc/<zygote>/mem; a step-written .so loaded with
`_imp.create_dynamic`; a forged verdict; a 1,500-deep tree; and further probes: a symlink
inside a read root, /proc/self/root, /proc/self/cwd and /proc/self/environ, /dev/shm, a
writable shared mapping of the interpreter's own files, setuid(0), the host name, memfd,
io_uring, userfaultfd and IPC under seccomp, leftover processes; each kernel layer alone
(Landlock alone confines a loaded library's constructor; the noexec tmpfs alone keeps it from
loading); the refusal without the layers; a non-root user (as `nobody`).

How a run works
---------------
Code never runs in the caller's process. `Executor` starts, on first use, one long-lived worker
("zygote"): `sys.executable -I edgestar/_sandbox_worker.py`, isolated mode, an environment of
only PATH, LANG/LC_ALL and OMP/OPENBLAS/MKL_NUM_THREADS=1, its own session, stdin/stdout/stderr
not shared with the caller. The zygote imports the allowed modules once (sympy, numpy) and runs
a small sympy warm-up so lazy imports and caches are paid once; it then enters its namespaces
and probes what the kernel allows (Landlock ABI, namespaces, seccomp, the drop to `nobody`);
then, per run, it mounts the step's tmpfs and `fork()`s a child that inherits all of that. The
caller and the zygote speak length-prefixed JSON over pipes that the zygote moves off fds 0/1
at start (so nothing a step prints can reach them).

In the child, in this order:
  1. the step's tmpfs as cwd, HOME and TMPDIR; all other descriptors closed; stdin, stdout
     and stderr point to /dev/null at the descriptor level;
  2. the rlimits above and an interval timer;
  3. the identity drop (`nobody`, or no capabilities in the user namespace), then
     PR_SET_DUMPABLE 0 and PR_SET_PDEATHSIG (both reset by a change of identity), RLIMIT_NPROC
     0, Landlock, seccomp;
  4. the Python-level fences (defence in depth): stubs for `_posixsubprocess.fork_exec`,
     `os.mkfifo` and `os.mknod`; a default-deny `sys.addaudithook` (reads under the read
     roots, writes only in the step's directory, at most 64 creations, no ctypes or
     _posixsubprocess loading, no os.system/exec*/spawn*/fork, sockets, signals to others,
     setrlimit, gc.get_objects, frame attributes of generators/coroutines/tracebacks, ...; a
     refused operation fails the step even if the code catches the exception, as far as the
     step's own report can be trusted); builtins without open, eval, exec, compile, input,
     breakpoint, globals, locals, vars, getattr, setattr, delattr, help, exit, quit,
     memoryview; an `__import__` that admits only top-level names in `allowed_modules`; an
     AST check that refuses attributes starting with "_", frame/code attributes, names
     starting with "__" (except `__name__`), relative imports and private names;
  5. `prefix` then `code` run in one namespace; while `prefix` runs, output is discarded; the
     step's output goes through a bounded writer that forwards at most `max_output_chars`
     characters to the zygote *as it is printed* (so output survives a kill) and counts the
     rest.

The zygote reports: timed_out for the wall clock or the CPU hard limit (as PID 1 of its
namespace a step ignores SIGXCPU, so the hard limit's SIGKILL ends it); memory_exceeded for
MemoryError in the child (a reserve buffer is freed so the verdict can still be sent) or for a
death by SIGSEGV/SIGABRT/SIGBUS/SIGKILL whose peak RSS came near the limit; "crashed: ..." for
any other death. A signal a step raises on itself with no handler (`raise(SIGSEGV)`, `abort`'s
first try) is ignored by the kernel for a PID 1; real faults are not. `Executor` adds its own
deadline (timeout + 10 s) on the zygote's answer; if the zygote dies or stops answering it is
killed with its whole process group and a new one starts on the next run (one transparent
retry when it is found dead).

Choices
-------
- Names: only names starting with "__" are refused, not all starting with "_": `_` is the
  usual throwaway loop variable in model code. Attributes starting with "_" are all refused.
- A single huge print is not a failure: `ok` stays True with `truncated` set; an endless print
  ends by timeout. `raise SystemExit(0)` (or None) counts as a normal end, as in a script.
- `operator` is allowed: `operator.attrgetter("__class__")` reads dunders, but so do
  `string.Formatter().get_field` and `sympy.sympify`; the Python fences make naive misuse fail
  fast with a clear message; the kernel layers are the boundary.
- `close()` releases the worker; a later `run()` starts a new one (the object stays usable).
  Cleanup never recurses (edgestar/_sandbox_kernel.py `rmtree`: one descriptor at a time) and
  `close()` never raises because of what a step left.

Cost (median of 50, `python -m edgestar.executor`; see the README's security section for the
figures measured for issue 13, before and after)
--------------------------------------------------------------------------------------------
- zygote startup (sympy + numpy import, sympy warm-up, namespaces and probes): 0.45-0.50 s
  on an idle 2-core machine before issue 13 (with only `math` allowed: 45 ms);
- `print(1 + 1)`: 4.8-5.1 ms per run on that machine before issue 13, of which ~2 ms is fork +
  exit of the ~70 MB zygote; issue 13 adds the tmpfs mount and unmount, the PID namespace, the
  identity drop and the Landlock ruleset to each run, and removes the step's directory after
  the reply is sent rather than before. Measured before/after on the same machine while
  shared with other jobs (load 5-7; interleaved, 100 runs each): CPU of zygote + step per run
  12.5 -> 13.0 ms (trivial) and 23.8 -> 24.0 ms (sympy); wall medians 32.1 -> 29.0 ms and
  50.9 -> 48.7 ms; worker start 2.44 -> 2.53 s. `python -m edgestar.executor` prints wall
  and CPU per run;
- a first use of a sympy subpackage the warm-up did not touch pays its import in every run
  (`sympy.stats`: ~300 ms), since children do not give their imports back to the zygote.
Time spent in `prefix` is paid on every run, as the prefix is re-executed each time.

Thread safety: `run` and `close` hold one lock, so an Executor may be shared by threads, but
its runs are serialised (one zygote, one child at a time); use one Executor per thread for
parallel execution. An Executor inherited across `os.fork()` starts its own zygote.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import platform
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import _sandbox_kernel
from .types import EdgestarError, InputError

_WORKER = Path(__file__).with_name("_sandbox_worker.py")
_BASE_MODULES = (
    "math", "cmath", "fractions", "decimal", "sympy", "itertools", "functools", "statistics",
    "collections", "re", "string", "random", "datetime", "heapq", "bisect", "operator",
    "numbers", "typing", "dataclasses", "copy",
)  # fmt: skip
DEFAULT_MODULES: tuple[str, ...] = _BASE_MODULES + (
    ("numpy",) if importlib.util.find_spec("numpy") is not None else ()
)
"""What model code may import by default (numpy only where it is installed)."""

STARTUP_TIMEOUT_S = 180.0
"""How long the zygote may take to import its modules (sympy on a slow board takes seconds)."""
REPLY_GRACE_S = 10.0
"""Slack on top of `timeout_s` before the caller gives up on the zygote itself."""
WEAK_ENV = "EDGESTAR_ALLOW_WEAK_SANDBOX"
"""Set to 1 (as `edgestar solve --allow-weak-sandbox` does): the default of
`ExecutorConfig.allow_weak_sandbox`."""
SIMULATE_ENV = "EDGESTAR_SANDBOX_SIMULATE_MISSING"
"""For tests: comma-separated layers the worker acts as if the kernel lacked ("landlock",
"namespaces", "seccomp"). It can only make the sandbox refuse, or be weaker where weak
sandboxing was explicitly allowed."""
LAYERS = (
    ("landlock_abi", "Landlock", "reads only the Python prefix and package dirs, "
     "writes only the step's dir, no TCP, signals scoped (kernel >= 5.13)"),
    ("caps_dropped", "unprivileged user", "steps run as an unprivileged user with no capabilities"),
    ("mount_ns", "mount namespace", "a private tmpfs per step, mounted noexec, nosuid, nodev"),
    ("pid_ns", "PID namespace", "each step is PID 1 of its own PID namespace; the kernel kills "
     "whatever it leaves"),
    ("net_ns", "network namespace", "no network interface but a loopback that is down"),
    ("seccomp", "seccomp", "fork, exec, sockets, ptrace, mounts, namespaces, memfd, io_uring, "
     "userfaultfd, bpf refused (x86-64)"),
    ("rlimits", "rlimits", "CPU seconds, address space, file size, open files, no core"),
)  # fmt: skip
"""The sandbox's layers as `edgestar doctor` shows them: key in the worker's hello, name, what
the layer enforces."""


class WeakSandboxError(EdgestarError):
    """The kernel layers the sandbox needs are missing and weak sandboxing was not allowed."""


def missing_layers(layers: dict[str, Any]) -> list[str]:
    """The required layers a worker's hello reports missing (seccomp only where edgestar has a
    filter for the machine: x86-64). The PID namespace is not required: without it (a
    non-root user, whose user namespace cannot make one per step) no step can start a
    process anyway (RLIMIT_NPROC 0 for its unprivileged user, seccomp), and the zygote kills
    and fails whatever is left below it after a step."""
    names = dict((k, n) for k, n, _ in LAYERS)
    required = ["landlock_abi", "caps_dropped", "mount_ns", "net_ns"]
    if platform.machine() in ("x86_64", "AMD64"):
        required.append("seccomp")
    return [names[k] for k in required if not layers.get(k)]


@dataclass(frozen=True)
class ExecutorConfig:
    """Limits for each run of `Executor.run`."""

    timeout_s: float = 5.0
    """Wall clock per run (prefix + step), enforced with SIGKILL."""
    cpu_s: int = 5
    """CPU seconds per run (RLIMIT_CPU)."""
    memory_mb: int = 1024
    """Address space a run may add above the worker's baseline (RLIMIT_AS)."""
    max_output_chars: int = 4096
    """Characters of the step's output kept; the rest is dropped and `truncated` set."""
    allowed_modules: tuple[str, ...] = DEFAULT_MODULES
    """Top-level modules step code may import."""
    allow_weak_sandbox: bool = field(default_factory=lambda: os.environ.get(WEAK_ENV) == "1")
    """Run code even where the kernel lacks Landlock or namespaces (the sandbox is then only
    seccomp, rlimits and the in-process Python checks). Off: such a machine refuses with
    `WeakSandboxError`. Defaults to on only when EDGESTAR_ALLOW_WEAK_SANDBOX=1."""

    def __post_init__(self) -> None:
        t = self.timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise InputError(f"executor timeout_s must be a positive number, got {t!r}")
        for name in ("cpu_s", "memory_mb", "max_output_chars"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"executor {name} must be a positive whole number, got {v!r}")
        mods = self.allowed_modules
        if isinstance(mods, str) or not isinstance(mods, (tuple, list)):
            raise InputError(f"executor allowed_modules must be a tuple of names, got {mods!r}")
        for m in mods:
            if not isinstance(m, str) or not m.isidentifier():
                raise InputError(f"executor allowed_modules: {m!r} is not a top-level module name")
        object.__setattr__(self, "allowed_modules", tuple(mods))
        if not isinstance(self.allow_weak_sandbox, bool):
            raise InputError(
                f"executor allow_weak_sandbox must be True or False, got {self.allow_weak_sandbox!r}"
            )


@dataclass(frozen=True)
class ExecResult:
    """What one run did."""

    ok: bool
    """Ran to the end without exception, timeout, memory error or refused operation."""
    stdout: str
    """What the step printed (not the prefix), at most `max_output_chars` characters."""
    error: str | None
    """One line, e.g. "NameError: name 'x' is not defined" or
    "blocked: import of 'os' is not allowed"; "in prefix: ..." when the prefix failed."""
    timed_out: bool
    memory_exceeded: bool
    seconds: float
    """Wall time of the run as the caller saw it (worker start-up excluded)."""
    truncated: bool = False
    """The step printed more than `max_output_chars` characters."""


class _WorkerLost(Exception):
    """The zygote died or broke the protocol (it is restarted)."""


class _WorkerHung(Exception):
    """The zygote did not answer in time (it is killed)."""


class Executor:
    """Runs steps in a forked, confined child of a long-lived worker process.

    Thread-safe: a lock serialises `run` and `close`. Use as a context manager or call
    `close()`; `__del__` kills the worker as a safety net, and the worker also exits by itself
    when this process goes away (it sees end of file on its request pipe).
    """

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        if config is not None and not isinstance(config, ExecutorConfig):
            raise InputError(f"config must be an ExecutorConfig, got {type(config).__name__}")
        self.config = config or ExecutorConfig()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._tmp_base: str | None = None
        self._owner = os.getpid()
        self.info: dict[str, Any] = {}
        """The zygote's hello: pid, modules loaded, seccomp, drop_uid, layers (what confines
        a step here, as `edgestar doctor` shows it), startup_s."""

    # ----- public

    def run(self, code: str, prefix: str = "") -> ExecResult:
        """Run `prefix` (output discarded) then `code` in one fresh namespace; never raises for
        anything the code does. Raises EdgestarError only when the worker cannot be started."""
        if not isinstance(code, str):
            raise InputError(f"code must be a string, got {type(code).__name__}")
        if not isinstance(prefix, str):
            raise InputError(f"prefix must be a string, got {type(prefix).__name__}")
        request = {"code": code, "prefix": prefix}
        self._check_owner()
        with self._lock:
            spent = 0.0  # across attempts, worker start-up excluded
            for attempt in (1, 2):
                proc = self._ensure_started()
                t0 = time.perf_counter()
                try:
                    reply = self._roundtrip(proc, request)
                except _WorkerHung:
                    self._shutdown(graceful=False)
                    return self._failure(
                        "TimeoutError: the executor worker stopped answering",
                        spent + time.perf_counter() - t0,
                        timed_out=True,
                    )
                except _WorkerLost as e:
                    spent += time.perf_counter() - t0
                    self._shutdown(graceful=False)
                    if attempt == 2:
                        return self._failure(f"crashed: {e}", spent)
                    continue  # the worker died (killed from outside?): once more on a new one
                return ExecResult(
                    ok=bool(reply.get("ok")),
                    stdout=str(reply.get("stdout") or "")[: self.config.max_output_chars],
                    error=None if reply.get("ok") else str(reply.get("error") or "error"),
                    timed_out=bool(reply.get("timed_out")),
                    memory_exceeded=bool(reply.get("memory_exceeded")),
                    seconds=spent + time.perf_counter() - t0,
                    truncated=bool(reply.get("truncated")),
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def start(self) -> dict[str, Any]:
        """Start the worker now rather than on the first run (raises `WeakSandboxError` here
        on a machine without the kernel layers, unless weak sandboxing is allowed); returns
        its hello, `info`."""
        self._check_owner()
        with self._lock:
            self._ensure_started()
            return self.info

    def close(self) -> None:
        """Stop the worker. Idempotent; a later `run` starts a new worker."""
        self._check_owner()
        with self._lock:
            self._shutdown(graceful=True)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # No lock here: __del__ may run from the garbage collector in any thread.
        with contextlib.suppress(Exception):
            if getattr(self, "_owner", None) == os.getpid():
                self._shutdown(graceful=False)

    # ----- the worker process

    def _check_owner(self) -> None:
        # Inherited across os.fork(): the zygote (and possibly a held lock) are the parent's.
        if self._owner != os.getpid():
            proc = self._proc
            if proc is not None:  # close only this process's copies of the pipes, so the
                for f in (proc.stdin, proc.stdout):  # parent's zygote still sees its EOF
                    if f is not None:
                        with contextlib.suppress(OSError):
                            f.close()
            self._proc, self._stderr, self.info, self._tmp_base = None, None, {}, None
            self._lock = threading.Lock()
            self._owner = os.getpid()

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        base = self._tmp_base
        if proc is not None and _alive(proc) and base is not None and os.path.isdir(base):
            return proc
        # Dead worker, or its steps' directory removed under it (a /tmp cleaner, rm -rf): a new
        # worker with a new directory, rather than every later step failing.
        if proc is not None:
            self._shutdown(graceful=False)
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        # Steps' temp dirs go under one directory per worker, removed here when the worker
        # goes, so a worker killed mid-run leaves nothing behind. 0711: a step that runs as
        # `nobody` must be able to pass through it to its own directory.
        self._tmp_base = tempfile.mkdtemp(prefix="edgestar-exec-")
        os.chmod(self._tmp_base, 0o711)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", str(_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd="/",
                close_fds=True,
                start_new_session=True,
            )
        except OSError as e:
            stderr.close()
            _sandbox_kernel.rmtree(self._tmp_base)
            self._tmp_base = None
            raise EdgestarError(f"could not start the code executor: {e}") from None
        self._proc, self._stderr = proc, stderr
        c = self.config
        init = {
            "tmp_base": self._tmp_base,
            "allowed_modules": list(c.allowed_modules),
            "timeout_s": c.timeout_s,
            "cpu_s": c.cpu_s,
            "memory_mb": c.memory_mb,
            "max_output_chars": c.max_output_chars,
            "simulate_missing": [x for x in os.environ.get(SIMULATE_ENV, "").split(",") if x],
        }
        try:
            _send(proc, init)
            hello = _receive(proc, time.monotonic() + STARTUP_TIMEOUT_S)
            if not hello.get("ready"):
                raise _WorkerLost("no ready message")
        except (_WorkerLost, _WorkerHung) as e:
            detail = self._stderr_tail()
            self._shutdown(graceful=False)
            raise EdgestarError(
                f"could not start the code executor ({e}){': ' + detail if detail else ''}"
            ) from None
        missing = missing_layers(hello.get("layers") or {})
        if missing and not c.allow_weak_sandbox:
            self._shutdown(graceful=False)
            raise WeakSandboxError(
                f"refusing to run model code: the code sandbox lacks {', '.join(missing)} "
                f"on this machine (see `edgestar doctor`); pass "
                f"--allow-weak-sandbox (ExecutorConfig(allow_weak_sandbox=True), or "
                f"{WEAK_ENV}=1) to run it with weaker isolation"
            )
        self.info = hello
        return proc

    def _roundtrip(self, proc: subprocess.Popen[bytes], request: dict[str, Any]) -> dict[str, Any]:
        _send(proc, request)
        return _receive(proc, time.monotonic() + self.config.timeout_s + REPLY_GRACE_S)

    def _stderr_tail(self) -> str:
        f = self._stderr
        if f is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            f.seek(0)
            lines = f.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else ""
        return ""

    def _shutdown(self, graceful: bool) -> None:
        proc, stderr = self._proc, self._stderr
        self._proc, self._stderr = None, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()  # end of file: the zygote exits by itself
            if graceful:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2.0)
            # The zygote leads its own process group; until it is reaped its pid (and so the
            # group id) cannot be reused, so this reaches only it and its leftovers.
            if proc.returncode is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            if proc.stdout is not None:
                with contextlib.suppress(OSError):
                    proc.stdout.close()
        if stderr is not None:
            with contextlib.suppress(OSError):
                stderr.close()
        if self._tmp_base is not None:
            _sandbox_kernel.rmtree(self._tmp_base)
            self._tmp_base = None

    @staticmethod
    def _failure(error: str, seconds: float, timed_out: bool = False) -> ExecResult:
        return ExecResult(
            ok=False,
            stdout="",
            error=error,
            timed_out=timed_out,
            memory_exceeded=False,
            seconds=seconds,
        )


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the zygote still runs, without reaping it (see `_shutdown`: while unreaped,
    its pid cannot be reused, so killing its process group afterwards is safe)."""
    if proc.returncode is not None:
        return False
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return proc.poll() is None


def _send(proc: subprocess.Popen[bytes], msg: dict[str, Any]) -> None:
    body = json.dumps(msg).encode("utf-8", "surrogatepass")
    assert proc.stdin is not None
    try:
        data = memoryview(struct.pack(">I", len(body)) + body)
        fd = proc.stdin.fileno()
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except (BrokenPipeError, ConnectionResetError, ValueError) as e:
        raise _WorkerLost(f"the executor worker died ({type(e).__name__})") from None


def _receive(proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    head = _read_exact(fd, 4, deadline)
    (n,) = struct.unpack(">I", head)
    if n > 256 * 1024 * 1024:
        raise _WorkerLost("the executor worker sent an oversized message")
    body = _read_exact(fd, n, deadline)
    try:
        msg = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        raise _WorkerLost("the executor worker sent a malformed message") from None
    if not isinstance(msg, dict):
        raise _WorkerLost("the executor worker sent a malformed message")
    return msg


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    buf = bytearray()
    poller = select.poll()  # not select(): the caller may hold more than 1024 descriptors
    poller.register(fd, select.POLLIN)
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _WorkerHung("the executor worker did not answer in time")
        if not poller.poll(min(max(1, math.ceil(remaining * 1000)), 60_000)):
            continue
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise _WorkerLost("the executor worker died")
        buf += chunk
    return bytes(buf)


def sandbox_report() -> tuple[list[tuple[str, bool, str]], list[str]]:
    """Start a worker (weak sandboxing allowed, so that it starts anywhere) and return the
    sandbox's layers as (name, active, what it enforces or why it is off) rows, and the
    required layers that are missing (empty: model code runs)."""
    with Executor(ExecutorConfig(allowed_modules=("math",), allow_weak_sandbox=True)) as ex:
        layers = dict(ex.start().get("layers") or {})
    rows = []
    for key, name, what in LAYERS:
        v = layers.get(key)
        if key == "landlock_abi":
            what = f"ABI {v}: {what}" if v else "not in this kernel (needs Linux >= 5.13)"
        elif key == "caps_dropped" and v:
            what = f"uid {layers.get('step_uid')}: {what}"
            if layers.get("exposed"):
                what += (
                    f" (a read-only view of the interpreter over {', '.join(layers['exposed'])})"
                )
        elif not v:
            what = "not available here"
        rows.append((name, bool(v), what))
    return rows, missing_layers(layers)


def _bench(n: int = 50) -> None:  # pragma: no cover - run by hand: python -m edgestar.executor
    import statistics

    t0 = time.perf_counter()
    with Executor() as ex:
        ex.run("pass")
        startup = time.perf_counter() - t0
        print(f"zygote startup: {startup:.2f} s  ({ex.info})")
        for label, code in (
            ("trivial", "print(1 + 1)"),
            ("sympy", 'import sympy\nx = sympy.Symbol("x")\nprint(sympy.solve(x**2 - 4, x))'),
        ):
            times = []
            cpu0 = _zygote_cpu(ex.info["pid"])
            for _ in range(n):
                r = ex.run(code)
                assert r.ok, r
                times.append(r.seconds)
            cpu = (_zygote_cpu(ex.info["pid"]) - cpu0) / n
            print(
                f"{label}: median {statistics.median(times) * 1000:.1f} ms over {n} runs; "
                f"zygote + step CPU {cpu * 1000:.1f} ms a run"
            )


def _zygote_cpu(pid: int) -> float:  # pragma: no cover - used by _bench
    """CPU seconds of the zygote and its reaped children (utime, stime, cutime, cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":  # pragma: no cover
    _bench()
