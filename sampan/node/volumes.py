"""Pod volumes on the node: emptyDir (disk or tmpfs), configMap, secret, downwardAPI and
projected (with ServiceAccount tokens) written atomically like the kubelet (a ``..data``
symlink swapped in one rename, so running pods see whole updates), hostPath with its type
checks, and persistentVolumeClaims backed by local directories (see localpath.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sampan.node import envs
from sampan.node.runtimes.base import Mount

if TYPE_CHECKING:
    from sampan.node.agent import NodeAgent

Obj = dict[str, Any]
ATOMIC_KINDS = ("configMap", "secret", "downwardAPI", "projected")
TOKEN_SECONDS = 3607


class VolumeError(Exception):
    pass


def _files_from(data: dict[str, bytes], items: list[Obj] | None, mode: int, optional: bool, what: str) -> dict[str, tuple[bytes, int]]:
    if items:
        out = {}
        for item in items:
            key = item.get("key", "")
            if key not in data:
                if optional:
                    continue
                raise VolumeError(f"configuration key {key!r} not found in {what}")
            out[item.get("path") or key] = (data[key], int(item.get("mode", mode)))
        return out
    return {k: (v, mode) for k, v in data.items()}


def _object_data(obj: Obj) -> dict[str, bytes]:
    if obj.get("kind") == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def write_atomic(target: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """The kubelet's AtomicWriter: files go into a fresh ``..<time>`` dir, ``..data`` is
    re-pointed to it with one rename, and each top-level name links through ``..data``.
    Returns False when nothing changed."""
    target.mkdir(parents=True, exist_ok=True)
    current = target / "..data"
    if current.is_symlink():
        old = target / os.readlink(current)
        same = all((old / p).is_file() and (old / p).read_bytes() == data for p, (data, _) in files.items())
        names = {str(p.relative_to(old)) for p in old.rglob("*") if p.is_file()}
        if same and names == set(files):
            return False
    stamp = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for rel, (data, mode) in files.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode)
    tmp = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(stamp.name)
    old_dir = target / os.readlink(current) if current.is_symlink() else None
    os.rename(tmp, current)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for entry in target.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    if old_dir is not None and old_dir.name != stamp.name:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True


class VolumeManager:
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    def pod_dir(self, uid: str) -> Path:
        return self.agent.pods_dir / uid / "volumes"

    async def setup(self, pod: Obj) -> dict[str, tuple[str, bool]]:
        """Host path and read-only flag of each volume of ``pod``."""
        out: dict[str, tuple[str, bool]] = {}
        for vol in pod["spec"].get("volumes") or []:
            out[vol["name"]] = await self._setup_one(pod, vol)
        return out

    async def _setup_one(self, pod: Obj, vol: Obj) -> tuple[str, bool]:
        uid, name = pod["metadata"]["uid"], vol["name"]
        if "emptyDir" in vol:
            path = self.pod_dir(uid) / "empty-dir" / name
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            ed = vol["emptyDir"] or {}
            if ed.get("medium") == "Memory" and not os.path.ismount(path):
                opts = "mode=1777" + (f",size={ed['sizeLimit']}" if ed.get("sizeLimit") else "")
                await _run("mount", "-t", "tmpfs", "-o", _tmpfs_size(opts), "tmpfs", str(path))
            else:
                await asyncio.to_thread(os.chmod, path, 0o777)
            return str(path), False
        if "hostPath" in vol:
            return await asyncio.to_thread(_host_path, vol["hostPath"]), False
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]
            path = await self.agent.local_storage.path_for_claim(pod, claim.get("claimName", ""))
            return path, bool(claim.get("readOnly"))
        for kind in ATOMIC_KINDS:
            if kind in vol:
                path = self.pod_dir(uid) / kind / name
                files = await self._contents(pod, vol)
                await asyncio.to_thread(write_atomic, path, files)
                return str(path), True
        raise VolumeError(f"volume {name!r}: unsupported volume type")

    async def refresh(self, pod: Obj) -> None:
        for vol in pod["spec"].get("volumes") or []:
            kind = next((k for k in ATOMIC_KINDS if k in vol), None)
            if kind is None:
                continue
            try:
                files = await self._contents(pod, vol)
            except VolumeError:
                continue
            await asyncio.to_thread(write_atomic, self.pod_dir(pod["metadata"]["uid"]) / kind / vol["name"], files)

    async def _contents(self, pod: Obj, vol: Obj) -> dict[str, tuple[bytes, int]]:
        if "projected" in vol:
            proj = vol["projected"] or {}
            mode = int(proj.get("defaultMode", 0o644))
            files: dict[str, tuple[bytes, int]] = {}
            for source in proj.get("sources") or []:
                files.update(await self._source(pod, source, mode))
            return files
        kind = next(k for k in ATOMIC_KINDS if k in vol)
        spec = dict(vol[kind] or {})
        mode = int(spec.get("defaultMode", 0o644))
        return await self._source(pod, {kind: spec}, mode)

    async def _source(self, pod: Obj, source: Obj, mode: int) -> dict[str, tuple[bytes, int]]:
        ns = pod["metadata"].get("namespace", "default")
        for kind, api_kind, key in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")):
            if kind not in source:
                continue
            spec = source[kind] or {}
            name = spec.get(key) or spec.get("name", "")
            obj = await self.agent.get_object(api_kind, ns, name)
            if obj is None:
                if spec.get("optional"):
                    return {}
                raise VolumeError(f'{kind} "{name}" not found')
            return _files_from(_object_data(obj), spec.get("items"), int(spec.get("defaultMode", mode)),
                               bool(spec.get("optional")), f"{api_kind} {ns}/{name}")
        if "downwardAPI" in source:
            out = {}
            for item in (source["downwardAPI"] or {}).get("items") or []:
                if "fieldRef" in item:
                    value = envs.field_value(pod, item["fieldRef"].get("fieldPath", ""))
                else:
                    ref = item.get("resourceFieldRef") or {}
                    target = next((c for c in pod["spec"].get("containers") or []
                                   if c.get("name") == ref.get("containerName")), {})
                    value = envs.resource_value(target, ref, self.agent.allocatable)
                out[item["path"]] = (value.encode(), int(item.get("mode", mode)))
            return out
        if "serviceAccountToken" in source:
            spec = source["serviceAccountToken"] or {}
            token = await self.agent.service_account_token(pod, spec.get("audience"),
                                                          int(spec.get("expirationSeconds", TOKEN_SECONDS)))
            return {spec.get("path", "token"): (token.encode(), mode)}
        if "clusterTrustBundle" in source:
            return {}
        return {}

    def mounts(self, pod: Obj, container: Obj, volumes: dict[str, tuple[str, bool]]) -> list[Mount]:
        out = []
        env = {e["name"]: e.get("value", "") for e in container.get("env") or [] if "value" in e}
        for vm in container.get("volumeMounts") or []:
            if vm.get("name") not in volumes:
                raise VolumeError(f"volume {vm.get('name')!r} not found")
            source, ro = volumes[vm["name"]]
            sub = vm.get("subPath") or envs.expand(vm.get("subPathExpr", ""), env)
            if sub:
                if sub.startswith("/") or ".." in Path(sub).parts:
                    raise VolumeError(f"invalid subPath {sub!r}")
                full = Path(source) / sub
                if not full.exists():
                    full.mkdir(parents=True, exist_ok=True)
                source = str(full.resolve()) if full.is_symlink() else str(full)
            out.append(Mount(source, vm["mountPath"], read_only=bool(vm.get("readOnly")) or ro))
        return out

    async def teardown(self, uid: str) -> None:
        root = self.pod_dir(uid)

        def clean() -> None:
            ed = root / "empty-dir"
            if ed.is_dir():
                for path in ed.iterdir():
                    if os.path.ismount(path):
                        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
            shutil.rmtree(self.agent.pods_dir / uid, ignore_errors=True)

        await asyncio.to_thread(clean)


def _tmpfs_size(opts: str) -> str:
    """tmpfs wants plain bytes or k/m/g; Kubernetes quantities say Mi/Gi."""
    from sampan.api.quantity import parse_quantity

    parts = []
    for opt in opts.split(","):
        if opt.startswith("size="):
            opt = f"size={int(parse_quantity(opt[5:]).amount)}"
        parts.append(opt)
    return ",".join(parts)


def _host_path(spec: Obj) -> str:
    path = Path(spec.get("path", ""))
    kind = spec.get("type") or ""
    if kind == "DirectoryOrCreate" and not path.exists():
        path.mkdir(mode=0o755, parents=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o644)
    checks = {
        "Directory": (path.is_dir, "is not a directory"), "DirectoryOrCreate": (path.is_dir, "is not a directory"),
        "File": (path.is_file, "is not a file"), "FileOrCreate": (path.is_file, "is not a file"),
        "Socket": (path.is_socket, "is not a socket file"), "CharDevice": (path.is_char_device, "is not a character device"),
        "BlockDevice": (path.is_block_device, "is not a block device"),
    }
    if kind in checks:
        check, what = checks[kind]
        if not path.exists():
            raise VolumeError(f"hostPath type check failed: {path} does not exist")
        if not check():
            raise VolumeError(f"hostPath type check failed: {path} {what}")
    return str(path)


async def _run(*cmd: str) -> None:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise VolumeError(f"{' '.join(cmd)}: {out.decode(errors='replace').strip()}")

