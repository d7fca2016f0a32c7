"""Tests for edgestar.executor: normal runs, prefix semantics, errors, and one test per hostile
property (each checks that the step fails and that the runtime still runs normal code next).

Hostile code reaches `os`, `sys` and friends the way real model code could: through module
attributes of allowed modules (`typing.sys.modules[...]`, `sympy.utilities.misc.os`) or
through `sympy.sympify`, which evaluates its string with the real builtins.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgestar import _sandbox_worker as worker
from edgestar.executor import ExecResult, Executor, ExecutorConfig
from edgestar.types import InputError

OS = "import typing\nos = typing.sys.modules['os']\n"
"""A prelude that reaches the real os module without importing it."""


@pytest.fixture(scope="module")
def ex() -> Iterator[Executor]:
    # Generous wall clock so a loaded machine cannot fail normal steps; the tests that loop
    # forever use `small`, with 1 s.
    with Executor(ExecutorConfig(timeout_s=3.0, cpu_s=5, memory_mb=256)) as e:
        yield e


@pytest.fixture()
def small() -> Iterator[Executor]:
    """An executor without sympy/numpy (starts in milliseconds) and a 1 s wall clock."""
    cfg = ExecutorConfig(timeout_s=1.0, cpu_s=5, allowed_modules=("math", "typing"))
    with Executor(cfg) as e:
        yield e


def survives(ex: Executor) -> None:
    r = ex.run("print(6 * 7)")
    assert r.ok and r.stdout == "42\n" and r.error is None, r


def failed(r: ExecResult, *, blocked: bool = False) -> None:
    assert not r.ok, r
    assert r.error and "\n" not in r.error, r
    if blocked:
        assert "blocked:" in r.error, r


# --- configuration and API -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_s": 0},
        {"timeout_s": -1.0},
        {"timeout_s": float("nan")},
        {"timeout_s": True},
        {"cpu_s": 0},
        {"cpu_s": 1.5},
        {"memory_mb": -5},
        {"max_output_chars": 0},
        {"allowed_modules": "math"},
        {"allowed_modules": ("os.path",)},
        {"allowed_modules": (3,)},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        ExecutorConfig(**kwargs)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    c = ExecutorConfig()
    assert (c.timeout_s, c.cpu_s, c.memory_mb, c.max_output_chars) == (5.0, 5, 1024, 4096)
    assert "sympy" in c.allowed_modules and "os" not in c.allowed_modules
    assert ExecutorConfig(allowed_modules=["math"]).allowed_modules == ("math",)  # type: ignore[arg-type]


def test_run_rejects_non_string_code(ex: Executor) -> None:
    with pytest.raises(InputError):
        ex.run(b"print(1)")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ex.run("print(1)", prefix=None)  # type: ignore[arg-type]


# --- normal behaviour ------------------------------------------------------------------------


def test_normal_code(ex: Executor) -> None:
    r = ex.run("total = sum(i * i for i in range(10))\nprint(total)")
    assert r == ExecResult(True, "285\n", None, False, False, r.seconds, False)
    assert 0 < r.seconds < 10.0  # measured and sane; a loaded CI machine can be slow


def test_sympy_numpy_and_stdlib(ex: Executor) -> None:
    code = (
        "import sympy\nimport numpy as np\nfrom fractions import Fraction\n"
        "import math, itertools, statistics, collections\n"
        "x = sympy.Symbol('x')\n"
        "print(sympy.solve(x**2 - 4, x), sympy.integrate(2 * x, x))\n"
        "print(int(np.arange(5).sum()), Fraction(1, 3) + Fraction(1, 6), math.comb(5, 2))\n"
        "print(statistics.mean([1, 2, 3]), list(itertools.accumulate([1, 2, 3])))\n"
        "import datetime\nprint(datetime.date(2024, 3, 1).strftime('%A'))\n"  # C-level import
        "for _ in range(2):\n    pass\n"
        "class Point:\n    def __init__(self, v):\n        self.v = v\n"
        "print(Point(3).v)\n"
    )
    r = ex.run(code)
    assert r.ok, r
    assert r.stdout.splitlines() == ["[-2, 2] x**2", "10 1/2 10", "2 [1, 3, 6]", "Friday", "3"]


def test_prefix_output_discarded_and_variables_visible(ex: Executor) -> None:
    r = ex.run("print(a + b)", prefix="a = 40\nprint('from an earlier step')\nb = 2")
    assert r.ok and r.stdout == "42\n", r


def test_error_in_prefix_is_reported(ex: Executor) -> None:
    r = ex.run("print('never')", prefix="a = undefined_name")
    failed(r)
    assert r.error == "in prefix: NameError: name 'undefined_name' is not defined"
    assert r.stdout == ""


def test_runtime_error_is_one_line(ex: Executor) -> None:
    r = ex.run("print(x)")
    failed(r)
    assert r.error == "NameError: name 'x' is not defined"
    r = ex.run("print('partial')\nraise ValueError('first line\\nsecond line')")
    failed(r)
    assert r.error == "ValueError: first line second line"
    assert r.stdout == "partial\n"  # what was printed before the error is kept
    survives(ex)


def test_system_exit(ex: Executor) -> None:
    r = ex.run("print('a')\nraise SystemExit(0)\nprint('b')")
    assert r.ok and r.stdout == "a\n", r
    r = ex.run("raise SystemExit(2)")
    failed(r)
    assert r.error == "SystemExit: 2"


def test_unusual_text(ex: Executor) -> None:
    r = ex.run("print('π ≈ 3.14', '\\ud800')")
    assert r.ok and r.stdout == "π ≈ 3.14 \\ud800\n", r
    r = ex.run("from dataclasses import dataclass, fields\n"
               "@dataclass\nclass P:\n    x: int\nprint(fields(P)[0].type, P(1))")  # fmt: skip
    assert r.ok and r.stdout == "<class 'int'> P(x=1)\n", r  # no inherited __future__ flags


def test_syntax_error(ex: Executor) -> None:
    r = ex.run("print(")
    failed(r)
    assert r.error.startswith("SyntaxError:") and "(line 1)" in r.error
    r = ex.run("x = 1", prefix="def f(:\n")
    failed(r)
    assert r.error.startswith("in prefix: SyntaxError:")
    survives(ex)


def test_each_run_is_fresh(ex: Executor) -> None:
    assert ex.run("leaked = 1").ok
    r = ex.run("print(leaked)")
    failed(r)
    assert "NameError" in r.error


def test_temp_dir_is_private_and_removed(ex: Executor) -> None:
    write = "import typing\nio = typing.sys.modules['io']\n"
    r = ex.run(write + "with io.open('note.txt', 'w') as f:\n    f.write('hi')\n"
               "print(io.open('note.txt').read())")  # fmt: skip
    assert r.ok and r.stdout == "hi\n", r
    r = ex.run(write + "print(io.open('note.txt').read())")
    failed(r)
    assert "FileNotFoundError" in r.error


def test_caller_process_never_runs_code(ex: Executor) -> None:
    marker = "edgestar_test_global_marker"
    r = ex.run(f"{marker} = 1\n" + OS + "print(os.getpid())")
    assert r.ok, r
    assert int(r.stdout) != os.getpid()
    assert marker not in globals() and not hasattr(sys.modules["builtins"], marker)
    r = ex.run("import ctypes")
    failed(r, blocked=True)
    r = ex.run("import typing\nc = typing.sys.modules['ctypes']\nc.string_at(0)")
    failed(r, blocked=True)
    survives(ex)


def test_crash_of_the_step_is_reported(ex: Executor) -> None:
    # faulthandler._read_null() reads address 0 for real; attrgetter gets past the AST check.
    # (Not `_sigsegv`, which raise()s the signal: a step is PID 1 of its own PID namespace,
    # and the kernel ignores signals PID 1 sends itself with no handler installed.)
    code = (
        "import typing, operator\n"
        "fh = typing.sys.modules['importlib'].import_module('faulthandler')\n"
        "operator.attrgetter('_read_null')(fh)()"
    )
    r = ex.run(code)
    failed(r)
    assert r.error == "crashed: the step was killed by SIGSEGV"
    survives(ex)


def test_concurrent_callers_are_serialised(ex: Executor) -> None:
    results: dict[int, list[str]] = {}

    def work(i: int) -> None:
        results[i] = [ex.run(f"print({i} * {j})").stdout for j in range(4)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: [f"{i * j}\n" for j in range(4)] for i in range(4)}


# --- hostile properties: one test each -------------------------------------------------------


def test_infinite_loop_times_out(small: Executor) -> None:
    assert small.run("pass").ok
    t0 = time.monotonic()
    r = small.run("while True:\n    pass")
    failed(r)
    assert r.timed_out and not r.memory_exceeded and "1 s time limit" in r.error
    assert 0.9 < time.monotonic() - t0 < 5.0
    survives(small)


def test_cpu_burning_loop_hits_cpu_limit() -> None:
    cfg = ExecutorConfig(timeout_s=10.0, cpu_s=1, allowed_modules=("math",))
    with Executor(cfg) as e:
        r = e.run("import math\nn = 0\nwhile True:\n    n += math.factorial(50) % 7")
        failed(r)
        assert r.timed_out and "CPU" in r.error, r
        assert r.seconds < 9.0  # the CPU limit ended it, not the 10 s wall limit
        survives(e)


def test_fork_bomb(ex: Executor, tmp_path: Path) -> None:
    marker = tmp_path / "spawned"
    touch = f"['/bin/sh', '-c', 'touch {marker}']"
    routes = {
        "os.fork": OS + "while True:\n    os.fork()",
        "os.system": OS + f"os.system('touch {marker}')",
        "posix_spawn": OS + f"os.posix_spawn('/bin/sh', {touch}, {{}})",
        "subprocess": f"import typing\nsp = typing.sys.modules['subprocess']\nsp.Popen({touch})",
        "fork_exec": "import typing\npsp = typing.sys.modules['_posixsubprocess']\npsp.fork_exec()",
        "fresh _posixsubprocess": "import typing\nsys = typing.sys\n"
        "spec = sys.modules['importlib'].import_module('importlib.util')"
        ".find_spec('_posixsubprocess')\n"
        "sys.modules['_imp'].create_dynamic(spec)",
        "fresh posix": "import typing\nsys = typing.sys\n"
        "spec = sys.modules['importlib'].machinery.ModuleSpec('posix', None)\n"
        "sys.modules['_imp'].create_builtin(spec).fork()",
        "ctypes": "import typing\ntyping.sys.modules['ctypes'].CDLL(None).fork()",
        "sympify": "import sympy\nsympy.sympify(\"__import__('os').fork()\")",
        "caught": OS + "try:\n    os.fork()\nexcept Exception:\n    pass\nprint('hid it')",
    }
    for name, code in routes.items():
        r = ex.run(code)
        failed(r, blocked=True)
        assert "blocked" in r.error, (name, r)
    time.sleep(0.05)
    assert not marker.exists()
    survives(ex)


def test_fork_is_refused_by_the_kernel_too() -> None:
    """Without the audit hook, the seccomp filter alone makes fork fail with EPERM."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("the seccomp filter is x86-64 Linux only")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            if not worker.install_seccomp():
                code = 2
            else:
                try:
                    if os.fork() == 0:
                        os._exit(0)
                    code = 3
                except PermissionError:
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 2:
        pytest.skip("seccomp is not available here")
    assert code == 0


def test_memory_bomb(ex: Executor) -> None:
    for code in (
        "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))",
        "x = [0] * 10**10",
        "import numpy as np\nx = np.ones(10**9)",
    ):
        r = ex.run(code)
        failed(r)
        assert r.memory_exceeded and not r.timed_out, r
        assert "MemoryError" in r.error
    survives(ex)


def test_huge_output_is_bounded(ex: Executor, small: Executor) -> None:
    r = ex.run("print('x' * 10**8)")
    assert r.ok and r.truncated and r.stdout == "x" * 4096, (r.truncated, len(r.stdout))
    r = small.run("print('start')\nwhile True:\n    print('y' * 1000)")
    failed(r)
    assert r.timed_out and r.truncated  # the output printed before the kill is kept
    assert r.stdout.startswith("start\nyyy") and len(r.stdout) == 4096
    survives(ex)
    survives(small)


@pytest.mark.parametrize(
    "module", ["os", "subprocess", "socket", "sys", "ctypes", "io", "importlib", "builtins"]
)
def test_import_outside_allowlist(ex: Executor, module: str) -> None:
    for code in (f"import {module}", f"from {module} import *", f"import {module}.x as y"):
        r = ex.run(code)
        failed(r, blocked=True)
        assert r.error == f"blocked: import of {module!r} is not allowed"
    survives(ex)


def test_socket_is_refused(ex: Executor) -> None:
    r = ex.run(
        "import typing\ns = typing.sys.modules['importlib'].import_module('socket')\n"
        "s.create_connection(('127.0.0.1', 9))"
    )
    failed(r, blocked=True)
    assert "socket" in r.error
    survives(ex)


def test_reading_files_outside_is_refused(ex: Executor) -> None:
    r = ex.run("print(open('/etc/passwd').read())")
    failed(r)
    assert r.error == "NameError: name 'open' is not defined"
    io = "import typing\nio = typing.sys.modules['io']\n"
    for path in ("/etc/passwd", "../../etc/passwd", "/proc/self/environ"):
        r = ex.run(io + f"print(io.open({path!r}).read())")
        failed(r, blocked=True)
        assert r.stdout == ""
    r = ex.run(OS + "print(os.listdir('/'))")
    failed(r, blocked=True)
    survives(ex)


def test_writing_outside_temp_dir_is_refused(ex: Executor, tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    io = "import typing\nio = typing.sys.modules['io']\n"
    for code in (
        io + f"io.open({str(target)!r}, 'w').write('x')",
        OS + f"os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
        io + f"io.open('local', 'w').close()\nos = typing.sys.modules['os']\n"
        f"os.rename('local', {str(target)!r})",
        OS + f"os.mkdir({str(tmp_path / 'd')!r})",
        OS + "os.symlink('/etc/passwd', 'link')",
    ):
        r = ex.run(code)
        failed(r, blocked=True)
    assert list(tmp_path.iterdir()) == []
    survives(ex)


def test_directory_descriptor_escape(ex: Executor) -> None:
    """A path relative to a dir_fd reaches the "open" audit event unresolved; the sandbox must
    not let a readable directory's descriptor turn into a write inside it."""
    import sympy

    site = str(Path(sympy.__file__).parent.parent)  # readable by steps (imports need it)
    target = Path(site) / f"edgestar-test-dirfd-{os.getpid()}"
    try:
        for code in (
            OS + f"d = os.open({site!r}, os.O_RDONLY)\n"
            f"os.open({target.name!r}, os.O_WRONLY | os.O_CREAT, dir_fd=d)",
            OS + f"d = os.open({site!r}, os.O_PATH)",
            # a descriptor for the step's own directory, then ".." out of it
            OS + "d = os.open('.', os.O_RDONLY)\nos.mkdir('sub')\nos.chdir('sub')\n"
            f"os.open('../{target.name}', os.O_WRONLY | os.O_CREAT, dir_fd=d)",
            OS + "d = os.open('.', os.O_RDONLY)\nos.mkdir('../../x', dir_fd=d)",
        ):
            r = ex.run(code)
            failed(r, blocked=True)
        assert not target.exists()
    finally:
        if target.exists():
            target.unlink()
    # What legitimately uses directory descriptors inside the step's directory still works.
    r = ex.run(
        "import typing\ntf = typing.sys.modules['tempfile']\n"
        "with tf.TemporaryDirectory() as d:\n    pass\n"
        "with tf.TemporaryFile() as f:\n    f.write(b'x')\nprint('ok')"
    )
    assert r.ok and r.stdout == "ok\n", r
    survives(ex)


def test_dunder_import(ex: Executor) -> None:
    r = ex.run("__import__('os').system('true')")
    failed(r, blocked=True)
    assert r.error == "blocked: use of name '__import__' is not allowed"
    survives(ex)


def test_subclasses_escape(ex: Executor) -> None:
    r = ex.run("print(().__class__.__base__.__subclasses__())")
    failed(r, blocked=True)
    assert r.error.startswith("blocked: access to attribute '__")
    # Past the AST check with string attribute names, the classic escape still ends at the
    # audit hook: the os functions it digs out are refused when called.
    code = (
        "import operator\n"
        "subs = operator.attrgetter('__class__.__base__.__subclasses__')(())()\n"
        "wrap = [c for c in subs if c.__name__ == '_wrap_close'][0]\n"
    ).replace("c.__name__", "operator.attrgetter('__name__')(c)")
    code += "g = operator.attrgetter('__init__.__globals__')(wrap)\ng['system']('true')"
    r = ex.run(code)
    failed(r, blocked=True)
    assert r.error == "blocked: os.system is not allowed"
    r = ex.run("match ():\n    case tuple(__class__=c):\n        print(c)")
    failed(r, blocked=True)
    survives(ex)


def test_builtins_access(ex: Executor) -> None:
    for code in ("print(__builtins__)", "b = __builtins__['eval']", "print(eval('1'))"):
        r = ex.run(code)
        failed(r)
        assert "blocked" in r.error or "NameError" in r.error
    survives(ex)


def test_generator_frame_walk(ex: Executor) -> None:
    r = ex.run("g = (x for x in [1])\nprint(g.gi_frame.f_back.f_globals)")
    failed(r, blocked=True)
    assert r.error == "blocked: access to attribute 'f_globals' is not allowed"
    # The same walk with the attribute name in a string: the audit hook refuses the frame.
    r = ex.run("import operator\ng = (x for x in [1])\nprint(operator.attrgetter('gi_frame')(g))")
    failed(r, blocked=True)
    assert r.error == "blocked: access to attribute 'gi_frame' is not allowed"
    survives(ex)


def test_signal_tampering(small: Executor) -> None:
    code = (
        "import typing\ns = typing.sys.modules['signal']\n"
        "for n in (s.SIGALRM, s.SIGXCPU, s.SIGTERM, s.SIGINT):\n"
        "    s.signal(n, s.SIG_IGN)\n"
        "s.setitimer(s.ITIMER_REAL, 0)\n"
        "while True:\n    pass"
    )
    r = small.run(code)
    failed(r)
    assert r.timed_out
    survives(small)


def test_killing_the_parent(ex: Executor) -> None:
    zygote = ex.info["pid"]
    for code in (
        OS + f"os.kill({os.getpid()}, 9)",
        OS + "os.kill(os.getppid(), 9)",
        OS + "os.killpg(0, 9)",
        "import typing\ns = typing.sys.modules['signal']\n"
        "s.pthread_kill(typing.sys.modules['threading'].main_thread().ident, 9)",
    ):
        r = ex.run(code)
        failed(r, blocked=True)
    survives(ex)
    assert ex.info["pid"] == zygote  # the zygote was never touched


def test_sympy_reachable_os(ex: Executor, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for code in (
        f"import sympy\nsympy.utilities.misc.os.system('touch {marker}')",
        f"import sympy\nsympy.external.gmpy.os.system('touch {marker}')",
        f"import sympy\nsympy.sympify(\"__import__('os').system('touch {marker}')\")",
    ):
        r = ex.run(code)
        failed(r, blocked=True)
        assert "os.system" in r.error, r
    assert not marker.exists()
    survives(ex)


def test_thread_spam(ex: Executor) -> None:
    code = (
        "import typing\nth = typing.sys.modules['threading']\nts = []\n"
        "while True:\n"
        "    t = th.Thread(target=lambda: [0] * 10**6)\n    t.start()\n    ts.append(t)"
    )
    r = ex.run(code)
    failed(r)
    survives(ex)


def test_raising_limits_is_refused(ex: Executor) -> None:
    r = ex.run(
        "import typing\nr = typing.sys.modules['importlib'].import_module('resource')\n"
        "r.setrlimit(r.RLIMIT_AS, (r.RLIM_INFINITY, r.RLIM_INFINITY))"
    )
    failed(r, blocked=True)
    survives(ex)


def test_close_then_run_restarts(small: Executor) -> None:
    assert small.run("print(1)").ok
    first = small.info["pid"]
    small.close()
    small.close()  # idempotent
    cmdline = Path(f"/proc/{first}/cmdline")
    assert not cmdline.exists() or b"_sandbox_worker" not in cmdline.read_bytes()
    r = small.run("print(2)")
    assert r.ok and r.stdout == "2\n"
    assert small.info["pid"] != first


def test_executor_inherited_across_fork(small: Executor) -> None:
    assert small.run("pass").ok
    parent_zygote = small.info["pid"]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            r = small.run("print(3)")
            code = 0 if r.ok and r.stdout == "3\n" and small.info["pid"] != parent_zygote else 2
            small.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    survives(small)
    assert small.info["pid"] == parent_zygote  # the child left the parent's zygote alone


def test_zygote_killed_externally(small: Executor) -> None:
    assert small.run("print(1)").ok
    first = small.info["pid"]
    os.kill(first, signal.SIGKILL)
    r = small.run("print(2)")
    assert r.ok and r.stdout == "2\n", r
    assert small.info["pid"] != first


def test_steps_directory_removed_under_the_worker(small: Executor) -> None:
    """A /tmp cleaner (or rm -rf) takes the worker's directory: the next step runs on a new
    worker with a new directory instead of every later step failing."""
    assert small.run("print(1)").ok
    first, base = small.info["pid"], small._tmp_base
    assert base is not None
    gone = base + ".gone"  # renamed away at once: the worker may still be emptying a step's dir
    os.rename(base, gone)
    shutil.rmtree(gone, ignore_errors=True)
    r = small.run("print(2)")
    assert r.ok and r.stdout == "2\n", r
    assert small.info["pid"] != first and small._tmp_base != base
    survives(small)


def test_zygote_killed_mid_run(small: Executor) -> None:
    assert small.run("pass").ok
    first = small.info["pid"]
    threading.Timer(0.3, os.kill, (first, signal.SIGKILL)).start()
    r = small.run("while True:\n    pass")  # retried once on a fresh zygote, then times out
    failed(r)
    assert r.timed_out
    survives(small)
    assert small.info["pid"] != first
    base = small._tmp_base
    assert base is not None and os.path.isdir(base)
    small.close()
    assert not os.path.exists(base)  # the killed zygote's step directory went with it
