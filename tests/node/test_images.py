"""Image store: archive imports, pulls from a real registry, overlay root filesystems, gc, CLI."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sampan.node.images import (ImageError, ImageInfo, ImageNotFound, ImageStore, InvalidReference, PullError,
                                normalize, store_root)
from sampan.node.images.mounts import mount_points
from sampan.node.images.refs import node_platform
from tests.node import busybox
from tests.node.images_util import (busybox_image, push_image, push_index, registry_available, sha256,
                                    start_auth_proxy, write_docker_archive, write_oci_archive)
from tests.node.images_util import local_registry  # noqa: F401  (a fixture)

needs_busybox = pytest.mark.skipif(not busybox.available(), reason="busybox-static is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and overlay mounts need root")
needs_registry = pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed")


def _overlay_supported() -> bool:
    try:
        return "overlay" in Path("/proc/filesystems").read_text()
    except OSError:
        return False


needs_overlay = pytest.mark.skipif(os.geteuid() != 0 or not _overlay_supported(), reason="needs root and overlayfs")


@pytest.fixture
async def store(tmp_path: Path):
    s = ImageStore(tmp_path / "store")
    yield s
    # never leave a mount behind, even when a test fails half way
    for entry in list((tmp_path / "store" / "containers").iterdir()):
        await s.unmount_rootfs(entry.name)


@pytest.fixture
async def registry(local_registry):
    return local_registry


def test_reference_normalisation() -> None:
    assert normalize("busybox") == "docker.io/library/busybox:latest"
    assert normalize("user/app:1.0") == "docker.io/user/app:1.0"
    assert normalize("127.0.0.1:5000/app") == "127.0.0.1:5000/app:latest"
    assert normalize("localhost/a/b:x") == "localhost/a/b:x"
    digest = "sha256:" + "a" * 64
    assert normalize(f"quay.io/x/y:1@{digest}") == f"quay.io/x/y@{digest}"
    for bad in ("", "UPPER/case", "a b", "x@sha256:123", "busybox:bad/tag"):
        with pytest.raises(InvalidReference):
            normalize(bad)


@needs_busybox
@needs_root
@pytest.mark.parametrize("gzip_layers,gzip_tarball", [(False, False), (True, True)])
async def test_import_docker_archive(store: ImageStore, tmp_path: Path, gzip_layers: bool, gzip_tarball: bool) -> None:
    image = busybox_image(cmd=["sh", "-c", "echo hi"])
    path = write_docker_archive(tmp_path / "img.tar", image, ["busybox-test:1", "example.com/team/bb:2"],
                                gzip_layers=gzip_layers, gzip_tarball=gzip_tarball)
    refs = await store.import_archive(path)
    assert refs == ["docker.io/library/busybox-test:1", "example.com/team/bb:2"]
    info = store.get("busybox-test:1")
    assert isinstance(info, ImageInfo)
    assert info.id == image.id and info.ref == "docker.io/library/busybox-test:1"
    assert info.repo_tags == sorted(refs) and info.repo_digests == []
    assert info.cmd == ["sh", "-c", "echo hi"] and info.env == ["PATH=/bin"] and info.exposed_ports == ["80/tcp"]
    assert info.size >= (busybox.BUSYBOX.stat().st_size)
    assert store.get("example.com/team/bb:2").id == image.id and store.get(image.id).id == image.id
    assert store.get("busybox-test:2") is None
    # the second layer's whiteouts became overlay whiteouts in its unpacked directory
    top = tmp_path / "store" / "layers" / image.diff_ids[1][7:]
    motd = os.lstat(top / "etc" / "motd")
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == os.makedev(0, 0)
    assert os.getxattr(top / "data" / "old", "trusted.overlay.opaque") == b"y"
    assert not (top / "etc" / ".wh.motd").exists()
    # the index survives a restart
    again = ImageStore(tmp_path / "store")
    assert again.get("busybox-test:1") == info


@needs_busybox
@needs_root
async def test_import_oci_archive_shares_layers(store: ImageStore, tmp_path: Path) -> None:
    image = busybox_image()
    oci = write_oci_archive(tmp_path / "oci.tar", image, "registry.example/bb:oci")
    assert await store.import_archive(oci) == ["registry.example/bb:oci"]
    info = store.get("registry.example/bb:oci")
    manifest = json.loads(tarfile.open(oci).extractfile("index.json").read())["manifests"][0]
    assert info.repo_digests == [f"registry.example/bb@{manifest['digest']}"]
    assert store.get(f"registry.example/bb@{manifest['digest']}").id == image.id
    # the same image as a docker-archive: same id, layers unpacked only once
    await store.import_archive(write_docker_archive(tmp_path / "d.tar", image, ["other:1"]))
    assert [i.id for i in store.list()] == [image.id]
    assert sorted(p.name for p in (tmp_path / "store" / "layers").iterdir() if p.name != "empty") == \
        sorted(d[7:] for d in image.diff_ids)


@needs_busybox
@needs_root
async def test_import_directory_skips_imported_files(store: ImageStore, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    write_docker_archive(drop / "a.tar", busybox_image(label="a"), ["a:1"])
    write_oci_archive(drop / "b.tar.gz", busybox_image(label="b"), "b:1")
    (drop / "notes.txt").write_text("not an image")
    assert sorted(await store.import_directory(drop)) == ["docker.io/library/a:1", "docker.io/library/b:1"]
    assert await store.import_directory(drop) == []
    write_docker_archive(drop / "c.tar", busybox_image(label="c"), ["c:1"])
    assert await store.import_directory(drop) == ["docker.io/library/c:1"]
    assert ImageStore(tmp_path / "store").get("c:1").labels == {"test": "c"}


def _layer(entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in entries:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


async def _import_layer(store: ImageStore, tmp_path: Path, layer: bytes, name: str) -> list[str]:
    from tests.node.images_util import TestImage, image_config

    image = TestImage([layer], image_config([sha256(layer)]))
    return await store.import_archive(write_docker_archive(tmp_path / f"{name}.tar", image, [f"{name}:1"]))


@needs_root
async def test_unsafe_layers_refused(store: ImageStore, tmp_path: Path) -> None:
    escape = _layer([_entry("../../evil")], {"../../evil": b"x"})
    with pytest.raises(ImageError, match="escapes"):
        await _import_layer(store, tmp_path, escape, "escape")
    through_link = _layer([_entry("etc", tarfile.SYMTYPE, str(tmp_path / "outside")), _entry("etc/passwd")],
                          {"etc/passwd": b"x"})
    (tmp_path / "outside").mkdir()
    with pytest.raises(ImageError, match="non-directory"):
        await _import_layer(store, tmp_path, through_link, "link")
    assert list((tmp_path / "outside").iterdir()) == []
    dev = _entry("dev/sda", tarfile.BLKTYPE)
    dev.devmajor, dev.devminor = 8, 0
    # a device node is skipped, the rest of the layer is kept; an absolute symlink stays a link
    owned = _entry("f")
    owned.uid, owned.gid, owned.mode = 1234, 4321, 0o4750  # ownership and setuid survive unpacking
    ok = _layer([_entry("dev", tarfile.DIRTYPE), dev, _entry("etc", tarfile.SYMTYPE, "/"), owned], {"f": b"1"})
    assert await _import_layer(store, tmp_path, ok, "dev") == ["docker.io/library/dev:1"]
    layer_dir = tmp_path / "store" / "layers" / sha256(ok)[7:]
    assert (layer_dir / "f").read_bytes() == b"1" and not (layer_dir / "dev" / "sda").exists()
    assert os.readlink(layer_dir / "etc") == "/"
    st = os.lstat(layer_dir / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 4321, 0o4750)
    hard = _layer([_entry("a"), _entry("b", tarfile.LNKTYPE, "a")], {"a": b"same"})
    await _import_layer(store, tmp_path, hard, "hard")
    hard_dir = tmp_path / "store" / "layers" / sha256(hard)[7:]
    assert os.stat(hard_dir / "a").st_ino == os.stat(hard_dir / "b").st_ino
    with pytest.raises(ImageError, match="escapes"):
        await _import_layer(store, tmp_path, _layer([_entry("b", tarfile.LNKTYPE, "../../etc/passwd")]), "hard2")
    (tmp_path / "victim").write_text("x")
    os.chmod(tmp_path / "victim", 0o600)
    replaced = _entry("d", tarfile.DIRTYPE)
    replaced.mode = 0o777
    swap = _layer([replaced, _entry("d", tarfile.SYMTYPE, str(tmp_path / "victim"))])
    await _import_layer(store, tmp_path, swap, "swap")  # the directory's metadata is not applied to the link
    assert stat.S_IMODE(os.stat(tmp_path / "victim").st_mode) == 0o600
    with pytest.raises(ImageError, match="unsupported whiteout"):
        await _import_layer(store, tmp_path, _layer([_entry(".wh..")], {".wh..": b""}), "dotdot")
    assert (tmp_path / "store" / "index.json").is_file()
    via_link = _layer([_entry("up", tarfile.SYMTYPE, "/"), _entry("h", tarfile.LNKTYPE, "up/etc/passwd")])
    with pytest.raises(ImageError, match="non-directory"):
        await _import_layer(store, tmp_path, via_link, "hard3")
    assert [p.name for p in (tmp_path / "store" / "tmp" / str(os.getpid())).iterdir()] == []  # failed unpacks cleaned up


@needs_busybox
async def test_import_refuses_wrong_diff_id(store: ImageStore, tmp_path: Path) -> None:
    from tests.node.images_util import TestImage

    image = busybox_image()
    forged = TestImage(image.layers, busybox_image(label="x").config.replace(
        image.diff_ids[1][7:].encode(), b"0" * 64))
    with pytest.raises(ImageError, match="does not match diff id"):
        await store.import_archive(write_docker_archive(tmp_path / "bad.tar", forged, ["bad:1"]))
    assert store.get("bad:1") is None


@needs_busybox
@needs_root
@needs_registry
async def test_pull_from_registry(store: ImageStore, registry, tmp_path: Path) -> None:
    image = busybox_image(cmd=["httpd", "-f"])
    digest = await push_image(registry.url, "team/web", "v1", image)
    messages: list[str] = []
    info = await store.pull(f"{registry.host}/team/web:v1", progress=messages.append)
    assert info.id == image.id and info.cmd == ["httpd", "-f"]
    assert info.repo_tags == [f"{registry.host}/team/web:v1"]
    assert info.repo_digests == [f"{registry.host}/team/web@{digest}"]
    assert messages[0] == f'Pulling image "{registry.host}/team/web:v1"'
    assert messages[-1].startswith(f'Successfully pulled image "{registry.host}/team/web:v1"')
    assert store.get(f"{registry.host}/team/web@{digest}").id == image.id
    # an OCI manifest pulled by digest: same layers, not fetched again
    oci_digest = await push_image(registry.url, "team/web-oci", None, image, oci=True)
    by_digest = await store.pull(f"{registry.host}/team/web-oci@{oci_digest}")
    assert by_digest.id == image.id and f"{registry.host}/team/web-oci@{oci_digest}" in by_digest.repo_digests
    with pytest.raises(ImageNotFound):
        await store.pull(f"{registry.host}/team/web:missing")


@needs_busybox
@needs_root
@needs_registry
async def test_concurrent_pulls_share_layers(store: ImageStore, registry, tmp_path: Path) -> None:
    one, two = busybox_image(label="one"), busybox_image(label="two", extra_files={"two.txt": b"2"})
    await push_image(registry.url, "one", "1", one)
    await push_image(registry.url, "two", "1", two)
    a, b = await asyncio.gather(store.pull(f"{registry.host}/one:1"), store.pull(f"{registry.host}/two:1"))
    assert (a.id, b.id) == (one.id, two.id) and a.layers[0] == b.layers[0]
    layer_dirs = {p.name for p in (tmp_path / "store" / "layers").iterdir()} - {"empty"}
    assert layer_dirs == {d[7:] for d in one.diff_ids + two.diff_ids} and len(layer_dirs) == 3
    assert sum(i.size for i in store.list()) > store.disk_usage()  # the shared layer is stored once


@needs_busybox
@needs_root
@needs_registry
@pytest.mark.parametrize("oci", [False, True])
async def test_pull_manifest_list_picks_node_platform(store: ImageStore, registry, oci: bool) -> None:
    _, arch = node_platform()[:2]
    other = "s390x" if arch != "s390x" else "ppc64le"
    ours, theirs = busybox_image(label=arch), busybox_image(label=other)
    await push_index(registry.url, "multi", "latest", {f"linux/{other}": theirs, f"linux/{arch}": ours}, oci=oci)
    info = await store.pull(f"{registry.host}/multi")
    assert info.id == ours.id and info.labels == {"test": arch}
    assert store.get(theirs.id) is None


@needs_busybox
@needs_root
@needs_registry
async def test_pull_refuses_corrupt_blob(store: ImageStore, registry, tmp_path: Path) -> None:
    image = busybox_image()
    await push_image(registry.url, "corrupt", "v1", image)
    # the registry serves what is on its disk: tamper with the top layer there
    layer = image.gz_layers[1]
    hexd = sha256(layer)[7:]
    data = tmp_path / "registry-storage" / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    data.write_bytes(layer[:-4] + b"XXXX")
    with pytest.raises(ImageError, match="digest mismatch"):
        await store.pull(f"{registry.host}/corrupt:v1")
    assert store.get(f"{registry.host}/corrupt:v1") is None
    assert not (tmp_path / "store" / "layers" / image.diff_ids[1][7:]).exists()
    assert [p.name for p in (tmp_path / "store" / "tmp" / str(os.getpid())).iterdir()] == []


@needs_busybox
@needs_root
@needs_registry
@pytest.mark.parametrize("mode", ["bearer", "basic"])
async def test_pull_with_auth(store: ImageStore, registry, mode: str) -> None:
    image = busybox_image()
    await push_image(registry.url, "private/app", "1", image)
    front = await start_auth_proxy(registry.url, "alice", "s3cret", mode=mode)
    try:
        ref = f"{front.host}/private/app:1"
        with pytest.raises(PullError, match="denied"):
            await store.pull(ref)
        with pytest.raises(PullError, match="denied"):
            await store.pull(ref, auth=("alice", "wrong"))
        info = await store.pull(ref, auth=("alice", "s3cret"))
        assert info.id == image.id and info.repo_tags == [ref]
    finally:
        await front.stop()


@needs_busybox
@needs_overlay
async def test_mounted_rootfs_honours_whiteouts(store: ImageStore, tmp_path: Path) -> None:
    image = busybox_image()
    await store.import_archive(write_oci_archive(tmp_path / "oci.tar", image, "bb:1"))
    info = store.get("bb:1")
    merged = await store.mount_rootfs(info, "ctr-1")
    second = await store.mount_rootfs(info, "ctr-2")
    try:
        assert str(merged) in mount_points()
        assert (merged / "bin" / "busybox").is_file() and os.readlink(merged / "bin" / "sh") == "busybox"
        assert not (merged / "etc" / "motd").exists()  # whiteout
        assert sorted(os.listdir(merged / "data" / "old")) == ["b.txt"]  # opaque directory
        assert (merged / "data" / "keep.txt").read_text() == "kept\n"
        assert (merged / "hello.txt").read_text() == "hello from layer 2\n"
        # writes go to the container's upper dir only
        (merged / "hello.txt").write_text("changed")
        assert (second / "hello.txt").read_text() == "hello from layer 2\n"
        out = subprocess.run(["chroot", str(merged), "/bin/sh", "-c", "cat /hello.txt; ls /etc"],
                             capture_output=True, text=True, check=True).stdout
        assert out.startswith("changed") and "motd" not in out
        assert await store.mount_rootfs(info, "ctr-1") == merged  # idempotent
    finally:
        await store.unmount_rootfs("ctr-1")
        await store.unmount_rootfs("ctr-2")
    assert str(merged) not in mount_points() and not merged.exists()
    assert store.in_use() == set()


@needs_overlay
async def test_repeated_layer_counts_at_its_topmost_position(store: ImageStore, tmp_path: Path) -> None:
    from tests.node.images_util import TestImage, image_config

    first = _layer([_entry("x"), _entry("only-a")], {"x": b"a", "only-a": b"1"})
    second = _layer([_entry("x"), _entry(".wh.only-a")], {"x": b"b", ".wh.only-a": b""})
    image = TestImage([first, second, first], image_config([sha256(first), sha256(second), sha256(first)]))
    path = write_docker_archive(tmp_path / "rep.tar", image, ["rep:1"])
    # like docker save: the repeated layer is a symlink to its first copy
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()]
    layer_names = json.loads(next(d for m, d in members if m.name == "manifest.json"))[0]["Layers"]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            if member.name == layer_names[2]:
                member = _entry(member.name, tarfile.SYMTYPE, "../" + layer_names[0])
                data = None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    await store.import_archive(path)
    merged = await store.mount_rootfs(store.get("rep:1"), "rep")
    try:
        assert (merged / "x").read_bytes() == b"a" and (merged / "only-a").read_bytes() == b"1"
    finally:
        await store.unmount_rootfs("rep")


@needs_busybox
@needs_overlay
async def test_gc_removes_least_recently_used_unused_images(store: ImageStore, tmp_path: Path) -> None:
    images = {name: busybox_image(extra_files={f"{name}.bin": os.urandom(1000)}) for name in ("a", "b", "c")}
    for name, image in images.items():
        await store.import_archive(write_docker_archive(tmp_path / f"{name}.tar", image, [f"{name}:1"]))
        await asyncio.sleep(0.01)  # distinct last-used times
    await store.mount_rootfs(store.get("a:1"), "uses-a")  # oldest, but in use
    freed = await store.gc(1)
    assert freed > 0
    assert store.get("b:1") is None and store.get("a:1") is not None and store.get("c:1") is not None
    assert not (tmp_path / "store" / "layers" / images["b"].diff_ids[1][7:]).exists()
    # the shared busybox layer stays while other images use it
    assert (tmp_path / "store" / "layers" / images["a"].diff_ids[0][7:]).is_dir()
    await store.gc(10 ** 12)
    assert [i.repo_tags for i in store.list()] == [["docker.io/library/a:1"]]
    await store.unmount_rootfs("uses-a")
    await store.remove("a:1")
    assert store.list() == []
    assert sorted(p.name for p in (tmp_path / "store" / "layers").iterdir()) == ["empty"]
    assert list((tmp_path / "store" / "blobs" / "sha256").iterdir()) == []


@needs_busybox
@needs_root
async def test_remove_tags_and_images(store: ImageStore, tmp_path: Path) -> None:
    image = busybox_image()
    await store.import_archive(write_docker_archive(tmp_path / "x.tar", image, ["x:1", "x:2"]))
    await store.remove("x:1")
    assert store.get("x:1") is None and store.get("x:2").repo_tags == ["docker.io/library/x:2"]
    with pytest.raises(ImageNotFound):
        await store.remove("x:1")
    await store.remove(image.id)
    assert store.list() == [] and store.get("x:2") is None


@needs_busybox
@needs_root
async def test_cli_import_next_to_a_running_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    running = ImageStore(store_root(data))  # like the agent's store, open while the command runs
    await running.import_archive(write_docker_archive(tmp_path / "first.tar", busybox_image(label="1"), ["first:1"]))
    archive = write_docker_archive(tmp_path / "img.tar.gz", busybox_image(label="cli"), ["cli-test:1"],
                                   gzip_tarball=True)
    cmd = [sys.executable, "-m", "sampan", "images", "import", str(archive), "--data-dir", str(data)]
    result = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Imported docker.io/library/cli-test:1"
    assert running.get("cli-test:1").labels == {"test": "cli"}
    # the running store's next change keeps what the command added
    await running.import_archive(write_oci_archive(tmp_path / "third.tar", busybox_image(label="3"), "third:1"))
    assert sorted(t for i in ImageStore(store_root(data)).list() for t in i.repo_tags) == [
        "docker.io/library/cli-test:1", "docker.io/library/first:1", "docker.io/library/third:1"]
    listing = await asyncio.to_thread(subprocess.run, [*cmd[:4], "list", "--data-dir", str(data)],
                                      capture_output=True, text=True, timeout=120)
    assert "docker.io/library/cli-test:1" in listing.stdout
    bad = await asyncio.to_thread(subprocess.run, [*cmd[:5], "/etc/hostname", "--data-dir", str(data)],
                                  capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "not an image archive" in bad.stderr
