"""Semantic checks for core/v1 kinds (besides the pod spec)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sampan.api.validation import field, names
from sampan.api.validation.field import Cause
from sampan.api.validation.pods import PROTOCOLS, validate_pod_spec, validate_pod_template

MAX_SECRET_SIZE = 1024 * 1024
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILY_POLICIES = ["SingleStack", "PreferDualStack", "RequireDualStack"]


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def validate_pod(obj: dict) -> list[Cause]:
    return validate_pod_spec(obj.get("spec"), "spec")


def validate_pod_template_kind(obj: dict) -> list[Cause]:
    return validate_pod_template(obj.get("template"), "template")


def validate_replication_controller(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errs.append(field.invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = _dict(spec.get("selector"))
    if not selector:
        errs.append(field.required("spec.selector"))
    template = spec.get("template")
    if template is None:
        errs.append(field.required("spec.template"))
        return errs
    labels = _dict(_dict(_dict(template).get("metadata")).get("labels"))
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        errs.append(field.invalid("spec.template.metadata.labels", labels,
                                  "`selector` does not match template `labels`"))
    return errs + validate_pod_template(template, "spec.template")


def validate_service(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    stype = spec.get("type") or "ClusterIP"
    if stype not in SERVICE_TYPES:
        errs.append(field.not_supported("spec.type", stype, SERVICE_TYPES))
    headless = spec.get("clusterIP") == "None"
    ports = spec.get("ports") if isinstance(spec.get("ports"), list) else []
    if stype == "ExternalName":
        ext = spec.get("externalName") or ""
        if not ext:
            errs.append(field.required("spec.externalName"))
        else:
            errs += [field.invalid("spec.externalName", ext, e) for e in names.dns1123_subdomain(ext.rstrip("."))]
    elif not ports and not headless:
        errs.append(field.required("spec.ports"))
    seen_names: set[str] = set()
    seen_ports: set[tuple] = set()
    for i, port in enumerate(ports):
        errs += _validate_service_port(_dict(port), f"spec.ports[{i}]", len(ports) > 1, seen_names, seen_ports)
        if stype == "ClusterIP" and _dict(port).get("nodePort"):
            errs.append(field.forbidden(f"spec.ports[{i}].nodePort",
                                        "may not be used when `type` is 'ClusterIP'"))
    affinity = spec.get("sessionAffinity")
    if affinity and affinity not in SESSION_AFFINITIES:
        errs.append(field.not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES))
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        value = spec.get(key)
        if value and value not in TRAFFIC_POLICIES:
            errs.append(field.not_supported(f"spec.{key}", value, TRAFFIC_POLICIES))
    if spec.get("externalTrafficPolicy") and stype in ("ClusterIP", "ExternalName"):
        errs.append(field.invalid("spec.externalTrafficPolicy", spec["externalTrafficPolicy"],
                                  "may only be set for externally-accessible services"))
    policy = spec.get("ipFamilyPolicy")
    if policy and policy not in IP_FAMILY_POLICIES:
        errs.append(field.not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    from sampan.api.validation.meta import validate_labels
    errs += validate_labels(spec.get("selector"), "spec.selector")
    return errs


def _validate_service_port(port: dict, path: str, multi: bool, seen_names: set[str],
                           seen_ports: set[tuple]) -> list[Cause]:
    errs: list[Cause] = []
    name = port.get("name") or ""
    if multi and not name:
        errs.append(field.required(f"{path}.name"))
    elif name:
        errs += [field.invalid(f"{path}.name", name, e) for e in names.dns1123_label(name)]
        if name in seen_names:
            errs.append(field.duplicate(f"{path}.name", name))
        seen_names.add(name)
    number = port.get("port")
    if isinstance(number, int):
        errs += [field.invalid(f"{path}.port", number, e) for e in names.port_number(number)]
    else:
        errs.append(field.required(f"{path}.port"))
    proto = port.get("protocol")
    if proto is not None and proto not in PROTOCOLS:
        errs.append(field.not_supported(f"{path}.protocol", proto, PROTOCOLS))
    key = (number, proto or "TCP")
    if key in seen_ports:
        errs.append(field.duplicate(path, {"port": number, "protocol": proto or "TCP"}))
    seen_ports.add(key)
    target = port.get("targetPort")
    if isinstance(target, int) and target != 0:
        errs += [field.invalid(f"{path}.targetPort", target, e) for e in names.port_number(target)]
    elif isinstance(target, str) and target:
        errs += [field.invalid(f"{path}.targetPort", target, e) for e in names.port_name(target)]
    node_port = port.get("nodePort")
    if isinstance(node_port, int) and node_port != 0:
        errs += [field.invalid(f"{path}.nodePort", node_port, e) for e in names.port_number(node_port)]
    return errs


def _validate_keys(data: dict, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for k in data:
        errs += [field.invalid(path, k, e) for e in names.config_map_key(k)]
    return errs


def validate_config_map(obj: dict) -> list[Cause]:
    data, binary = _dict(obj.get("data")), _dict(obj.get("binaryData"))
    errs = _validate_keys(data, "data") + _validate_keys(binary, "binaryData")
    for k in data:
        if k in binary:
            errs.append(field.invalid("data", k, "duplicate of key present in binaryData"))
    size = sum(len(k) + len(str(v).encode()) for k, v in data.items())
    size += sum(len(k) + len(_decoded(v)) for k, v in binary.items())
    if size > MAX_SECRET_SIZE:
        errs.append(field.too_long("", MAX_SECRET_SIZE))
    return errs


def _decoded(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except (binascii.Error, ValueError):
        return str(value).encode()


def validate_secret(obj: dict) -> list[Cause]:
    data, string_data = _dict(obj.get("data")), _dict(obj.get("stringData"))
    errs = _validate_keys(data, "data") + _validate_keys(string_data, "stringData")
    size = sum(len(_decoded(v)) for v in data.values()) + sum(len(str(v).encode()) for v in string_data.values())
    if size > MAX_SECRET_SIZE:
        errs.append(field.too_long("data", MAX_SECRET_SIZE))
    stype = obj.get("type") or "Opaque"
    keys = set(data) | set(string_data)
    annotations = _dict(_dict(obj.get("metadata")).get("annotations"))
    required_keys = {
        "kubernetes.io/dockercfg": ".dockercfg",
        "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
        "kubernetes.io/basic-auth": None,
        "kubernetes.io/ssh-auth": "ssh-privatekey",
    }
    if stype == "kubernetes.io/service-account-token" and not annotations.get("kubernetes.io/service-account.name"):
        errs.append(field.required("metadata.annotations[kubernetes.io/service-account.name]"))
    if stype in ("kubernetes.io/tls",):
        for k in ("tls.crt", "tls.key"):
            if k not in keys:
                errs.append(field.required(f"data[{k}]"))
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in keys and "password" not in keys:
            errs.append(field.required("data[username]"))
    elif stype in required_keys and required_keys[stype] not in keys:
        errs.append(field.required(f"data[{required_keys[stype]}]"))
    return errs


def validate_namespace(obj: dict) -> list[Cause]:
    errs: list[Cause] = []
    for i, f in enumerate(_dict(obj.get("spec")).get("finalizers") or []):
        errs += [field.invalid(f"spec.finalizers[{i}]", f, e) for e in names.qualified_name(f)]
    return errs


def validate_node(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    for i, taint in enumerate(spec.get("taints") or []):
        taint = _dict(taint)
        key = taint.get("key") or ""
        errs += [field.invalid(f"spec.taints[{i}].key", key, e) for e in names.qualified_name(key)]
        effect = taint.get("effect")
        valid = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
        if not effect:
            errs.append(field.required(f"spec.taints[{i}].effect"))
        elif effect not in valid:
            errs.append(field.not_supported(f"spec.taints[{i}].effect", effect, valid))
    return errs
