"""The ServiceAccount admission plugin: a new pod runs as a ServiceAccount that exists
(``default`` unless it names one) and, unless the pod or the account opts out, gets a
projected ``kube-api-access-*`` volume (bound token, cluster CA, namespace) mounted in every
container and init container at the well-known path."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

from sampan.api import errors
from sampan.api.names import generate_name
from sampan.registry.admission import CREATE, AdmissionPlugin, Attributes
from sampan.registry.meta import Obj, meta

if TYPE_CHECKING:
    from sampan.registry.registry import Registry

DEFAULT_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# Upstream's "warn only" bound-token lifetime: an hour plus seven seconds to spot stale tokens.
TOKEN_EXPIRATION_SECONDS = 3607
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SERVICE_ACCOUNTS = errors.GroupResource("", "serviceaccount")
# The default account is created asynchronously by its controller just after its namespace,
# so a pod in a brand-new namespace waits a little for it, as upstream does.
DEFAULT_ACCOUNT_ATTEMPTS = 10


def api_access_volume(name: str) -> Obj:
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }


def should_automount(account: Obj, spec: dict[str, Any]) -> bool:
    """The pod's choice wins, then the account's; mounting is the default."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mount_token(spec: dict[str, Any]) -> None:
    """Adds the volume (once) and a read-only mount to every container that has nothing at the
    token path yet; a pod that already carries a kube-api-access volume keeps it."""
    volumes = spec.setdefault("volumes", [])
    if not isinstance(volumes, list):
        return  # validation reports the malformed field
    existing = next(
        (v["name"] for v in volumes if isinstance(v, dict) and str(v.get("name", "")).startswith(VOLUME_PREFIX)), ""
    )
    name = existing or generate_name(VOLUME_PREFIX)
    needed = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts")
            if not isinstance(mounts, list):
                mounts = container["volumeMounts"] = []
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue  # the user's own mount at that path wins
            mounts.append({"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})
            needed = True
    if needed and not existing:
        volumes.append(api_access_volume(name))
    if not volumes:
        del spec["volumes"]


class ServiceAccountAdmission(AdmissionPlugin):
    name = "ServiceAccount"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def handles(self, attrs: Attributes) -> bool:
        return attrs.resource == ("", "pods") and attrs.operation == CREATE and not attrs.subresource

    async def _account(self, namespace: str, name: str) -> Obj:
        accounts = self.registry.must("", "v1", "serviceaccounts")
        attempts = DEFAULT_ACCOUNT_ATTEMPTS if name == DEFAULT_ACCOUNT else 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(random.uniform(0.1, 0.2))
            try:
                return await accounts.get(namespace, name)
            except errors.APIError as exc:
                if exc.code != 404:
                    raise
        raise errors.not_found(SERVICE_ACCOUNTS, name)

    async def admit(self, attrs: Attributes) -> None:
        spec = attrs.obj.get("spec")
        if not isinstance(spec, dict):
            return  # validation reports it
        if MIRROR_ANNOTATION in (meta(attrs.obj).get("annotations") or {}):
            return  # static pods' mirrors are never changed
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_ACCOUNT
        # The deprecated alias follows, as defaulting keeps them in step.
        spec["serviceAccount"] = spec["serviceAccountName"]
        name = str(spec["serviceAccountName"])
        try:
            account = await self._account(attrs.namespace, name)
        except errors.APIError as exc:
            raise attrs.forbidden(
                f"error looking up service account {attrs.namespace}/{name}: {exc.status.get('message', '')}"
            ) from None
        if should_automount(account, spec):
            mount_token(spec)
        if not spec.get("imagePullSecrets"):
            secrets = [
                {"name": s["name"]}
                for s in account.get("imagePullSecrets") or []
                if isinstance(s, dict) and s.get("name")
            ]
            if secrets:
                spec["imagePullSecrets"] = secrets

    async def validate(self, attrs: Attributes) -> None:
        spec = attrs.obj.get("spec")
        if not isinstance(spec, dict) or MIRROR_ANNOTATION not in (meta(attrs.obj).get("annotations") or {}):
            return
        if spec.get("serviceAccountName"):
            raise attrs.forbidden("a mirror pod may not reference service accounts")


def install(registry: Registry) -> None:
    """Turns the plugin on, in upstream's place (right after LimitRanger). Servers whose
    ServiceAccount controller runs enable it; bare registries (unit tests) have no accounts."""
    plugins = registry.admission.plugins
    if any(isinstance(p, ServiceAccountAdmission) for p in plugins):
        return
    at = next((i + 1 for i, p in enumerate(plugins) if p.name == "LimitRanger"), 0)
    plugins.insert(at, ServiceAccountAdmission(registry))
