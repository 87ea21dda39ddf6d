"""Defaults of core/v1 pod specs, containers, probes and volume sources (type-based upstream:
they apply wherever these types are embedded)."""

from __future__ import annotations

from typing import Any


def _dict(value: Any) -> dict | None:
    return value if isinstance(value, dict) else None


def _each(obj: dict, key: str):
    for item in obj.get(key) or []:
        if isinstance(item, dict):
            yield item


def image_tag(image: str) -> str:
    """The tag part of an image reference: '' for digests, 'latest' when none is given."""
    if not image:
        return ""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if at else "latest"


def _http_get(action: dict | None) -> None:
    if action is not None:
        action.setdefault("path", "/")
        action.setdefault("scheme", "HTTP")


def _handler(handler: dict | None) -> None:
    if handler is not None:
        _http_get(_dict(handler.get("httpGet")))


def _probe(probe: dict | None) -> None:
    if probe is None:
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _handler(probe)


def _field_ref(source: dict | None) -> None:
    ref = _dict((source or {}).get("fieldRef"))
    if ref is not None:
        ref.setdefault("apiVersion", "v1")


def container(c: dict) -> None:
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = "Always" if image_tag(c.get("image") or "") == "latest" else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for port in _each(c, "ports"):
        port.setdefault("protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(_dict(c.get(key)))
    lifecycle = _dict(c.get("lifecycle")) or {}
    for key in ("postStart", "preStop"):
        _handler(_dict(lifecycle.get(key)))
    for env in _each(c, "env"):
        _field_ref(_dict(env.get("valueFrom")))


def _projection_items(items: list | None) -> None:
    for item in items or []:
        if isinstance(item, dict):
            _field_ref(item)


def volume(v: dict) -> None:
    sources = [k for k in v if k != "name"]
    if not sources:
        v["emptyDir"] = {}
    for key in ("secret", "configMap"):
        src = _dict(v.get(key))
        if src is not None:
            src.setdefault("defaultMode", 420)
    downward = _dict(v.get("downwardAPI"))
    if downward is not None:
        downward.setdefault("defaultMode", 420)
        _projection_items(downward.get("items"))
    projected = _dict(v.get("projected"))
    if projected is not None:
        projected.setdefault("defaultMode", 420)
        for source in _each(projected, "sources"):
            token = _dict(source.get("serviceAccountToken"))
            if token is not None:
                token.setdefault("expirationSeconds", 3600)
            dapi = _dict(source.get("downwardAPI"))
            if dapi is not None:
                _projection_items(dapi.get("items"))
    host = _dict(v.get("hostPath"))
    if host is not None:
        host.setdefault("type", "")
    iscsi = _dict(v.get("iscsi"))
    if iscsi is not None:
        iscsi.setdefault("iscsiInterface", "default")
    rbd = _dict(v.get("rbd"))
    if rbd is not None:
        rbd.setdefault("pool", "rbd")
        rbd.setdefault("user", "admin")
        rbd.setdefault("keyring", "/etc/ceph/keyring")
    azure = _dict(v.get("azureDisk"))
    if azure is not None:
        azure.setdefault("cachingMode", "ReadWrite")
        azure.setdefault("fsType", "ext4")
        azure.setdefault("readOnly", False)
        azure.setdefault("kind", "Shared")
    scaleio = _dict(v.get("scaleIO"))
    if scaleio is not None:
        scaleio.setdefault("storageMode", "ThinProvisioned")
        scaleio.setdefault("fsType", "xfs")
    ephemeral = _dict(v.get("ephemeral"))
    claim = _dict((ephemeral or {}).get("volumeClaimTemplate"))
    if claim is not None and isinstance(claim.get("spec"), dict):
        claim["spec"].setdefault("volumeMode", "Filesystem")


def pod_spec(spec: dict) -> None:
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    # v1 keeps the deprecated serviceAccount in step with serviceAccountName.
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    elif spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for c in _each(spec, group):
            container(c)
    for v in _each(spec, "volumes"):
        volume(v)


def pod_template(template: Any) -> None:
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_spec(template["spec"])


def pod(obj: dict) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    for group in ("initContainers", "containers"):
        for c in _each(spec, group):
            res = c.get("resources")
            limits = (res or {}).get("limits") if isinstance(res, dict) else None
            if isinstance(limits, dict) and limits:
                requests = res.setdefault("requests", {})
                for name, value in limits.items():
                    requests.setdefault(name, value)
            if spec.get("hostNetwork"):
                for port in _each(c, "ports"):
                    port.setdefault("hostPort", port.get("containerPort"))
