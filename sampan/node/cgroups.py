"""Pod and container cgroups, laid out like the kubelet's (cgroupfs driver).

Guaranteed pods live in ``<root>/kubepods/pod<uid>``, the others in
``<root>/kubepods/{burstable,besteffort}/pod<uid>``; containers get a child of their pod's
cgroup (the OCI runtime creates it, the raw runtime here). Works with cgroup v1, v2
(unified) and hybrid hosts, where the v1 controllers do the limiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from sampan.api.qos import pod_qos_class, same_amount
from sampan.api.quantity import parse_quantity
from sampan.node.runtimes.base import ContainerStats, Resources

MIN_SHARES = 2
MAX_SHARES = 262144
MIN_QUOTA_US = 1000
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
V2_CONTROLLERS = ("cpu", "memory", "pids")


def shares_to_weight(shares: int) -> int:
    """cgroup v2 cpu.weight for v1 cpu.shares (the kubelet's linear mapping of [2, 262144] onto [1, 10000])."""
    shares = max(MIN_SHARES, min(MAX_SHARES, shares))
    return 1 + ((shares - 2) * 9999) // 262142


def milli_cpu_to_shares(milli: int) -> int:
    return max(MIN_SHARES, milli * 1024 // 1000)


def qos_class(pod: dict[str, Any]) -> str:
    """The pod's QoS class: status.qosClass when the API server set it, else computed like upstream."""
    status = (pod.get("status") or {}).get("qosClass")
    if status in ("Guaranteed", "Burstable", "BestEffort"):
        return status
    return pod_qos_class(pod.get("spec") or {})


def _milli(value: Any) -> int | None:
    try:
        return parse_quantity(value).milli_value()
    except (ValueError, TypeError):
        return None


def _bytes(value: Any) -> int | None:
    try:
        return parse_quantity(value).value()
    except (ValueError, TypeError):
        return None


def _mounts(mountinfo: str) -> tuple[dict[str, Path], Path | None]:
    """Controller -> v1 hierarchy mount point, plus the cgroup2 mount (if any)."""
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        point = Path(fields[4].replace("\\040", " "))
        if rfields[0] == "cgroup2":
            unified = unified or point
        elif rfields[0] == "cgroup":
            for opt in rfields[2].split(","):
                if opt in CONTROLLERS or opt in ("cpuset", "devices", "freezer", "blkio", "net_cls", "perf_event",
                                                 "hugetlb", "net_prio", "rdma", "misc") or opt.startswith("name="):
                    v1.setdefault(opt, point)
    return v1, unified


class Cgroups:
    """Detects the host's cgroup layout and manages the pod cgroups under ``root_name``."""

    def __init__(self, root_name: str = "sampan", mountinfo: str | None = None) -> None:
        self.root_name = root_name.strip("/")
        if mountinfo is None:
            try:
                mountinfo = Path("/proc/self/mountinfo").read_text()
            except OSError:
                mountinfo = ""
        self.v1, self.unified = _mounts(mountinfo)
        if "memory" in self.v1 or "cpu" in self.v1:
            self.mode = "hybrid" if self.unified else "v1"
        elif self.unified and (self.unified / "cgroup.controllers").exists():
            self.mode = "v2"
        else:
            self.mode = "none"

    @property
    def available(self) -> bool:
        return self.mode != "none" and os.geteuid() == 0

    # -- naming -------------------------------------------------------------------------

    def pod_parent(self, pod_uid: str, qos_class: str) -> str:
        qos = "" if qos_class == "Guaranteed" else qos_class.lower() + "/"
        return f"{self.root_name}/kubepods/{qos}pod{pod_uid}"

    def hierarchies(self) -> list[Path]:
        """Every mount point a cgroup path exists under (runc creates the path in all of them)."""
        points = list(dict.fromkeys(self.v1.values()))
        if self.unified:
            points.append(self.unified)
        return points

    def dirs(self, cgroup_path: str, controllers: tuple[str, ...] = CONTROLLERS) -> list[Path]:
        rel = cgroup_path.strip("/")
        if self.mode == "v2":
            return [self.unified / rel] if self.unified else []
        return [self.v1[c] / rel for c in dict.fromkeys(controllers) if c in self.v1]

    def _file(self, cgroup_path: str, controller: str, name: str) -> Path | None:
        rel = cgroup_path.strip("/")
        if self.mode == "v2" and self.unified:
            return self.unified / rel / name
        point = self.v1.get(controller)
        return point / rel / name if point else None

    # -- requests/limits -> settings -----------------------------------------------------

    def resources_for(self, container_spec: dict[str, Any]) -> Resources:
        res = container_spec.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        out = Resources()
        cpu_req = _milli(req["cpu"]) if "cpu" in req else (_milli(lim["cpu"]) if "cpu" in lim else None)
        out.cpu_shares = milli_cpu_to_shares(cpu_req) if cpu_req is not None else MIN_SHARES
        if "cpu" in lim and (milli := _milli(lim["cpu"])) is not None and milli > 0:
            out.cpu_quota_us = max(MIN_QUOTA_US, milli * out.cpu_period_us // 1000)
        if "memory" in lim and (mem := _bytes(lim["memory"])) is not None and mem > 0:
            out.memory_limit_bytes = mem
        out.oom_score_adj = self._oom_score_adj(req, lim)
        return out

    @staticmethod
    def _oom_score_adj(req: dict[str, Any], lim: dict[str, Any]) -> int:
        """The kubelet's policy: guaranteed -997, best-effort 1000, burstable by memory request."""
        if not req and not lim:
            return 1000
        if all(n in lim and (n not in req or same_amount(req[n], lim[n])) for n in ("cpu", "memory")):
            return -997
        mem_req = _bytes(req.get("memory", lim.get("memory", 0))) or 0
        capacity = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return max(2, min(999, 1000 - (1000 * mem_req) // max(1, capacity)))

    def pod_resources(self, pod: dict[str, Any]) -> Resources:
        """Pod-level settings: shares from the summed requests; quota and memory limits only
        when every container sets them (like the kubelet). Init containers run one at a time,
        so each resource is max(sum of containers, largest init container)."""
        spec = pod.get("spec") or {}
        main = [c.get("resources") or {} for c in spec.get("containers") or []]
        init = [c.get("resources") or {} for c in spec.get("initContainers") or []]

        def amount(res: dict[str, Any], kind: str, name: str, conv: Any) -> int:
            # A missing request defaults to the limit (API defaulting does the same).
            value = (res.get(kind) or {}).get(name)
            if value is None and kind == "requests":
                value = (res.get("limits") or {}).get(name)
            return (conv(value) or 0) if value is not None else 0

        def total(kind: str, name: str, conv: Any) -> tuple[int, bool]:
            summed = sum(amount(r, kind, name, conv) for r in main)
            init_max = max([amount(r, kind, name, conv) for r in init] or [0])
            all_set = bool(main) and all(name in (r.get(kind) or {}) for r in main + init)
            return max(summed, init_max), all_set

        out = Resources()
        cpu_req, _ = total("requests", "cpu", _milli)
        out.cpu_shares = milli_cpu_to_shares(cpu_req)
        cpu_lim, all_cpu = total("limits", "cpu", _milli)
        if all_cpu and cpu_lim > 0:
            out.cpu_quota_us = max(MIN_QUOTA_US, cpu_lim * out.cpu_period_us // 1000)
        mem_lim, all_mem = total("limits", "memory", _bytes)
        if all_mem and mem_lim > 0:
            out.memory_limit_bytes = mem_lim
        return out

    # -- applying -------------------------------------------------------------------------

    def _settings(self, r: Resources) -> list[tuple[str, str, str]]:
        """(controller, file, value) triples for this host's cgroup version."""
        out: list[tuple[str, str, str]] = []
        if self.mode == "v2":
            if r.cpu_shares is not None:
                out.append(("cpu", "cpu.weight", str(shares_to_weight(r.cpu_shares))))
            quota = str(r.cpu_quota_us) if r.cpu_quota_us else "max"
            out.append(("cpu", "cpu.max", f"{quota} {r.cpu_period_us}"))
            out.append(("memory", "memory.max", str(r.memory_limit_bytes) if r.memory_limit_bytes else "max"))
            out.append(("pids", "pids.max", str(r.pids_limit) if r.pids_limit else "max"))
            return out
        if r.cpu_shares is not None:
            out.append(("cpu", "cpu.shares", str(r.cpu_shares)))
        out.append(("cpu", "cpu.cfs_period_us", str(r.cpu_period_us)))
        out.append(("cpu", "cpu.cfs_quota_us", str(r.cpu_quota_us) if r.cpu_quota_us else "-1"))
        limit = str(r.memory_limit_bytes) if r.memory_limit_bytes else "-1"
        # memory+swap equal to the limit means no swap; memsw may never be below the memory limit,
        # so it is set after the memory limit and cleared before it.
        memsw = [("memory", "memory.memsw.limit_in_bytes", limit)] if self.swap_accounted() else []
        mem = [("memory", "memory.limit_in_bytes", limit)]
        out += mem + memsw if r.memory_limit_bytes else memsw + mem
        out.append(("pids", "pids.max", str(r.pids_limit) if r.pids_limit else "max"))
        return out

    def swap_accounted(self) -> bool:
        mem = self.v1.get("memory")
        return mem is not None and (mem / "memory.memsw.limit_in_bytes").exists()

    def create(self, cgroup_path: str, resources: Resources) -> None:
        """Creates the cgroup (and its parents) and writes the limits; blocking, small."""
        if not self.available:
            return
        if self.mode == "v2" and self.unified:
            self._enable_v2_controllers(cgroup_path)
        for d in self.dirs(cgroup_path):
            d.mkdir(parents=True, exist_ok=True)
        for controller, name, value in self._settings(resources):
            path = self._file(cgroup_path, controller, name)
            if path is None:
                continue
            try:
                path.write_text(value)
            except OSError as exc:
                # A child's limit above its parent's is refused; lowering a parent below a
                # child too. Neither should stop the pod from running.
                if not path.exists():
                    continue
                raise OSError(f"cannot set {path} to {value}: {exc.strerror}") from exc

    def _enable_v2_controllers(self, cgroup_path: str) -> None:
        assert self.unified is not None
        # Each ancestor (the root included) must delegate the controllers to its children.
        current = self.unified
        ancestors = [current]
        for part in cgroup_path.strip("/").split("/")[:-1]:
            current = current / part
            ancestors.append(current)
        for d in ancestors:
            d.mkdir(exist_ok=True)
            for c in V2_CONTROLLERS:
                with contextlib.suppress(OSError):
                    (d / "cgroup.subtree_control").write_text("+" + c)

    def remove(self, cgroup_path: str) -> None:
        """Removes the cgroup and its children from every hierarchy (empty ones only)."""
        rel = cgroup_path.strip("/")
        if not rel:
            return
        for point in self.hierarchies():
            top = point / rel
            if not top.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    async def ensure_pod(self, pod_uid: str, qos: str, resources: Resources) -> None:
        await asyncio.to_thread(self.create, self.pod_parent(pod_uid, qos), resources)

    async def remove_pod(self, pod_uid: str, qos: str) -> None:
        await asyncio.to_thread(self.remove, self.pod_parent(pod_uid, qos))

    # -- reading ----------------------------------------------------------------------------

    def _read(self, cgroup_path: str, controller: str, name: str) -> str | None:
        path = self._file(cgroup_path, controller, name)
        if path is None:
            return None
        try:
            return path.read_text()
        except OSError:
            return None

    @staticmethod
    def _keyed(text: str | None) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in (text or "").splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
        return out

    def stats(self, cgroup_path: str) -> ContainerStats:
        out = ContainerStats()
        if self.mode == "v2":
            cpu = self._keyed(self._read(cgroup_path, "cpu", "cpu.stat"))
            out.cpu_usage_ns = cpu.get("usage_usec", 0) * 1000
            usage = self._read(cgroup_path, "memory", "memory.current")
            inactive = self._keyed(self._read(cgroup_path, "memory", "memory.stat")).get("inactive_file", 0)
        else:
            raw = self._read(cgroup_path, "cpuacct", "cpuacct.usage")
            out.cpu_usage_ns = int(raw) if raw and raw.strip().isdigit() else 0
            usage = self._read(cgroup_path, "memory", "memory.usage_in_bytes")
            inactive = self._keyed(self._read(cgroup_path, "memory", "memory.stat")).get("total_inactive_file", 0)
        if usage and usage.strip().isdigit():
            # Working set = usage minus the page cache the kernel can drop (as cAdvisor does).
            out.memory_working_set_bytes = max(0, int(usage) - inactive)
        return out

    def was_oom_killed(self, cgroup_path: str) -> bool:
        if self.mode == "v2":
            events = self._keyed(self._read(cgroup_path, "memory", "memory.events"))
            return events.get("oom_kill", 0) > 0
        control = self._keyed(self._read(cgroup_path, "memory", "memory.oom_control"))
        return control.get("oom_kill", 0) > 0
