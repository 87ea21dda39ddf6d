"""Scheduler configuration: which plugins run, their weights and arguments.

``SchedulerConfig.from_dict`` reads the part of upstream's KubeSchedulerConfiguration
(kubescheduler.config.k8s.io/v1) that applies here: percentageOfNodesToScore, the
backoff durations and one profile's ``plugins`` (multiPoint and per-point enabled/
disabled lists, ``"*"`` disables all defaults) and ``pluginConfig``. For bin packing:

    {"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit",
        "args": {"scoringStrategy": {"type": "MostAllocated"}}}]}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SCHEDULER = "default-scheduler"

# Upstream's default profile, in its order (filter order decides the reason a node reports).
DEFAULT_PLUGINS: tuple[tuple[str, int], ...] = (
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
)

_POINT_NAMES = {
    "preFilter": "pre_filter",
    "filter": "filter",
    "postFilter": "post_filter",
    "preScore": "pre_score",
    "score": "score",
    "reserve": "reserve",
    "permit": "permit",
    "bind": "bind",
}


@dataclass
class SchedulerConfig:
    scheduler_name: str = DEFAULT_SCHEDULER
    # 0 = adaptive (50% minus 1% per 125 nodes, at least 5%), as upstream.
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    # Unschedulable pods are retried at least this often even without a cluster event.
    pod_max_in_unschedulable_seconds: float = 300.0
    plugins: list[tuple[str, int]] = field(default_factory=lambda: list(DEFAULT_PLUGINS))
    # extension point -> plugin names switched off there only
    disabled_at: dict[str, set[str]] = field(default_factory=dict)
    args: dict[str, dict[str, Any]] = field(default_factory=dict)

    def enabled_plugins(self) -> list[str]:
        return [name for name, _ in self.plugins]

    def plugins_at(self, point: str) -> list[str]:
        off = self.disabled_at.get(point, set())
        return [name for name, _ in self.plugins if name not in off]

    def weight(self, name: str) -> int:
        for n, w in self.plugins:
            if n == name:
                return w or 1
        return 1

    def plugin_args(self, name: str) -> dict[str, Any]:
        return self.args.get(name, {})

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> SchedulerConfig:
        doc = doc or {}
        cfg = cls()
        if doc.get("percentageOfNodesToScore") is not None:
            cfg.percentage_of_nodes_to_score = int(doc["percentageOfNodesToScore"])
        if doc.get("podInitialBackoffSeconds") is not None:
            cfg.pod_initial_backoff_seconds = float(doc["podInitialBackoffSeconds"])
        if doc.get("podMaxBackoffSeconds") is not None:
            cfg.pod_max_backoff_seconds = float(doc["podMaxBackoffSeconds"])
        profiles = doc.get("profiles") or [{}]
        profile = profiles[0] or {}
        cfg.scheduler_name = profile.get("schedulerName") or DEFAULT_SCHEDULER
        if profile.get("percentageOfNodesToScore") is not None:
            cfg.percentage_of_nodes_to_score = int(profile["percentageOfNodesToScore"])
        cfg._apply_plugins(profile.get("plugins") or {})
        for item in profile.get("pluginConfig") or ():
            cfg.args[item["name"]] = dict(item.get("args") or {})
        return cfg

    @classmethod
    def from_file(cls, path: str | Path) -> SchedulerConfig:
        """Reads a KubeSchedulerConfiguration document (YAML or JSON; blocking: call it in a thread)."""
        doc = yaml.safe_load(Path(path).read_text())
        if doc is not None and not isinstance(doc, dict):
            raise ValueError(f"{path}: not a KubeSchedulerConfiguration document")
        return cls.from_dict(doc)

    def _apply_plugins(self, plugins: dict[str, Any]) -> None:
        multi = plugins.get("multiPoint") or {}
        plugin_list = list(self.plugins)
        disabled = {d["name"] for d in multi.get("disabled") or ()}
        if "*" in disabled:
            plugin_list = []
        plugin_list = [(n, w) for n, w in plugin_list if n not in disabled]
        for item in multi.get("enabled") or ():
            plugin_list = [(n, w) for n, w in plugin_list if n != item["name"]]
            plugin_list.append((item["name"], int(item.get("weight") or 0)))
        for point, attr in _POINT_NAMES.items():
            section = plugins.get(point) or {}
            off = {d["name"] for d in section.get("disabled") or ()}
            if "*" in off:
                off = {n for n, _ in plugin_list}
            for item in section.get("enabled") or ():
                off.discard(item["name"])
                names = [n for n, _ in plugin_list]
                if item["name"] not in names:
                    plugin_list.append((item["name"], int(item.get("weight") or 0)))
                    # Enabled at one point only: off everywhere else.
                    for other in _POINT_NAMES.values():
                        if other != attr:
                            self.disabled_at.setdefault(other, set()).add(item["name"])
                elif item.get("weight") is not None and attr == "score":
                    plugin_list = [(n, int(item["weight"]) if n == item["name"] else w) for n, w in plugin_list]
            if off:
                self.disabled_at.setdefault(attr, set()).update(off)
        self.plugins = plugin_list
