"""Pod spec checks, shared by Pods and every embedded pod template."""

from __future__ import annotations

import re
from typing import Any

from sampan.api.validation import field, names
from sampan.api.validation.field import Cause
from sampan.api.validation.meta import validate_annotations, validate_labels
from sampan.api.validation.quantity import QUANTITY_FORMAT_ERROR, parse_quantity

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def validate_pod_template(template: Any, path: str) -> list[Cause]:
    """A PodTemplateSpec: labels/annotations of its metadata plus the pod spec."""
    if not isinstance(template, dict):
        return [field.required(path)]
    meta = _dict(template.get("metadata"))
    mpath = field.child(path, "metadata")
    errs = validate_labels(meta.get("labels"), field.child(mpath, "labels"))
    if _dict(template.get("spec")).get("ephemeralContainers"):
        errs.append(field.forbidden(field.child(field.child(path, "spec"), "ephemeralContainers"),
                                    "ephemeral containers not allowed in pod template"))
    errs += validate_annotations(meta.get("annotations"), field.child(mpath, "annotations"))
    return errs + validate_pod_spec(template.get("spec"), field.child(path, "spec"))


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [field.required(path)]
    errs: list[Cause] = []
    volumes, vol_errs = _validate_volumes(_list(spec.get("volumes")), field.child(path, "volumes"))
    errs += vol_errs
    seen: set[str] = set()
    containers = _list(spec.get("containers"))
    if not containers:
        errs.append(field.required(field.child(path, "containers")))
    for group in ("initContainers", "containers"):
        for i, c in enumerate(_list(spec.get(group))):
            errs += _validate_container(c, field.index(field.child(path, group), i), seen, volumes)
    targets = set(seen)  # an ephemeral container may target a container or an init container
    for i, c in enumerate(_list(spec.get("ephemeralContainers"))):
        cpath = field.index(field.child(path, "ephemeralContainers"), i)
        errs += _validate_container(c, cpath, seen, volumes) + _validate_ephemeral(_dict(c), cpath, targets)
    policy = spec.get("restartPolicy")
    if policy and policy not in RESTART_POLICIES:
        errs.append(field.not_supported(field.child(path, "restartPolicy"), policy, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if dns and dns not in DNS_POLICIES:
        errs.append(field.not_supported(field.child(path, "dnsPolicy"), dns, DNS_POLICIES))
    if dns == "None" and not _dict(spec.get("dnsConfig")).get("nameservers"):
        errs.append(field.required(field.child(field.child(path, "dnsConfig"), "nameservers"),
                                   "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    for key in ("activeDeadlineSeconds",):
        v = spec.get(key)
        if isinstance(v, int) and v <= 0:
            errs.append(field.invalid(field.child(path, key), v, "must be between 1 and 2147483647, inclusive"))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        errs.append(field.invalid(field.child(path, "terminationGracePeriodSeconds"), grace,
                                  "must be greater than or equal to 0"))
    sa = spec.get("serviceAccountName")
    if sa:
        errs += [field.invalid(field.child(path, "serviceAccountName"), sa, e) for e in names.dns1123_subdomain(sa)]
    node = spec.get("nodeName")
    if node:
        errs += [field.invalid(field.child(path, "nodeName"), node, e) for e in names.dns1123_subdomain(node)]
    host = spec.get("hostname")
    if host:
        errs += [field.invalid(field.child(path, "hostname"), host, e) for e in names.dns1123_label(host)]
    errs += validate_labels(spec.get("nodeSelector"), field.child(path, "nodeSelector"))
    if spec.get("shareProcessNamespace") is True and spec.get("hostPID") is True:
        errs.append(field.invalid(field.child(path, "shareProcessNamespace"), True,
                                  "ShareProcessNamespace and HostPID cannot both be enabled"))
    sysctls = _list(_dict(spec.get("securityContext")).get("sysctls"))
    return errs + _validate_sysctls(sysctls, field.child(field.child(path, "securityContext"), "sysctls"))


_SYSCTL_SEGMENT = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
SYSCTL_PATTERN = f"^({_SYSCTL_SEGMENT}[\\./])*{_SYSCTL_SEGMENT}$"
_SYSCTL_RE = re.compile(SYSCTL_PATTERN)


def _validate_sysctls(sysctls: list, path: str) -> list[Cause]:
    errs: list[Cause] = []
    seen: set[str] = set()
    for i, item in enumerate(sysctls):
        npath = field.child(field.index(path, i), "name")
        name = _dict(item).get("name") or ""
        if not name:
            errs.append(field.required(npath))
        elif len(name) > 253 or not _SYSCTL_RE.match(name):
            errs.append(field.invalid(npath, name, f"must have at most 253 characters and match regex {SYSCTL_PATTERN}"))
        elif name in seen:
            errs.append(field.duplicate(npath, name))
        seen.add(name)
    return errs


def _validate_volumes(volumes: list, path: str) -> tuple[set[str], list[Cause]]:
    errs: list[Cause] = []
    seen: set[str] = set()
    for i, vol in enumerate(volumes):
        p = field.index(path, i)
        name = _dict(vol).get("name") or ""
        if not name:
            errs.append(field.required(field.child(p, "name")))
        else:
            errs += [field.invalid(field.child(p, "name"), name, e) for e in names.dns1123_label(name)]
            if name in seen:
                errs.append(field.duplicate(field.child(p, "name"), name))
            seen.add(name)
        sources = [k for k in _dict(vol) if k != "name"]
        if len(sources) > 1:
            errs.append(field.forbidden(field.child(p, sources[1]), "may not specify more than 1 volume type"))
    return seen, errs


def _validate_container(c: Any, path: str, seen: set[str], volumes: set[str]) -> list[Cause]:
    if not isinstance(c, dict):
        return [field.required(path)]
    errs: list[Cause] = []
    name = c.get("name") or ""
    npath = field.child(path, "name")
    if not name:
        errs.append(field.required(npath))
    else:
        errs += [field.invalid(npath, name, e) for e in names.dns1123_label(name)]
        if name in seen:
            errs.append(field.duplicate(npath, name))
        seen.add(name)
    if not c.get("image"):
        errs.append(field.required(field.child(path, "image")))
    pull = c.get("imagePullPolicy")
    if pull and pull not in PULL_POLICIES:
        errs.append(field.not_supported(field.child(path, "imagePullPolicy"), pull, PULL_POLICIES))
    tmp = c.get("terminationMessagePolicy")
    if tmp and tmp not in TERMINATION_MESSAGE_POLICIES:
        errs.append(field.not_supported(field.child(path, "terminationMessagePolicy"), tmp,
                                        TERMINATION_MESSAGE_POLICIES))
    errs += _validate_ports(_list(c.get("ports")), field.child(path, "ports"))
    errs += _validate_env(_list(c.get("env")), field.child(path, "env"))
    errs += _validate_mounts(_list(c.get("volumeMounts")), field.child(path, "volumeMounts"), volumes)
    errs += validate_resources(_dict(c.get("resources")), field.child(path, "resources"))
    return errs


# What a debugging container may not have: it gets no resources, ports, probes or hooks.
EPHEMERAL_FORBIDDEN = ("lifecycle", "livenessProbe", "ports", "readinessProbe", "resizePolicy", "resources",
                       "restartPolicy", "startupProbe")


def _validate_ephemeral(c: dict, path: str, targets: set[str]) -> list[Cause]:
    errs = [field.forbidden(field.child(path, key), "cannot be set for an Ephemeral Container")
            for key in EPHEMERAL_FORBIDDEN if c.get(key)]
    target = c.get("targetContainerName")
    if target and target not in targets:
        errs.append(field.not_found(field.child(path, "targetContainerName"), target))
    return errs


def _validate_ports(ports: list, path: str) -> list[Cause]:
    errs: list[Cause] = []
    names_seen: set[str] = set()
    for i, port in enumerate(ports):
        p = field.index(path, i)
        port = _dict(port)
        pname = port.get("name")
        if pname:
            errs += [field.invalid(field.child(p, "name"), pname, e) for e in names.port_name(pname)]
            if pname in names_seen:
                errs.append(field.duplicate(field.child(p, "name"), pname))
            names_seen.add(pname)
        cport = port.get("containerPort")
        if cport is None or cport == 0:
            errs.append(field.required(field.child(p, "containerPort")))
        elif isinstance(cport, int):
            errs += [field.invalid(field.child(p, "containerPort"), cport, e) for e in names.port_number(cport)]
        hport = port.get("hostPort")
        if isinstance(hport, int) and hport != 0:
            errs += [field.invalid(field.child(p, "hostPort"), hport, e) for e in names.port_number(hport)]
        proto = port.get("protocol")
        if proto is not None and proto not in PROTOCOLS:
            errs.append(field.not_supported(field.child(p, "protocol"), proto, PROTOCOLS))
    return errs


def _validate_env(env: list, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, var in enumerate(env):
        p = field.index(path, i)
        name = _dict(var).get("name") or ""
        if not name:
            errs.append(field.required(field.child(p, "name")))
        else:
            errs += [field.invalid(field.child(p, "name"), name, e) for e in names.env_var_name(name)]
        if _dict(var).get("value") and _dict(var).get("valueFrom"):
            errs.append(field.invalid(field.child(p, "valueFrom"), "",
                                      "may not be specified when `value` is not empty"))
    return errs


def _validate_mounts(mounts: list, path: str, volumes: set[str]) -> list[Cause]:
    errs: list[Cause] = []
    paths: set[str] = set()
    for i, m in enumerate(mounts):
        p = field.index(path, i)
        m = _dict(m)
        name = m.get("name") or ""
        if not name:
            errs.append(field.required(field.child(p, "name")))
        elif name not in volumes:
            errs.append(field.not_found(field.child(p, "name"), name))
        mount_path = m.get("mountPath") or ""
        if not mount_path:
            errs.append(field.required(field.child(p, "mountPath")))
        elif mount_path in paths:
            errs.append(field.invalid(field.child(p, "mountPath"), mount_path, "must be unique"))
        paths.add(mount_path)
    return errs


def validate_resources(res: dict, path: str) -> list[Cause]:
    errs: list[Cause] = []
    limits, requests = _dict(res.get("limits")), _dict(res.get("requests"))
    parsed: dict[str, dict] = {"limits": {}, "requests": {}}
    for part, values in (("limits", limits), ("requests", requests)):
        for name, raw in values.items():
            p = field.key(field.child(path, part), name)
            q = parse_quantity(raw)
            if q is None:
                errs.append(field.invalid(p, raw, QUANTITY_FORMAT_ERROR))
            elif q < 0:
                errs.append(field.invalid(p, raw, "must be greater than or equal to 0"))
            else:
                parsed[part][name] = q
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        if lim is not None and req > lim:
            errs.append(field.invalid(field.key(field.child(path, "requests"), name), str(requests[name]),
                                      f"must be less than or equal to {name} limit of {limits[name]}"))
    return errs
