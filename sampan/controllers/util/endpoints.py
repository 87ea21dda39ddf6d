"""What the Endpoints and EndpointSlice controllers share: which pods a Service selects,
which of them are published, their ports (named targetPorts resolved) and the trigger time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sampan.client.informer import Informer
from sampan.client.interface import object_key
from sampan.controllers.util.conditions import parse_time, rfc3339
from sampan.controllers.util.pods import phase, ready_condition

Obj = dict[str, Any]

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def selector(svc: Obj) -> dict[str, str]:
    sel = (svc.get("spec") or {}).get("selector")
    return sel if isinstance(sel, dict) else {}


def selects(svc: Obj, pod: Obj) -> bool:
    sel = selector(svc)
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


def selected_pods(svc: Obj, pods: Informer) -> list[Obj]:
    ns = svc["metadata"].get("namespace")
    return [p for p in pods.list(ns) if selects(svc, p)]


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    return str(status.get("podIP") or next((i.get("ip") for i in status.get("podIPs") or [] if i.get("ip")), "") or "")


def should_publish(pod: Obj, include_terminating: bool) -> bool:
    """Upstream's ShouldPodBeInEndpoints: has an IP, still running, not being deleted
    (unless terminating pods are wanted)."""
    if phase(pod) in ("Succeeded", "Failed") or not pod_ip(pod):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def target_ref(pod: Obj) -> Obj:
    m = pod["metadata"]
    return {"kind": "Pod", "namespace": m.get("namespace", ""), "name": m["name"], "uid": m.get("uid", "")}


def hostname(svc: Obj, pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        return str(spec["hostname"])
    return None


def resolve_port(pod: Obj, port: Obj) -> int | None:
    """The container port a Service port's targetPort names (or its number)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == target and cp.get("protocol", "TCP") == protocol:
                return int(cp["containerPort"])
    return None


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    out = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        number = resolve_port(pod, port)
        if number is None:
            continue  # the pod does not expose this port
        ep: Obj = {"name": port.get("name", ""), "port": number, "protocol": port.get("protocol", "TCP")}
        if port.get("appProtocol"):
            ep["appProtocol"] = port["appProtocol"]
        out.append(ep)
    return out


def trigger_time(svc: Obj, pods: list[Obj]) -> str:
    """The latest change among the Service and its pods (upstream tracks event times; the
    objects' own timestamps give the same answer once the change is stored)."""
    times = [parse_time((svc.get("metadata") or {}).get("creationTimestamp"))]
    for pod in pods:
        cond = ready_condition(pod)
        times.append(parse_time((cond or {}).get("lastTransitionTime")))
        times.append(parse_time((pod.get("metadata") or {}).get("creationTimestamp")))
        times.append(parse_time((pod.get("metadata") or {}).get("deletionTimestamp")))
    known = [t for t in times if t is not None]
    return rfc3339(max(known)) if known else ""


def service_labels(svc: Obj) -> dict[str, str]:
    labels = dict((svc.get("metadata") or {}).get("labels") or {})
    if (svc.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def watch_pods_for_services(
    pods: Informer, services: Informer, enqueue: Callable[[str], None]
) -> None:
    """Pod changes enqueue every Service (of the pod's namespace) that selects the old or new pod."""

    def on_pod(*objs: Obj) -> None:
        keys: set[str] = set()
        for pod in objs:
            for svc in services.list((pod.get("metadata") or {}).get("namespace")):
                if selects(svc, pod):
                    keys.add(object_key(svc))
        for key in keys:
            enqueue(key)

    pods.add_handler(on_add=on_pod, on_update=on_pod, on_delete=on_pod)

