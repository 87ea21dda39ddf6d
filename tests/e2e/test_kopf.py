"""A real kopf operator (tests/e2e/operators/echoconfig.py) run as a subprocess against
a real ``sampan server``: its create, update and delete handlers must all run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.e2e.cluster import Cluster, cluster, needs_kubectl, stop_process  # noqa: F401

pytest.importorskip("kopf")
pytestmark = needs_kubectl

OPERATOR = Path(__file__).parent / "operators" / "echoconfig.py"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: echoconfigs.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: echoconfigs, singular: echoconfig, kind: EchoConfig, shortNames: [echo]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Message, type: string, jsonPath: .spec.message}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              message: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""

# kopf's peering resource (from kopf's docs, trimmed): operators that do not run
# standalone find each other through it.
PEERING = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kopfpeerings.kopf.dev
spec:
  scope: Namespaced
  group: kopf.dev
  names: {kind: KopfPeering, plural: kopfpeerings, singular: kopfpeering}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""

MODES = {
    "standalone": ["--standalone", "--all-namespaces"],
    "peering": ["--namespace", "default", "--peering", "example"],
}


def echo(name: str, message: str) -> str:
    return json.dumps({"apiVersion": "example.com/v1", "kind": "EchoConfig",
                       "metadata": {"name": name}, "spec": {"message": message}})


def wait_for(what: str, check: Callable[[], Any], log: Path, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; operator log:\n{log.read_text()[-4000:]}")


def get(cluster: Cluster, *args: str) -> Any:  # noqa: F811
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture(params=sorted(MODES))
def operator(
    cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest  # noqa: F811
) -> Iterator[tuple[Path, str]]:
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.kubectl("wait", "--for", "condition=established", "crd/echoconfigs.example.com", "--timeout=30s")
    if request.param == "peering":
        cluster.kubectl("apply", "-f", "-", input=PEERING)
        cluster.kubectl("wait", "--for", "condition=established", "crd/kopfpeerings.kopf.dev", "--timeout=30s")
        peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "example"}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(peering))
    log = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", *MODES[request.param], "--verbose", str(OPERATOR)],
            stdout=out, stderr=subprocess.STDOUT, env=env, text=True,
        )
    try:
        yield log, request.param
    finally:
        stop_process(proc)
        cluster.kubectl("delete", "configmap", "e1-echo", "e1-deleted", "--ignore-not-found")


def test_kopf_operator_handles_create_update_delete(cluster: Cluster, operator: tuple[Path, str]) -> None:  # noqa: F811
    log, mode = operator
    cluster.kubectl("apply", "-f", "-", input=echo("e1", "hello"))

    cm = wait_for("the ConfigMap", lambda: get(cluster, "configmap", "e1-echo"), log)
    assert cm["data"] == {"message": "hello"}
    cr = get(cluster, "echoconfig", "e1")
    owner = cm["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("EchoConfig", "e1", cr["metadata"]["uid"])

    def status_patched() -> Any:
        obj = get(cluster, "echoconfig", "e1")
        status = obj.get("status") or {}
        return obj if status.get("phase") == "Created" and status.get("create_fn") else None

    cr = wait_for("kopf's status patch", status_patched, log)
    assert cr["status"]["create_fn"] == {"configmap": "e1-echo"}
    assert FINALIZER in cr["metadata"]["finalizers"]
    assert "kopf.zalando.org/last-handled-configuration" in cr["metadata"]["annotations"]
    assert "Created" in cluster.kubectl("get", "echo", "e1").stdout  # printer column from the status

    cluster.kubectl("patch", "echoconfig", "e1", "--type=merge", "-p", '{"spec":{"message":"world"}}')
    wait_for("the update handler", lambda: (get(cluster, "configmap", "e1-echo") or {}).get("data")
             == {"message": "world"}, log)
    wait_for("the status after update", lambda: (get(cluster, "echoconfig", "e1") or {}).get("status", {})
             .get("phase") == "Updated", log)

    def kopf_events() -> list[dict]:
        events = get(cluster, "events", "--field-selector", "involvedObject.name=e1") or {"items": []}
        return [e for e in events["items"] if e.get("source", {}).get("component") == "kopf"]

    events = wait_for("kopf's events", lambda: [e for e in kopf_events() if "update_fn" in e["message"]], log)
    assert events[0]["involvedObject"]["kind"] == "EchoConfig"
    assert any("create_fn" in e["message"] for e in kopf_events())
    explicit = [e for e in kopf_events() if e["reason"] == "EchoCreated"]
    assert explicit and explicit[0]["message"] == "configmap e1-echo created" and explicit[0]["type"] == "Normal"

    if mode == "peering":
        # The operator announces itself in the peering's status (and takes it back on exit).
        peering = wait_for(
            "the peering status", lambda: (get(cluster, "kopfpeering", "example") or {}).get("status"), log
        )
        assert {"lastseen", "lifetime", "priority"} <= set(next(iter(peering.values())))

    cluster.kubectl("delete", "echoconfig", "e1", "--timeout=60s", timeout=90)
    marker = wait_for("the delete handler", lambda: get(cluster, "configmap", "e1-deleted"), log)
    assert marker["data"] == {"deleted": "e1"}
    assert get(cluster, "echoconfig", "e1") is None  # kopf removed its finalizer, so it is gone
    # Nothing the server answered made kopf complain or retry.
    text = log.read_text()
    assert "Traceback" not in text and "[WARNING " not in text and "[ERROR   ]" not in text, text[-4000:]

