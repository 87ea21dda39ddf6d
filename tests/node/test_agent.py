"""The node agent over an in-process registry and fake runtime/images/network: registration,
lease, pods running with kubelet-like status, deletion, offline state and re-adoption."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sampan.client.interface import EVENTS, LEASES, NODES, PODS, is_not_found
from sampan.client.local import LocalClient
from tests.node.agent_harness import Harness, eventually
from tests.node.fakes import pod


async def running(client: LocalClient, name: str) -> dict:
    async def check() -> dict | None:
        p = await client.get(PODS, name, "default")
        status = p.get("status") or {}
        ready = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return p if status.get("phase") == "Running" and ready.get("Ready") == "True" else None

    return await eventually(check)  # type: ignore[no-any-return]


async def test_registers_node_and_lease(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    node = await client.get(NODES, "node-a")
    status = node["status"]
    assert status["capacity"]["pods"] == "110"
    assert int(status["capacity"]["cpu"]) >= 1
    assert status["capacity"]["memory"].endswith("Ki")
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    assert status["nodeInfo"]["containerRuntimeVersion"] == "fake://0.1"
    assert status["nodeInfo"]["kubeletVersion"].endswith("-sampan")
    assert {"type": "InternalIP", "address": "198.18.255.1"} in status["addresses"]
    lease = await client.get(LEASES, "node-a", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "node-a"


async def test_runs_pod_with_kubelet_status(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    await client.create(PODS, pod("web"), "default")
    p = await running(client, "web")
    status = p["status"]
    assert status["podIP"] == "198.18.0.2"
    assert status["hostIP"] == "198.18.255.1"
    cs = status["containerStatuses"][0]
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert cs["image"] == "docker.io/library/busybox:1.36"
    assert cs["containerID"].startswith("oci://")
    assert "running" in cs["state"]
    types = [c["type"] for c in status["conditions"]]
    assert {"PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled"} <= set(types)
    # The runtime got the image's cmd and env and the pod's network namespace.
    config = harness.runtime.configs[harness.runtime.started[0]]
    assert config.args == ["run"] and config.env["PATH"] == "/bin"
    assert harness.runtime.sandboxes[p["metadata"]["uid"]].netns_path.startswith("/run/netns/")
    events = (await client.list(EVENTS, "default"))["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"].get("name") == "web"}
    assert {"Pulled", "Created", "Started"} <= reasons


async def test_delete_stops_and_removes_pod(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    await client.create(PODS, pod("gone", terminationGracePeriodSeconds=5), "default")
    p = await running(client, "gone")
    await client.delete(PODS, "gone", "default")

    async def deleted() -> bool:
        try:
            await client.get(PODS, "gone", "default")
        except Exception as exc:
            return is_not_found(exc)
        return False

    await eventually(deleted)
    assert harness.runtime.stopped  # SIGTERM'd by the runtime
    assert p["metadata"]["uid"] not in harness.runtime.sandboxes
    assert p["metadata"]["uid"] not in harness.network.pods


async def test_restart_never_reports_failed_with_exit_code(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["exit", "3"]}]
    await client.create(PODS, pod("once", containers=spec, restartPolicy="Never"), "default")

    async def failed() -> dict | None:
        p = await client.get(PODS, "once", "default")
        return p if p.get("status", {}).get("phase") == "Failed" else None

    p = await eventually(failed)
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"


async def test_crash_loop_backs_off(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["exit", "1"]}]
    await client.create(PODS, pod("crash", containers=spec), "default")

    async def backing_off() -> dict | None:
        p = await client.get(PODS, "crash", "default")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        waiting = cs.get("state", {}).get("waiting", {})
        return cs if waiting.get("reason") == "CrashLoopBackOff" else None

    cs = await eventually(backing_off)
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert "back-off 10s" in cs["state"]["waiting"]["message"]
    assert len(harness.runtime.started) == 2  # first restart at once, the next one waits 10 s


async def test_oom_killed_reported(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["oom"]}]
    await client.create(PODS, pod("oom", containers=spec, restartPolicy="Never"), "default")

    async def oom() -> dict | None:
        p = await client.get(PODS, "oom", "default")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        return cs.get("state", {}).get("terminated")

    term = await eventually(oom)
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137


async def test_init_containers_run_first(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    inits = [{"name": "init", "image": "busybox:1.36", "command": ["exit", "0"]}]
    await client.create(PODS, pod("withinit", initContainers=inits), "default")
    p = await running(client, "withinit")
    assert p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    names = [cid.rsplit("-", 2)[-2] for cid in harness.runtime.started]
    assert names == ["init", "c"]


async def test_image_pull_failure(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "nosuch:1"}]
    await client.create(PODS, pod("nopull", containers=spec), "default")

    async def waiting() -> str | None:
        p = await client.get(PODS, "nopull", "default")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        reason = cs.get("state", {}).get("waiting", {}).get("reason")
        return reason if reason in ("ErrImagePull", "ImagePullBackOff") else None

    assert await eventually(waiting)
    events = (await client.list(EVENTS, "default"))["items"]
    assert any(e["reason"] == "Failed" and "nosuch" in e["message"] for e in events)


async def test_restart_readopts_containers(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    await client.create(PODS, pod("keep"), "default")
    await running(client, "keep")
    started = list(harness.runtime.started)
    await harness.stop()
    await harness.start()
    await asyncio.sleep(2.5)  # a few sync rounds of the new agent
    p = await running(client, "keep")
    assert harness.runtime.started == started  # nothing started again
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0


async def test_offline_state_keeps_pod(harness: Harness, client: LocalClient, tmp_path: Path) -> None:
    agent = await harness.start()
    await client.create(PODS, pod("local"), "default")
    await running(client, "local")
    stored = await agent.state.pods()
    assert [p["metadata"]["name"] for p in stored] == ["local"]


async def test_finished_pod_stays_finished_after_restart(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["exit", "0"]}]
    await client.create(PODS, pod("done", containers=spec, restartPolicy="Never"), "default")

    async def succeeded() -> dict | None:
        p = await client.get(PODS, "done", "default")
        return p if p.get("status", {}).get("phase") == "Succeeded" else None

    before = await eventually(succeeded)
    await harness.stop()
    harness.runtime.containers.clear()  # the node lost its containers (say, a reboot)
    await harness.start()
    await asyncio.sleep(2.5)
    after = await client.get(PODS, "done", "default")
    assert after["status"]["phase"] == "Succeeded"
    assert after["status"]["containerStatuses"] == before["status"]["containerStatuses"]
    assert len(harness.runtime.started) == 1


async def test_pull_events(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:latest"}]  # :latest means imagePullPolicy Always
    await client.create(PODS, pod("pulled", containers=spec), "default")
    await running(client, "pulled")
    assert harness.images.pulls == ["docker.io/library/busybox:latest"]
    events = (await client.list(EVENTS, "default"))["items"]
    messages = [e["message"] for e in events if e["involvedObject"].get("name") == "pulled"]
    assert 'Pulling image "busybox:latest"' in messages
    assert any(m.startswith('Successfully pulled image "busybox:latest" in ') and "Image size: 1000 bytes." in m
               for m in messages)


async def test_stop_right_after_a_pod_arrives_does_not_hang(harness: Harness, client: LocalClient) -> None:
    # The pod's worker is cancelled while it waits for the node's pod network, which becomes
    # ready in the same moment: the cancellation must not be lost (the stop used to hang).
    agent = await harness.start()
    await client.create(PODS, pod("early"), "default")
    await asyncio.wait_for(harness.stop(), 10)
    assert all(w.task is None or w.task.done() for w in agent.workers.values())


async def test_pods_started_together_share_one_read_of_an_object(harness: Harness, client: LocalClient,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from sampan.client.interface import CONFIGMAPS
    from sampan.node import agent as agent_module

    agent = await harness.start()
    await client.create(CONFIGMAPS, {"metadata": {"name": "shared"}, "data": {"k": "v1"}}, "default")
    reads: list[str] = []
    real_get = agent.client.get

    async def counting_get(resource, name, namespace=None):  # type: ignore[no-untyped-def]
        reads.append(name)
        return await real_get(resource, name, namespace)

    monkeypatch.setattr(agent.client, "get", counting_get)
    monkeypatch.setattr(agent_module, "OBJECT_FRESH_SECONDS", 0.3)
    found = await asyncio.gather(*(agent.get_object("ConfigMap", "default", "shared") for _ in range(20)))
    assert reads == ["shared"] and all(f is not None and f["data"] == {"k": "v1"} for f in found)
    # Past the window a change is read again (updates still reach running pods).
    await client.update(CONFIGMAPS, {"metadata": {"name": "shared", "namespace": "default"}, "data": {"k": "v2"}})
    await asyncio.sleep(0.35)
    again = await agent.get_object("ConfigMap", "default", "shared")
    assert again is not None and again["data"] == {"k": "v2"} and reads == ["shared", "shared"]
    # A missing object is answered as missing; a failed read is not remembered.
    assert await agent.get_object("ConfigMap", "default", "absent") is None

    async def failing_get(resource, name, namespace=None):  # type: ignore[no-untyped-def]
        reads.append("failed")
        raise ConnectionError("server away")

    monkeypatch.setattr(agent.client, "get", failing_get)
    monkeypatch.setattr(agent_module, "OBJECT_FRESH_SECONDS", 30.0)
    assert (await agent.get_object("ConfigMap", "default", "other")) is None  # no local copy either
    monkeypatch.setattr(agent.client, "get", counting_get)
    assert (await agent.get_object("ConfigMap", "default", "other")) is None
    assert reads[-2:] == ["failed", "other"]
