"""A small kopf operator for the end-to-end tests: every EchoConfig gets a ConfigMap
(owned by it) holding its message; its status says what was done; deleting it leaves
a marker ConfigMap so the test can see the delete handler ran."""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "example.com", "v1", "echoconfigs"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = 20  # INFO: handler outcomes become Events
    settings.posting.loggers = True
    settings.watching.server_timeout = 30
    kubernetes.config.load_kube_config()


def _core() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api()


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_fn(
    spec: kopf.Spec, body: kopf.Body, name: str, namespace: str, patch: kopf.Patch, logger: Any, **_: Any
) -> dict:
    configmap = {"metadata": {"name": f"{name}-echo"}, "data": {"message": spec.get("message", "")}}
    kopf.adopt(configmap)  # owner reference and namespace from the EchoConfig
    _core().create_namespaced_config_map(namespace, configmap)
    patch.status["phase"] = "Created"
    logger.info("echo configmap %s-echo created", name)
    kopf.info(body, reason="EchoCreated", message=f"configmap {name}-echo created")
    return {"configmap": f"{name}-echo"}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.message")
def update_fn(new: Any, name: str, namespace: str, patch: kopf.Patch, **_: Any) -> None:
    _core().patch_namespaced_config_map(f"{name}-echo", namespace, {"data": {"message": new or ""}})
    patch.status["phase"] = "Updated"


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete_fn(name: str, namespace: str, **_: Any) -> None:
    marker = {"metadata": {"name": f"{name}-deleted"}, "data": {"deleted": name}}
    _core().create_namespaced_config_map(namespace, marker)
