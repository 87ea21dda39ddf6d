"""Reads docker-archive (``docker save``) and oci-archive tarballs (blocking; run in a thread)."""

from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .refs import INDEX_TYPES, ImageError, InvalidReference, check_digest, normalize, pick_platform

_MAX_JSON = 16 << 20


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


@dataclass
class ArchiveLayer:
    member: str  # tar member holding the layer
    digest: str | None  # expected blob digest (oci-archive); docker-archive layers are verified by diff id


@dataclass
class ArchiveImage:
    config: bytes
    manifest: bytes | None  # None for docker-archive: the store writes one
    layers: list[ArchiveLayer]
    tags: list[str] = field(default_factory=list)
    digest: str | None = None  # top-level descriptor digest (oci-archive), for repo digests


class Archive:
    """An opened image tarball; gzip tarballs are decompressed to ``scratch`` first for random access."""

    def __init__(self, path: Path, scratch: Path) -> None:
        self._plain: Path | None = None
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        if gzipped:
            self._plain = scratch
            with gzip.open(path, "rb") as src, open(scratch, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        try:
            self.tar = tarfile.open(self._plain or path, mode="r:")
        except tarfile.TarError as exc:
            self.close()
            raise ImageError(f"{path.name} is not an image archive: {exc}") from None
        self.members = {_norm(m.name): m for m in self.tar.getmembers()}

    def close(self) -> None:
        if getattr(self, "tar", None) is not None:
            self.tar.close()
        if self._plain is not None:
            self._plain.unlink(missing_ok=True)

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(_norm(name))
        for _ in range(8):  # docker save stores a repeated layer as a symlink to its first copy
            if member is None or not member.issym():
                break
            base = member.name.rsplit("/", 1)[0] if "/" in member.name else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            member = self.members.get(_norm(target)) if not target.startswith("..") else None
        if member is None or not (member.isreg() or member.islnk()):
            raise ImageError(f"archive has no file {name!r}")
        f = self.tar.extractfile(member)
        if f is None:
            raise ImageError(f"archive has no file {name!r}")
        return f

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data = f.read(_MAX_JSON + 1)
        if len(data) > _MAX_JSON:
            raise ImageError(f"{name} too large")
        return data

    def json(self, name: str) -> object:
        try:
            return json.loads(self.read(name))
        except ValueError as exc:
            raise ImageError(f"{name} is not valid JSON: {exc}") from None

    def blob(self, digest: str) -> bytes:
        data = self.read("blobs/sha256/" + check_digest(digest).split(":", 1)[1])
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ImageError(f"digest mismatch for {digest} in archive")
        return data

    def images(self) -> list[ArchiveImage]:
        if "manifest.json" in self.members:
            return self._docker()
        if "index.json" in self.members:
            return self._oci()
        raise ImageError("neither a docker-archive (manifest.json) nor an oci-archive (index.json)")

    def _docker(self) -> list[ArchiveImage]:
        entries = self.json("manifest.json")
        if not isinstance(entries, list):
            raise ImageError("manifest.json is not a list")
        images = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise ImageError("manifest.json entry without Config")
            layers = entry.get("Layers") or []
            if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
                raise ImageError("manifest.json Layers is not a list of paths")
            tags = []
            for tag in entry.get("RepoTags") or []:
                try:
                    tags.append(normalize(str(tag)))
                except InvalidReference as exc:
                    raise ImageError(str(exc)) from None
            images.append(ArchiveImage(self.read(entry["Config"]), None,
                                       [ArchiveLayer(name, None) for name in layers], tags))
        return images

    def _oci(self) -> list[ArchiveImage]:
        index = self.json("index.json")
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ImageError("index.json has no manifests")
        images = []
        for desc in index["manifests"]:
            top = check_digest(desc.get("digest"))
            annotations = desc.get("annotations") or {}
            name = annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
            manifest_digest, body = top, self.blob(top)
            media_type = desc.get("mediaType") or json.loads(body).get("mediaType")
            if media_type in INDEX_TYPES:
                nested = json.loads(body)
                entry = pick_platform(nested.get("manifests") or [])
                manifest_digest = check_digest(entry.get("digest"))
                body = self.blob(manifest_digest)
            manifest = json.loads(body)
            config = self.blob(manifest.get("config", {}).get("digest"))
            layers = [ArchiveLayer("blobs/sha256/" + check_digest(layer.get("digest")).split(":", 1)[1],
                                   layer["digest"]) for layer in manifest.get("layers") or []]
            tags = []
            if name:
                try:
                    tags.append(normalize(str(name)))
                except InvalidReference as exc:
                    raise ImageError(str(exc)) from None
            images.append(ArchiveImage(config, body, layers, tags, top))
        return images
