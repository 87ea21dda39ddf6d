"""Ingress objects -> one routing model (pure logic, no I/O).

The model is what both data paths (nginx config, in-process proxy) serve: virtual
servers per host, each with its locations, the upstream endpoints per service port,
and the TLS certificate per host. Precedence follows upstream: an exact host beats a
wildcard, the longest path wins, Exact beats Prefix at equal length, and on a clash
the oldest Ingress wins (ingress-nginx does the same).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

CLASS_NAME = "sampan"
CONTROLLER_NAME = "sampan.io/ingress-controller"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CATCH_ALL = "_"


@dataclass(frozen=True)
class Location:
    path: str  # normalised: Prefix paths carry no trailing slash (except "/")
    exact: bool
    upstream: str  # key into Model.upstreams; "" = no such backend (503)


@dataclass
class Server:
    host: str  # exact name, "*.suffix", or CATCH_ALL
    locations: list[Location] = field(default_factory=list)
    tls_secret: str | None = None  # "namespace/name" of the certificate to present

    def match(self, path: str) -> Location | None:
        """The location upstream rules pick for a request path (locations are pre-sorted)."""
        for loc in self.locations:
            if loc.exact:
                if path == loc.path:
                    return loc
            elif prefix_matches(loc.path, path):
                return loc
        return None


@dataclass
class Model:
    servers: dict[str, Server] = field(default_factory=dict)
    upstreams: dict[str, list[str]] = field(default_factory=dict)  # key -> ["ip:port", ...]
    default_upstream: str | None = None  # spec.defaultBackend; None = 404
    certificates: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # secret key -> (cert, key)

    def server_for(self, host: str) -> Server:
        """Exact host first, then a one-label wildcard, else the catch-all server."""
        host = host.lower().rstrip(".")
        server = self.servers.get(host)
        if server is not None:
            return server
        _, dot, rest = host.partition(".")
        if dot:
            server = self.servers.get(f"*.{rest}")
            if server is not None:
                return server
        return self.servers[CATCH_ALL]

    def route(self, host: str, path: str) -> str | None:
        """The upstream for a request: a key, "" (backend without endpoints), or None (404)."""
        loc = self.server_for(host).match(path)
        if loc is not None:
            return loc.upstream
        return self.default_upstream


def prefix_matches(prefix: str, path: str) -> bool:
    """Element-wise prefix match: /foo matches /foo and /foo/bar, not /foobar."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


def normalise_prefix(path: str) -> str:
    stripped = path.rstrip("/")
    return stripped or "/"


def ingress_class_of(ingress: Obj) -> str | None:
    spec = ingress.get("spec") or {}
    cls = spec.get("ingressClassName")
    if cls:
        return str(cls)
    legacy = ((ingress.get("metadata") or {}).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
    return str(legacy) if legacy else None


def is_default_class(ingress_class: Obj) -> bool:
    annotations = (ingress_class.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"


def ours(ingress: Obj, classes: Iterable[Obj], class_name: str = CLASS_NAME) -> bool:
    """Is this Ingress for our class: named explicitly, or classless while ours is the default."""
    cls = ingress_class_of(ingress)
    if cls is not None:
        return cls == class_name
    defaults = [c for c in classes if is_default_class(c)]
    return any((c.get("metadata") or {}).get("name") == class_name for c in defaults)


def _sort_key(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Resolver:
    """Looks up Services, EndpointSlices and Secrets; filled from informer caches."""

    def __init__(self, services: dict[str, Obj], slices: Iterable[Obj], secrets: dict[str, Obj]) -> None:
        self.services = services
        self.secrets = secrets
        self.slices: dict[str, list[Obj]] = {}
        for s in slices:
            meta = s.get("metadata") or {}
            svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if svc:
                self.slices.setdefault(f"{meta.get('namespace')}/{svc}", []).append(s)

    def endpoints(self, namespace: str, backend: Obj) -> tuple[str, list[str]] | None:
        """(upstream key, ["ip:port"...]) for an Ingress backend; None when it is not a service."""
        service = backend.get("service")
        if not isinstance(service, dict) or not service.get("name"):
            return None
        name = str(service["name"])
        port = service.get("port") or {}
        number, port_name = port.get("number"), port.get("name")
        svc = self.services.get(f"{namespace}/{name}")
        key = f"{namespace}-{name}-{number if number else port_name}"
        if svc is None:
            return key, []
        svc_port = None
        for p in (svc.get("spec") or {}).get("ports") or []:
            if (number and p.get("port") == number) or (port_name and p.get("name") == port_name):
                svc_port = p
                break
        if svc_port is None:
            return key, []
        wanted = svc_port.get("name") or ""
        addrs: list[str] = []
        for s in self.slices.get(f"{namespace}/{name}", []):
            target = next((p.get("port") for p in s.get("ports") or [] if (p.get("name") or "") == wanted), None)
            if not target:
                continue
            for ep in s.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                for ip in ep.get("addresses") or []:
                    addrs.append(f"[{ip}]:{target}" if ":" in ip else f"{ip}:{target}")
        return key, sorted(set(addrs))

    def certificate(self, namespace: str, secret_name: str) -> tuple[str, bytes, bytes] | None:
        key = f"{namespace}/{secret_name}"
        secret = self.secrets.get(key)
        if secret is None:
            return None
        data = secret.get("data") or {}
        try:
            crt = base64.b64decode(data.get("tls.crt") or "")
            pem = base64.b64decode(data.get("tls.key") or "")
        except ValueError:
            return None
        if not crt or not pem or not valid_pair(crt, pem):
            return None
        return key, crt, pem


@functools.lru_cache(maxsize=1024)
def valid_pair(crt: bytes, pem: bytes) -> bool:
    """A broken Secret must not break the whole config (nginx -t would reject it all)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(crt)
        key = serialization.load_pem_private_key(pem, None)
    except (ValueError, TypeError):
        return False
    return cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def build_model(ingresses: Iterable[Obj], resolver: Resolver) -> Model:
    """Merge every Ingress of our class into one routing model, oldest first."""
    model = Model()
    model.servers[CATCH_ALL] = Server(CATCH_ALL)
    seen: dict[str, set[tuple[str, bool]]] = {CATCH_ALL: set()}

    def upstream(namespace: str, backend: Any) -> str:
        if not isinstance(backend, dict):
            return ""
        resolved = resolver.endpoints(namespace, backend)
        if resolved is None:
            return ""
        key, addrs = resolved
        model.upstreams[key] = addrs
        return key if addrs else ""

    for ing in sorted(ingresses, key=_sort_key):
        namespace = str((ing.get("metadata") or {}).get("namespace") or "default")
        spec = ing.get("spec") or {}
        if spec.get("defaultBackend") and model.default_upstream is None:
            model.default_upstream = upstream(namespace, spec["defaultBackend"])
        for tls in spec.get("tls") or []:
            cert = resolver.certificate(namespace, str(tls.get("secretName") or ""))
            if cert is None:
                continue
            key, crt, pem = cert
            model.certificates[key] = (crt, pem)
            for host in tls.get("hosts") or []:
                server = model.servers.setdefault(host.lower(), Server(host.lower()))
                seen.setdefault(server.host, set())
                if server.tls_secret is None:
                    server.tls_secret = key
        for rule in spec.get("rules") or []:
            host = str(rule.get("host") or "").lower() or CATCH_ALL
            server = model.servers.setdefault(host, Server(host))
            taken = seen.setdefault(host, set())
            for p in (rule.get("http") or {}).get("paths") or []:
                path = str(p.get("path") or "/")
                exact = p.get("pathType") == "Exact"
                if not exact:
                    path = normalise_prefix(path)
                if (path, exact) in taken:
                    continue  # an older Ingress already claimed it
                taken.add((path, exact))
                server.locations.append(Location(path, exact, upstream(namespace, p.get("backend"))))
    for server in model.servers.values():
        # Longest path first; at equal length Exact before Prefix.
        server.locations.sort(key=lambda loc: (-len(loc.path), not loc.exact))
    return model
