"""Importing docker-archive and oci-archive tarballs into the image store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .archive import Archive, ArchiveImage
from .refs import MT_DOCKER_CONFIG, MT_DOCKER_LAYER, MT_DOCKER_MANIFEST, ImageError, check_digest, parse_reference
from .util import file_digest

if TYPE_CHECKING:
    from .store import ImageStore

log = logging.getLogger(__name__)


class ArchiveImports:
    """Mixed into ImageStore."""

    async def import_archive(self: ImageStore, path: Path) -> list[str]:
        """Imports a docker-archive or oci-archive tarball (plain or gzip); returns its image refs."""
        path = Path(path)
        scratch = Path(tempfile.mkdtemp(dir=self.tmp, prefix="archive-"))
        archive: Archive | None = None
        try:
            archive = await asyncio.to_thread(Archive, path, scratch / "plain.tar")
            images = await asyncio.to_thread(archive.images)
            refs: list[str] = []
            for image in images:
                refs.extend(await self._import_one(archive, image))
            return refs
        finally:
            if archive is not None:
                await asyncio.to_thread(archive.close)
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _import_one(self: ImageStore, archive: Archive, image: ArchiveImage) -> list[str]:
        try:
            config = json.loads(image.config)
            diff_ids = [check_digest(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
        except (ValueError, AttributeError) as exc:
            raise ImageError(f"bad image config: {exc}") from None
        if len(diff_ids) != len(image.layers):
            raise ImageError(f"image has {len(image.layers)} layers but its config lists {len(diff_ids)}")
        with self._holding(diff_ids):
            return await self._import_layers(archive, image, diff_ids)

    async def _import_layers(self: ImageStore, archive: Archive, image: ArchiveImage, diff_ids: list[str]) -> list[str]:
        descriptors = []
        for layer, diff_id in zip(image.layers, diff_ids):
            # one tarfile object: layers are read one after the other
            await self._ensure_layer(diff_id, layer.digest, lambda m=layer.member: archive.open(m))
            descriptors.append({"mediaType": MT_DOCKER_LAYER, "digest": layer.digest or diff_id,
                                "size": self._layer_size(diff_id)})
        manifest = image.manifest
        if manifest is None:
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
                "config": {"mediaType": MT_DOCKER_CONFIG, "size": len(image.config),
                           "digest": "sha256:" + hashlib.sha256(image.config).hexdigest()},
                "layers": descriptors}).encode()
        repo_digests = [parse_reference(t).with_digest(image.digest) for t in image.tags] if image.digest else []
        image_id = await self._record(image.config, manifest, image.tags, repo_digests)
        return image.tags or [image_id]

    async def import_directory(self: ImageStore, path: Path) -> list[str]:
        """Imports every tarball in ``path`` not imported before (by file digest); returns new refs."""
        path = Path(path)
        if not path.is_dir():
            return []
        refs: list[str] = []
        for entry in sorted(await asyncio.to_thread(lambda: [p for p in path.iterdir() if p.is_file()])):
            if entry.name.startswith("."):
                continue
            digest = await asyncio.to_thread(file_digest, entry)
            if digest in self._index["archives"]:
                continue
            try:
                imported = await self.import_archive(entry)
            except (ImageError, OSError, ValueError) as exc:
                log.warning("cannot import image archive %s: %s", entry, exc)
                continue
            async with self._mutate():
                self._index["archives"][digest] = {"file": entry.name, "refs": imported}
            refs.extend(imported)
        return refs
