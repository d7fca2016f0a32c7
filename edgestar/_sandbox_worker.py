"""The sandbox worker program: edgestar's "zygote" process for running model-written code.

`edgestar.executor.Executor` starts this file as `python -I _sandbox_worker.py` with a scrubbed
environment. It owns everything that happens on the far side of that pipe: pre-importing the
allowed modules once, entering its namespaces, forking one child per step, confining the child
(private noexec tmpfs, PID namespace, resource limits, unprivileged identity, Landlock, seccomp;
then, as defence in depth, the audit hook, restricted builtins and AST check), enforcing the
wall-clock limit with SIGKILL, killing whatever a step leaves and reporting what happened. The
kernel calls live in `_landlock.py` and `_sandbox_kernel.py` beside this file. The design, what
it covers and what it does not, is documented in `edgestar/executor.py`; this file is the
mechanism.

It imports nothing from edgestar (`-I` keeps the package off sys.path) and speaks one protocol
with its parent, on the pipes that were its stdin and stdout (both are moved to private file
descriptors at start and replaced by /dev/null, so nothing a child prints can reach them):
every message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.

    parent -> zygote   {"tmp_base", "allowed_modules": [...], "timeout_s", "cpu_s",
                        "memory_mb", "max_output_chars", "simulate_missing": [...]}  once
    zygote -> parent   {"ready": true, "pid", "modules", "seccomp", "drop_uid", "layers",
                        "startup_s"}
    parent -> zygote   {"code": str, "prefix": str}                  one per run
    zygote -> parent   {"ok", "stdout", "error", "timed_out", "memory_exceeded", "truncated"}

A child talks to the zygote over its own pipe in frames (1 type byte, 4-byte length, payload):
b"o" a piece of the step's stdout, sent as it is printed (so output survives a kill), b"t" the
output was cut, b"r" the final JSON verdict. The zygote trusts none of it: a child can write
anything to that pipe, so frames are parsed defensively and the total read is capped.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import importlib
import json
import os
import resource
import select
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any


def _sibling(name: str) -> ModuleType:
    """A module beside this file, loaded by path (`-I` keeps edgestar off sys.path)."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(f"_edgestar{name}", f"{here}/{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


landlock = _sibling("_landlock")
kernel = _sibling("_sandbox_kernel")
seccomp = _sibling("_seccomp")
install_seccomp = seccomp.install_seccomp

# --- policy tables ---------------------------------------------------------------------------

DENIED_BUILTINS = frozenset(
    {
        "open", "eval", "exec", "compile", "input", "breakpoint", "globals", "locals", "vars",
        "getattr", "setattr", "delattr", "help", "exit", "quit", "memoryview", "__import__",
        "copyright", "credits", "license", "__loader__", "__spec__", "__package__",
    }
)  # fmt: skip
"""Builtins removed from the namespace user code runs in (`__import__` is replaced)."""

FRAME_ATTRS = frozenset(
    {
        "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_back",
        "f_builtins", "f_code", "f_globals", "f_locals", "f_trace", "tb_frame", "tb_next",
        "co_code", "func_globals", "func_code", "cell_contents",
    }
)  # fmt: skip
"""Attributes that lead to frames, code objects or closures: refused by the AST check."""

AUDIT_FRAME_ATTRS = frozenset({"gi_frame", "cr_frame", "ag_frame", "tb_frame"})
"""Of the attribute reads CPython audits ("object.__getattr__"), those the hook refuses.

The same event also fires for `__code__`, `__defaults__` and `__kwdefaults__`, which sympy and
inspect read all the time, so those are left to the AST check."""

FREE_EVENTS = frozenset(
    {
        "exec", "compile", "builtins.id", "marshal.loads", "marshal.load", "marshal.dumps",
        "sys._getframe", "time.sleep", "array.__new__", "mmap.__new__", "os.putenv",
        "os.unsetenv", "os.chdir", "sys.excepthook", "sys.unraisablehook", "glob.glob",
        "glob.glob/2", "os.walk", "os.fwalk", "pathlib.Path.glob", "pathlib.Path.rglob",
        "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree",
        "shutil.move", "shutil.rmtree", "tempfile.mkstemp", "tempfile.mkdtemp",
        "pickle.find_class", "sys.set_asyncgen_hooks_firstiter",
        "sys.set_asyncgen_hooks_finalizer",
    }
)  # fmt: skip
"""Audit events allowed without looking at their arguments (the operations they lead to are
audited on their own: a shutil copy still raises "open"). Every event not named here or
checked in `make_audit_hook` is refused: the hook is default-deny."""

WRITE_PATH_EVENTS = frozenset(
    {"os.mkdir", "os.remove", "os.rmdir", "os.truncate", "os.utime", "os.chmod", "os.rename"}
)
"""Path events allowed only inside the step's temp dir (and only without dir_fd)."""

DENIED_IMPORTS = frozenset(
    {
        "_posixsubprocess", "_ctypes", "ctypes", "_xxsubinterpreters", "_testcapi",
        "_testinternalcapi", "_testbuffer", "_testmultiphase", "_testimportmultiple",
        "_testsinglephase", "_ctypes_test", "_xxtestfuzz",
    }
)  # fmt: skip
"""Modules no code may load in a child, even a library's own lazy import. The "import" event
also fires for `_imp.create_dynamic`, which would otherwise hand back a fresh copy of a
module whose dangerous function was stubbed out."""

NOBODY = 65534
STEP_DISK_MB = 16
"""Size of each step's private tmpfs."""
STEP_INODES = 4096
"""Files and directories each step's tmpfs can hold."""
FSIZE_BYTES = 1 << 20
"""Largest file a step may write (RLIMIT_FSIZE)."""
MAX_CREATES = 64
"""Files and directories a step may create in its temp dir."""
NOFILE = 64
EXIT_MEMORY = 3
EXIT_INTERNAL = 4
ERROR_CHARS = 400
WARMUP = """
import sympy
x, y = sympy.symbols("x y")
sympy.solve([x + y - 3, x - y - 1], [x, y]); sympy.solve(x**2 - 2, x)
sympy.simplify((x**2 - 1) / (x - 1)); sympy.factor(x**2 - 1); sympy.expand((x + 1) ** 3)
sympy.integrate(x * sympy.sin(x), x); sympy.diff(sympy.exp(x) * x, x)
sympy.limit(sympy.sin(x) / x, x, 0); sympy.summation(x, (x, 1, 10))
sympy.Matrix([[1, 2], [3, 4]]).inv(); sympy.nsimplify(0.5); sympy.N(sympy.pi, 20)
sympy.factorint(360); sympy.isprime(97); sympy.sympify("x**2 + 1"); sympy.Rational(1, 3)
sympy.binomial(5, 2); sympy.gcd(12, 18); sympy.sqrt(8); sympy.latex(x**2)
"""
"""Run once in the zygote so that sympy's lazy imports and caches are inherited by children."""


class BlockedImport(ImportError):
    """An import user code may not make (message starts 'blocked:')."""


# --- framing ---------------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_msg(fd: int) -> dict[str, Any] | None:
    """One length-prefixed JSON message, or None at end of file."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    body = _read_exact(fd, n)
    if body is None:
        return None
    msg = json.loads(body.decode("utf-8"))
    if not isinstance(msg, dict):
        raise ValueError("message is not a JSON object")
    return msg


def write_msg(fd: int, msg: dict[str, Any]) -> None:
    body = json.dumps(msg).encode("utf-8")
    _write_all(fd, struct.pack(">I", len(body)) + body)


def _frame(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack(">I", len(payload)) + payload


def parse_frames(buf: bytes) -> tuple[list[bytes], bool, dict[str, Any] | None, bool]:
    """(stdout pieces, truncated, final verdict or None, well-formed) from a child's pipe."""
    out: list[bytes] = []
    truncated = False
    verdict: dict[str, Any] | None = None
    i = 0
    while i < len(buf):
        if i + 5 > len(buf):
            return out, truncated, verdict, False
        kind = buf[i : i + 1]
        (n,) = struct.unpack(">I", buf[i + 1 : i + 5])
        payload = buf[i + 5 : i + 5 + n]
        if len(payload) != n:
            return out, truncated, verdict, False
        i += 5 + n
        if kind == b"o":
            out.append(payload)
        elif kind == b"t":
            truncated = True
        elif kind == b"r":
            try:
                v = json.loads(payload.decode("utf-8"))
            except ValueError:
                return out, truncated, verdict, False
            if isinstance(v, dict):
                verdict = v
        else:
            return out, truncated, verdict, False
    return out, truncated, verdict, True


# --- the child's stdout ----------------------------------------------------------------------


class BoundedWriter:
    """sys.stdout for a step: forwards the first `cap` characters to the zygote as they are
    printed, then only counts. A step printing forever costs CPU time, not memory."""

    def __init__(self, fd: int, cap: int, live: bool) -> None:
        self._fd = fd
        self._cap = cap
        self._live = live
        self._sent = 0
        self._cut = False

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if not self._live:
            return len(s)
        room = self._cap - self._sent
        if room > 0 and s:
            piece = s[:room]
            self._sent += len(piece)
            os.write(self._fd, _frame(b"o", piece.encode("utf-8", "backslashreplace")))
        if len(s) > max(room, 0) and not self._cut:
            self._cut = True
            os.write(self._fd, _frame(b"t"))
        return len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"


# --- checks on user code ---------------------------------------------------------------------


def check_tree(tree: ast.AST) -> str | None:
    """The first construct the AST check refuses, as a 'blocked: ...' line, or None.

    Refused: attribute access to names starting with '_' or to frame/code attributes (also in
    match-class patterns), names starting with '__' other than `__name__`, imports of private
    names, relative imports. A bare `_` or `_x` is the step's own variable and allowed; dunder
    method definitions (`def __init__`) are allowed, since they expose nothing by being defined.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in FRAME_ATTRS:
                return f"blocked: access to attribute {node.attr!r} is not allowed"
        elif isinstance(node, ast.Name):
            if node.id.startswith("__") and node.id != "__name__":
                return f"blocked: use of name {node.id!r} is not allowed"
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                if name.startswith("__"):
                    return f"blocked: use of name {name!r} is not allowed"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                return "blocked: relative imports are not allowed"
            for alias in node.names:
                if alias.name.startswith("_"):
                    return f"blocked: import of private name {alias.name!r} is not allowed"
        elif isinstance(node, ast.alias):
            if any(p.startswith("_") for p in node.name.split(".")) or (
                node.asname or ""
            ).startswith("__"):
                return f"blocked: import of {node.name!r} is not allowed"
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:
                if attr.startswith("_") or attr in FRAME_ATTRS:
                    return f"blocked: access to attribute {attr!r} is not allowed"
    return None


def make_importer(allowed: frozenset[str], real_import: Callable[..., Any]) -> Callable[..., Any]:
    """`__import__` for user code: only top-level names in `allowed`, no relative imports.

    Python modules' own imports use their own globals' builtins, so they never come here. C
    code does: `PyImport_Import` (behind `PyImport_ImportModule`, as when `datetime.strftime`
    loads `time`) looks `__import__` up in the builtins of the *running frame*, which is the
    step's. It always passes an empty list as `fromlist`, which an import statement never does
    (None or a tuple), and such calls go to the real importer. This lets nothing new through:
    the real `__import__` is reachable anyway (`typing.sys.modules["builtins"]`); this
    importer is a clear first refusal, not the boundary.
    """

    def guarded_import(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if type(fromlist) is list and not fromlist and level == 0:
            return real_import(name, globals, locals, fromlist, level)
        if level != 0:
            raise BlockedImport("blocked: relative imports are not allowed")
        if type(name) is not str:
            raise BlockedImport("blocked: import of a non-string name")
        top = name.partition(".")[0]
        if top not in allowed:
            raise BlockedImport(f"blocked: import of {top!r} is not allowed")
        return real_import(name, globals, locals, fromlist, level)

    return guarded_import


def safe_builtins(allowed: frozenset[str]) -> dict[str, Any]:
    b = {k: v for k, v in vars(builtins).items() if k not in DENIED_BUILTINS}
    b["__import__"] = make_importer(allowed, builtins.__import__)
    return b


# --- the audit hook --------------------------------------------------------------------------


def make_audit_hook(
    tmpdir: str, read_roots: tuple[str, ...], read_files: frozenset[str]
) -> tuple[Callable[[str, tuple[Any, ...]], None], list[str]]:
    """A default-deny audit hook for one child, and the list it records refusals in.

    The hook cannot be removed once added, and it is built so that user code cannot steer it:
    it reads no module globals or builtins at call time (everything it uses is bound as a
    keyword default, and CPython audits writes to `__kwdefaults__`), it calls only C functions
    and methods of built-in types, it raises the built-in PermissionError (a class user code
    cannot patch), and it looks at a value only when its type is exactly str, bytes or int, so
    no user-defined `__eq__`, `__hash__` or `__fspath__` ever runs inside it (such an object
    could answer one thing to the check and another to the operation).
    """
    violations: list[str] = []
    creates = [0]

    def hook(
        event: str,
        args: tuple[Any, ...],
        *,
        _free: frozenset[str] = FREE_EVENTS,
        _wpath: frozenset[str] = WRITE_PATH_EVENTS,
        _frame_attrs: frozenset[str] = AUDIT_FRAME_ATTRS,
        _deny_imports: frozenset[str] = DENIED_IMPORTS,
        _w: str = tmpdir.rstrip("/") + "/",
        _roots: tuple[str, ...] = tuple(r.rstrip("/") + "/" for r in read_roots),
        _files: frozenset[str] = read_files,
        _getcwd: Callable[[], str] = os.getcwd,
        _stat: Callable[[str], Any] = os.stat,
        _oserror: type = OSError,
        _str: type = str,
        _bytes: type = bytes,
        _int: type = int,
        _type: type = type,
        _len: Callable[[Any], int] = len,
        _v: list[str] = violations,
        _creates: list[int] = creates,
        _max_creates: int = MAX_CREATES,
        _exc: type = PermissionError,
        _wflags: int = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
        _cflags: int = os.O_CREAT,
    ) -> None:
        if _type(event) is not _str:
            _v.append("blocked: audit event with a non-string name")
            raise _exc("blocked: audit event with a non-string name")
        if event in _free:
            return
        msg = ""
        if event == "object.__getattr__":
            if _type(args[1]) is _str and args[1] in _frame_attrs:
                msg = f"blocked: access to attribute {args[1]!r} is not allowed"
        elif event == "object.__setattr__" or event == "object.__delattr__":
            if _type(args[1]) is _str and args[1] == "__code__":
                msg = "blocked: replacing a function's code is not allowed"
        elif event == "import":
            if _type(args[0]) is _str and args[0].partition(".")[0] in _deny_imports:
                msg = f"blocked: loading module {args[0]!r} is not allowed"
        elif event == "open" or event == "os.listdir" or event == "os.scandir" or event in _wpath:
            # Directory descriptors exist only for directories inside the step's own
            # directory (os.open refuses any other directory below), so a path relative to
            # one, without "..", stays inside it. CPython gives the "open" event no dir_fd,
            # so os.open's relative paths may not contain ".." at all.
            raw: list[Any] = [args[0]]
            dir_fds: list[Any] = [None]
            if event == "os.rename":
                raw.append(args[1])
                dir_fds = [args[2], args[3]]
            elif event in _wpath and event != "os.truncate":
                dir_fds = [args[-1]]
            elif event == "open" and args[1] is None:
                dir_fds = ["unknown"]
            paths: list[str] = []  # absolute and normalised; "" refused; "<fd>" / "<dir_fd>"
            for i in range(_len(raw)):
                p = raw[i]
                if _type(p) is _int:
                    paths.append("<fd>")  # a descriptor the step already holds
                    continue
                if p is None:  # os.listdir() / os.scandir(): the current directory
                    p = "."
                if _type(p) is _bytes:
                    p = p.decode("utf-8", "surrogateescape")
                if _type(p) is not _str or "\x00" in p:
                    paths.append("")
                    continue
                fd = dir_fds[i]
                relative = not p.startswith("/")
                if relative and fd is not None and fd != -1:
                    if ".." in p.split("/"):
                        paths.append("")
                        continue
                    if fd != "unknown":
                        paths.append("<dir_fd>")
                        continue
                    # os.open: relative to the cwd or to a dir_fd; without "..", checking
                    # it against the cwd is enough (both stay where the check says).
                if relative:
                    p = _getcwd() + "/" + p
                parts: list[str] = []
                for part in p.split("/"):
                    if part == "" or part == ".":
                        continue
                    if part == "..":
                        if parts:
                            parts.pop()
                        continue
                    parts.append(part)
                paths.append("/" + "/".join(parts))
            if event == "open":
                mode, flags = args[1], args[2]
                writing = (_type(flags) is _int and (flags & _wflags) != 0) or (
                    _type(mode) is _str
                    and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)
                )
                creating = (_type(flags) is _int and (flags & _cflags) != 0) or (
                    _type(mode) is _str and ("w" in mode or "a" in mode or "x" in mode)
                )
            elif event == "os.listdir" or event == "os.scandir":
                writing = creating = False
            else:
                writing, creating = True, event == "os.mkdir"
            for p in paths:
                if p == "<fd>" or p == "<dir_fd>":
                    continue
                inside = p != "" and (p + "/").startswith(_w)
                if writing:  # below the step's directory; the directory itself only for
                    # an open (O_TMPFILE, as tempfile.TemporaryFile tries), not rmdir/chmod/...
                    allowed = p != "" and (p.startswith(_w) or (event == "open" and inside))
                else:
                    allowed = inside or p in _files
                    if not allowed and p != "":
                        q = p + "/"
                        for r in _roots:
                            if q.startswith(r):
                                allowed = True
                                break
                if not allowed:
                    what = "writing" if writing else "reading"
                    if event == "open":
                        msg = f"blocked: opening {p or '(unusual path)'!r} for {what}"
                    else:
                        msg = f"blocked: {event} on {p or '(unusual path)'!r}"
                    msg += " is not allowed"
                    break
                if event == "open" and args[1] is None and not inside:
                    # No directory descriptors outside the step's directory (see above).
                    try:
                        is_dir = (_stat(p).st_mode & 0o170000) == 0o040000
                    except _oserror:
                        is_dir = False
                    if is_dir:
                        msg = f"blocked: opening directory {p!r} is not allowed"
                        break
            if not msg and creating:
                _creates[0] += 1
                if _creates[0] > _max_creates:
                    msg = f"blocked: a step may create at most {_max_creates} files"
        else:
            msg = f"blocked: {event} is not allowed"
        if msg:
            _v.append(msg)
            raise _exc(msg)

    return hook, violations


# --- the zygote ------------------------------------------------------------------------------


class Zygote:
    """The long-lived worker: holds the pre-imported modules and the policy, forks per run."""

    def __init__(self, init: dict[str, Any]) -> None:
        self.allowed = frozenset(str(m) for m in init["allowed_modules"])
        self.timeout_s = float(init["timeout_s"])
        self.cpu_s = int(init["cpu_s"])
        self.memory_mb = int(init["memory_mb"])
        self.max_output_chars = int(init["max_output_chars"])
        base = init.get("tmp_base")
        self.tmp_base = base if isinstance(base, str) and os.path.isdir(base) else None
        self.modules: list[str] = []
        for name in sorted(self.allowed):
            try:
                importlib.import_module(name)
                self.modules.append(name)
            except Exception:  # a missing optional module is simply not offered
                continue
        if "sympy" in self.modules:
            with contextlib.suppress(Exception):
                exec(compile(WARMUP, "<warmup>", "exec"), {"__name__": "__warmup__"})
        self.builtins = safe_builtins(self.allowed)
        # Readable: the interpreter's prefixes, sys.path entries inside them (not, say, a
        # project directory an editable install put on sys.path), and the directories the
        # allowed modules were loaded from (site-packages: their lazy imports and data).
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        roots: set[str] = set()
        for p in prefixes:
            roots |= {os.path.normpath(p), os.path.realpath(p)}
        for p in sys.path:
            if p and os.path.isabs(p):
                forms = {os.path.normpath(p), os.path.realpath(p)}
                if any((f + "/").startswith(r.rstrip("/") + "/") for f in forms for r in roots):
                    roots |= forms
        for name in self.modules:
            f = getattr(sys.modules[name], "__file__", None)
            if f:
                d = os.path.dirname(os.path.dirname(f))  # the directory holding the package
                roots |= {os.path.normpath(d), os.path.realpath(d)}
        self.read_roots = tuple(sorted(r for r in roots if r != "/"))
        self.landlock_roots = tuple(  # a Landlock rule covers everything beneath it
            r for r in self.read_roots if not any(r.startswith(o + "/") for o in self.read_roots)
        )
        self.read_files = frozenset({"/dev/null", "/dev/urandom", "/dev/random"})
        self.rss_bytes = _statm(1)
        with contextlib.suppress(ImportError):  # once here rather than in every child
            import ctypes  # noqa: F401
        self.skip = frozenset(str(x) for x in init.get("simulate_missing") or ())
        self.landlock = 0 if "landlock" in self.skip else landlock.abi_version()
        self.userns = self.mount_ns = self.pid_ns = False
        self._pending: tuple[str, bool] | None = None  # the last step's directory
        self.outer_uid = os.geteuid()  # who steps are outside any user namespace
        self.pid_ns_fd = -1
        self.exposed: list[str] = []
        self._enter_namespaces()
        self.seccomp, self.drop_uid = self._probe()
        self.seccomp = self.seccomp and "seccomp" not in self.skip
        with contextlib.suppress(OSError):
            kernel.set_dumpable(False)
        with contextlib.suppress(OSError):
            kernel.set_child_subreaper()
        gc.collect()
        gc.freeze()

    def layers(self) -> dict[str, Any]:
        """What confines a step on this machine, as `edgestar doctor` shows it."""
        return {
            "landlock_abi": self.landlock,
            "mount_ns": self.mount_ns,
            "net_ns": self.mount_ns,  # entered together with the mount namespace
            "pid_ns": self.pid_ns,
            "user_ns": self.userns,
            "step_uid": self.drop_uid if self.drop_uid is not None else self.outer_uid,
            "caps_dropped": self.drop_uid is not None or self.userns,
            "noexec_tmpfs": self.mount_ns,
            "seccomp": self.seccomp,
            "rlimits": True,
            "exposed": self.exposed,
        }

    # ----- namespaces

    def _enter_namespaces(self) -> None:
        """Fresh mount, network, IPC and UTS namespaces for this process (and so for every
        step): as root directly, otherwise inside a new user namespace where this user is
        mapped to root (with no power outside it). Then a fresh PID namespace per step,
        where the kernel allows it. Where nothing works, the layers stay off and `Executor`
        refuses to run code unless weak sandboxing was asked for."""
        if "namespaces" in self.skip or sys.platform != "linux":
            return
        try:
            if os.geteuid() != 0:
                uid, gid = os.geteuid(), os.getegid()
                kernel.unshare(kernel.CLONE_NEWUSER)
                for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"),
                                   ("gid_map", f"0 {gid} 1")):  # fmt: skip
                    with open(f"/proc/self/{name}", "w") as f:
                        f.write(text)
                self.userns = True
            kernel.unshare(
                kernel.CLONE_NEWNS | kernel.CLONE_NEWNET | kernel.CLONE_NEWIPC
                | kernel.CLONE_NEWUTS
            )  # fmt: skip
            kernel.private_mounts()
            probe = tempfile.mkdtemp(prefix=".probe-", dir=self.tmp_base)
            try:  # the per-step tmpfs must work before the layer counts as on
                kernel.mount_step_tmpfs(probe, 0, 1, 16)
                kernel.unmount(probe)
            finally:
                os.rmdir(probe)
            self.mount_ns = True
        except OSError:
            return
        with contextlib.suppress(OSError):  # not the machine's name (a new UTS namespace)
            kernel.set_hostname("edgestar-sandbox")
        if not self.userns and self.tmp_base is not None:
            staging = tempfile.mkdtemp(prefix=".view-", dir=self.tmp_base)
            with contextlib.suppress(OSError):
                self.exposed = kernel.expose_for(NOBODY, self.read_roots, staging)
        with contextlib.suppress(OSError):
            self.pid_ns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            kernel.new_pid_namespace(self.pid_ns_fd)
            pid = os.fork()
            if pid == 0:
                os._exit(0 if os.getpid() == 1 else 1)
            self.pid_ns = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
            kernel.setns(self.pid_ns_fd, kernel.CLONE_NEWPID)  # that namespace is spent

    # ----- probing what this machine allows

    def _probe(self) -> tuple[bool, int | None]:
        """Fork once to learn whether seccomp works and whether dropping root to `nobody`
        leaves the interpreter's own files readable and the steps' directories reachable (not
        when Python lives under a private home directory that no view could expose, or when
        the temp dir sits in a directory closed to others: then the unprivileged-user layer is
        reported off, and the Executor refuses, rather than every step failing)."""
        dirs = [r for r in self.read_roots if os.path.isdir(r)]
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if install_seccomp():
                    try:
                        os.setpgid(0, 0)
                    except PermissionError:
                        code |= 1
            except BaseException:
                pass
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                    for root in dirs:
                        os.listdir(root)
                    if self.tmp_base is not None:  # and its steps' directories
                        os.close(os.open(self.tmp_base, os.O_PATH))
                    code |= 2
            except BaseException:
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 0
        return bool(code & 1), (NOBODY if code & 2 else None)

    # ----- one run

    def run(self, code: str, prefix: str) -> dict[str, Any]:
        """One step. Its directory is removed by `cleanup`, which `main` calls once the
        reply is sent (off the caller's critical path) and which runs here first anyway."""
        self.cleanup()
        tmpdir = tempfile.mkdtemp(prefix="edgestar-step-", dir=self.tmp_base)
        self._pending = (tmpdir, False)
        if self.mount_ns:  # a private noexec tmpfs, gone with all it holds on unmount
            owner = self.drop_uid if self.drop_uid is not None else 0
            kernel.mount_step_tmpfs(tmpdir, owner, STEP_DISK_MB, STEP_INODES)
            self._pending = (tmpdir, True)
        elif self.drop_uid is not None:
            os.chown(tmpdir, self.drop_uid, self.drop_uid)
        if self.pid_ns:
            kernel.new_pid_namespace(self.pid_ns_fd)
        res = self._run_in(tmpdir, code, prefix)
        left = self._reap_leftovers()
        if left:  # the parent's own check, whatever the child reported
            res["ok"] = False
            res["error"] = f"blocked: the step left {left} process(es) running (killed)"
        return res

    def cleanup(self) -> None:
        """Remove the last step's directory (unmount its tmpfs); never raises."""
        pending, self._pending = self._pending, None
        if pending is not None:
            tmpdir, mounted = pending
            if mounted:
                with contextlib.suppress(OSError):
                    kernel.unmount(tmpdir)
            kernel.rmtree(tmpdir)

    def _reap_leftovers(self) -> int:
        """Kill and reap every process still below the zygote after a step (it is their
        subreaper, so orphans come back to it rather than to init); how many there were."""
        n = 0
        for _ in range(100):
            kids = kernel.children()
            if not kids:
                break
            n += len(kids)
            for pid in kids:
                _kill(pid)
            for pid in kids:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        return n

    def _run_in(self, tmpdir: str, code: str, prefix: str) -> dict[str, Any]:
        rfd, wfd = os.pipe()
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            status = EXIT_INTERNAL
            try:
                os.close(rfd)
                status = self._child(tmpdir, code, prefix, wfd)
            except BaseException as e:  # the confinement itself failed: say why
                with contextlib.suppress(BaseException):
                    verdict = {"ok": False, "error": f"internal: {_error_line(e)}"}
                    os.write(wfd, _frame(b"r", json.dumps(verdict).encode("utf-8", "replace")))
                    status = 0
            finally:
                os._exit(status)
        os.close(wfd)
        try:
            return self._watch(pid, rfd, t0)
        finally:
            os.close(rfd)

    def _watch(self, pid: int, rfd: int, t0: float) -> dict[str, Any]:
        deadline = t0 + self.timeout_s
        cap = 8 * self.max_output_chars + (1 << 20)  # escapes take up to 6 bytes a character
        buf = bytearray()
        killed_wall = overflow = False
        pidfd = -1
        with contextlib.suppress(AttributeError, OSError):
            pidfd = os.pidfd_open(pid)
        eof = exited = False
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(pid)
                killed_wall = True
                break
            watch = ([] if eof else [rfd]) + ([pidfd] if pidfd >= 0 else [])
            # Without a pidfd (Linux < 5.3) the child's exit is polled every 5 ms.
            ready = select.select(watch, [], [], min(remaining, 0.005 if pidfd < 0 else 3600))[0]
            if rfd in ready:
                data = os.read(rfd, 1 << 16)
                if data:
                    buf += data
                    if len(buf) > cap:
                        _kill(pid)
                        overflow = True
                        break
                else:
                    eof = True
            if pidfd >= 0:
                exited = pidfd in ready
            else:
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        _, status, usage = os.wait4(pid, 0)
        if pidfd >= 0:
            os.close(pidfd)
        os.set_blocking(rfd, False)
        try:  # what the child wrote just before it ended
            while len(buf) <= cap:
                data = os.read(rfd, 1 << 16)
                if not data:
                    break
                buf += data
        except BlockingIOError:
            pass
        pieces, truncated, verdict, well_formed = parse_frames(bytes(buf[:cap]))
        stdout = b"".join(pieces).decode("utf-8", "replace")
        if len(stdout) > self.max_output_chars:
            stdout, truncated = stdout[: self.max_output_chars], True
        res: dict[str, Any] = {
            "ok": False,
            "stdout": stdout,
            "error": None,
            "timed_out": False,
            "memory_exceeded": False,
            "truncated": truncated or overflow,
        }
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        cpu = usage.ru_utime + usage.ru_stime
        if killed_wall:
            res["timed_out"] = True
            res["error"] = f"TimeoutError: step exceeded the {self.timeout_s:g} s time limit"
        elif overflow:
            res["error"] = "blocked: the step flooded the result pipe"
        elif exit_code == 0 and verdict is not None and well_formed:
            res["ok"] = bool(verdict.get("ok"))
            err = verdict.get("error")
            res["error"] = None if res["ok"] else str(err or "error")[:ERROR_CHARS]
            res["memory_exceeded"] = bool(verdict.get("memory"))
        elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= self.cpu_s - 0.05):
            res["timed_out"] = True
            res["error"] = f"TimeoutError: step exceeded the {self.cpu_s} s CPU time limit"
        elif exit_code == EXIT_MEMORY or (
            sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS)
            and usage.ru_maxrss * 1024 >= self.rss_bytes + self.memory_mb * (1 << 19)
        ):
            res["memory_exceeded"] = True
            res["error"] = f"MemoryError: step exceeded the {self.memory_mb} MB memory limit"
        elif sig:
            res["error"] = f"crashed: the step was killed by {signal.Signals(sig).name}"
        elif exit_code == 0:
            res["error"] = "crashed: the step ended without a result"
        else:
            res["error"] = f"crashed: the step exited with status {exit_code}"
        return res

    # ----- inside the child

    def _child(self, tmpdir: str, code: str, prefix: str, wfd: int) -> int:
        # Descriptors: 0 and 1 are /dev/null already, 2 becomes it; keep only the result pipe.
        os.dup2(0, 2)
        os.closerange(3, wfd)
        os.closerange(wfd + 1, 1 << 16)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU):
            signal.signal(s, signal.SIG_DFL)
        os.chdir(tmpdir)
        os.environ.clear()
        os.environ.update({"HOME": tmpdir, "TMPDIR": tmpdir, "PATH": "/nonexistent"})
        tempfile.tempdir = tmpdir
        sys.dont_write_bytecode = True
        vm = _statm(0)
        limits = [
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_FSIZE, FSIZE_BYTES, FSIZE_BYTES),
            (resource.RLIMIT_CPU, min(self.cpu_s, 1 << 40), min(self.cpu_s, 1 << 40) + 1),
            (resource.RLIMIT_NOFILE, NOFILE, NOFILE),
        ]
        if vm and vm + self.memory_mb * (1 << 20) < 1 << 62:
            cap = vm + self.memory_mb * (1 << 20)
            limits.append((resource.RLIMIT_AS, cap, cap))
        for res_id, soft, hard in limits:
            resource.setrlimit(res_id, (soft, hard))
        # A last resort should the zygote itself die mid-run (SIGALRM's default action kills).
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s + 2.0)
        if self.drop_uid is not None:  # root: become `nobody`, which empties every cap set
            os.setgroups([])
            os.setgid(self.drop_uid)
            os.setuid(self.drop_uid)
        elif self.userns:  # root only inside the user namespace: give that up too
            kernel.drop_capabilities()
        # After the identity change, which resets both: no /proc/<pid>/mem or ptrace between
        # this process and any other, and death with the zygote.
        kernel.set_dumpable(False)
        kernel.set_pdeathsig(signal.SIGKILL)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        if self.landlock:
            r, w = landlock.READ_FILE, landlock.WRITE_FILE
            files = tuple((f, r | w if f == "/dev/null" else r) for f in self.read_files)
            landlock.restrict(self.landlock_roots, (tmpdir,), files, self.landlock)
        if self.seccomp and not install_seccomp():
            raise RuntimeError("the seccomp filter could not be installed")
        # Stubs for the unaudited calls that spawn or make special files (seccomp refuses
        # them too where it is available).
        psp = sys.modules.get("_posixsubprocess")
        if psp is not None:
            psp.fork_exec = _refuse_fork_exec  # type: ignore[attr-defined]
        for mod in (os, sys.modules.get("posix")):
            for name in ("mkfifo", "mknod"):
                if mod is not None and hasattr(mod, name):
                    setattr(mod, name, _refuse_fork_exec)
        quiet = BoundedWriter(wfd, 0, live=False)
        loud = BoundedWriter(wfd, self.max_output_chars, live=True)
        sys.stdout = sys.stderr = quiet  # type: ignore[assignment]
        sys.stdin = None  # type: ignore[assignment]
        hook, violations = make_audit_hook(tmpdir, self.read_roots, self.read_files)
        sys.addaudithook(hook)
        del hook
        reserve = bytearray(1 << 21)  # released on MemoryError so the verdict can be sent
        ok, error, memory = True, None, False
        ns: dict[str, Any] = {"__builtins__": self.builtins, "__name__": "__main__"}
        phase = "prefix"
        try:
            for phase, src in (("prefix", prefix), ("step", code)):
                if not src.strip():
                    continue
                try:
                    tree = ast.parse(src, "<step>", "exec")
                    blocked = check_tree(tree)
                    if blocked:
                        raise _StepSyntaxError(blocked)
                    compiled = compile(tree, "<step>", "exec", dont_inherit=True)
                except SyntaxError as e:  # also the ones compile() finds (symbol table)
                    raise _StepSyntaxError(
                        f"{type(e).__name__}: {e.msg} (line {e.lineno})"
                    ) from None
                del tree
                if phase == "step":
                    sys.stdout = loud  # type: ignore[assignment]
                exec(compiled, ns)
        except MemoryError:
            del reserve
            ns.clear()
            ok, memory = False, True
            error = f"MemoryError: step exceeded the {self.memory_mb} MB memory limit"
        except SystemExit as e:
            if e.code not in (None, 0):  # sys.exit(0) is a normal end, as in a script
                ok, error = False, _error_line(e)
                error = f"in prefix: {error}" if phase == "prefix" else error
        except BaseException as e:  # KeyboardInterrupt and the like end the step too
            ok, error = False, _error_line(e)
            error = f"in prefix: {error}" if phase == "prefix" else error
        sys.stdout = quiet  # type: ignore[assignment]
        if violations and (ok or "blocked:" not in (error or "")):
            # A refused operation fails the step even when the code caught the exception.
            ok, error = False, violations[0]
        try:
            verdict = json.dumps({"ok": ok, "error": error, "memory": memory})
            os.write(wfd, _frame(b"r", verdict.encode("utf-8", "replace")))
        except MemoryError:
            return EXIT_MEMORY
        return 0


class _StepSyntaxError(Exception):
    """Carries a ready-made error line for code that was refused before it ran."""


def _error_line(e: BaseException) -> str:
    if (
        isinstance(e, _StepSyntaxError)
        or isinstance(e, (PermissionError, BlockedImport))
        and str(e).startswith("blocked:")
    ):
        text = str(e)
    else:
        try:
            msg = str(e)
        except Exception:
            msg = ""
        text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    line = " ".join(text.split())
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 3] + "..."


def _refuse_fork_exec(*args: Any, **kwargs: Any) -> Any:
    """Stands in for `_posixsubprocess.fork_exec`, `os.mkfifo` and `os.mknod`, which CPython
    does not audit."""
    sys.audit("unaudited-call")  # refused and recorded by the hook
    raise PermissionError("blocked: this call is not allowed")


def _statm(field: int) -> int:
    """Field `field` of /proc/self/statm in bytes (0: address space, 1: resident); 0 if unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def main() -> int:
    t0 = time.monotonic()
    req_fd, resp_fd = os.dup(0), os.dup(1)  # os.dup: not inherited across exec
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    init = read_msg(req_fd)
    if init is None:
        return 0
    zygote = Zygote(init)
    write_msg(
        resp_fd,
        {
            "ready": True,
            "pid": os.getpid(),
            "modules": zygote.modules,
            "seccomp": zygote.seccomp,
            "drop_uid": zygote.drop_uid,
            "layers": zygote.layers(),
            "startup_s": time.monotonic() - t0,
        },
    )
    while True:
        req = read_msg(req_fd)
        if req is None:
            zygote.cleanup()
            return 0
        try:
            reply = zygote.run(str(req.get("code", "")), str(req.get("prefix", "")))
        except Exception as e:  # keep serving: one bad run must not take the zygote down
            reply = {
                "ok": False,
                "stdout": "",
                "error": f"internal: {_error_line(e)}",
                "timed_out": False,
                "memory_exceeded": False,
                "truncated": False,
            }
        write_msg(resp_fd, reply)
        zygote.cleanup()


if __name__ == "__main__":
    sys.exit(main())
