"""Shared pieces of the per-kind printers: column definitions, the registry, formatters."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sampan.api.quantity import canonical
from sampan.api.selectors import SelectorError, label_selector_from_dict

from .humanize import since

Obj = dict[str, Any]
Cells = list[Any]
# A description is literal text or (definition, property) looked up in the OpenAPI
# definitions the server ships, so the text is the upstream field documentation.
Doc = str | tuple[str, str]
RowFn = Callable[[Obj, datetime], Cells]
ConditionsFn = Callable[[Obj], list[dict[str, str]]]

_DEF_PREFIXES = ("io.k8s.api.", "io.k8s.apimachinery.pkg.apis.", "io.k8s.apiextensions-apiserver.pkg.apis.")


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    format: str = ""
    doc: Doc = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": describe(self.doc),
            "priority": self.priority,
        }


@dataclass
class Printer:
    columns: list[Column]
    row: RowFn
    conditions: ConditionsFn | None = None
    _definitions: list[dict[str, Any]] | None = field(default=None, repr=False)

    def definitions(self) -> list[dict[str, Any]]:
        if self._definitions is None:
            self._definitions = [c.definition() for c in self.columns]
        return [dict(d) for d in self._definitions]


PRINTERS: dict[tuple[str, str], Printer] = {}


def register(group: str, resources: str | tuple[str, ...], columns: list[Column],
             conditions: ConditionsFn | None = None) -> Callable[[RowFn], RowFn]:
    """Registers a row function for one or more resources of a group."""
    names = (resources,) if isinstance(resources, str) else resources

    def wrap(fn: RowFn) -> RowFn:
        for resource in names:
            PRINTERS[(group, resource)] = Printer(columns, fn, conditions)
        return fn

    return wrap


@functools.cache
def describe(doc: Doc) -> str:
    if isinstance(doc, str):
        return doc
    definition, prop = doc
    try:
        from sampan.api.schemas import property_description
    except ImportError:  # descriptions are cosmetic; never fail a table over them
        return ""
    for prefix in _DEF_PREFIXES:
        text = property_description(prefix + definition, prop)
        if text is not None:
            return text
    return ""


META = "meta.v1.ObjectMeta"
NAME = Column("Name", format="name", doc=(META, "name"))
AGE = Column("Age", doc=(META, "creationTimestamp"))
CONTAINERS_WIDE = Column("Containers", doc="Names of each container in the template.", priority=1)
IMAGES_WIDE = Column("Images", doc="Images referenced by each container in the template.", priority=1)


# --- object access ---------------------------------------------------------------------

def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def name(obj: Obj) -> str:
    return meta(obj).get("name") or ""


def age(obj: Obj, now: datetime) -> str:
    return since(meta(obj).get("creationTimestamp"), now)


def deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def dig(obj: Any, *path: str, default: Any = None) -> Any:
    """obj[a][b]... or default when any step is missing or null."""
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
        if obj is None:
            return default
    return obj


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --- formatters ------------------------------------------------------------------------

def format_labels(labels: dict[str, Any] | None) -> str:
    """``k=v,k2=v2`` sorted by key, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: Obj | None) -> str | None:
    """A LabelSelector as a selector string ("" matches everything or nothing), None if invalid."""
    try:
        return str(label_selector_from_dict(selector))
    except SelectorError:
        return None


def quantity(value: Any) -> str:
    """A quantity in canonical form ("1024Mi" -> "1Gi"); text that does not parse is shown as is."""
    try:
        return canonical(value if value is not None else "0")
    except (ValueError, TypeError):
        return str(value)


def format_label_selector(selector: Obj | None) -> str:
    """Like ``metav1.FormatLabelSelector``: ``<none>`` when empty, ``<error>`` when invalid."""
    text = selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def container_cells(containers: list[Obj] | None) -> tuple[str, str]:
    """Comma-joined container names and images, for the wide columns."""
    containers = containers or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def bool_ptr(value: Any) -> str:
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def int_or_string(value: Any) -> str:
    return str(value)


def join_host_port(host: str, port: Any) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]:{port}"
    except ValueError:
        if ":" in host:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


def list_with_more(items: list[str], count: int, limit: int = 3, empty: str = "<unset>") -> str:
    """First ``limit`` items, then `` + N more...``; ``empty`` when there are none."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or empty


def lb_ingress(status: Obj | None) -> str:
    """Sorted, unique load-balancer IPs or hostnames (the server always prints wide)."""
    found = set()
    for entry in dig(status, "ingress", default=[]) or []:
        if entry.get("ip"):
            found.add(entry["ip"])
        elif entry.get("hostname"):
            found.add(entry["hostname"])
    return ",".join(sorted(found))
