"""A minimal ctypes binding of Linux Landlock, used by the code sandbox's step processes.

Landlock (kernel >= 5.13) lets an unprivileged process restrict its own file-system (and,
from ABI 4, TCP; from ABI 6, signal and abstract-socket) access for itself and every process
it could later create. Once applied it cannot be lifted; the kernel checks every open, create,
rename and unlink against the rules, whatever code makes the call (Python, C, a library's
constructor), and resolves symlinks and `..` itself.

Needs: Landlock ABI >= 1 (Linux 5.13). Uses, when the kernel has them: ABI 2 (`REFER`,
rename/link across directories), ABI 3 (`TRUNCATE`), ABI 4 (TCP bind/connect refused), ABI 5
(`IOCTL_DEV`), ABI 6 (signals and abstract unix sockets scoped to the domain). ABI 7 adds
only audit logging flags, which are not used. The three system calls are numbered 444, 445
and 446 on every Linux architecture (x86-64, aarch64 and the rest share the numbers of
syscalls added since 5.1), so this works on Jetson boards too.

This module imports nothing from edgestar: the sandbox worker loads it by path.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys

__all__ = ["abi_version", "restrict"]

_NR_CREATE_RULESET, _NR_ADD_RULE, _NR_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
"""All file-system rights a kernel of each ABI knows (4 added none, 6 and 7 none)."""
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
"""The only rights a rule on a file (rather than a directory) may carry."""
READ = READ_FILE | READ_DIR
WRITE = (
    READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | REFER | TRUNCATE
)  # no EXECUTE, no device nodes, FIFOs, sockets or symlinks


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
if _libc is not None:
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long
    _prctl = _libc.prctl
    _prctl.restype = ctypes.c_int


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is absent or disabled."""
    if _libc is None:
        return 0
    n = _syscall(ctypes.c_long(_NR_CREATE_RULESET), None, ctypes.c_size_t(0),
                 ctypes.c_uint32(_CREATE_RULESET_VERSION))  # fmt: skip
    return max(int(n), 0)


def _fs_rights(abi: int) -> int:
    return _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]


def restrict(
    read: tuple[str, ...],
    write: tuple[str, ...],
    files: tuple[tuple[str, int], ...] = (),
    abi: int | None = None,
) -> int:
    """Restrict this process (and all it creates) for good: read-only under `read`, read and
    write (no execute, no special files) under `write`, `files` as (path, rights) pairs for
    single files, nothing anywhere else; no TCP (ABI >= 4); no signals or abstract unix
    sockets to processes outside the domain (ABI >= 6). Sets no_new_privs. Paths that do not
    exist or that this user cannot reach are skipped (they stay unreachable). Returns the ABI used; raises OSError if Landlock is unavailable."""
    abi = abi_version() if abi is None else abi
    if abi < 1:
        raise OSError("Landlock is not available in this kernel (needs Linux >= 5.13)")
    fs = _fs_rights(abi)
    attr = _RulesetAttr(fs, (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
                        (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)  # fmt: skip
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    fd = _syscall(ctypes.c_long(_NR_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                  ctypes.c_uint32(0))  # fmt: skip
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"landlock_create_ruleset: {os.strerror(e)}")
    try:
        rules = [(p, READ) for p in read] + [(p, WRITE) for p in write] + list(files)
        for path, rights in rules:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:  # absent, or out of this user's reach anyway
                continue
            try:
                if not stat.S_ISDIR(os.fstat(pfd).st_mode):
                    rights &= FILE_RIGHTS
                rule = _PathBeneathAttr(rights & fs, pfd)
                if _syscall(ctypes.c_long(_NR_ADD_RULE), ctypes.c_int(fd),
                            ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                            ctypes.c_uint32(0)) != 0:  # fmt: skip
                    e = ctypes.get_errno()
                    raise OSError(e, f"landlock_add_rule({path}): {os.strerror(e)}")
            finally:
                os.close(pfd)
        if _prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:  # fmt: skip
            e = ctypes.get_errno()
            raise OSError(e, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(e)}")
        if _syscall(ctypes.c_long(_NR_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"landlock_restrict_self: {os.strerror(e)}")
    finally:
        os.close(fd)
    return abi
