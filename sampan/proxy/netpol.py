"""NetworkPolicy enforcement on one node: informers -> plan -> one atomic nft transaction.

Pods (all of them: peers live on every node), Namespaces (for namespaceSelector) and
NetworkPolicies are watched; any change marks the state dirty and, after a short debounce
that folds bursts of events together, the whole ``inet`` table is rebuilt and swapped in
one ``nft -f`` transaction (see netpol_rules.py for the rules and why ``inet forward``).

A node runs one next to its agent and service proxy:
``ctl = NetworkPolicyController(client, node_name); await ctl.start()`` ... ``await ctl.stop()``;
pass ``informers=`` to share the agent's InformerFactory (then the caller starts and stops it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from typing import Any

from sampan.client.informer import Handler, Informer, InformerFactory
from sampan.client.interface import NAMESPACES, PODS, Client, ResourceRef
from sampan.node import proc
from sampan.proxy.netpol_rules import Plan, build_plan, delete_transaction, replace_transaction

log = logging.getLogger(__name__)

NETWORKPOLICIES = ResourceRef("networking.k8s.io", "v1", "networkpolicies")
# Frames bridged between pods reach the IP hooks (and conntrack) only with these on.
BRIDGE_SYSCTLS = ("net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables")


class NftError(RuntimeError):
    pass


def netns_argv(netns: str | None, *argv: str) -> list[str]:
    """Run ``argv`` inside a network namespace: a name under /run/netns or a path."""
    if netns is None:
        return list(argv)
    if netns.startswith("/"):
        return ["nsenter", f"--net={netns}", "--", *argv]
    return ["ip", "netns", "exec", netns, *argv]


async def run_nft(script: str, netns: str | None = None) -> None:
    done = await proc.run(*netns_argv(netns, "nft", "-f", "-"), stdin=script.encode())
    if done.code:
        raise NftError(f"nft failed ({done.code}): {done.err.decode(errors='replace').strip()}")


class NetworkPolicyController:
    def __init__(
        self,
        client: Client,
        node_name: str,
        table: str = "sampan-netpol",
        netns: str | None = None,
        informers: InformerFactory | None = None,
        debounce: float = 0.1,
        ensure_bridge_netfilter: bool = True,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.table = table
        self.netns = netns
        self.debounce = debounce
        self.ensure_bridge_netfilter = ensure_bridge_netfilter
        # A shared factory belongs to the caller; our own one we start and stop.
        self._own_factory = informers is None
        self.factory = informers or InformerFactory(client)
        self.pods: Informer = self.factory.informer(PODS)
        self.namespaces: Informer = self.factory.informer(NAMESPACES)
        self.policies: Informer = self.factory.informer(NETWORKPOLICIES)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: list[tuple[Informer, Handler]] = []
        self._applied: str | None = None
        self.plan: Plan | None = None
        self.syncs = 0  # successful nft transactions, for metrics and tests
        self.synced = asyncio.Event()  # set after each successful sync

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._handlers = [(i, i.add_handler(self._on_add, self._on_update, self._on_delete))
                          for i in (self.pods, self.namespaces, self.policies)]
        if self.ensure_bridge_netfilter:
            await self._enable_bridge_netfilter()
        if self._own_factory:
            self.factory.start()
        self._task = asyncio.create_task(self._run(), name=f"netpol {self.node_name}")

    async def stop(self, delete_table: bool = True) -> None:
        """Stop syncing; by default remove the table (an absent enforcer enforces nothing)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for informer, handler in self._handlers:
            informer.remove_handler(handler)
        self._handlers = []
        if self._own_factory:
            await self.factory.stop()
        if delete_table and self._applied is not None:
            try:
                await run_nft(delete_transaction(self.table), self.netns)
            except (NftError, OSError) as exc:
                log.warning("netpol: could not delete table %s: %s", self.table, exc)
            self._applied = None

    # -- events: only mark dirty --------------------------------------------------------
    def _on_add(self, obj: dict[str, Any]) -> None:
        self._dirty.set()

    def _on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _relevant(old) != _relevant(new):
            self._dirty.set()

    def _on_delete(self, obj: dict[str, Any]) -> None:
        self._dirty.set()

    # -- the sync loop ---------------------------------------------------------------------
    async def _run(self) -> None:
        await asyncio.gather(*(i.wait_for_sync() for i in (self.pods, self.namespaces, self.policies)))
        self._dirty.set()
        failures = 0
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.debounce)  # fold bursts of events into one transaction
            self._dirty.clear()
            try:
                await self.sync()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retry with backoff, keep the loop alive
                failures += 1
                log.warning("netpol sync failed (%d): %s", failures, exc)
                self._dirty.set()
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def sync(self) -> None:
        """Compute the plan from the caches and swap the table in if anything changed."""
        # Pure CPU work over snapshots of the caches (cached objects are never mutated): off the loop.
        plan, script = await asyncio.to_thread(
            _compute, self.policies.list(), self.pods.list(), self.namespaces.list(), self.node_name, self.table)
        if script != self._applied:
            await run_nft(script, self.netns)
            self._applied = script
            self.syncs += 1
            log.debug("netpol: table %s replaced (%d ingress, %d egress chains)",
                      self.table, len(plan.ingress), len(plan.egress))
        self.plan = plan
        self.synced.set()

    async def _enable_bridge_netfilter(self) -> None:
        if os.geteuid() != 0:
            return
        script = "; ".join(f"[ -e /proc/sys/{s} ] && echo 1 > /proc/sys/{s}" for s in BRIDGE_SYSCTLS) + "; true"
        done = await proc.run(*netns_argv(self.netns, "sh", "-c", script), stdout=subprocess.DEVNULL)
        if done.err:
            log.warning("netpol: could not enable bridge netfilter: %s", done.err.decode(errors="replace").strip())


def _compute(policies: list[dict[str, Any]], pods: list[dict[str, Any]], namespaces: list[dict[str, Any]],
             node_name: str, table: str) -> tuple[Plan, str]:
    plan = build_plan(policies, pods, namespaces, node_name)
    return plan, replace_transaction(plan, table)


def _relevant(obj: dict[str, Any]) -> tuple[Any, ...]:
    """What the rules read from an object: status churn (conditions, restarts) is ignored."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if obj.get("kind") == "Pod" or "containers" in spec:
        ports = [c.get("ports") for c in spec.get("containers") or []]
        return (meta.get("labels"), spec.get("nodeName"), spec.get("hostNetwork"), ports,
                status.get("phase"), status.get("podIP"), status.get("podIPs"))
    return (meta.get("labels"), spec)
