"""A Service without a selector whose Endpoints and EndpointSlice its owner writes itself
(the ``kubernetes`` Service, ``kube-dns``): the two endpoint objects, and create-or-repair
through any Client. The Endpoints carry skip-mirror and the slice its own labels, so the
endpoints controllers leave both alone."""

from __future__ import annotations

import ipaddress
from typing import Any

from sampan.client.interface import Client, ResourceRef, is_not_found

Obj = dict[str, Any]


def endpoints_for(name: str, namespace: str, labels: dict[str, str], ip: str, ports: list[Obj]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels, "endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": ip}], "ports": ports}],
    }


def endpoint_slice_for(
    name: str, namespace: str, labels: dict[str, str], ip: str, ports: list[Obj], conditions: dict[str, bool]
) -> Obj:
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": {"kubernetes.io/service-name": name, **labels}},
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": conditions}],
        "ports": ports,
    }


async def get_or_none(client: Client, ref: ResourceRef, name: str, namespace: str) -> Obj | None:
    try:
        return await client.get(ref, name, namespace)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def contained(want: Any, live: Any) -> bool:
    """``want`` is contained in ``live`` (server defaults on top are fine)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(contained(v, live.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(want) == len(live) and all(contained(w, x) for w, x in zip(want, live))
    return bool(want == live)


def _at(obj: Obj, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


async def ensure_object(client: Client, ref: ResourceRef, want: Obj, fields: tuple[str, ...]) -> Obj:
    """Creates ``want``, or puts back its ``fields`` (dotted paths; dicts merged over the live
    ones) and its labels where the live object lost them; returns the live object. Fields not
    named (a Service's immutable clusterIP, say) are left as they are."""
    meta = want["metadata"]
    live = await get_or_none(client, ref, meta["name"], meta["namespace"])
    if live is None:
        return await client.create(ref, want, meta["namespace"])
    labels = meta.get("labels") or {}
    if all(contained(_at(want, f), _at(live, f)) for f in fields) and contained(labels, live["metadata"].get("labels") or {}):
        return live
    for f in fields:
        *parents, last = f.split(".")
        into = live
        for part in parents:
            if not isinstance(into.get(part), dict):
                into[part] = {}
            into = into[part]
        value = _at(want, f)
        into[last] = {**(into.get(last) or {}), **value} if isinstance(value, dict) else value
    live["metadata"]["labels"] = {**(live["metadata"].get("labels") or {}), **labels}
    return await client.update(ref, live)
