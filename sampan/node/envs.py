"""A container's environment and command line as the kubelet computes them: service links,
``env``/``envFrom`` with every ``valueFrom`` source, ``$(VAR)`` expansion, and the image's
entrypoint/cmd combined with the pod's command/args."""

from __future__ import annotations

import base64
import math
import re
from typing import Any, Protocol

from sampan.api.quantity import parse_quantity

Obj = dict[str, Any]

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(Exception):
    """A required reference is missing (the kubelet reports CreateContainerConfigError)."""


class ObjectSource(Protocol):
    """ConfigMaps and Secrets by name (from the server, or the agent's local copy offline)."""

    async def get_object(self, kind: str, namespace: str, name: str) -> Obj | None: ...


def expand(text: str, env: dict[str, str]) -> str:
    """``$(VAR)`` becomes VAR's value when defined (kept as is otherwise); ``$$`` is a ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def _service_env(services: list[Obj]) -> dict[str, str]:
    """Docker-link style variables for each service with a cluster IP (enableServiceLinks)."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        first = ports[0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first.get("port"))
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port.get("port"))
        proto = (first.get("protocol") or "TCP").lower()
        env[f"{prefix}_PORT"] = f"{proto}://{ip}:{first.get('port')}"
        for port in ports:
            p = (port.get("protocol") or "TCP")
            base = f"{prefix}_PORT_{port.get('port')}_{p.upper()}"
            env[base] = f"{p.lower()}://{ip}:{port.get('port')}"
            env[f"{base}_PROTO"] = p.lower()
            env[f"{base}_PORT"] = str(port.get("port"))
            env[f"{base}_ADDR"] = ip
    return env


def service_env(pod: Obj, services: list[Obj]) -> dict[str, str]:
    """The variables for ``pod``: its namespace's services (if enableServiceLinks) and always
    the ``kubernetes`` service of ``default`` (KUBERNETES_SERVICE_HOST/PORT)."""
    ns = pod["metadata"].get("namespace", "default")
    links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
    chosen = [s for s in services if links and s["metadata"].get("namespace") == ns]
    master = [s for s in services if s["metadata"].get("namespace") == "default"
              and s["metadata"].get("name") == "kubernetes"]
    # Services of the pod's namespace come first; the master service wins for its own names.
    return {**_service_env(chosen), **_service_env(master)}


def field_value(pod: Obj, path: str) -> str:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"), "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
        "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or []),
    }
    if path == "metadata.labels" or path == "metadata.annotations":
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    if path not in simple:
        raise EnvError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def resource_value(container: Obj, ref: Obj, node_allocatable: dict[str, str]) -> str:
    """requests/limits of a container in units of ``divisor`` (rounded up, like the kubelet);
    unset limits report the node's allocatable."""
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    values = ((container.get("resources") or {}).get(kind) or {})
    raw = values.get(name)
    if raw is None and kind == "limits":
        raw = node_allocatable.get(name)
    if raw is None and kind == "requests":
        raw = ((container.get("resources") or {}).get("limits") or {}).get(name, "0")
    divisor = parse_quantity(ref.get("divisor") or "1").amount or 1
    amount = parse_quantity(raw or "0").amount
    return str(math.ceil(amount / divisor))


async def container_env(
    pod: Obj, container: Obj, source: ObjectSource, services: list[Obj],
    node_allocatable: dict[str, str] | None = None, image_env: list[str] | None = None,
) -> dict[str, str]:
    """The final environment, in the kubelet's order: image env, service links, envFrom, env."""
    ns = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for item in image_env or []:
        key, _, value = item.partition("=")
        env[key] = value
    env.update(service_env(pod, services))
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = src.get(field)
            if not ref:
                continue
            obj = await source.get_object(kind, ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind.lower()} "{ref.get("name")}" not found')
            for key, value in _data(obj).items():
                env[prefix + key] = value
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        value = await _value_from(pod, container, var["valueFrom"], source, ns, node_allocatable or {})
        if value is not None:
            env[name] = value
    return env


def _data(obj: Obj) -> dict[str, str]:
    if obj.get("kind") == "Secret":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


async def _value_from(
    pod: Obj, container: Obj, vf: Obj, source: ObjectSource, ns: str, alloc: dict[str, str]
) -> str | None:
    if "fieldRef" in vf:
        return field_value(pod, vf["fieldRef"].get("fieldPath", ""))
    if "resourceFieldRef" in vf:
        ref = vf["resourceFieldRef"]
        target = container
        if ref.get("containerName"):
            all_ = (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or [])
            target = next((c for c in all_ if c.get("name") == ref["containerName"]), container)
        return resource_value(target, ref, alloc)
    for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
        ref = vf.get(field)
        if not ref:
            continue
        obj = await source.get_object(kind, ns, ref.get("name", ""))
        data = _data(obj) if obj is not None else None
        if data is None or ref.get("key") not in data:
            if ref.get("optional"):
                return None
            what = f'{kind.lower()} "{ref.get("name")}"'
            raise EnvError(f"{what} not found" if data is None else f"couldn't find key {ref.get('key')} in {kind} {ns}/{ref.get('name')}")
        return data[ref["key"]]
    return None


def container_args(container: Obj, entrypoint: list[str], cmd: list[str], env: dict[str, str]) -> list[str]:
    """Docker's rules: command replaces the entrypoint (and drops the image cmd); args replace cmd."""
    command = container.get("command")
    args = container.get("args")
    if command:
        out = list(command) + list(args or [])
    elif args is not None:
        out = list(entrypoint) + list(args)
    else:
        out = list(entrypoint) + list(cmd)
    return [expand(a, env) for a in out]


def hosts_file(pod: Obj, ip: str, hostname: str) -> str:
    """/etc/hosts as the kubelet writes it (plus spec.hostAliases)."""
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    spec = pod.get("spec") or {}
    if ip:
        fqdn = hostname
        if spec.get("subdomain"):
            fqdn = f"{hostname}.{spec['subdomain']}.{pod['metadata'].get('namespace')}.svc.cluster.local\t{hostname}"
        lines.append(f"{ip}\t{fqdn}")
    for alias in spec.get("hostAliases") or []:
        lines.append(f"\n# Entries added by HostAliases.\n{alias.get('ip')}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"


def resolv_conf(pod: Obj, nameserver: str | None, cluster_domain: str = "cluster.local") -> str:
    """resolv.conf for dnsPolicy ClusterFirst (with a cluster DNS), None/Default and dnsConfig."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy", "ClusterFirst")
    if spec.get("hostNetwork") and policy == "ClusterFirst":
        policy = "Default"
    ns = pod["metadata"].get("namespace", "default")
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and nameserver:
        servers = [nameserver]
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        options = ["ndots:5"]
    elif policy != "None":
        return ""  # the host's resolv.conf
    cfg = spec.get("dnsConfig") or {}
    servers += cfg.get("nameservers") or []
    searches += cfg.get("searches") or []
    for opt in cfg.get("options") or []:
        options.append(f"{opt['name']}:{opt['value']}" if opt.get("value") else opt.get("name", ""))
    lines = [f"search {' '.join(searches)}"] if searches else []
    lines += [f"nameserver {s}" for s in servers]
    if options:
        lines.append(f"options {' '.join(options)}")
    return "\n".join(lines) + "\n"
