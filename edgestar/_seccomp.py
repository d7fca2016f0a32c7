"""The code sandbox's seccomp filter (x86-64 Linux), built as classic BPF and installed with
prctl: EPERM for the system calls a step never needs (process creation, exec, signals to other
processes, sockets, device nodes, links, mounts and namespaces, module loading, tracing, BPF,
perf, io_uring, userfaultfd, memfd, System V and POSIX IPC, keys, raising resource limits,
leaving the process group, scheduling changes).

The sandbox worker loads this file by path (it imports nothing from edgestar).
"""

from __future__ import annotations

import os
import struct
import sys

__all__ = ["install_seccomp"]

_X86_64_DENY = (
    56, 57, 58, 59, 322, 435,  # clone fork vfork execve execveat clone3
    62, 200, 101, 310, 311,  # kill tkill ptrace process_vm_readv/writev
    41, 53,  # socket socketpair
    133, 259, 92, 93, 94, 260, 86, 265, 88, 266,  # mknod(at) chown* link(at) symlink(at)
    165, 166, 155, 161, 308, 272, 428, 429, 430, 431, 432, 433, 442,  # mounts, namespaces
    169, 246, 320, 175, 313, 176, 174, 177, 178, 134, 156, 180,  # reboot, kexec, modules
    321, 298, 323, 425, 426, 427, 319,  # bpf perf_event_open userfaultfd io_uring memfd_create
    248, 249, 250, 303, 304,  # keys, open_by_handle_at
    29, 30, 31, 64, 65, 66, 68, 69, 70, 71, 220,  # System V shm, semaphores, message queues
    240, 241, 242, 243, 244, 245,  # POSIX message queues
    424, 434, 438,  # pidfd_*
    167, 168, 163, 103, 179, 170, 171, 164, 227, 305, 159, 172, 173, 300, 312, 212, 153, 135,
    160, 109, 112, 141, 142, 144, 314,  # setrlimit setpgid setsid setpriority sched_set*
)  # fmt: skip
_NR_TGKILL = 234
_NR_PRLIMIT64 = 302


def _seccomp_program(pid: int) -> bytes:
    """A classic-BPF seccomp filter (x86-64) that answers EPERM to process creation, exec,
    signals to other processes, sockets, device nodes, links, mounts and namespaces, module
    loading, tracing, raising resource limits and leaving the process group."""
    ld, jeq, ret = 0x20, 0x15, 0x06
    allow, eperm, kill = 0x7FFF0000, 0x00050001, 0x80000000
    ins: list[tuple[int, int, int, int]] = [
        (ld, 0, 0, 4),  # arch
        (jeq, 1, 0, 0xC000003E),  # AUDIT_ARCH_X86_64
        (ret, 0, 0, kill),
        (ld, 0, 0, 0),  # syscall number
        (0x35, 0, 1, 0x40000000),  # jge: x32 ABI
        (ret, 0, 0, eperm),
    ]
    for nr in _X86_64_DENY:
        ins += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    ins += [
        (jeq, 0, 4, _NR_TGKILL),
        (ld, 0, 0, 16),  # args[0] (tgid), low half
        (jeq, 0, 1, pid),
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
        (jeq, 0, 6, _NR_PRLIMIT64),
        (ld, 0, 0, 32),  # args[2] (new limits pointer), low half
        (jeq, 0, 3, 0),
        (ld, 0, 0, 36),  # high half
        (jeq, 0, 1, 0),
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
        (ret, 0, 0, allow),
    ]
    return b"".join(struct.pack("=HBBI", c, jt, jf, k) for c, jt, jf, k in ins)


def install_seccomp() -> bool:
    """Install the filter in this process; False where seccomp or ctypes is unavailable."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return False
    try:
        import ctypes
    except ImportError:
        return False
    prog = _seccomp_program(os.getpid())
    buf = ctypes.create_string_buffer(prog, len(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    ul = ctypes.c_ulong
    if libc.prctl(38, ul(1), ul(0), ul(0), ul(0)) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    return libc.prctl(22, ul(2), ctypes.byref(fprog), ul(0), ul(0)) == 0
