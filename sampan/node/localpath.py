"""The built-in local-path provisioner: a PersistentVolumeClaim of StorageClass ``local-path``
(volumeBindingMode WaitForFirstConsumer) is bound, when its first pod lands here, to a new
hostPath PersistentVolume under DATA/storage/<pv>. The data stays when pods go away."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sampan.client.interface import PERSISTENTVOLUMECLAIMS, ResourceRef, is_conflict

if TYPE_CHECKING:
    from sampan.node.agent import NodeAgent

Obj = dict[str, Any]
PERSISTENTVOLUMES = ResourceRef("", "v1", "persistentvolumes", False)
STORAGECLASSES = ResourceRef("storage.k8s.io", "v1", "storageclasses", False)
CLASS_NAME = "local-path"
PROVISIONER = "sampan.dev/local-path"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def storage_class() -> Obj:
    """The default StorageClass the server creates at start."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}


class VolumeNotReady(Exception):
    pass


class LocalStorage:
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent
        self.root = agent.data_dir / "storage"

    async def path_for_claim(self, pod: Obj, claim_name: str) -> str:
        ns = pod["metadata"].get("namespace", "default")
        key = f"pvc/{ns}/{claim_name}"
        client = self.agent.client
        try:
            pvc = await client.get(PERSISTENTVOLUMECLAIMS, claim_name, ns)
        except Exception:
            stored = await self.agent.state.get(key)  # offline: what we mounted before
            if stored:
                return str(json.loads(stored)["path"])
            raise
        volume = (pvc.get("spec") or {}).get("volumeName")
        if volume:
            pv = await client.get(PERSISTENTVOLUMES, volume)
            spec = pv.get("spec") or {}
            path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
            if not path:
                raise VolumeNotReady(f"persistentvolume {volume} has no local path")
        else:
            path = await self._provision(pvc)
        await asyncio.to_thread(Path(path).mkdir, parents=True, exist_ok=True)
        await self.agent.state.set(key, json.dumps({"path": path}))
        return str(path)

    async def _provision(self, pvc: Obj) -> str:
        spec, meta = pvc.get("spec") or {}, pvc["metadata"]
        cls = spec.get("storageClassName")
        if cls is None:
            cls = CLASS_NAME  # the default class
        if cls != CLASS_NAME:
            raise VolumeNotReady(f'persistentvolumeclaim "{meta["name"]}" is not bound')
        client = self.agent.client
        name = f"pvc-{meta['uid']}"
        path = str(self.root / name)
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        pv = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": size}, "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": CLASS_NAME,
                "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": meta["name"],
                             "namespace": meta.get("namespace"), "uid": meta["uid"]},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [self.agent.node_name]}]}]}},
            },
        }
        try:
            await client.create(PERSISTENTVOLUMES, pv)
        except Exception as exc:
            if not is_conflict(exc):
                raise
        await client.patch(PERSISTENTVOLUMES, name, {"status": {"phase": "Bound"}}, "merge", subresource="status")
        ann = {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
               "volume.kubernetes.io/selected-node": self.agent.node_name,
               "volume.kubernetes.io/storage-provisioner": PROVISIONER}
        await client.patch(PERSISTENTVOLUMECLAIMS, meta["name"],
                           {"metadata": {"annotations": ann}, "spec": {"volumeName": name,
                                                                       "storageClassName": CLASS_NAME}},
                           "merge", namespace=meta.get("namespace"))
        await client.patch(PERSISTENTVOLUMECLAIMS, meta["name"],
                           {"status": {"phase": "Bound", "capacity": {"storage": size},
                                       "accessModes": spec.get("accessModes") or ["ReadWriteOnce"]}},
                           "merge", namespace=meta.get("namespace"), subresource="status")
        return path
