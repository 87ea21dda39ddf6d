"""The scheduling framework: plugins registered by name, one method per extension point.

Outcomes are status codes, not exceptions. For speed on the per-node paths, ``filter``
returns ``None`` for success and a ``Status`` otherwise; ``score`` returns an int.
A ``pre_filter``/``pre_score`` that returns ``SKIP`` takes that plugin's ``filter``/
``score`` out of this cycle (most pods have no affinity, no ports, no spread
constraints, so most filters never run per node).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.types import NodeInfo, PodInfo, memoized

if TYPE_CHECKING:
    from sampan.scheduler.config import SchedulerConfig

SUCCESS = 0
ERROR = 1
UNSCHEDULABLE = 2
UNSCHEDULABLE_AND_UNRESOLVABLE = 3
WAIT = 4
SKIP = 5

MAX_NODE_SCORE = 100


class Status:
    __slots__ = ("code", "reasons", "plugin")

    def __init__(self, code: int = SUCCESS, *reasons: str, plugin: str = "") -> None:
        self.code = code
        self.reasons: tuple[str, ...] = reasons
        self.plugin = plugin

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def __repr__(self) -> str:
        return f"Status({self.code}, {self.reasons!r}, plugin={self.plugin!r})"


def unschedulable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE, *reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)


SKIPPED = Status(SKIP)


class CycleState(dict[str, Any]):
    """Per-cycle data plugins hand from one extension point to the next, keyed by plugin name."""


@dataclass
class PostFilterResult:
    nominated_node: str = ""
    # The I/O a PostFilter decided on (preemption deletes its victims), run after the cycle.
    action: Callable[[], Awaitable[None]] | None = None


class Handle:
    """What plugins may reach besides the snapshot: the running framework, and for the
    binder and preemption (which do I/O) the client and the event recorder."""

    def __init__(self, client: Any = None, recorder: Any = None, cache: Any = None, informers: Any = None) -> None:
        self.client = client
        self.recorder = recorder
        self.cache = cache
        self.informers = informers  # an InformerFactory, for plugins that need more kinds
        self.framework: Framework | None = None
        # Set by the scheduler: pod key -> node name of pods waiting for preempted victims.
        self.nominated: dict[str, tuple[PodInfo, str]] = {}


class Plugin:
    """Subclasses set ``name`` and define any of the extension-point methods."""

    name: ClassVar[str] = ""

    def __init__(self, args: dict[str, Any], handle: Handle) -> None:
        self.args = args
        self.handle = handle

    # Extension points, all optional (the framework only calls what a plugin defines):
    #   pre_filter(state, pod, snapshot) -> Status | None
    #   filter(state, pod, node) -> Status | None
    #   filter_many(state, pod, nodes) -> the nodes that pass   (optional fast path, same verdicts)
    #   post_filter(state, pod, snapshot, statuses) -> tuple[PostFilterResult | None, Status]
    #   pre_score(state, pod, snapshot, nodes) -> Status | None
    #   score(state, pod, node) -> int
    #   score_many(state, pod, nodes) -> list[int]                (optional fast path, same scores)
    #   score_key(state, pod) -> tuple   (optional: the score depends only on the node's resources
    #                                     and this key, so it may be remembered per node)
    #   normalize_score(state, pod, nodes, scores) -> None   (in place, to 0..100)
    #   reserve(state, pod, node_name) -> Status | None ; unreserve(state, pod, node_name)
    #   permit(state, pod, node_name) -> Status | None
    #   async bind(state, pod, node_name) -> Status | None


PLUGINS: dict[str, type[Plugin]] = {}


def plugin(cls: type[Plugin]) -> type[Plugin]:
    """Class decorator: makes the plugin usable by name in a scheduler configuration."""
    assert cls.name and cls.name not in PLUGINS, f"plugin name {cls.name!r} missing or taken"
    PLUGINS[cls.name] = cls
    return cls


POINTS = ("pre_filter", "filter", "post_filter", "pre_score", "score", "reserve", "permit", "bind")


@dataclass
class Framework:
    """The plugins of one profile, grouped by extension point, in configuration order."""

    plugins: dict[str, Plugin]
    pre_filter: list[Plugin] = field(default_factory=list)
    filter: list[Plugin] = field(default_factory=list)
    post_filter: list[Plugin] = field(default_factory=list)
    pre_score: list[Plugin] = field(default_factory=list)
    score: list[tuple[Plugin, int]] = field(default_factory=list)
    reserve: list[Plugin] = field(default_factory=list)
    permit: list[Plugin] = field(default_factory=list)
    bind: list[Plugin] = field(default_factory=list)

    @classmethod
    def build(cls, config: SchedulerConfig, handle: Handle) -> Framework:
        from sampan.scheduler import plugins as _plugins  # noqa: F401 - registers every plugin

        made: dict[str, Plugin] = {}
        fw = cls(made)
        for name in config.enabled_plugins():
            factory = PLUGINS.get(name)
            if factory is None:
                raise ValueError(f"unknown scheduler plugin {name!r}")
            made[name] = factory(config.plugin_args(name), handle)
        for point in POINTS:
            for name in config.plugins_at(point):
                p = made[name]
                if not hasattr(p, point):
                    continue
                if point == "score":
                    fw.score.append((p, config.weight(name)))
                else:
                    getattr(fw, point).append(p)
        handle.framework = fw
        return fw

    # -- filter ------------------------------------------------------------------------
    def run_pre_filter(
        self, state: CycleState, pod: PodInfo, snapshot: Snapshot
    ) -> tuple[Status | None, list[Callable]]:
        """Returns (a failure status or None, the filter functions that still apply)."""
        skipped: set[str] = set()
        for p in self.pre_filter:
            status = p.pre_filter(state, pod, snapshot)  # type: ignore[attr-defined]
            if status is None:
                continue
            if status.code == SKIP:
                skipped.add(p.name)
                continue
            status.plugin = status.plugin or p.name
            return status, []
        return None, [p.filter for p in self.filter if p.name not in skipped]  # type: ignore[attr-defined]

    @staticmethod
    def run_filters(filters: list[Callable], state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for fn in filters:
            status = fn(state, pod, node)
            if status is not None:
                if not status.plugin:
                    status.plugin = fn.__self__.name
                return status
        return None

    # -- score -------------------------------------------------------------------------
    def run_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> list[int]:
        """Weighted sum of every scoring plugin's normalized score, per node."""
        skipped: set[str] = set()
        for p in self.pre_score:
            status = p.pre_score(state, pod, snapshot, nodes)  # type: ignore[attr-defined]
            if status is not None and status.code == SKIP:
                skipped.add(p.name)
        active = [(p, w) for p, w in self.score if p.name not in skipped]
        keys = [p.score_key(state, pod) if hasattr(p, "score_key") else None for p, _ in active]
        if active and None not in keys and not any(hasattr(p, "normalize_score") for p, _ in active):
            # Every score depends only on the node's resources and the pod's requests: the
            # weighted total is remembered per node until the node changes.
            fns = [(p.score, w) for p, w in active]  # type: ignore[attr-defined]
            return memoized(nodes, tuple(keys), lambda n: sum(fn(state, pod, n) * w for fn, w in fns))
        totals = [0] * len(nodes)
        for p, weight in active:
            many = getattr(p, "score_many", None)
            if many is not None:
                scores = many(state, pod, nodes)
            else:
                fn = p.score  # type: ignore[attr-defined]
                scores = [fn(state, pod, n) for n in nodes]
            normalize = getattr(p, "normalize_score", None)
            if normalize is not None:
                normalize(state, pod, nodes, scores)
            if weight == 1:
                totals = [t + s for t, s in zip(totals, scores)]
            else:
                totals = [t + s * weight for t, s in zip(totals, scores)]
        return totals


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """Scale to 0..100 by the highest score (upstream's DefaultNormalizeScore)."""
    top = max(scores, default=0)
    if top == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, s in enumerate(scores):
        s = MAX_NODE_SCORE * s // top
        scores[i] = MAX_NODE_SCORE - s if reverse else s
