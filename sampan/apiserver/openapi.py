"""OpenAPI documents built from the resource table: per group-version v3 docs (what
kubectl fetches for validation decisions and ``explain``), the v3 root and a JSON v2 doc."""

from __future__ import annotations

import copy
import functools
import hashlib
from typing import Any

import orjson

from sampan.api import schemas

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS, DELETE_OPTIONS, PATCH = _META + "Status", _META + "DeleteOptions", _META + "Patch"
WATCH_EVENT, OBJECT_META, LIST_META = _META + "WatchEvent", _META + "ObjectMeta", _META + "ListMeta"
PATCH_TYPES = ["application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json"]
_CONTENT = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
# Subresources whose body is another kind.
_SUB_KINDS = {"scale": ("autoscaling", "v1", "Scale"), "eviction": ("policy", "v1", "Eviction"),
              "binding": ("", "v1", "Binding"), "token": ("authentication.k8s.io", "v1", "TokenRequest")}
_CONNECT = {"exec", "attach", "portforward", "proxy"}


def content_hash(doc: Any) -> str:
    """A stable hash of a document (upstream uses uppercase SHA-512 hex)."""
    return hashlib.sha512(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest().upper()


def openapi_v3_root(paths: dict[str, str]) -> dict:
    """``/openapi/v3``: maps ``apis/apps/v1`` to its doc URL; values are content hashes."""
    return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"} for p, h in sorted(paths.items())}}


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


# ---- schema conversion ------------------------------------------------------------------

def _convert(node: Any, prefix: str) -> Any:
    """kubernetes-validate's JSON-schema flavour -> OpenAPI (single types, our ref prefix)."""
    if isinstance(node, list):
        return [_convert(n, prefix) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = prefix + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if types:
                out[key] = types[0]
        elif key == "properties":
            out[key] = {k: _convert(v, prefix) for k, v in value.items()}
        else:
            out[key] = _convert(value, prefix)
    if "$ref" in out and len(out) > 1:
        # siblings of $ref are ignored by OpenAPI 3.0; upstream wraps the ref in allOf
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


@functools.cache
def _definition(name: str, prefix: str) -> dict:
    raw = schemas.documented_definitions()[name]
    if name.endswith("intstr.IntOrString"):
        return {"description": raw.get("description", "IntOrString"), "type": "string", "format": "int-or-string"}
    if name.endswith("resource.Quantity"):
        return {"description": raw.get("description", "Quantity"), "type": "string"}
    out = _convert(raw, prefix)
    for key in ("apiVersion", "kind"):
        prop = (out.get("properties") or {}).get(key)
        if isinstance(prop, dict):
            prop.pop("enum", None)  # added by kubernetes-validate, not upstream
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(roots: set[str]) -> set[str]:
    defs, seen, todo = schemas.definitions(), set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(found - seen)
    return seen


def crd_definition_name(group: str, version: str, kind: str) -> str:
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def _crd_schemas(res: Any, prefix: str) -> dict[str, dict]:
    gvk = [{"group": res.group, "kind": res.kind, "version": res.version}]
    body = copy.deepcopy(res.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    props = body.setdefault("properties", {})
    status_props = schemas.documented_definitions()[_META + "Status"]["properties"]
    props["apiVersion"] = _convert(status_props["apiVersion"], prefix)
    props["kind"] = _convert(status_props["kind"], prefix)
    props["metadata"] = {"allOf": [{"$ref": prefix + OBJECT_META}], "description": "Standard object's metadata."}
    body.setdefault("type", "object")
    body["x-kubernetes-group-version-kind"] = gvk
    name = crd_definition_name(res.group, res.version, res.kind)
    list_schema = {
        "description": f"{res.kind}List is a list of {res.kind}", "type": "object", "required": ["items"],
        "properties": {"apiVersion": props["apiVersion"], "kind": props["kind"],
                       "items": {"type": "array", "items": {"$ref": prefix + name}},
                       "metadata": {"allOf": [{"$ref": prefix + LIST_META}]}},
        "x-kubernetes-group-version-kind": [{"group": res.group, "kind": res.kind + "List", "version": res.version}],
    }
    return {name: body, name + "List": list_schema}


class _Names:
    """Definition names of a resource's object and list, built-in or CRD."""

    def __init__(self, res: Any) -> None:
        self.builtin = schemas.definition_name_for(res.group, res.version, res.kind)
        self.object = self.builtin or crd_definition_name(res.group, res.version, res.kind)
        self.list = (schemas.definition_name_for(res.group, res.version, res.kind + "List")
                     if self.builtin else self.object + "List")


# ---- paths and operations ---------------------------------------------------------------

def _camel(text: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in text.replace("-", ".").split(".") if p)


def _group_tag(group: str, version: str) -> str:
    base = group.split(".k8s.io")[0] if group.endswith(".k8s.io") else group
    return (_camel(base) or "Core") + _camel(version)


class _Builder:
    def __init__(self, v3: bool) -> None:
        self.v3 = v3
        self.prefix = "#/components/schemas/" if v3 else "#/definitions/"
        self.paths: dict[str, dict] = {}
        self.roots: set[str] = {STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT, _META + "APIResourceList"}

    def ref(self, name: str) -> dict:
        return {"$ref": self.prefix + name}

    def param(self, name: str, where: str, desc: str, typ: str = "string", required: bool = False) -> dict:
        p = {"name": name, "in": where, "description": desc}
        if required or where == "path":
            p["required"] = True
        if self.v3:
            p["schema"] = {"type": typ, "uniqueItems": True}
        else:
            p.update({"type": typ, "uniqueItems": True})
        return p

    def query(self, *names: str) -> list[dict]:
        info = {
            "pretty": "If 'true', then the output is pretty printed.",
            "dryRun": "When present, indicates that modifications should not be persisted. Valid value: All",
            "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes.",
            "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request "
                               "containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
            "force": "Force is going to \"force\" Apply requests.",
            "gracePeriodSeconds": "The duration in seconds before the object should be deleted.",
            "propagationPolicy": "Whether and how garbage collection will be performed.",
            "allowWatchBookmarks": "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
            "continue": "The continue option should be set when retrieving more results from the server.",
            "fieldSelector": "A selector to restrict the list of returned objects by their fields.",
            "labelSelector": "A selector to restrict the list of returned objects by their labels.",
            "limit": "limit is a maximum number of responses to return for a list call.",
            "resourceVersion": "resourceVersion sets a constraint on what resource versions a request may be served from.",
            "resourceVersionMatch": "resourceVersionMatch determines how resourceVersion is applied to list calls.",
            "sendInitialEvents": "`sendInitialEvents=true` may be set together with `watch=true`.",
            "timeoutSeconds": "Timeout for the list/watch call.",
            "watch": "Watch for changes to the described resources and return them as a stream of add, update, "
                     "and remove notifications.",
        }
        types = {"force": "boolean", "allowWatchBookmarks": "boolean", "sendInitialEvents": "boolean",
                 "watch": "boolean", "gracePeriodSeconds": "integer", "limit": "integer", "timeoutSeconds": "integer"}
        return [self.param(n, "query", info[n], types.get(n, "string")) for n in names]

    def responses(self, codes: dict[str, str]) -> dict:
        out: dict[str, Any] = {}
        for code, name in codes.items():
            schema = {"type": "string"} if name == "string" else self.ref(name)
            if self.v3:
                types = ["text/plain"] if name == "string" else _CONTENT
                out[code] = {"description": "OK", "content": {t: {"schema": schema} for t in types}}
            else:
                out[code] = {"description": "OK", "schema": schema}
        out["401"] = {"description": "Unauthorized"}
        return out

    def body(self, name: str, types: list[str]) -> tuple[dict | None, list[dict]]:
        if self.v3:
            return {"content": {t: {"schema": self.ref(name)} for t in types}, "required": True}, []
        return None, [{"name": "body", "in": "body", "required": True, "schema": self.ref(name)}]

    def op(self, path: str, method: str, op_id: str, action: str, gvk: dict, tag: str, *, params=(),
           responses: dict, body: str | None = None, body_types: list[str] | None = None) -> None:
        operation: dict[str, Any] = {"description": f"{action} {gvk.get('kind', 'resources')}", "operationId": op_id, "tags": [tag],
                                     "parameters": list(params), "responses": self.responses(responses),
                                     "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
        if not self.v3:
            operation["consumes"] = body_types or ["*/*"]
            operation["produces"] = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
            operation["schemes"] = ["https"]
        if body:
            request, extra = self.body(body, body_types or ["*/*"])
            if request:
                operation["requestBody"] = request
            operation["parameters"] = extra + operation["parameters"]
        self.paths.setdefault(path, {})[method] = operation

    def add(self, res: Any) -> None:
        names = _Names(res)
        if names.builtin:
            self.roots |= {names.builtin, names.list} - {None}
        else:
            self.roots |= {OBJECT_META, LIST_META}
        gvk = {"group": res.group, "kind": res.kind, "version": res.version}
        tag = (res.group or "core") + "_" + res.version
        base = "/" + gv_path(res.group, res.version)
        scope = "Namespaced" if res.namespaced else ""
        coll = f"{base}/namespaces/{{namespace}}/{res.plural}" if res.namespaced else f"{base}/{res.plural}"
        item = coll + "/{name}"
        ident = _group_tag(res.group, res.version) + scope + res.kind
        verbs = set(res.verbs)
        ns = [self.param("namespace", "path", "object name and auth scope, such as for teams and projects")] \
            if res.namespaced else []
        name_p = [self.param("name", "path", f"name of the {res.kind}")]
        write = self.query("pretty", "dryRun", "fieldManager", "fieldValidation")
        listq = self.query("pretty", "allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                           "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
        patch_types = PATCH_TYPES if names.builtin else PATCH_TYPES[:3]
        if "list" in verbs:
            self.op(coll, "get", "list" + ident, "list", gvk, tag, params=ns + listq, responses={"200": names.list})
            if res.namespaced:
                self.op(f"{base}/{res.plural}", "get", f"list{_group_tag(res.group, res.version)}{res.kind}ForAllNamespaces",
                        "list", gvk, tag, params=listq, responses={"200": names.list})
        if "create" in verbs:
            self.op(coll, "post", "create" + ident, "post", gvk, tag, params=ns + write, body=names.object,
                    responses={"200": names.object, "201": names.object, "202": names.object})
        if "deletecollection" in verbs:
            self.op(coll, "delete", "deletecollection" + ident, "deletecollection", gvk, tag,
                    params=ns + self.query("pretty", "dryRun", "gracePeriodSeconds", "propagationPolicy",
                                           "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
                                           "timeoutSeconds"), body=DELETE_OPTIONS, responses={"200": STATUS})
        if "get" in verbs:
            self.op(item, "get", "read" + ident, "get", gvk, tag, params=name_p + ns + self.query("pretty"),
                    responses={"200": names.object})
        if "update" in verbs:
            self.op(item, "put", "replace" + ident, "put", gvk, tag, params=name_p + ns + write, body=names.object,
                    responses={"200": names.object, "201": names.object})
        if "patch" in verbs:
            self.op(item, "patch", "patch" + ident, "patch", gvk, tag, params=name_p + ns + write + self.query("force"),
                    body=PATCH, body_types=patch_types, responses={"200": names.object, "201": names.object})
        if "delete" in verbs:
            self.op(item, "delete", "delete" + ident, "delete", gvk, tag,
                    params=name_p + ns + self.query("pretty", "dryRun", "gracePeriodSeconds", "propagationPolicy"),
                    body=DELETE_OPTIONS, responses={"200": STATUS, "202": STATUS})
        if "watch" in verbs:
            wcoll = coll.replace(base, base + "/watch", 1)
            self.op(wcoll, "get", "watch" + ident + "List", "watchlist", gvk, tag, params=ns + listq,
                    responses={"200": WATCH_EVENT})
            self.op(wcoll + "/{name}", "get", "watch" + ident, "watch", gvk, tag, params=name_p + ns + listq,
                    responses={"200": WATCH_EVENT})
        for sub in sorted(res.subresources or {}):
            self.add_subresource(res, sub, item, ident, gvk, tag, name_p + ns, patch_types, names)

    def add_subresource(self, res: Any, sub: str, item: str, ident: str, gvk: dict, tag: str, params: list,
                        patch_types: list[str], names: _Names) -> None:
        path = f"{item}/{sub}"
        suffix = _camel(sub)
        write = self.query("pretty", "dryRun", "fieldManager", "fieldValidation")
        if sub in _CONNECT:
            for method in ("get", "post"):
                self.op(path, method, f"connect{method.capitalize()}{ident}{suffix}", "connect",
                        {"group": res.group, "kind": f"Pod{suffix}Options" if res.kind == "Pod" else res.kind,
                         "version": res.version}, tag, params=params, responses={"200": "string"})
            return
        if sub == "log":
            self.op(path, "get", f"read{ident}Log", "get", gvk, tag, params=params + self.query("pretty"),
                    responses={"200": "string"})
            return
        if sub in _SUB_KINDS:
            g, v, k = _SUB_KINDS[sub]
            target = schemas.definition_name_for(g, v, k) or names.object
            sub_gvk = {"group": g, "kind": k, "version": v}
            self.roots.add(target)
        else:
            target, sub_gvk = names.object, gvk
        if sub in ("eviction", "binding", "token"):
            self.op(path, "post", f"create{ident}{suffix}", "post", sub_gvk, tag, params=params + write,
                    body=target, responses={"200": target, "201": target, "202": target})
            return
        self.op(path, "get", f"read{ident}{suffix}", "get", sub_gvk, tag, params=params + self.query("pretty"),
                responses={"200": target})
        self.op(path, "put", f"replace{ident}{suffix}", "put", sub_gvk, tag, params=params + write, body=target,
                responses={"200": target, "201": target})
        self.op(path, "patch", f"patch{ident}{suffix}", "patch", sub_gvk, tag,
                params=params + write + self.query("force"), body=PATCH, body_types=patch_types,
                responses={"200": target, "201": target})

    def schemas_for(self, resources: list) -> dict[str, dict]:
        out = {name: _definition(name, self.prefix) for name in sorted(_closure(self.roots))}
        for res in resources:
            if not _Names(res).builtin:
                out.update(_crd_schemas(res, self.prefix))
        return out


_INFO = {"title": "Kubernetes", "version": f"v{schemas.KUBERNETES_VERSION}"}


def build_openapi_v3(group: str, version: str, resources: list) -> dict:
    """The OpenAPI 3.0 document of one group-version (``/openapi/v3/apis/{group}/{version}``)."""
    builder = _Builder(v3=True)
    mine = [r for r in resources if r.group == group and r.version == version]
    for res in mine:
        builder.add(res)
    base = "/" + gv_path(group, version) + "/"
    builder.op(base, "get", f"get{_group_tag(group, version)}APIResources", "get", {}, f"{group or 'core'}_{version}",
               responses={"200": _META + "APIResourceList"})
    builder.paths[base]["get"].pop("x-kubernetes-group-version-kind")
    builder.paths[base]["get"].pop("x-kubernetes-action")
    return {
        "openapi": "3.0.0", "info": dict(_INFO), "paths": builder.paths,
        "components": {"schemas": builder.schemas_for(mine),
                       "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                           "name": "authorization", "in": "header"}}},
        "security": [{"BearerToken": []}],
    }


def build_openapi_v2(resources: list) -> dict:
    """A Swagger 2.0 JSON document for every resource (``/openapi/v2``, JSON only)."""
    builder = _Builder(v3=False)
    for res in resources:
        builder.add(res)
    return {
        "swagger": "2.0", "info": dict(_INFO), "paths": builder.paths,
        "definitions": builder.schemas_for(list(resources)),
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                                                "description": "Bearer Token authentication"}},
        "security": [{"BearerToken": []}],
    }
