"""Namespaces made with system calls (sampan/node/namespaces.py): root only."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from sampan.node import namespaces

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def inside(kind: str, path: Path | str, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--{kind}={path}", *argv], check=True, capture_output=True, text=True).stdout


def mounted(path: Path | str) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


async def test_net_ipc_uts_namespaces_persist_on_files(tmp_path: Path) -> None:
    files = {k: tmp_path / k for k in ("net", "ipc", "uts")}
    try:
        await namespaces.create(files, hostname="pod-host")
        assert all(mounted(p) for p in files.values())
        assert inside("uts", files["uts"], "hostname").strip() == "pod-host"
        assert Path("/proc/sys/kernel/hostname").read_text().strip() != "pod-host"  # ours is untouched
        links = inside("net", files["net"], "ip", "-o", "link")
        assert "lo:" in links and "UP" in links and len(links.splitlines()) == 1  # only lo, and it is up
        assert os.stat(files["net"]).st_ino != os.stat("/proc/self/ns/net").st_ino
        with pytest.raises(FileExistsError):
            await namespaces.create({"net": files["net"]})
    finally:
        for path in files.values():
            namespaces.remove(path)
    assert not any(p.exists() or mounted(p) for p in files.values())
    namespaces.remove(files["net"])  # gone already: fine


async def test_netns_dir_is_shared_like_ip_netns(tmp_path: Path) -> None:
    share = tmp_path / "netns"
    path = share / f"t-{uuid.uuid4().hex[:8]}"
    try:
        await namespaces.create({"net": path}, share=share)
        info = next(line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                    if line.split()[4] == str(share))
        assert "shared:" in info  # a namespace mounted here reaches copied mount namespaces
    finally:
        namespaces.remove(path)
        namespaces.unmount(str(share))


async def test_mount_with_relative_options(tmp_path: Path) -> None:
    for d in ("lower", "upper", "work", "merged"):
        (tmp_path / d).mkdir()
    (tmp_path / "lower" / "f").write_text("from the lower layer")
    merged = tmp_path / "merged"
    await namespaces.mount("overlay", merged, "lowerdir=lower,upperdir=upper,workdir=work", cwd=tmp_path)
    try:
        assert (merged / "f").read_text() == "from the lower layer"
        assert Path.cwd() != tmp_path  # only the helper thread changed directory
    finally:
        namespaces.umount(merged)
    assert not mounted(merged)
    with pytest.raises(OSError):
        namespaces.umount(merged)  # not mounted any more
