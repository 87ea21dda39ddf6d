"""Strategic merge patch against the real built-in schemas.

Expected results follow kube-apiserver (apimachinery strategicpatch); several
cases restate, with Kubernetes kinds, behaviour pinned by upstream's own fixtures
(order preservation, $setElementOrder with server-only items, duplicate deletes).
"""

from __future__ import annotations

import copy

import pytest

from sampan.api.patch import PatchError, apply_strategic_merge_patch
from sampan.api.schemas import schema_for

DEPLOYMENT = ("apps", "v1", "Deployment")
POD = ("", "v1", "Pod")
SERVICE = ("", "v1", "Service")
CONFIGMAP = ("", "v1", "ConfigMap")
PDB = ("policy", "v1", "PodDisruptionBudget")


def smp(kind: tuple[str, str, str], doc: dict, patch: dict) -> dict:
    schema = schema_for(*kind)
    assert schema is not None
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    out = apply_strategic_merge_patch(doc, patch, schema)
    assert doc == before_doc and patch == before_patch, "inputs must not change"
    return out


def pod(*containers: dict, **spec: object) -> dict:
    return {"spec": {"containers": list(containers), **spec}}


def names(items: list[dict], key: str = "name") -> list:
    return [i[key] for i in items]


# (description, kind, doc, patch, expected)
CASES = [
    # -- maps ------------------------------------------------------------------
    ("map merge adds and keeps", CONFIGMAP, {"data": {"a": "1"}}, {"data": {"b": "2"}}, {"data": {"a": "1", "b": "2"}}),
    ("null deletes a key", CONFIGMAP, {"data": {"a": "1", "b": "1"}}, {"data": {"a": None, "b": "2"}},
     {"data": {"b": "2"}}),
    ("null for a missing key is ignored", CONFIGMAP, {"data": {"a": "1"}}, {"data": {"zz": None}}, {"data": {"a": "1"}}),
    ("new map loses its nulls", CONFIGMAP, {}, {"data": {"a": "1", "b": None}}, {"data": {"a": "1"}}),
    ("$patch replace on a map", CONFIGMAP, {"data": {"a": "1", "b": "2"}}, {"data": {"$patch": "replace", "c": "3"}},
     {"data": {"c": "3"}}),
    ("$patch replace on the whole object", CONFIGMAP, {"data": {"a": "1"}, "kind": "ConfigMap"},
     {"$patch": "replace", "data": {"z": "9"}}, {"data": {"z": "9"}}),
    ("$patch delete on a map empties it", DEPLOYMENT, {"spec": {"selector": {"matchLabels": {"a": "b"}}}},
     {"spec": {"selector": {"$patch": "delete"}}}, {"spec": {"selector": {}}}),
    ("$patch delete on an absent map adds nothing", DEPLOYMENT, {"spec": {"replicas": 1}},
     {"spec": {"selector": {"$patch": "delete"}}}, {"spec": {"replicas": 1}}),
    ("scalar replaces map", CONFIGMAP, {"data": {"a": "1"}}, {"data": "x"}, {"data": "x"}),
    ("replace strategy map (PDB selector)", PDB,
     {"spec": {"selector": {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "k", "operator": "Exists"}]}}},
     {"spec": {"selector": {"matchLabels": {"b": "2"}}}}, {"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
    ("unknown fields merge like merge patch", CONFIGMAP, {"extra": {"x": {"y": 1, "z": 2}, "l": [1, 2]}},
     {"extra": {"x": {"y": None, "w": 3}, "l": [3]}}, {"extra": {"x": {"z": 2, "w": 3}, "l": [3]}}),
    # -- $retainKeys -----------------------------------------------------------
    ("$retainKeys drops unlisted keys", DEPLOYMENT,
     {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
     {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}},
     {"spec": {"strategy": {"type": "Recreate"}}}),
    ("$retainKeys back to rolling update", DEPLOYMENT, {"spec": {"strategy": {"type": "Recreate"}}},
     {"spec": {"strategy": {"$retainKeys": ["rollingUpdate", "type"], "rollingUpdate": {"maxSurge": "50%"},
                            "type": "RollingUpdate"}}},
     {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%"}}}}),
    ("retainKeys field without the directive merges", DEPLOYMENT,
     {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
     {"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0}}}},
     {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
    ("$retainKeys in a new map is dropped", DEPLOYMENT, {"spec": {}},
     {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, {"spec": {"strategy": {"type": "Recreate"}}}),
    ("$retainKeys on a keyed list item (volumes)", POD,
     {"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}},
     {"spec": {"volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "c"}, "emptyDir": None,
                            "name": "v"}]}},
     {"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}}, {"name": "w", "emptyDir": {}}]}}),
    # -- keyed lists -----------------------------------------------------------
    ("containers merge by name", POD, pod({"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}),
     {"spec": {"containers": [{"name": "b", "image": "y:2"}]}},
     pod({"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"})),
    # Upstream lets patch order win: an item the live list lacks is placed before
    # server-only items unless $setElementOrder says otherwise (kubectl always sends it).
    ("new item goes before server-only items", POD, pod({"name": "a"}, {"name": "b"}),
     {"spec": {"containers": [{"name": "c", "image": "z"}]}}, pod({"name": "c", "image": "z"}, {"name": "a"}, {"name": "b"})),
    ("new item after a listed live item", POD, pod({"name": "a", "image": "x"}),
     {"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "y", "args": None}]}},
     pod({"name": "a", "image": "x"}, {"name": "b", "image": "y"})),
    ("$patch delete removes by key", POD, pod({"name": "a"}, {"name": "b"}, {"name": "c"}),
     {"spec": {"containers": [{"$patch": "delete", "name": "b"}]}}, pod({"name": "a"}, {"name": "c"})),
    ("$patch delete of a missing key is a no-op", POD, pod({"name": "a"}),
     {"spec": {"containers": [{"$patch": "delete", "name": "zz"}]}}, pod({"name": "a"})),
    ("$patch delete removes duplicates", POD,
     {"spec": {"volumes": [{"name": "1"}, {"name": "1"}, {"name": "2", "emptyDir": {}}, {"name": "3"}, {"name": "3"}]}},
     {"spec": {"volumes": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}},
     {"spec": {"volumes": [{"name": "2", "emptyDir": {}}]}}),
    ("$patch replace on a keyed list", POD, pod({"name": "a", "image": "x"}, {"name": "b"}),
     {"spec": {"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]}}, pod({"name": "c", "image": "z"})),
    ("$patch replace alone empties the list", POD, pod({"name": "a"}),
     {"spec": {"containers": [{"$patch": "replace"}]}}, pod()),
    ("nested keyed lists (env, ports, volumeMounts)", POD,
     pod({"name": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
          "ports": [{"containerPort": 80, "name": "http"}],
          "volumeMounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}]}),
     {"spec": {"containers": [{"name": "a", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                               "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
                               "volumeMounts": [{"mountPath": "/b", "readOnly": True}]}]}},
     pod({"name": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
          "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}],
          "volumeMounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b", "readOnly": True}]})),
    ("service ports merge by port", SERVICE,
     {"spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443, "name": "https"}]}},
     {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
     {"spec": {"ports": [{"port": 80, "targetPort": 9090, "name": "http"}, {"port": 443, "name": "https"}]}}),
    ("status conditions merge by type", POD,
     {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
    ("ownerReferences merge by uid", CONFIGMAP, {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}},
     {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}},
     {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
    ("patch order wins over live order", POD, pod({"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}),
     {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "args": ["x"]}]}},
     pod({"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "image": "b", "args": ["x"]})),
    ("server-only items keep their place", POD, pod({"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}),
     {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}},
     pod({"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"})),
    ("new item listed first goes first", POD, pod({"name": "a"}, {"name": "b"}),
     {"spec": {"containers": [{"name": "new"}, {"name": "a", "image": "i"}]}},
     pod({"name": "new"}, {"name": "a", "image": "i"}, {"name": "b"})),
    ("directives inside a new item are dropped", POD, pod({"name": "a"}),
     {"spec": {"containers": [{"name": "b", "$setElementOrder/env": [{"name": "X"}],
                               "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}]}},
     pod({"name": "b", "env": [{"name": "X", "value": "1"}]}, {"name": "a"})),
    ("list without strategy is replaced", POD, pod({"name": "a", "args": ["1", "2"], "command": ["sh"]}),
     {"spec": {"containers": [{"name": "a", "args": ["3"]}]}}, pod({"name": "a", "args": ["3"], "command": ["sh"]})),
    ("list of maps without strategy is replaced", POD,
     {"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}},
     {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
     {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
    ("null deletes a keyed list", POD, pod({"name": "a", "volumeMounts": [{"mountPath": "/a", "name": "v"}]}),
     {"spec": {"containers": [{"name": "a", "volumeMounts": None}]}}, pod({"name": "a"})),
    ("empty patch list keeps the list", POD, pod({"name": "a"}), {"spec": {"containers": []}}, pod({"name": "a"})),
    # -- primitive lists -------------------------------------------------------
    ("finalizers union", CONFIGMAP, {"metadata": {"finalizers": ["a", "b"]}}, {"metadata": {"finalizers": ["b", "c"]}},
     {"metadata": {"finalizers": ["a", "b", "c"]}}),
    ("finalizers keep patch order", CONFIGMAP, {"metadata": {"finalizers": ["1", "2", "3"]}},
     {"metadata": {"finalizers": ["3", "1"]}}, {"metadata": {"finalizers": ["2", "3", "1"]}}),
    ("finalizers full reorder", CONFIGMAP, {"metadata": {"finalizers": ["1", "2", "3"]}},
     {"metadata": {"finalizers": ["3", "1", "2"]}}, {"metadata": {"finalizers": ["3", "1", "2"]}}),
    ("$deleteFromPrimitiveList", CONFIGMAP, {"metadata": {"finalizers": ["a", "b", "c", "b"]}},
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}, {"metadata": {"finalizers": ["a", "c"]}}),
    ("$deleteFromPrimitiveList of a missing value", CONFIGMAP, {"metadata": {"finalizers": ["a"]}},
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["zz"]}}, {"metadata": {"finalizers": ["a"]}}),
    ("$deleteFromPrimitiveList on a missing list adds nothing", CONFIGMAP, {"metadata": {"name": "x"}},
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, {"metadata": {"name": "x"}}),
    ("$deleteFromPrimitiveList on a list without strategy", POD, pod({"name": "a", "args": ["1", "2", "3"]}),
     {"spec": {"containers": [{"name": "a", "$deleteFromPrimitiveList/args": ["2"]}]}},
     pod({"name": "a", "args": ["1", "3"]})),
    # -- $setElementOrder ------------------------------------------------------
    ("$setElementOrder reorders a keyed list", POD, pod({"name": "a"}, {"name": "b"}, {"name": "c"}),
     {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}},
     pod({"name": "c"}, {"name": "a"}, {"name": "b"})),
    ("$setElementOrder places new items", POD, pod({"name": "1", "image": "o"}, {"name": "2", "image": "t"}),
     {"spec": {"$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
               "containers": [{"name": "4", "image": "f"}, {"name": "3", "image": "h"}]}},
     pod({"name": "4", "image": "f"}, {"name": "1", "image": "o"}, {"name": "2", "image": "t"},
         {"name": "3", "image": "h"})),
    ("$setElementOrder keeps server-only items in place", POD, pod({"name": "a"}, {"name": "sidecar"}, {"name": "b"}),
     {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
     pod({"name": "sidecar"}, {"name": "b"}, {"name": "a"})),
    ("$setElementOrder with an unknown name", POD, pod({"name": "1"}, {"name": "3"}),
     {"spec": {"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}]}},
     pod({"name": "3"}, {"name": "1"})),
    ("$setElementOrder with delete of a missing item", POD, pod({"name": "hello2"}),
     {"spec": {"$setElementOrder/containers": [{"name": "hello"}, {"name": "gone"}],
               "containers": [{"name": "hello"}, {"$patch": "delete", "name": "gone"}]}},
     pod({"name": "hello"}, {"name": "hello2"})),
    ("$setElementOrder on a primitive list", CONFIGMAP, {"metadata": {"finalizers": ["1", "3"]}},
     {"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}}, {"metadata": {"finalizers": ["3", "1"]}}),
    ("$setElementOrder plus delete on primitives", CONFIGMAP, {"metadata": {"finalizers": ["1", "2", "3", "3", "4"]}},
     {"metadata": {"$setElementOrder/finalizers": ["1", "2"], "$deleteFromPrimitiveList/finalizers": ["3"]}},
     {"metadata": {"finalizers": ["1", "2", "4"]}}),
    ("$setElementOrder, add and delete on primitives", CONFIGMAP, {"metadata": {"finalizers": ["1", "2", "3", "4"]}},
     {"metadata": {"$setElementOrder/finalizers": ["1", "2", "4"], "$deleteFromPrimitiveList/finalizers": ["3"],
                   "finalizers": ["4"]}},
     {"metadata": {"finalizers": ["1", "2", "4"]}}),
    ("$setElementOrder for a list nobody has", POD, pod({"name": "a"}),
     {"spec": {"$setElementOrder/initContainers": [{"name": "x"}]}}, pod({"name": "a"})),
    ("$setElementOrder for a new list", POD, pod({"name": "a"}),
     {"spec": {"$setElementOrder/initContainers": [{"name": "y"}, {"name": "x"}],
               "initContainers": [{"name": "y"}, {"name": "x", "args": None}]}},
     pod({"name": "a"}, initContainers=[{"name": "y"}, {"name": "x"}])),
    ("kubectl set image", DEPLOYMENT,
     {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"},
                                                    {"name": "sidecar", "image": "s:1"}]}}}},
     {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                                     "containers": [{"image": "nginx:1.27", "name": "nginx"}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                    {"name": "sidecar", "image": "s:1"}]}}}}),
    ("kubectl rollout restart", DEPLOYMENT, {"spec": {"template": {"metadata": {"labels": {"app": "a"}}}}},
     {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}},
     {"spec": {"template": {"metadata": {"labels": {"app": "a"},
                                         "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}),
    ("kubectl cordon", ("", "v1", "Node"), {"spec": {"podCIDR": "10.0.0.0/24"}}, {"spec": {"unschedulable": True}},
     {"spec": {"podCIDR": "10.0.0.0/24", "unschedulable": True}}),
]


@pytest.mark.parametrize("desc,kind,doc,patch,expected", CASES, ids=[c[0] for c in CASES])
def test_cases(desc: str, kind: tuple, doc: dict, patch: dict, expected: dict) -> None:
    assert smp(kind, doc, patch) == expected


def live_deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "finalizers": ["a/x", "b/y"],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "x"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.26",
                         "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/c"}]},
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]},
                        {"name": "injected", "image": "mesh-proxy"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "old"}}],
                    "dnsPolicy": "ClusterFirst",
                },
            },
        },
        "status": {"replicas": 2},
    }


def test_kubectl_apply_round_on_a_deployment() -> None:
    patch = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["b/y"],
            "$setElementOrder/finalizers": ["a/x"],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"},
        },
        "spec": {
            "strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "nginx"}],
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "cfg"}],
                "containers": [
                    {"name": "web", "image": "app:2", "ports": [{"containerPort": 8080}]},
                    {"$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                     "$setElementOrder/ports": [{"containerPort": 81}],
                     "$setElementOrder/volumeMounts": [{"mountPath": "/data"}],
                     "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                     "image": "nginx:1.27", "name": "nginx",
                     "ports": [{"$patch": "delete", "containerPort": 80}],
                     "volumeMounts": [{"$patch": "delete", "mountPath": "/etc/c"}]},
                    {"$patch": "delete", "name": "sidecar"},
                ],
                "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "new"}, "name": "cfg"}],
            }},
        },
    }
    out = smp(DEPLOYMENT, live_deployment(), patch)
    meta = out["metadata"]
    assert meta["finalizers"] == ["a/x"]
    assert meta["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}", "team": "x"}
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    spec = out["spec"]["template"]["spec"]
    # Patch order first, the server-injected container keeps its place after its live neighbour.
    assert names(spec["containers"]) == ["web", "nginx", "injected"]
    web, nginx, injected = spec["containers"]
    assert web == {"name": "web", "image": "app:2", "ports": [{"containerPort": 8080}]}
    assert nginx["image"] == "nginx:1.27"
    assert nginx["env"] == [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]
    assert nginx["ports"] == [{"containerPort": 81, "protocol": "TCP"}]
    assert nginx["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert injected == {"name": "injected", "image": "mesh-proxy"}
    assert spec["volumes"] == [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "new"}}]
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert out["status"] == {"replicas": 2} and out["spec"]["replicas"] == 2


def test_kubectl_apply_service_ports() -> None:
    live = {"spec": {"type": "ClusterIP", "clusterIP": "10.43.0.10",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                               {"name": "metrics", "port": 9090, "protocol": "TCP"}]}}
    patch = {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}],
                      "ports": [{"name": "https", "port": 443, "targetPort": 8443},
                                {"port": 80, "targetPort": 8081}, {"$patch": "delete", "port": 9090}]}}
    out = smp(SERVICE, live, patch)
    assert out["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": 8443},
        {"name": "http", "port": 80, "targetPort": 8081, "protocol": "TCP"},
    ]
    assert out["spec"]["clusterIP"] == "10.43.0.10"


# (description, kind, doc, patch, status code, part of the message)
ERRORS = [
    ("unknown $patch on a map", CONFIGMAP, {"data": {}}, {"data": {"$patch": "frob"}}, 500, "unknown patch type"),
    ("unknown $patch in a list", POD, pod({"name": "a"}), {"spec": {"containers": [{"$patch": "frob", "name": "a"}]}},
     500, "unknown patch type"),
    ("$patch merge in a list", POD, pod({"name": "a"}), {"spec": {"containers": [{"$patch": "merge", "name": "a"}]}},
     500, "cannot yet be specified"),
    ("$patch merge on a map", CONFIGMAP, {"data": {"a": "1"}}, {"data": {"$patch": "merge"}}, 500, "unknown patch type"),
    ("missing merge key", POD, pod({"name": "a"}), {"spec": {"containers": [{"image": "x"}]}}, 500, "merge key"),
    ("delete without merge key", POD, pod({"name": "a"}), {"spec": {"containers": [{"$patch": "delete"}]}},
     500, "merge key"),
    ("$retainKeys not a list", DEPLOYMENT, {"spec": {"strategy": {"type": "Recreate"}}},
     {"spec": {"strategy": {"$retainKeys": "type"}}}, 400, "retainKeys"),
    ("patch key missing from $retainKeys", DEPLOYMENT, {"spec": {"strategy": {"type": "Recreate"}}},
     {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}, 400, "retainKeys"),
    ("$setElementOrder out of step with the patch", POD, pod({"name": "1"}, {"name": "3"}, {"name": "2"}),
     {"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
               "containers": [{"name": "3", "image": "x"}, {"name": "1", "image": "y"}]}}, 500, "doesn't match"),
    ("$setElementOrder on primitives out of step", CONFIGMAP, {"metadata": {"finalizers": ["1", "3", "2"]}},
     {"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3", "1"]}}, 500, "doesn't match"),
    ("$setElementOrder without a field", POD, pod({"name": "a"}), {"spec": {"$setElementOrderX": []}}, 400,
     "setElementOrder"),
    ("$deleteFromPrimitiveList without a field", CONFIGMAP, {"metadata": {"finalizers": ["a"]}},
     {"metadata": {"$deleteFromPrimitiveList": ["a"]}}, 400, "primitive list"),
    ("list of lists", CONFIGMAP, {"metadata": {"finalizers": [["a"]]}}, {"metadata": {"finalizers": [["b"]]}}, 422,
     "lists of lists"),
    ("mixed item types", CONFIGMAP, {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": [1]}}, 500,
     "not identical"),
]


@pytest.mark.parametrize("desc,kind,doc,patch,code,text", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(desc: str, kind: tuple, doc: dict, patch: dict, code: int, text: str) -> None:
    with pytest.raises(PatchError) as info:
        smp(kind, doc, patch)
    assert info.value.code == code
    assert text in info.value.message


def test_patch_body_must_be_an_object() -> None:
    with pytest.raises(PatchError) as info:
        apply_strategic_merge_patch({}, [], schema_for(*CONFIGMAP) or {})  # type: ignore[arg-type]
    assert info.value.code == 400


def test_result_shares_nothing_with_inputs() -> None:
    doc = live_deployment()
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "new", "args": ["a"]}]}}}}
    out = smp(DEPLOYMENT, doc, patch)
    for container in out["spec"]["template"]["spec"]["containers"]:
        container["image"] = "changed"
        container.setdefault("args", []).append("z")
    assert doc == live_deployment()
    assert patch["spec"]["template"]["spec"]["containers"] == [{"name": "new", "args": ["a"]}]
