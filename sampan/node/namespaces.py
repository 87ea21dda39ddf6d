"""Persistent namespaces made with system calls instead of ``ip netns add`` / ``unshare``.

A short-lived thread unshares the namespaces it is asked for (network, IPC and UTS
namespaces belong to a thread, so the rest of the agent is untouched), names the host, brings
``lo`` up, and bind-mounts each namespace onto a file; the namespaces live on through those
mounts after the thread ends. Removing is a lazy unmount and an unlink. This is what
iproute2 and util-linux do, without starting a program (a few ms of CPU each, per pod).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

CLONE = {"net": 0x40000000, "ipc": 0x08000000, "uts": 0x04000000}
CLONE_FS = 0x00000200
MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 0x100000
MNT_DETACH = 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_shared_dirs: set[str] = set()
_shared_lock = threading.Lock()


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str, target: str, flags: int) -> None:
    _check(_libc.mount(source.encode(), target.encode(), b"none", flags, None), f"mount {target}")


def unmount(target: str) -> None:
    """Lazy unmount; a target that is not mounted (or gone) is fine."""
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):
            raise OSError(code, f"umount {target}: {os.strerror(code)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _share_dir(directory: str) -> None:
    """Like `ip netns add`: the directory is a shared mount, so a namespace mounted (or
    unmounted) here is seen in mount namespaces copied from ours (containers' included)."""
    with _shared_lock:
        if directory in _shared_dirs:
            return
        os.makedirs(directory, exist_ok=True)
        if _libc.mount(b"", directory.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
            if ctypes.get_errno() != errno.EINVAL:  # EINVAL: not a mount point yet
                _check(-1, f"mount --make-rshared {directory}")
            _mount(directory, directory, MS_BIND | MS_REC)
            _check(_libc.mount(b"", directory.encode(), b"none", MS_SHARED | MS_REC, None),
                   f"mount --make-rshared {directory}")
        _shared_dirs.add(directory)


def _make(files: dict[str, str], hostname: str | None, share: str | None) -> None:
    """Runs in a thread of its own (its namespaces end with it, except the mounted ones)."""
    if share:
        _share_dir(share)
    made: list[str] = []
    try:
        for path in files.values():
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
            os.close(fd)
            made.append(path)
        flags = 0
        for kind in files:
            flags |= CLONE[kind]
        _check(_libc.unshare(flags), "unshare")
        if hostname is not None and "uts" in files:
            name = hostname.encode()
            _check(_libc.sethostname(name, len(name)), "sethostname")
        if "net" in files:
            _loopback_up()
        tid = threading.get_native_id()
        for kind, path in files.items():
            _mount(f"/proc/self/task/{tid}/ns/{kind}", path, MS_BIND)
    except BaseException:
        for path in made:
            unmount(path)
            try:
                os.unlink(path)
            except OSError:
                pass
        raise


async def _in_new_thread(fn: Callable[[], T]) -> T:
    """Runs ``fn`` in a fresh thread (never a pooled one: it changes the thread's namespaces)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if done.cancelled():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=body, name="sampan-namespaces", daemon=True).start()
    return await done


def keep(namespace: str, target: Path | str) -> None:
    """Bind-mounts a namespace (``/proc/PID/ns/KIND``) on ``target``, a new file (blocking)."""
    os.close(os.open(str(target), os.O_RDONLY | os.O_CREAT, 0))
    _mount(namespace, str(target), MS_BIND)


async def create(files: dict[str, Path | str], hostname: str | None = None, share: Path | str | None = None) -> None:
    """New namespaces of the kinds in ``files`` ("net", "ipc", "uts"), each bind-mounted on its
    file (which must not exist); ``lo`` is up in a new network namespace and ``hostname`` set
    in a new UTS one. ``share``: make that directory a shared mount first (``/run/netns``).
    Raises OSError (FileExistsError when a file exists already)."""
    paths = {k: str(v) for k, v in files.items()}
    unknown = set(paths) - set(CLONE)
    if unknown:
        raise ValueError(f"unsupported namespace kinds {sorted(unknown)}")
    await _in_new_thread(lambda: _make(paths, hostname, str(share) if share else None))


def _mount_with_cwd(fstype: str, target: str, options: str, cwd: str) -> None:
    # This thread alone changes directory (the mount options' relative paths start there).
    _check(_libc.unshare(CLONE_FS), "unshare")
    os.chdir(cwd)
    _check(_libc.mount(fstype.encode(), target.encode(), fstype.encode(), 0, options.encode()),
           f"mount {fstype} on {target}")


async def mount(fstype: str, target: Path | str, options: str, cwd: Path | str) -> None:
    """``mount -t FSTYPE -o OPTIONS FSTYPE TARGET`` run in ``cwd``, as a system call."""
    await _in_new_thread(lambda: _mount_with_cwd(fstype, str(target), options, str(cwd)))


def umount(target: Path | str, lazy: bool = False) -> None:
    """umount(2); raises OSError (EINVAL: not mounted, EBUSY: in use)."""
    _check(_libc.umount2(str(target).encode(), MNT_DETACH if lazy else 0), f"umount {target}")


def remove(path: Path | str) -> None:
    """Unmounts a namespace file and deletes it (the namespace ends with its last user)."""
    unmount(str(path))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
