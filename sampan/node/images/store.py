"""The node's image store: content-addressed blobs, layers unpacked once, overlay root filesystems.

Layout under ``root``::

    index.json               tags/digests -> image ids, image records, layers, imported archives
    blobs/sha256/<hex>       manifests and configs
    layers/<hex of diff id>  one unpacked layer (an overlay lower directory)
    containers/<id>/         upper, work and merged directories of one mounted container
    tmp/<pid>/               downloads and layers being unpacked, per process
    index.lock               flock serialising index changes between processes
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

from . import mounts
from .imports import ArchiveImports
from .refs import ImageError, ImageInfo, ImageNotFound, check_digest, is_digest, normalize, parse_reference
from .registry import RegistryClient
from .resolve import Resolved, resolve
from .unpack import unpack_layer
from .util import config_summary, in_thread, write_atomic

_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_EMPTY_LAYER = "empty"
_ORPHAN_AGE = 3600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _hex(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]


def _flock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


class ImageStore(ArchiveImports):
    def __init__(self, root: Path, insecure_registries: set[str] | None = None) -> None:
        self.root = Path(root)
        self.insecure_registries = set(insecure_registries or ())
        for sub in ("blobs/sha256", "layers", "containers", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # scratch space per process: `sampan images import` may run next to the agent
        for entry in (self.root / "tmp").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid() or not _alive(int(entry.name)):
                shutil.rmtree(entry, ignore_errors=True)  # leftovers of an interrupted unpack
        self.tmp = self.root / "tmp" / str(os.getpid())
        self.tmp.mkdir(exist_ok=True)
        (self.root / "layers" / _EMPTY_LAYER).mkdir(exist_ok=True)
        self._index: dict[str, Any] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._refresh()
        self._lock = asyncio.Lock()
        self._layer_locks: dict[str, asyncio.Lock] = {}
        # container id -> image id of every rootfs this store has mounted (survives restarts on disk)
        self._in_use: dict[str, str] = {}
        self._pending: collections.Counter[str] = collections.Counter()
        self._fresh: dict[str, int] = {}  # diff id -> size of layers unpacked but not yet in the index
        for entry in (self.root / "containers").iterdir():
            try:
                self._in_use[entry.name] = (entry / "image").read_text().strip()
            except OSError:
                pass

    # ---- index ----

    def _refresh(self) -> None:
        """Re-reads index.json when another process (``sampan images import``) changed it."""
        path = self.root / "index.json"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size) if st else None
        if stamp == self._stamp and self._stamp is not None:
            return
        index: dict[str, Any] = {"tags": {}, "images": {}, "layers": {}, "archives": {}}
        if st is not None:
            loaded = json.loads(path.read_bytes())
            for key in index:
                index[key].update(loaded.get(key) or {})
        self._index, self._stamp = index, stamp

    @contextlib.asynccontextmanager
    async def _mutate(self) -> AsyncIterator[None]:
        """Serialises index changes within this process (asyncio lock) and between processes
        (flock), starting from the index on disk and writing it back atomically."""
        async with self._lock:
            fd = await asyncio.to_thread(_flock, self.root / "index.lock")
            try:
                await asyncio.to_thread(self._refresh)
                try:
                    yield
                except BaseException:
                    self._stamp = None  # drop half-made changes: the next read reloads the file
                    raise
                data = json.dumps(self._index, indent=1, sort_keys=True).encode()
                await asyncio.to_thread(write_atomic, self.root / "index.json", data)
                await asyncio.to_thread(self._refresh)
            finally:
                os.close(fd)  # releases the flock

    def _resolve(self, ref: str) -> str | None:
        """Image id for a tag, digest reference or image id."""
        if is_digest(ref):
            return ref if ref in self._index["images"] else None
        name = normalize(ref)
        if "@" in name:
            for image_id, rec in self._index["images"].items():
                if name in rec["repo_digests"]:
                    return image_id
            return None
        return self._index["tags"].get(name)

    def _info(self, image_id: str, ref: str | None = None) -> ImageInfo:
        rec = self._index["images"][image_id]
        tags = sorted(t for t, i in self._index["tags"].items() if i == image_id)
        digests = sorted(rec["repo_digests"])
        return ImageInfo(ref=ref or (tags or digests or [image_id])[0], id=image_id, repo_tags=tags,
                         repo_digests=digests, size=rec["size"], layers=list(rec["layers"]), **rec["summary"])

    def get(self, ref: str) -> ImageInfo | None:
        """The local image under ``ref`` (normalised like docker); InvalidReference for a malformed one."""
        self._refresh()
        image_id = self._resolve(ref)
        if image_id is None:
            return None
        return self._info(image_id, ref if is_digest(ref) else normalize(ref))

    def list(self) -> list[ImageInfo]:
        self._refresh()
        return [self._info(image_id) for image_id in sorted(self._index["images"])]

    def in_use(self) -> set[str]:
        return set(self._in_use.values())

    def _layer_dir(self, diff_id: str) -> Path:
        return self.root / "layers" / _hex(diff_id)

    def _layer_size(self, diff_id: str) -> int:
        entry = self._index["layers"].get(diff_id)
        return int(entry["size"]) if entry else self._fresh.get(diff_id, 0)

    def _have_layer(self, diff_id: str) -> bool:
        known = diff_id in self._index["layers"] or diff_id in self._fresh
        return known and self._layer_dir(diff_id).is_dir()

    async def _record(self, config_bytes: bytes, manifest: bytes, tags: list[str], repo_digests: list[str]) -> str:
        config = json.loads(config_bytes)
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])

        def write_blobs() -> None:
            for blob, digest in ((config_bytes, image_id), (manifest, manifest_digest)):
                path = self.root / "blobs" / "sha256" / _hex(digest)
                if not path.exists():
                    write_atomic(path, blob)

        async with self._mutate():
            await asyncio.to_thread(write_blobs)
            for d in diff_ids:
                if d not in self._index["layers"]:
                    if d not in self._fresh or not self._layer_dir(d).is_dir():
                        raise ImageError(f"layer {d} vanished while the image was stored; try again")
                    self._index["layers"][d] = {"size": self._fresh[d]}
                self._fresh.pop(d, None)
            rec = self._index["images"].get(image_id)
            if rec is None:
                rec = self._index["images"][image_id] = {
                    "config": image_id, "manifest": manifest_digest, "layers": diff_ids, "repo_digests": [],
                    "size": sum(self._index["layers"][d]["size"] for d in diff_ids),
                    "summary": config_summary(config), "created": time.time(),
                }
            rec["last_used"] = time.time()
            for digest in repo_digests:
                if digest not in rec["repo_digests"]:
                    rec["repo_digests"].append(digest)
            for tag in tags:
                self._index["tags"][tag] = image_id
        return image_id

    async def _ensure_layer(self, diff_id: str | None, blob_digest: str | None, open_stream: Callable[[], Any]) -> str:
        """Unpacks a layer unless it is already there; returns its diff id. The stream is opened in
        the worker thread; digests are checked against what the caller expects."""
        key = diff_id or blob_digest or ""
        if diff_id and self._have_layer(diff_id):
            return diff_id
        lock = self._layer_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if diff_id and self._have_layer(diff_id):
                return diff_id
            staging = Path(tempfile.mkdtemp(dir=self.tmp, prefix="layer-"))

            def work() -> tuple[str, str, int]:
                with open_stream() as stream:
                    return unpack_layer(stream, staging / "fs")

            try:
                blob, diff, size = await in_thread(work)
                if blob_digest and blob != blob_digest:
                    raise ImageError(f"digest mismatch for layer: wanted {blob_digest}, got {blob}")
                if diff_id and diff != diff_id:
                    raise ImageError(f"layer content does not match diff id {diff_id} (got {diff})")
                target = self._layer_dir(diff)
                if not target.is_dir():
                    await asyncio.to_thread(os.rename, staging / "fs", target)
            finally:
                await asyncio.to_thread(shutil.rmtree, staging, True)
            if diff not in self._index["layers"]:
                self._fresh[diff] = size  # indexed with the image that needs it
            return diff

    # ---- registry ----

    async def pull(self, ref: str, auth: tuple[str, str] | None = None,
                   progress: Callable[[str], None] | None = None) -> ImageInfo:
        parsed = parse_reference(ref)
        name = str(parsed)
        started = time.monotonic()
        if progress:
            progress(f'Pulling image "{ref}"')
        import aiohttp  # on the first pull: a node that only runs imported images does without it (~12 MB)

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = RegistryClient(session, parsed, auth, self.insecure_registries)
            await client.ping()
            found = await resolve(client, parsed)
            with self._holding(found.diff_ids):
                await self._fetch_layers(client, found)
                tags = [name] if parsed.tag and not parsed.digest else []
                image_id = await self._record(found.config, found.manifest, tags,
                                              [parsed.with_digest(found.top_digest)])
        info = self._info(image_id, name)
        if progress:
            took = time.monotonic() - started
            progress(f'Successfully pulled image "{ref}" in {took:.3f}s. Image size: {info.size} bytes.')
        return info

    async def _fetch_layers(self, client: RegistryClient, found: Resolved) -> None:
        limit = asyncio.Semaphore(3)

        async def fetch(desc: dict, diff_id: str) -> None:
            if self._have_layer(diff_id):
                return
            async with limit:
                scratch = Path(tempfile.mkdtemp(dir=self.tmp, prefix="blob-"))
                try:
                    lock = self._layer_locks.setdefault("dl:" + diff_id, asyncio.Lock())
                    async with lock:  # concurrent pulls of images sharing a layer fetch it once
                        if self._have_layer(diff_id):
                            return
                        size = desc.get("size")
                        await client.blob(desc["digest"], scratch / "blob", size if isinstance(size, int) else None)
                        await self._ensure_layer(diff_id, desc["digest"], lambda: open(scratch / "blob", "rb"))
                finally:
                    await asyncio.to_thread(shutil.rmtree, scratch, True)

        tasks = [asyncio.create_task(fetch(d, i)) for d, i in zip(found.layers, found.diff_ids)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one layer failed: stop the others and let them clean up
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    @contextlib.contextmanager
    def _holding(self, diff_ids: list[str]) -> Iterator[None]:
        """Keeps gc away from layers an import or pull has unpacked but not yet recorded."""
        self._pending.update(diff_ids)
        try:
            yield
        finally:
            self._pending.subtract(diff_ids)
            self._pending += collections.Counter()  # drops zero counts

    # ---- root filesystems ----

    async def mount_rootfs(self, image: ImageInfo, container_id: str) -> Path:
        """Mounts the image's layers read-only under a per-container upper dir; returns the merged dir."""
        if not _CONTAINER_ID.match(container_id):
            raise ValueError(f"bad container id {container_id!r}")
        rec = self._index["images"].get(image.id)
        if rec is None:
            raise ImageNotFound(image.ref)
        layers = list(rec["layers"])
        for diff_id in layers:
            if not self._have_layer(diff_id):
                raise ImageError(f"layer {diff_id} of {image.ref} is missing; pull the image again")
        base = self.root / "containers" / container_id
        merged = base / "merged"
        async with self._mutate():
            self._in_use[container_id] = image.id
            if image.id in self._index["images"]:
                self._index["images"][image.id]["last_used"] = time.time()

        def prepare() -> None:
            for sub in ("upper", "work", "merged"):
                (base / sub).mkdir(parents=True, exist_ok=True)
            write_atomic(base / "image", image.id.encode())

        await asyncio.to_thread(prepare)
        if await mounts.is_mounted(merged):
            return merged
        # overlay lists the topmost lower dir first; images list the bottom layer first. A layer
        # repeated in an image (empty layers often are) only counts at its topmost position.
        lower = list(dict.fromkeys(f"layers/{_hex(d)}" for d in reversed(layers))) or [f"layers/{_EMPTY_LAYER}"]
        rel = f"containers/{container_id}"
        try:
            await mounts.mount_overlay(self.root, lower, f"{rel}/upper", f"{rel}/work", merged)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, base, True)
            self._in_use.pop(container_id, None)
            raise
        return merged

    async def unmount_rootfs(self, container_id: str) -> None:
        """Unmounts and deletes the container's directories (its writable layer goes too)."""
        if not _CONTAINER_ID.match(container_id):
            raise ValueError(f"bad container id {container_id!r}")
        base = self.root / "containers" / container_id
        await mounts.unmount(base / "merged")
        await asyncio.to_thread(shutil.rmtree, base, True)
        self._in_use.pop(container_id, None)

    # ---- removal ----

    async def remove(self, ref: str) -> None:
        """Removes a tag, digest reference or (an image id) every reference; the image's data goes
        once nothing names it, unless a mounted container uses it (gc removes it later)."""
        async with self._mutate():
            image_id = self._resolve(ref)
            if image_id is None:
                raise ImageNotFound(ref)
            rec = self._index["images"][image_id]
            if is_digest(ref):
                for tag in [t for t, i in self._index["tags"].items() if i == image_id]:
                    del self._index["tags"][tag]
                rec["repo_digests"] = []
            elif "@" in normalize(ref):
                rec["repo_digests"].remove(normalize(ref))
            else:
                del self._index["tags"][normalize(ref)]
            named = rec["repo_digests"] or image_id in self._index["tags"].values()
            if not named and image_id not in self.in_use():
                del self._index["images"][image_id]
        await self._collect()

    async def gc(self, target_free_bytes: int) -> int:
        """Removes images no mounted container uses, least recently used first, until at least
        ``target_free_bytes`` were freed; returns the bytes freed."""
        freed = await self._collect()
        self._refresh()
        used = self.in_use()
        candidates = sorted((rec.get("last_used", 0), image_id) for image_id, rec in self._index["images"].items()
                            if image_id not in used)
        for _, image_id in candidates:
            if freed >= target_free_bytes:
                break
            async with self._mutate():
                self._index["images"].pop(image_id, None)
                for tag in [t for t, i in self._index["tags"].items() if i == image_id]:
                    del self._index["tags"][tag]
            freed += await self._collect()
        return freed

    async def _collect(self) -> int:
        """Deletes layers and blobs that no image needs; returns the bytes freed."""
        async with self._mutate():
            images = self._index["images"]
            wanted_layers = {d for rec in images.values() for d in rec["layers"]} | set(self._pending)
            wanted_blobs = {rec[k] for rec in images.values() for k in ("config", "manifest")}
            drop = [d for d in self._index["layers"] if d not in wanted_layers]
            freed = sum(self._index["layers"][d]["size"] for d in drop)
            for d in drop:
                del self._index["layers"][d]
            keep = {_hex(d) for d in [*self._index["layers"], *self._fresh, *self._pending]} | {_EMPTY_LAYER}

            def sweep() -> int:
                extra = 0
                for d in drop:
                    shutil.rmtree(self._layer_dir(d), ignore_errors=True)
                for blob in (self.root / "blobs" / "sha256").iterdir():
                    if "sha256:" + blob.name not in wanted_blobs:
                        extra += blob.stat().st_size
                        blob.unlink(missing_ok=True)
                # unindexed layers of imports that failed (or another process's import in progress)
                for layer in (self.root / "layers").iterdir():
                    if layer.name not in keep and time.time() - layer.lstat().st_mtime > _ORPHAN_AGE:
                        shutil.rmtree(layer, ignore_errors=True)
                return extra

            return freed + await asyncio.to_thread(sweep)

    def disk_usage(self) -> int:
        """Bytes of unpacked layers (what image sizes add up to, shared layers counted once)."""
        return sum(entry["size"] for entry in self._index["layers"].values())
