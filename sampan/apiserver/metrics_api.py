"""metrics.k8s.io/v1beta1 (NodeMetrics, PodMetrics), served like metrics-server from the node
agents' latest usage samples (sampan/node/metrics.py). Nothing is stored: every read joins the
agents' snapshots with the Node and Pod objects (for names, labels and selectors)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from sampan.api import errors
from sampan.apiserver import negotiation as neg
from sampan.apiserver.handlers.read import render, table_for
from sampan.apiserver.routes import ResourceRequest
from sampan.registry.registry import Registry
from sampan.registry.options import ListOptions

Obj = dict[str, Any]
GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"


def cpu_quantity(nanocores: int) -> str:
    return f"{max(0, int(nanocores))}n"


def memory_quantity(num_bytes: int) -> str:
    # Like resource.NewQuantity(bytes, BinarySI): Ki when it divides evenly, plain bytes otherwise.
    num_bytes = max(0, int(num_bytes))
    return f"{num_bytes // 1024}Ki" if num_bytes % 1024 == 0 else str(num_bytes)


def _time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(seconds: float) -> str:
    text = f"{max(0.0, seconds):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _usage(sample: Obj) -> Obj:
    return {"cpu": cpu_quantity(sample.get("cpu", 0)), "memory": memory_quantity(sample.get("memory", 0))}


def _meta(obj: Obj, now: str) -> Obj:
    m = obj.get("metadata") or {}
    meta: Obj = {"name": m.get("name", ""), "creationTimestamp": now}
    if "namespace" in m:
        meta["namespace"] = m["namespace"]
    if m.get("labels"):
        meta["labels"] = dict(m["labels"])
    return meta


def node_metrics(node: Obj, sample: Obj, now: str) -> Obj:
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION, "metadata": _meta(node, now),
            "timestamp": _time(sample.get("timestamp", 0)), "window": _window(sample.get("window", 0)),
            "usage": _usage(sample)}


def pod_metrics(pod: Obj, sample: Obj, now: str) -> Obj:
    containers = [{"name": c.get("name", ""), "usage": _usage(c)} for c in sample.get("containers") or []]
    return {"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": _meta(pod, now),
            "timestamp": _time(sample.get("timestamp", 0)), "window": _window(sample.get("window", 0)),
            "containers": containers}


async def _samples(request: web.Request) -> tuple[dict[str, Obj], dict[str, Obj]]:
    """Latest node samples by node name and pod samples by uid."""
    from sampan.apiserver import keys

    source = request.app.get(keys.STREAM_BACKEND)
    snapshots: list[Obj] = []
    if source is not None and hasattr(source, "resource_metrics"):
        snapshots = await source.resource_metrics()
    nodes: dict[str, Obj] = {}
    pods: dict[str, Obj] = {}
    for snap in snapshots:
        node = snap.get("node")
        if node and node.get("name"):
            nodes[node["name"]] = node
        for p in snap.get("pods") or []:
            if p.get("uid"):
                pods[p["uid"]] = p
    return nodes, pods


async def serve(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    """GET of one NodeMetrics/PodMetrics or a list of them (label and field selectors apply)."""
    if rr.verb not in ("get", "list") or rr.subresource:
        raise errors.method_not_supported(rr.gr, rr.verb)
    node_samples, pod_samples = await _samples(request)
    now = _time(dt.datetime.now(dt.timezone.utc).timestamp())
    is_pods = rr.info.plural == "pods"
    objects = registry.must("", "v1", "pods" if is_pods else "nodes")
    if rr.verb == "get":
        obj = await objects.get(rr.namespace, rr.name)  # NotFound of the pod/node itself
        sample = pod_samples.get(obj["metadata"].get("uid", "")) if is_pods else node_samples.get(rr.name)
        if sample is None:
            raise errors.not_found(rr.gr, rr.name)
        return render(request, rr, pod_metrics(obj, sample, now) if is_pods else node_metrics(obj, sample, now))
    q = request.query
    listed = await objects.list(rr.namespace, ListOptions(label_selector=q.get("labelSelector", ""),
                                                          field_selector=q.get("fieldSelector", "")))
    items = []
    for obj in listed["items"]:
        if is_pods:
            sample = pod_samples.get(obj["metadata"].get("uid", ""))
            if sample is not None:
                items.append(pod_metrics(obj, sample, now))
        else:
            sample = node_samples.get(obj["metadata"].get("name", ""))
            if sample is not None:
                items.append(node_metrics(obj, sample, now))
    out = neg.negotiate(request, for_list=True)
    if out.shape == "Table":
        table = table_for(rr, items, "Metadata", out.version)
        table["metadata"] = {}
        return neg.respond(table, 200, out)
    body = {"kind": rr.info.list_kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}
    return neg.respond(body, 200, out)
