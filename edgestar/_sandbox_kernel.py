"""Linux namespace, mount and prctl calls for the code sandbox (ctypes over libc).

The sandbox worker (`edgestar/_sandbox_worker.py`) loads this file by path (it imports nothing
from edgestar) and uses it to: move itself into fresh mount, network, IPC and UTS namespaces;
give each step a private tmpfs mounted noexec,nosuid,nodev that disappears with everything in
it when it is unmounted; start each step as PID 1 of a fresh PID namespace (so the kernel
kills whatever the step might leave behind when it ends); make a Python that lives under a
private directory (such as /root) reachable for the unprivileged user steps run as, by
mounting a view of only the interpreter's directories over that private directory; and close
/proc/<pid>/mem and ptrace between processes (PR_SET_DUMPABLE 0), tie a step's life to the
worker's (PR_SET_PDEATHSIG) and drop every capability.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import sys

__all__ = [
    "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWUSER",
    "CLONE_NEWUTS", "expose_for", "mount_step_tmpfs", "new_pid_namespace", "set_dumpable",
    "set_pdeathsig", "unmount", "unshare", "private_mounts", "drop_capabilities",
    "set_child_subreaper", "children", "rmtree", "set_hostname",
]  # fmt: skip

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 1, 4, 36
_NR_CAPSET = {"x86_64": 126, "aarch64": 91}

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _lib() -> ctypes.CDLL:
    if _libc is None:
        raise OSError("namespaces need Linux")
    return _libc


def unshare(flags: int) -> None:
    _check(_lib().unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_lib().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    enc = os.fsencode
    _check(
        _lib().mount(
            enc(source) if source else None,
            enc(target),
            enc(fstype) if fstype else None,
            ctypes.c_ulong(flags),
            enc(data) if data else None,
        ),
        f"mount {target}",
    )


def unmount(target: str) -> None:
    """Detach the mount at `target` (lazily: it goes when its last user does)."""
    _check(_lib().umount2(os.fsencode(target), ctypes.c_int(MNT_DETACH)), f"umount {target}")


def private_mounts() -> None:
    """Nothing mounted in this (new) mount namespace propagates back out."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def mount_step_tmpfs(path: str, uid: int, size_mb: int, inodes: int) -> None:
    """A fresh tmpfs on `path`: noexec (no shared object written there can be mapped
    executable), nosuid, nodev, bounded in bytes and inodes, owned by `uid`, mode 0700."""
    mount("edgestar-step", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          f"size={size_mb}m,nr_inodes={inodes},mode=0700,uid={uid},gid={uid}")  # fmt: skip


def new_pid_namespace(own_pid_ns_fd: int) -> None:
    """The next child this process forks is PID 1 of a fresh PID namespace. `own_pid_ns_fd` is
    a descriptor for this process's own PID namespace: joining it first resets the namespace
    for children, which a second `unshare(CLONE_NEWPID)` needs (the kernel allows one per
    process otherwise)."""
    setns(own_pid_ns_fd, CLONE_NEWPID)
    unshare(CLONE_NEWPID)


def set_dumpable(flag: bool) -> None:
    """PR_SET_DUMPABLE: 0 closes /proc/<pid>/mem, /proc/<pid>/environ and ptrace to every
    process without CAP_SYS_PTRACE (and steps have no capabilities)."""
    _check(_lib().prctl(_PR_SET_DUMPABLE, ctypes.c_ulong(int(flag)), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_DUMPABLE)")  # fmt: skip


def set_pdeathsig(sig: int) -> None:
    """The kernel sends `sig` to this process when its parent (the worker) dies."""
    _check(_lib().prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(sig), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_PDEATHSIG)")  # fmt: skip


def set_hostname(name: str) -> None:
    """The host name this UTS namespace shows (os.uname().nodename)."""
    b = name.encode()
    _check(_lib().sethostname(b, ctypes.c_size_t(len(b))), "sethostname")


def set_child_subreaper() -> None:
    """Orphans of this process's descendants are re-parented to it, not to init."""
    _check(_lib().prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_CHILD_SUBREAPER)")  # fmt: skip


def children() -> list[int]:
    """This process's children (the main thread's, from /proc; fork runs on it)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]  # fmt: skip


def drop_capabilities() -> None:
    """Empty the effective, permitted and inheritable capability sets (capset, version 3)."""
    nr = _NR_CAPSET.get(os.uname().machine)
    if nr is None:
        raise OSError(f"capset: unknown syscall number on {os.uname().machine}")
    head = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(_lib().syscall(ctypes.c_long(nr), ctypes.byref(head), data), "capset")


def _traversable(path: str, uid: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    return bool(st.st_mode & stat.S_IXOTH)


def expose_for(uid: int, roots: tuple[str, ...], staging: str) -> list[str]:
    """Make `roots` reachable for `uid` in this (private) mount namespace.

    For each directory on the way to a root that `uid` may not pass through (e.g. /root, mode
    0700), mount a tmpfs over it holding only the roots beneath it, bound from their real
    place, read-only. The rest of that directory disappears from this namespace. Returns the
    directories covered. `staging` is an empty directory to park the bind mounts in meanwhile.
    """
    blocked: dict[str, list[str]] = {}
    for r in sorted(set(roots)):
        parts = r.strip("/").split("/")
        for i in range(1, len(parts)):
            a = "/" + "/".join(parts[:i])
            if not _traversable(a, uid):
                blocked.setdefault(a, []).append(r)
                break
    for n, (a, inside) in enumerate(sorted(blocked.items())):
        tops = [r for r in inside if not any(r != o and r.startswith(o + "/") for o in inside)]
        parked = []
        for i, r in enumerate(tops):
            p = os.path.join(staging, f"{n}-{i}")
            os.mkdir(p, 0o700)
            mount(r, p, None, MS_BIND | MS_REC)
            parked.append((r, p))
        mount("edgestar-view", a, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for r, p in parked:
            dest = a
            for part in os.path.relpath(r, a).split("/"):
                dest = os.path.join(dest, part)
                if not os.path.isdir(dest):
                    os.mkdir(dest, 0o755)
            mount(p, dest, None, MS_BIND | MS_REC)
            mount(None, dest, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            unmount(p)
            os.rmdir(p)
    return sorted(blocked)


def rmtree(path: str) -> None:
    """Remove the tree at `path` without recursion and with one directory descriptor open at a
    time, whatever its depth or its modes (subdirectories are made 0700 on the way down); never
    follows symlinks; never raises."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except NotADirectoryError:
        _quiet(os.unlink, path)
        return
    except OSError:
        return
    names: list[str] = []  # the way down from `path`
    stuck: set[tuple[int, int]] = set()  # directories that could not be emptied
    try:
        while True:
            sub = None
            try:
                with os.scandir(fd) as it:
                    for e in it:
                        try:
                            is_dir = e.is_dir(follow_symlinks=False)
                        except OSError:
                            is_dir = False
                        if is_dir and (e.inode(), os.fstat(fd).st_dev) not in stuck:
                            sub = e.name
                            break
                        if not is_dir:
                            _quiet(os.unlink, e.name, dir_fd=fd)
            except OSError:
                pass
            if sub is not None:
                _quiet(os.chmod, sub, 0o700, dir_fd=fd)
                try:
                    nfd = os.open(sub, flags, dir_fd=fd)
                except OSError:
                    st = os.stat(sub, dir_fd=fd, follow_symlinks=False)
                    stuck.add((st.st_ino, st.st_dev))
                    continue
                os.close(fd)
                fd = nfd
                names.append(sub)
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=fd)
            st = os.fstat(fd)
            os.close(fd)
            fd = parent
            name = names.pop()
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                stuck.add((st.st_ino, st.st_dev))
    except OSError:
        pass
    finally:
        _quiet(os.close, fd)
    _quiet(os.rmdir, path)


def _quiet(fn: object, *args: object, **kwargs: object) -> None:
    with contextlib.suppress(OSError):
        fn(*args, **kwargs)  # type: ignore[operator]
