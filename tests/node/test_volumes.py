"""Volume contents and mounts: the atomic ``..data`` writer, configMap/secret items and modes,
downward API files, hostPath type checks, subPath mounts."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sampan.node.volumes import VolumeError, VolumeManager, _host_path, write_atomic


class Source:
    """What the agent offers volumes: objects by name, allocatable, tokens."""

    def __init__(self, root: Path, objects: dict[tuple[str, str, str], dict]) -> None:
        self.pods_dir = root
        self.objects = objects
        self.allocatable = {"cpu": "2", "memory": "1Gi"}

    async def get_object(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.objects.get((kind, namespace, name))

    async def service_account_token(self, pod: dict, audience: str | None, seconds: int) -> str:
        return f"token-for-{pod['spec'].get('serviceAccountName', 'default')}"


def make_pod(volumes: list[dict], **meta: Any) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta},
            "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "x"}], "volumes": volumes}}


def test_atomic_writer_swaps_data_link(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    first = os.readlink(target / "..data")
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert os.readlink(target / "a") == "..data/a"
    assert oct((target / "dir" / "b").stat().st_mode & 0o777) == "0o600"
    assert not write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})  # unchanged: nothing done
    assert write_atomic(target, {"a": (b"new", 0o644)})
    assert os.readlink(target / "..data") != first
    assert (target / "a").read_text() == "new"
    assert not (target / "dir").exists()  # keys that went away are gone
    assert not (target / first).exists()  # the old timestamped dir is removed


async def test_configmap_items_and_modes(tmp_path: Path) -> None:
    cm = {"kind": "ConfigMap", "data": {"k1": "v1", "k2": "v2"}, "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}
    src = Source(tmp_path, {("ConfigMap", "ns", "cm"): cm})
    mgr = VolumeManager(src)  # type: ignore[arg-type]
    pod = make_pod([
        {"name": "all", "configMap": {"name": "cm", "defaultMode": 0o600}},
        {"name": "some", "configMap": {"name": "cm", "items": [{"key": "k2", "path": "sub/renamed", "mode": 0o400}]}},
    ])
    paths = await mgr.setup(pod)
    all_dir, ro = paths["all"]
    assert ro is True
    assert Path(all_dir, "k1").read_text() == "v1" and Path(all_dir, "bin").read_bytes() == b"\x00\x01"
    assert oct(Path(all_dir, "k1").stat().st_mode & 0o777) == "0o600"
    some = Path(paths["some"][0])
    assert (some / "sub" / "renamed").read_text() == "v2" and not (some / "k1").exists()
    cm["data"]["k1"] = "changed"
    await mgr.refresh(pod)
    assert Path(all_dir, "k1").read_text() == "changed"
    await mgr.teardown("u1")
    assert not (tmp_path / "u1").exists()


async def test_missing_configmap_fails_unless_optional(tmp_path: Path) -> None:
    mgr = VolumeManager(Source(tmp_path, {}))  # type: ignore[arg-type]
    with pytest.raises(VolumeError, match='configMap "nope" not found'):
        await mgr.setup(make_pod([{"name": "v", "configMap": {"name": "nope"}}]))
    paths = await mgr.setup(make_pod([{"name": "v", "configMap": {"name": "nope", "optional": True}}]))
    assert Path(paths["v"][0]).is_dir()


async def test_secret_downward_and_projected(tmp_path: Path) -> None:
    secret = {"kind": "Secret", "data": {"password": base64.b64encode(b"s3cret").decode()}}
    cm = {"kind": "ConfigMap", "data": {"ca.crt": "CERT"}}
    src = Source(tmp_path, {("Secret", "ns", "s"): secret, ("ConfigMap", "ns", "kube-root-ca.crt"): cm})
    mgr = VolumeManager(src)  # type: ignore[arg-type]
    pod = make_pod([
        {"name": "sec", "secret": {"secretName": "s"}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "sa", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
    ], labels={"app": "x", "tier": "web"})
    paths = await mgr.setup(pod)
    assert Path(paths["sec"][0], "password").read_text() == "s3cret"
    info = Path(paths["info"][0])
    assert (info / "name").read_text() == "p"
    assert (info / "labels").read_text() == 'app="x"\ntier="web"'
    sa = Path(paths["sa"][0])
    assert (sa / "token").read_text() == "token-for-robot"
    assert (sa / "ca.crt").read_text() == "CERT" and (sa / "namespace").read_text() == "ns"


def test_host_path_type_checks(tmp_path: Path) -> None:
    made = tmp_path / "made" / "dir"
    assert _host_path({"path": str(made), "type": "DirectoryOrCreate"}) == str(made)
    assert made.is_dir()
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(VolumeError, match="is not a directory"):
        _host_path({"path": str(f), "type": "Directory"})
    with pytest.raises(VolumeError, match="does not exist"):
        _host_path({"path": str(tmp_path / "missing"), "type": "File"})
    assert _host_path({"path": str(tmp_path / "created"), "type": "FileOrCreate"})
    assert (tmp_path / "created").is_file()
    assert _host_path({"path": str(tmp_path / "anything")}) == str(tmp_path / "anything")  # no type: no check


def test_mounts_with_sub_path(tmp_path: Path) -> None:
    mgr = VolumeManager(SimpleNamespace(pods_dir=tmp_path))  # type: ignore[arg-type]
    vol = tmp_path / "vol"
    vol.mkdir()
    container = {"name": "c", "volumeMounts": [
        {"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b", "subPath": "sub", "readOnly": True}]}
    mounts = mgr.mounts({}, container, {"v": (str(vol), False)})
    assert [(m.source, m.destination, m.read_only) for m in mounts] == [
        (str(vol), "/a", False), (str(vol / "sub"), "/b", True)]
    assert (vol / "sub").is_dir()
    with pytest.raises(VolumeError, match="invalid subPath"):
        mgr.mounts({}, {"volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "../escape"}]},
                   {"v": (str(vol), False)})
    with pytest.raises(VolumeError, match="not found"):
        mgr.mounts({}, {"volumeMounts": [{"name": "other", "mountPath": "/x"}]}, {})
