"""The ServiceAccount admission plugin: defaulting, refusing unknown accounts, the
kube-api-access projected volume and its mounts, opting out, and waiting for the
asynchronously created ``default`` account in a brand-new namespace."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import NAMESPACES, PODS, SERVICEACCOUNTS
from sampan.client.local import LocalClient
from sampan.registry import serviceaccount_admission as sa
from sampan.registry.registry import Registry
from sampan.server import ServerOptions, bootstrap, start_server
from sampan.store.memory import MemoryStore


@pytest.fixture
async def client() -> AsyncIterator[LocalClient]:
    store = MemoryStore()
    await store.start()
    reg = Registry(store)
    sa.install(reg)
    await bootstrap(reg)
    yield LocalClient(reg)
    await store.close()


def pod(name: str, **spec: object) -> dict:
    body: dict = {"containers": [{"name": "app", "image": "nginx"}], **spec}
    return {"metadata": {"name": name}, "spec": body}


async def account(client: LocalClient, name: str = "default", ns: str = "default", **fields: object) -> None:
    await client.create(SERVICEACCOUNTS, {"metadata": {"name": name}, **fields}, ns)


def token_volume(spec: dict) -> dict:
    [vol] = [v for v in spec.get("volumes") or [] if v["name"].startswith("kube-api-access-")]
    return vol


async def test_defaults_account_and_mounts_token_volume(client: LocalClient) -> None:
    spec = pod("p", initContainers=[{"name": "init", "image": "busybox"}])["spec"]
    created = await client.create(PODS, {"metadata": {"name": "p"}, "spec": spec}, "default")
    spec = created["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    vol = token_volume(spec)
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", vol["name"])
    assert vol == sa.api_access_volume(vol["name"])
    sources = vol["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"] == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert vol["projected"]["defaultMode"] == 420
    mount = {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["initContainers"][0]["volumeMounts"] == [mount]


async def test_missing_account_is_forbidden(client: LocalClient) -> None:
    with pytest.raises(APIError) as info:
        await client.create(PODS, pod("x", serviceAccountName="sa"), "default")
    assert info.value.code == 403
    assert info.value.status["message"] == (
        'pods "x" is forbidden: error looking up service account default/sa: serviceaccount "sa" not found'
    )
    assert info.value.status["reason"] == "Forbidden"


async def test_opting_out_by_pod_or_account(client: LocalClient) -> None:
    await account(client, "quiet", automountServiceAccountToken=False)
    by_pod = await client.create(PODS, pod("a", automountServiceAccountToken=False), "default")
    by_account = await client.create(PODS, pod("b", serviceAccountName="quiet"), "default")
    pod_overrides = await client.create(
        PODS, pod("c", serviceAccountName="quiet", automountServiceAccountToken=True), "default"
    )
    for created in (by_pod, by_account):
        assert "volumes" not in created["spec"]
        assert not created["spec"]["containers"][0].get("volumeMounts")
    assert token_volume(pod_overrides["spec"])
    assert by_account["spec"]["serviceAccountName"] == "quiet"


async def test_own_mount_at_token_path_is_kept(client: LocalClient) -> None:
    await account(client, "puller", imagePullSecrets=[{"name": "regcred"}])
    mine = {"name": "mine", "mountPath": sa.TOKEN_MOUNT_PATH}
    body = pod("p", serviceAccountName="puller", volumes=[{"name": "mine", "emptyDir": {}}])
    body["spec"]["containers"] = [
        {"name": "a", "image": "nginx", "volumeMounts": [mine]},
        {"name": "b", "image": "nginx"},
    ]
    created = (await client.create(PODS, body, "default"))["spec"]
    assert created["containers"][0]["volumeMounts"] == [mine]
    assert created["containers"][1]["volumeMounts"][0]["name"] == token_volume(created)["name"]
    assert created["imagePullSecrets"] == [{"name": "regcred"}]


async def test_waits_for_default_account_of_new_namespace(client: LocalClient) -> None:
    await client.create(NAMESPACES, {"metadata": {"name": "fresh"}})

    async def controller() -> None:  # the ServiceAccount controller's late arrival
        await asyncio.sleep(0.3)
        await account(client, ns="fresh")

    late = asyncio.create_task(controller())
    created = await client.create(PODS, pod("p"), "fresh")
    await late
    assert token_volume(created["spec"])


async def test_mirror_pods_are_left_alone(client: LocalClient) -> None:
    body = pod("m")
    body["metadata"]["annotations"] = {sa.MIRROR_ANNOTATION: "x"}
    created = await client.create(PODS, body, "default")
    assert not created["spec"].get("serviceAccountName") and "volumes" not in created["spec"]


async def test_kubectl_against_server(tmp_path: Path) -> None:
    server = await start_server(ServerOptions(data_dir=tmp_path, port=0, datastore="memory", scheduler=False))
    try:
        env = {**os.environ, "KUBECONFIG": str(server.kubeconfig)}

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)

        # A brand-new namespace takes pods right away: admission waits for its default account.
        made = await asyncio.to_thread(
            lambda: (kubectl("create", "namespace", "fresh"), kubectl("run", "p", "-n", "fresh", "--image=nginx"))
        )
        assert made[1].returncode == 0, made[1].stderr
        got = await asyncio.to_thread(kubectl, "get", "pod", "p", "-n", "fresh", "-o", "json")
        spec = json.loads(got.stdout)["spec"]
        assert spec["serviceAccountName"] == "default"
        assert token_volume(spec)["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3607
        refused = await asyncio.to_thread(kubectl, "run", "x", "--image=nginx", "--overrides",
                                          '{"spec":{"serviceAccountName":"sa"}}')
        assert refused.returncode != 0
        assert ('pods "x" is forbidden: error looking up service account default/sa: '
                'serviceaccount "sa" not found') in refused.stderr
    finally:
        await server.stop()
