"""Matching rules shared by several plugins: tolerations against taints, and node
selector terms (nodeAffinity, nodeSelector) compiled once per pod."""

from __future__ import annotations

from collections.abc import Iterable

from sampan.scheduler.types import Obj

NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE = "NoSchedule", "NoExecute", "PreferNoSchedule"


def tolerates(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(taint: Obj, tolerations: Iterable[Obj]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def first_untolerated(taints: Iterable[Obj], tolerations: list[Obj], effects: tuple[str, ...]) -> Obj | None:
    for taint in taints:
        if taint.get("effect") in effects and not tolerated(taint, tolerations):
            return taint
    return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


class _Requirement:
    __slots__ = ("key", "op", "values", "number")

    def __init__(self, expr: Obj) -> None:
        self.key: str = expr.get("key") or ""
        self.op: str = expr.get("operator") or ""
        self.values = frozenset(expr.get("values") or ())
        vals = list(expr.get("values") or ())
        self.number = _int(vals[0]) if self.op in ("Gt", "Lt") and len(vals) == 1 else None

    def matches(self, labels: dict[str, str]) -> bool:
        op, value = self.op, labels.get(self.key)
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op in ("Gt", "Lt"):
            have = _int(value) if value is not None else None
            if have is None or self.number is None:
                return False
            return have > self.number if op == "Gt" else have < self.number
        return False


class NodeSelectorTerm:
    """One term: every expression and field must match; a term with neither matches nothing."""

    __slots__ = ("exprs", "fields", "empty")

    def __init__(self, term: Obj) -> None:
        self.exprs = [_Requirement(e) for e in term.get("matchExpressions") or ()]
        self.fields = [_Requirement(e) for e in term.get("matchFields") or ()]
        self.empty = not self.exprs and not self.fields

    def matches(self, labels: dict[str, str], name: str) -> bool:
        if self.empty:
            return False
        for r in self.exprs:
            if not r.matches(labels):
                return False
        if self.fields:
            fields = {"metadata.name": name}
            for r in self.fields:
                if not r.matches(fields):
                    return False
        return True


class RequiredNodeAffinity:
    """nodeSelector AND requiredDuringScheduling node affinity (terms ORed)."""

    __slots__ = ("selector", "terms")

    def __init__(self, spec: Obj) -> None:
        self.selector: dict[str, str] = dict(spec.get("nodeSelector") or {})
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )) or None
        self.terms = (
            [NodeSelectorTerm(t) for t in required.get("nodeSelectorTerms") or ()] if required is not None else None
        )

    @property
    def empty(self) -> bool:
        return not self.selector and self.terms is None

    def matches(self, labels: dict[str, str], name: str) -> bool:
        for k, v in self.selector.items():
            if labels.get(k) != v:
                return False
        if self.terms is None:
            return True
        return any(t.matches(labels, name) for t in self.terms)


def preferred_node_terms(spec: Obj) -> list[tuple[int, NodeSelectorTerm]]:
    affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return [
        (int(p.get("weight") or 0), NodeSelectorTerm(p.get("preference") or {}))
        for p in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    ]
