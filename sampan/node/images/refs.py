"""Image references, media types and the ImageInfo record."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field

DEFAULT_DOMAIN = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX_TYPES = (MT_DOCKER_LIST, MT_OCI_INDEX)
MANIFEST_TYPES = (MT_DOCKER_MANIFEST, MT_OCI_MANIFEST)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.?)+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
           "armv6l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}


class InvalidReference(ValueError):
    """A string that is not an image reference."""


class ImageNotFound(KeyError):
    """No image under that reference (locally or in the registry)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "image not found"


class ImageError(Exception):
    """A malformed or unverifiable image (bad digest, unsupported format, unsafe layer)."""


def is_digest(value: str) -> bool:
    return bool(_DIGEST.match(value))


def check_digest(value: object) -> str:
    if not isinstance(value, str) or not is_digest(value):
        raise ImageError(f"unsupported or malformed digest {value!r}")
    return value


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str  # repository path, e.g. library/busybox
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"

    @property
    def reference(self) -> str:
        """What goes after /manifests/ in a registry request."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> str:
        return f"{self.name}@{digest}"


def parse_reference(ref: str) -> Reference:
    """Parses and normalises like docker: "busybox" -> docker.io/library/busybox:latest."""
    text = ref.strip()
    if not text or any(c.isspace() for c in text):
        raise InvalidReference(f"invalid reference format: {ref!r}")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not is_digest(digest):
            raise InvalidReference(f"invalid reference format: unsupported digest in {ref!r}")
    tag = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid reference format: bad tag in {ref!r}")
    parts = text.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        domain, path_parts = first, parts[1:]
        if not _DOMAIN.match(domain):
            raise InvalidReference(f"invalid reference format: bad registry host in {ref!r}")
    else:
        domain, path_parts = DEFAULT_DOMAIN, parts
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and len(path_parts) == 1:
        path_parts = ["library", *path_parts]
    for part in path_parts:
        if not _PATH_COMPONENT.match(part):
            raise InvalidReference(f"invalid reference format: repository name must be lowercase: {ref!r}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(domain, "/".join(path_parts), tag, digest)


def normalize(ref: str) -> str:
    """The canonical form of ``ref`` (an image id sha256:... stays as it is)."""
    if is_digest(ref):
        return ref
    return str(parse_reference(ref))


def node_platform() -> tuple[str, str, str | None]:
    """(os, architecture, variant) of this node in OCI terms."""
    machine = platform.machine().lower()
    arch = _ARCHES.get(machine, machine)
    variant = None
    if machine == "armv7l":
        variant = "v7"
    elif machine == "armv6l":
        variant = "v6"
    elif arch == "arm64":
        variant = "v8"
    return "linux", arch, variant


def pick_platform(manifests: list[dict]) -> dict:
    """The entry of an index/manifest list that fits this node; ImageError when none does."""
    want_os, want_arch, want_variant = node_platform()
    best: dict | None = None
    for entry in manifests:
        plat = entry.get("platform") or {}
        if plat.get("os", "linux") != want_os or plat.get("architecture") != want_arch:
            continue
        variant = plat.get("variant")
        if variant == want_variant:
            return entry
        if best is None and (variant is None or want_variant is None or (arch_default_variant(want_arch) == variant)):
            best = entry
    if best is None:
        raise ImageError(f"no matching manifest for {want_os}/{want_arch} in the manifest list entries")
    return best


def arch_default_variant(arch: str) -> str | None:
    return "v8" if arch == "arm64" else None


@dataclass
class ImageInfo:
    ref: str
    id: str  # config digest
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    size: int = 0
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    layers: list[str] = field(default_factory=list)  # diff ids, bottom first
