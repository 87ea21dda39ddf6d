"""Semantic checks for apps/v1, batch/v1 and networking.k8s.io/v1 kinds."""

from __future__ import annotations

import re
from typing import Any

from sampan.api.validation import field, names
from sampan.api.validation.cron import schedule_error
from sampan.api.validation.field import Cause
from sampan.api.validation.meta import validate_labels
from sampan.api.validation.pods import validate_pod_template

_PERCENT = re.compile(r"^[0-9]+%$")
SELECTOR_OPS = ["In", "NotIn", "Exists", "DoesNotExist"]


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _nonneg(spec: dict, key: str, path: str) -> list[Cause]:
    value = spec.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [field.invalid(field.child(path, key), value, "must be greater than or equal to 0")]
    return []


def selector_matches(selector: dict, labels: dict) -> bool:
    for k, v in _dict(selector.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def validate_label_selector(selector: dict, path: str) -> list[Cause]:
    errs = validate_labels(selector.get("matchLabels"), field.child(path, "matchLabels"))
    for i, req in enumerate(selector.get("matchExpressions") or []):
        p = field.index(field.child(path, "matchExpressions"), i)
        req = _dict(req)
        op = req.get("operator")
        if op not in SELECTOR_OPS:
            errs.append(field.invalid(field.child(p, "operator"), op, "not a valid selector operator"))
        elif op in ("In", "NotIn") and not req.get("values"):
            errs.append(field.required(field.child(p, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and req.get("values"):
            errs.append(field.forbidden(field.child(p, "values"),
                                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        key = req.get("key") or ""
        errs += [field.invalid(field.child(p, "key"), key, e) for e in names.qualified_name(key)]
    return errs


def _selector_and_template(spec: dict, what: str, restart: list[str] | None) -> list[Cause]:
    """Selector required, non-empty, valid and matching the template labels."""
    errs: list[Cause] = []
    selector = spec.get("selector")
    template = spec.get("template")
    labels = _dict(_dict(_dict(template).get("metadata")).get("labels"))
    if not isinstance(selector, dict):
        errs.append(field.required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errs.append(field.invalid("spec.selector", selector, f"empty selector is invalid for {what}"))
    else:
        errs += validate_label_selector(selector, "spec.selector")
        if template is not None and not selector_matches(selector, labels):
            errs.append(field.invalid("spec.template.metadata.labels", labels,
                                      "`selector` does not match template `labels`"))
    if template is None:
        return errs + [field.required("spec.template")]
    errs += validate_pod_template(template, "spec.template")
    policy = _dict(_dict(template).get("spec")).get("restartPolicy")
    if restart and policy and policy not in restart:
        errs.append(field.not_supported("spec.template.spec.restartPolicy", policy, restart))
    return errs


def _int_or_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, int):
        return [field.invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [field.invalid(path, value, names.regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%", "1%", "93%"))]
        if int(value[:-1]) > 100:
            return [field.invalid(path, value, "must not be greater than 100%")]
    return []


def _is_zero(value: Any) -> bool:
    return value in (0, "0%")


def _rolling(ru: dict, path: str, zero_msg: str) -> list[Cause]:
    errs = _int_or_percent(ru.get("maxUnavailable"), field.child(path, "maxUnavailable"))
    errs += _int_or_percent(ru.get("maxSurge"), field.child(path, "maxSurge"))
    if "maxUnavailable" in ru and _is_zero(ru.get("maxUnavailable")) and _is_zero(ru.get("maxSurge", 0)):
        errs.append(field.invalid(field.child(path, "maxUnavailable"), ru["maxUnavailable"], zero_msg))
    return errs


def validate_deployment(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    for key in ("replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        errs += _nonneg(spec, key, "spec")
    errs += _selector_and_template(spec, "deployment", ["Always"])
    strategy = _dict(spec.get("strategy"))
    stype = strategy.get("type")
    if stype is not None and stype not in ("Recreate", "RollingUpdate"):
        errs.append(field.not_supported("spec.strategy.type", stype, ["Recreate", "RollingUpdate"]))
    if stype == "Recreate" and strategy.get("rollingUpdate") is not None:
        errs.append(field.forbidden("spec.strategy.rollingUpdate",
                                    "may not be specified when strategy `type` is 'Recreate'"))
    if isinstance(strategy.get("rollingUpdate"), dict):
        errs += _rolling(strategy["rollingUpdate"], "spec.strategy.rollingUpdate", "may not be 0 when `maxSurge` is 0")
    pds, mrs = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(pds, int) and pds >= 0 and pds <= mrs:
        errs.append(field.invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))
    return errs


def validate_replica_set(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs = _nonneg(spec, "replicas", "spec") + _nonneg(spec, "minReadySeconds", "spec")
    return errs + _selector_and_template(spec, "deployment", ["Always"])


def validate_stateful_set(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        errs += _nonneg(spec, key, "spec")
    pmp = spec.get("podManagementPolicy")
    if pmp is not None and pmp not in ("OrderedReady", "Parallel"):
        errs.append(field.invalid("spec.podManagementPolicy", pmp, "must be 'OrderedReady' or 'Parallel'"))
    strategy = _dict(spec.get("updateStrategy"))
    stype = strategy.get("type")
    if stype is not None and stype not in ("RollingUpdate", "OnDelete"):
        errs.append(field.invalid("spec.updateStrategy", strategy, "must be 'RollingUpdate' or 'OnDelete'"))
    if stype == "OnDelete" and strategy.get("rollingUpdate") is not None:
        errs.append(field.invalid("spec.updateStrategy.rollingUpdate", strategy["rollingUpdate"],
                                  "only allowed for updateStrategy 'RollingUpdate'"))
    errs += _nonneg(_dict(strategy.get("rollingUpdate")), "partition", "spec.updateStrategy.rollingUpdate")
    for key in ("whenDeleted", "whenScaled"):
        value = _dict(spec.get("persistentVolumeClaimRetentionPolicy")).get(key)
        if value is not None and value not in ("Retain", "Delete"):
            errs.append(field.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value,
                                            ["Retain", "Delete"]))
    return errs + _selector_and_template(spec, "statefulset", ["Always"])


def validate_daemon_set(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs = _nonneg(spec, "minReadySeconds", "spec") + _nonneg(spec, "revisionHistoryLimit", "spec")
    strategy = _dict(spec.get("updateStrategy"))
    stype = strategy.get("type")
    if stype is not None and stype not in ("OnDelete", "RollingUpdate"):
        errs.append(field.not_supported("spec.updateStrategy.type", stype, ["OnDelete", "RollingUpdate"]))
    if isinstance(strategy.get("rollingUpdate"), dict):
        errs += _rolling(strategy["rollingUpdate"], "spec.updateStrategy.rollingUpdate",
                         "may not be 0 when `maxSurge` is 0")
    return errs + _selector_and_template(spec, "daemonset", ["Always"])


def validate_job_spec(spec: dict, path: str, is_template: bool) -> list[Cause]:
    errs: list[Cause] = []
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        errs += _nonneg(spec, key, path)
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        errs.append(field.not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        errs.append(field.required(f"{path}.completions", "when completion mode is Indexed"))
    template = spec.get("template")
    if template is None:
        return errs + [field.required(f"{path}.template")]
    selector = spec.get("selector")
    if not is_template and spec.get("manualSelector") is True and not isinstance(selector, dict):
        errs.append(field.required(f"{path}.selector"))
    if isinstance(selector, dict):
        errs += validate_label_selector(selector, f"{path}.selector")
        labels = _dict(_dict(_dict(template).get("metadata")).get("labels"))
        if not selector_matches(selector, labels):
            errs.append(field.invalid(f"{path}.template.metadata.labels", labels,
                                      "`selector` does not match template `labels`"))
    errs += validate_pod_template(template, f"{path}.template")
    policy = _dict(_dict(template).get("spec")).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        errs.append(field.not_supported(f"{path}.template.spec.restartPolicy", policy or "", ["OnFailure", "Never"]))
    return errs


def validate_job(obj: dict) -> list[Cause]:
    return validate_job_spec(_dict(obj.get("spec")), "spec", False)


def validate_cron_job(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    name = _dict(obj.get("metadata")).get("name") or ""
    if len(name) > 52:
        errs.append(field.invalid("metadata.name", name, "must be no more than 52 characters"))
    schedule = spec.get("schedule") or ""
    if not schedule:
        errs.append(field.required("spec.schedule"))
    elif "TZ" in schedule:
        errs.append(field.invalid("spec.schedule", schedule,
                                  "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    else:
        problem = schedule_error(schedule)
        if problem:
            errs.append(field.invalid("spec.schedule", schedule, problem))
    policy = spec.get("concurrencyPolicy")
    if policy is not None and policy not in ("Allow", "Forbid", "Replace"):
        errs.append(field.not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs += _nonneg(spec, key, "spec")
    job_template = spec.get("jobTemplate")
    if not isinstance(job_template, dict):
        return errs + [field.required("spec.jobTemplate")]
    return errs + validate_job_spec(_dict(job_template.get("spec")), "spec.jobTemplate.spec", True)


PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]


def _validate_backend(backend: dict, path: str) -> list[Cause]:
    errs: list[Cause] = []
    service, resource = backend.get("service"), backend.get("resource")
    if service and resource:
        return [field.invalid(path, "", "cannot set both resource and service backends")]
    if not service and not resource:
        return [field.invalid(path, "", "resource or service backend is required")]
    if isinstance(service, dict):
        name = service.get("name") or ""
        if not name:
            errs.append(field.required(f"{path}.service.name"))
        else:
            errs += [field.invalid(f"{path}.service.name", name, e) for e in names.dns1035_label(name)]
        port = _dict(service.get("port"))
        if port.get("name") and port.get("number"):
            errs.append(field.invalid(f"{path}.service.port", port, "cannot set both port name & port number"))
        elif port.get("name"):
            errs += [field.invalid(f"{path}.service.port.name", port["name"], e) for e in names.port_name(port["name"])]
        elif isinstance(port.get("number"), int):
            errs += [field.invalid(f"{path}.service.port.number", port["number"], e)
                     for e in names.port_number(port["number"])]
        else:
            errs.append(field.required(f"{path}.service.port", "port name or number is required"))
    return errs


def validate_ingress(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    rules = spec.get("rules") or []
    if not rules and not spec.get("defaultBackend"):
        errs.append(field.invalid("spec.rules", rules, "either `defaultBackend` or `rules` must be specified"))
    if isinstance(spec.get("defaultBackend"), dict):
        errs += _validate_backend(spec["defaultBackend"], "spec.defaultBackend")
    for i, rule in enumerate(rules):
        p = f"spec.rules[{i}]"
        host = _dict(rule).get("host") or ""
        if host:
            check = names.wildcard_dns1123_subdomain if host.startswith("*.") else names.dns1123_subdomain
            errs += [field.invalid(f"{p}.host", host, e) for e in check(host)]
        http = _dict(rule).get("http")
        if http is None:
            continue
        paths = _dict(http).get("paths") or []
        if not paths:
            errs.append(field.required(f"{p}.http.paths"))
        for j, entry in enumerate(paths):
            pp = f"{p}.http.paths[{j}]"
            entry = _dict(entry)
            ptype = entry.get("pathType")
            if not ptype:
                errs.append(field.required(f"{pp}.pathType", "pathType must be specified"))
            elif ptype not in PATH_TYPES:
                errs.append(field.not_supported(f"{pp}.pathType", ptype, PATH_TYPES))
            value = entry.get("path") or ""
            if ptype in ("Exact", "Prefix") and not value.startswith("/"):
                errs.append(field.invalid(f"{pp}.path", value, "must be an absolute path"))
            errs += _validate_backend(_dict(entry.get("backend")), f"{pp}.backend")
    return errs


def validate_network_policy(obj: dict) -> list[Cause]:
    errs: list[Cause] = []
    spec = _dict(obj.get("spec"))
    types = spec.get("policyTypes") or []
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            errs.append(field.not_supported(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"]))
    if len(types) > 2:
        errs.append(field.invalid("spec.policyTypes", types, "may not specify more than two policyTypes"))
    if isinstance(spec.get("podSelector"), dict):
        errs += validate_label_selector(spec["podSelector"], "spec.podSelector")
    return errs
