"""Every active namespace has the ConfigMap ``kube-root-ca.crt`` holding the cluster CA
(upstream's root-ca-cert-publisher), so pods can verify the API server; a deleted or
edited copy is put back."""

from __future__ import annotations

from sampan.api.errors import APIError
from sampan.client.interface import CONFIGMAPS, NAMESPACES, Obj
from sampan.controllers.base import Controller, register

CONFIGMAP_NAME = "kube-root-ca.crt"
DATA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as "
    "the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)


def _namespace_of(obj: Obj) -> str | None:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") if meta.get("name") == CONFIGMAP_NAME else None


@register
class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"
    component = "root-ca-cert-publisher"

    def setup(self) -> None:
        extra = self.ctx.options.extra.get("ca_pem") or ""
        self.ca_pem = extra.decode() if isinstance(extra, bytes) else str(extra)
        self.namespaces = self.watch(NAMESPACES)
        # Only the published ConfigMaps, not every ConfigMap in the cluster.
        self.configmaps = self.informer(CONFIGMAPS, field_selector=f"metadata.name={CONFIGMAP_NAME}")

        def enqueue(obj: Obj) -> None:
            ns = _namespace_of(obj)
            if ns:
                self.queue.add(ns)

        self.configmaps.add_handler(on_add=None, on_update=lambda _old, new: enqueue(new), on_delete=enqueue)

    async def reconcile(self, key: str) -> None:
        if not self.ca_pem:
            return  # no CA to publish (a server without PKI)
        ns = self.namespaces.get(key)
        if ns is None or (ns.get("status") or {}).get("phase", "Active") != "Active":
            return
        if ns["metadata"].get("deletionTimestamp"):
            return
        data = {DATA_KEY: self.ca_pem}
        cm = self.configmaps.get_by_name(CONFIGMAP_NAME, key)
        try:
            if cm is None:
                body = {
                    "metadata": {"name": CONFIGMAP_NAME, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": data,
                }
                await self.client.create(CONFIGMAPS, body, key)
                return
            annotations = dict((cm.get("metadata") or {}).get("annotations") or {})
            if cm.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
                return
            annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
            fixed = {**cm, "metadata": {**cm["metadata"], "annotations": annotations}, "data": data}
            fixed.pop("binaryData", None)
            await self.client.update(CONFIGMAPS, fixed)
        except APIError as exc:
            # 409: the cache is behind (the next event brings us back);
            # 403/404: the namespace is terminating or gone.
            if exc.code not in (403, 404, 409):
                raise
