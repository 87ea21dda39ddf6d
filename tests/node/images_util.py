"""Test images and a local registry: busybox images as docker-/oci-archives, Debian's
docker-registry on 127.0.0.1, pushes over the v2 API and an auth front (basic or bearer)."""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import hashlib
import io
import json
import os
import secrets
import socket
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.node.busybox import busybox_rootfs

REGISTRY_BIN = Path("/usr/bin/docker-registry")
MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class TestImage:
    layers: list[bytes]  # uncompressed layer tars, bottom first
    config: bytes

    @functools.cached_property
    def gz_layers(self) -> list[bytes]:
        # mtime=0: the same layer compresses to the same blob every time
        return [gzip.compress(layer, compresslevel=1, mtime=0) for layer in self.layers]

    @property
    def diff_ids(self) -> list[str]:
        return [sha256(layer) for layer in self.layers]

    @property
    def id(self) -> str:
        return sha256(self.config)


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE,
         mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else mode
    info.mtime = 1_700_000_000
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def tar_directory(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 1_700_000_000
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def image_config(diff_ids: list[str], cmd: list[str] | None = None, arch: str = "amd64",
                 env: list[str] | None = None, label: str = "", user: str = "") -> bytes:
    return json.dumps({
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": cmd or ["sh"], "Env": env or ["PATH=/bin"], "WorkingDir": "/",
                   "ExposedPorts": {"80/tcp": {}}, "Labels": {"test": label} if label else {},
                   **({"User": user} if user else {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()


def busybox_image(cmd: list[str] | None = None, label: str = "", extra_files: dict[str, bytes] | None = None,
                  user: str = "") -> TestImage:
    """Two layers: busybox plus files, then a layer that deletes /etc/motd (a whiteout), makes
    /data/old opaque (hiding a.txt) and adds /data/old/b.txt and /hello.txt."""
    with tempfile.TemporaryDirectory() as tmp:
        root = busybox_rootfs(Path(tmp) / "rootfs")
        (root / "etc" / "motd").write_text("deleted in layer 2\n")
        (root / "data" / "old").mkdir(parents=True)
        (root / "data" / "old" / "a.txt").write_text("hidden by layer 2\n")
        (root / "data" / "keep.txt").write_text("kept\n")
        base = tar_directory(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "etc", kind=tarfile.DIRTYPE)
        _add(tar, "etc/.wh.motd", b"")
        _add(tar, "data", kind=tarfile.DIRTYPE)
        _add(tar, "data/old", kind=tarfile.DIRTYPE)
        _add(tar, "data/old/.wh..wh..opq", b"")
        _add(tar, "data/old/b.txt", b"from layer 2\n")
        _add(tar, "hello.txt", b"hello from layer 2\n")
        for name, data in (extra_files or {}).items():
            _add(tar, name, data)
    layers = [base, buf.getvalue()]
    return TestImage(layers, image_config([sha256(x) for x in layers], cmd, label=label, user=user))


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            _add(tar, name, data)
    return buf.getvalue()


def write_docker_archive(path: Path, image: TestImage, tags: list[str], gzip_layers: bool = False,
                         gzip_tarball: bool = False) -> Path:
    """A ``docker save`` style tarball: manifest.json, <id>.json and <n>/layer.tar."""
    files: dict[str, bytes] = {}
    config_name = image.id.split(":")[1] + ".json"
    files[config_name] = image.config
    layer_names = []
    for n, layer in enumerate(image.gz_layers if gzip_layers else image.layers):
        name = f"{n:02d}{image.diff_ids[n][7:19]}/layer.tar"
        files[name] = layer
        layer_names.append(name)
    files["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]).encode()
    data = _tar_bytes(files)
    path.write_bytes(gzip.compress(data) if gzip_tarball else data)
    return path


def oci_manifest(image: TestImage, gzip_layers: bool = True) -> bytes:
    layers = image.gz_layers if gzip_layers else image.layers
    kind = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "")
    return json.dumps({
        "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.id,
                   "size": len(image.config)},
        "layers": [{"mediaType": kind, "digest": sha256(x), "size": len(x)} for x in layers],
    }).encode()


def write_oci_archive(path: Path, image: TestImage, ref_name: str, gzip_layers: bool = True) -> Path:
    """An oci-archive: oci-layout, index.json (ref name annotation) and blobs/sha256/*."""
    manifest = oci_manifest(image, gzip_layers)
    blobs = [image.config, manifest, *(image.gz_layers if gzip_layers else image.layers)]
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    for blob in blobs:
        files["blobs/sha256/" + sha256(blob)[7:]] = blob
    files["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [{
        "mediaType": MT_OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": ref_name}}]}).encode()
    path.write_bytes(_tar_bytes(files))
    return path


# ---- registry ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningRegistry:
    url: str  # http://127.0.0.1:PORT
    host: str  # 127.0.0.1:PORT, the registry part of image refs
    process: asyncio.subprocess.Process | None = None
    runner: web.AppRunner | None = None

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.runner is not None:
            await self.runner.cleanup()


def registry_available() -> bool:
    return REGISTRY_BIN.is_file() and os.access(REGISTRY_BIN, os.X_OK)


async def _wait_ready(url: str, process: asyncio.subprocess.Process | None = None) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if process is not None and process.returncode is not None:
                raise RuntimeError(f"registry exited with {process.returncode}")
            try:
                async with session.get(url + "/v2/") as resp:
                    if resp.status in (200, 401):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"registry at {url} did not start")


async def start_registry(tmp_path: Path) -> RunningRegistry:
    """Debian's docker-registry on 127.0.0.1 with storage under tmp_path; call ``stop()``."""
    port = free_port()
    storage = tmp_path / "registry-storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    process = await asyncio.create_subprocess_exec(
        str(REGISTRY_BIN), "serve", str(config), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp_path / "registry.log", "wb"))
    reg = RunningRegistry(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", process)
    try:
        await _wait_ready(reg.url, process)
    except BaseException:
        await reg.stop()
        raise
    return reg


async def push_blob(session: aiohttp.ClientSession, url: str, name: str, blob: bytes) -> str:
    digest = sha256(blob)
    async with session.head(f"{url}/v2/{name}/blobs/{digest}") as resp:
        if resp.status == 200:
            return digest
    async with session.post(f"{url}/v2/{name}/blobs/uploads/") as resp:
        assert resp.status == 202, await resp.text()
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = url + location
    sep = "&" if "?" in location else "?"
    async with session.put(f"{location}{sep}digest={digest}", data=blob,
                           headers={"Content-Type": "application/octet-stream"}) as resp:
        assert resp.status == 201, await resp.text()
    return digest


async def push_manifest(session: aiohttp.ClientSession, url: str, name: str, reference: str, body: bytes,
                        media_type: str) -> str:
    async with session.put(f"{url}/v2/{name}/manifests/{reference}", data=body,
                           headers={"Content-Type": media_type}) as resp:
        assert resp.status == 201, await resp.text()
    return sha256(body)


def docker_manifest(image: TestImage) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": image.id,
                   "size": len(image.config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": sha256(x),
                    "size": len(x)} for x in image.gz_layers],
    }).encode()


async def push_image(url: str, name: str, tag: str | None, image: TestImage, oci: bool = False) -> str:
    """Pushes config, gzip layers and a manifest (Docker schema 2, or OCI); returns the manifest digest."""
    async with aiohttp.ClientSession() as session:
        for blob in (image.config, *image.gz_layers):
            await push_blob(session, url, name, blob)
        body = oci_manifest(image) if oci else docker_manifest(image)
        media_type = MT_OCI_MANIFEST if oci else MT_MANIFEST
        return await push_manifest(session, url, name, tag or sha256(body), body, media_type)


async def push_index(url: str, name: str, tag: str, images: dict[str, TestImage], oci: bool = False) -> str:
    """Pushes one image per "os/arch" platform and a manifest list (or OCI index) naming them."""
    entries = []
    async with aiohttp.ClientSession() as session:
        for plat, image in images.items():
            for blob in (image.config, *image.gz_layers):
                await push_blob(session, url, name, blob)
            body = oci_manifest(image) if oci else docker_manifest(image)
            media_type = MT_OCI_MANIFEST if oci else MT_MANIFEST
            digest = await push_manifest(session, url, name, sha256(body), body, media_type)
            os_name, arch = plat.split("/")[:2]
            entries.append({"mediaType": media_type, "digest": digest, "size": len(body),
                            "platform": {"os": os_name, "architecture": arch}})
        index = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX if oci else MT_LIST,
                            "manifests": entries}).encode()
        return await push_manifest(session, url, name, tag, index, MT_OCI_INDEX if oci else MT_LIST)


# ---- auth front ----

async def start_auth_proxy(upstream: str, user: str, password: str, mode: str = "bearer") -> RunningRegistry:
    """A front for a registry that demands credentials: ``basic`` checks them on every request,
    ``bearer`` sends a token challenge and hands tokens out at /token for valid credentials."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tokens: set[str] = set()
    good = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def token(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != good:
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        value = secrets.token_hex(16)
        tokens.add(value)
        return web.json_response({"token": value, "expires_in": 300})

    async def proxy(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        allowed = auth == good if mode == "basic" else auth.removeprefix("Bearer ") in tokens
        if not allowed:
            repo = request.match_info["tail"].split("/manifests/")[0].split("/blobs/")[0]
            scope = f',scope="repository:{repo}:pull"' if repo else ""
            challenge = ('Basic realm="test"' if mode == "basic" else
                         f'Bearer realm="{base}/token",service="test-registry"{scope}')
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401,
                                     headers={"WWW-Authenticate": challenge})
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept", "content-type")}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, upstream + request.path_qs, headers=headers,
                                       data=await request.read(), allow_redirects=False) as resp:
                body = await resp.read()
                keep = {k: v for k, v in resp.headers.items()
                        if k.lower() in ("content-type", "docker-content-digest", "location")}
                return web.Response(status=resp.status, body=body, headers=keep)

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_route("*", "/v2/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return RunningRegistry(base, f"127.0.0.1:{port}", None, runner)


@pytest_asyncio.fixture
async def local_registry(tmp_path: Path):
    """A running registry for one test (import this fixture into a test module to use it)."""
    if not registry_available():
        pytest.skip("docker-registry is not installed")
    reg = await start_registry(tmp_path)
    try:
        yield reg
    finally:
        await reg.stop()
