"""The controller's sync loop over a real registry and in-process client; nft itself is
replaced by a recorder here (the netns test runs the real thing)."""

from __future__ import annotations

import asyncio

import pytest

from sampan.client.interface import PODS
from sampan.client.local import LocalClient
from sampan.proxy import netpol
from sampan.proxy.netpol import NETWORKPOLICIES, NetworkPolicyController
from tests.harness import eventually


class Recorder:
    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.fail = 0

    async def __call__(self, script: str, netns: str | None = None) -> None:
        if self.fail:
            self.fail -= 1
            raise netpol.NftError("injected failure")
        self.scripts.append(script)


@pytest.fixture
def nft(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(netpol, "run_nft", rec)
    return rec


async def make_pod(client: LocalClient, name: str, ip: str, labels: dict[str, str], node: str = "n1") -> None:
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": "default", "labels": labels},
                               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}},
                        namespace="default")
    await client.patch(PODS, name, {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}},
                       "merge", namespace="default", subresource="status")


async def test_sync_follows_objects_and_skips_irrelevant_changes(client: LocalClient, nft: Recorder) -> None:
    await make_pod(client, "web", "198.18.0.10", {"app": "web"})
    await make_pod(client, "remote", "198.18.1.10", {"app": "web"}, node="n2")
    ctl = NetworkPolicyController(client, "n1", table="sampan-test-unit", debounce=0.01,
                                  ensure_bridge_netfilter=False)
    await ctl.start()
    try:
        await eventually(lambda: ctl.syncs == 1)
        assert "chain ingress_" not in nft.scripts[-1]  # no policy: nothing isolated
        assert nft.scripts[-1].startswith("table inet sampan-test-unit {}\ndelete table inet sampan-test-unit\n")

        await client.create(NETWORKPOLICIES, {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}, namespace="default")
        await eventually(lambda: ctl.syncs == 2)
        assert "chain ingress_198.18.0.10" in nft.scripts[-1]
        assert "198.18.1.10" not in nft.scripts[-1]  # the remote pod is its own node's business

        # Status churn that the rules don't read changes nothing in the kernel.
        await client.patch(PODS, "web", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                           "merge", namespace="default", subresource="status")
        ctl.synced.clear()
        await client.patch(PODS, "web", {"metadata": {"labels": {"app": "web", "extra": "x"}}}, "merge",
                           namespace="default")
        await asyncio.wait_for(ctl.synced.wait(), 10)
        assert ctl.syncs == 2  # relabelled, but the resulting ruleset is identical: no transaction

        # A failing nft run is retried until it lands.
        nft.fail = 1
        await client.delete(PODS, "web", namespace="default", grace_period_seconds=0)
        await eventually(lambda: ctl.syncs == 3, timeout=15)
        assert "chain ingress_" not in nft.scripts[-1]
    finally:
        await ctl.stop()
    assert nft.scripts[-1] == "table inet sampan-test-unit {}\ndelete table inet sampan-test-unit\n"
