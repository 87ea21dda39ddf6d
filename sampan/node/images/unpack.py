"""Unpacks one layer tarball into a directory that overlayfs can use as a lower layer.

Runs in a worker thread (plain blocking I/O). Every path is made relative to the layer
directory and parents are checked with lstat, so a layer can never write through a
symlink or outside its directory. OCI whiteouts become overlay whiteouts: ``.wh.NAME``
-> a 0/0 character device NAME, ``.wh..wh..opq`` -> the trusted.overlay.opaque xattr.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import logging
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from .refs import ImageError

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """Passes reads through and hashes (and counts) every byte read."""

    def __init__(self, raw: BinaryIO, prefix: bytes = b"") -> None:
        self.raw = raw
        self.prefix = prefix
        self.sha = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        view = memoryview(buf)
        if self.prefix:
            n = min(len(view), len(self.prefix))
            data = self.prefix[:n]
            self.prefix = self.prefix[n:]
        else:
            data = self.raw.read(len(view))
            n = len(data)
        view[:n] = data
        self.sha.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def open_layer(raw: BinaryIO) -> tuple[HashingReader, HashingReader]:
    """(compressed-side hasher, uncompressed-side hasher) for a plain or gzip layer stream."""
    head = raw.read(4)
    outer = HashingReader(raw, head)
    if head.startswith(_GZIP_MAGIC):
        buffered = io.BufferedReader(outer, _CHUNK)
        inner = HashingReader(gzip.GzipFile(fileobj=buffered, mode="rb"))  # type: ignore[arg-type]
    elif head.startswith(_ZSTD_MAGIC):
        raise ImageError("zstd-compressed layers are not supported")
    else:
        inner = outer
    return outer, inner


def _clean(name: str) -> list[str]:
    """Path components of a tar member name, relative; ImageError on '..'."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ImageError(f"layer entry {name!r} escapes the layer directory")
    return parts


def _parent_dir(root: Path, parts: list[str], create: bool = True) -> Path:
    """Creates the parent directories of ``parts`` under root, refusing symlinks on the way."""
    current = root
    for part in parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if not create:
                raise ImageError(f"layer entry {'/'.join(parts)} is missing") from None
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise ImageError(f"layer writes through non-directory {'/'.join(parts)}")
    return current


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _whiteout(path: Path) -> None:
    _remove(path)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def _set_opaque(path: Path) -> None:
    os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)


def _apply_meta(path: Path, member: tarfile.TarInfo, is_root: bool) -> None:
    if stat.S_ISLNK(os.lstat(path).st_mode) != member.issym():
        return  # replaced by a later entry of another kind: never chmod through a symlink
    if is_root:
        try:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EINVAL):
                raise
    for key, value in (member.pax_headers or {}).items():
        if key.startswith("SCHILY.xattr."):
            attr = key[len("SCHILY.xattr."):]
            if attr.startswith("trusted."):  # overlay metadata only comes from whiteout entries
                continue
            try:
                os.setxattr(path, attr, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
            except OSError:
                log.debug("cannot set xattr %s on %s", attr, path)
    if not member.issym():
        os.chmod(path, member.mode & 0o7777)  # after chown, which clears setuid bits
    try:
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
    except (OSError, OverflowError, ValueError):
        pass


def unpack_layer(raw: BinaryIO, dest: Path) -> tuple[str, str, int]:
    """Unpacks a (plain or gzip) layer stream into ``dest``.

    Returns (compressed digest, uncompressed digest = diff id, unpacked size in bytes).
    """
    dest.mkdir(parents=True, exist_ok=True)
    is_root = os.geteuid() == 0
    outer, inner = open_layer(raw)
    size = 0
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    try:
        archive = tarfile.open(fileobj=inner, mode="r|")  # type: ignore[call-overload]
    except tarfile.ReadError as exc:
        raise ImageError(f"layer is not a tar archive: {exc}") from None
    try:
        for member in archive:
            parts = _clean(member.name)
            if not parts:
                if member.isdir():
                    dirs.append((dest, member))
                continue
            parent = _parent_dir(dest, parts)
            base = parts[-1]
            if base == OPAQUE:
                _set_opaque(parent)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                target = base[len(WHITEOUT_PREFIX):]
                if target in ("", ".", "..") or target.startswith(WHITEOUT_PREFIX):
                    raise ImageError(f"unsupported whiteout entry {member.name!r}")
                _whiteout(parent / target)
                continue
            path = parent / base
            existing_dir = path.is_dir() and not path.is_symlink()
            if member.isdir():
                if not existing_dir:
                    _remove(path)
                    os.mkdir(path, 0o700)
                dirs.append((path, member))
                continue
            _remove(path)
            if member.isreg():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                source = archive.extractfile(member)
                with os.fdopen(fd, "wb") as out:
                    if source is not None:
                        shutil.copyfileobj(source, out, _CHUNK)
                size += member.size
            elif member.issym():
                os.symlink(member.linkname, path)
            elif member.islnk():
                link_parts = _clean(member.linkname)
                if not link_parts:
                    raise ImageError(f"hard link {member.name!r} to the layer root")
                # checked component by component: a symlinked parent must not lead out of the layer
                target = _parent_dir(dest, link_parts, create=False) / link_parts[-1]
                try:
                    st = os.lstat(target)
                except FileNotFoundError:
                    raise ImageError(f"hard link {member.name!r} to missing {member.linkname!r}") from None
                if stat.S_ISDIR(st.st_mode):
                    raise ImageError(f"hard link {member.name!r} to a directory")
                os.link(target, path, follow_symlinks=False)
                continue  # a hard link shares the target's metadata
            elif member.ischr() and member.devmajor == 0 and member.devminor == 0:
                _whiteout(path)  # an overlay-style whiteout stored as such
                continue
            elif member.isfifo():
                os.mkfifo(path, 0o600)
            else:
                log.warning("skipping layer entry %s (device nodes are not allowed in layers)", member.name)
                continue
            _apply_meta(path, member, is_root)
        inner.drain()  # the digest covers the tar padding after the end-of-archive blocks
        if inner is not outer:
            outer.drain()
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise
        raise ImageError(f"corrupt layer: {exc}") from None
    finally:
        archive.close()
    # Directory metadata last: creating entries inside changes their times.
    for path, member in reversed(dirs):
        _apply_meta(path, member, is_root)
    return outer.digest, inner.digest, size
