"""The registry: one ResourceStore per served resource, over one key-value store."""

from __future__ import annotations

from sampan.api import errors
from sampan.apiserver.resources import ResourceInfo, ResourceTable, default_table
from sampan.registry.admission import default_chain
from sampan.registry.allocators import ServiceAllocators
from sampan.registry.kinds import CustomResourceStrategy, builtin_strategy
from sampan.registry.meta import decode
from sampan.registry.services import ServiceStrategy
from sampan.registry.store import ResourceStore
from sampan.registry.strategy import Strategy
from sampan.store import interface as st

NAMESPACES = errors.GroupResource("", "namespaces")
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_NODE_PORT_RANGE = (30000, 32767)


class Registry:
    def __init__(
        self,
        store: st.Store,
        table: ResourceTable | None = None,
        bookmark_interval: float = 60.0,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
        node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE,
    ) -> None:
        self.store = store
        self.table = table if table is not None else default_table()
        self.bookmark_interval = bookmark_interval
        self._strategies: dict[tuple[str, str], Strategy] = {}
        self._stores: dict[tuple[str, str, str], tuple[ResourceInfo, ResourceStore]] = {}
        namespaces = self.table.get("", "v1", "namespaces")
        assert namespaces is not None, "the resource table must serve namespaces"
        self._namespaces = namespaces
        self.allocators = ServiceAllocators(store, service_cidr, node_port_range)
        self._strategies[("", "services")] = ServiceStrategy(self.allocators)
        self.admission = default_chain(self)

    def set_strategy(self, group: str, plural: str, strategy: Strategy) -> None:
        """Custom resources (and tests) install their own strategy."""
        self._strategies[(group, plural)] = strategy
        self._stores = {k: v for k, v in self._stores.items() if (k[0], k[2]) != (group, plural)}

    def strategy(self, info: ResourceInfo) -> Strategy:
        if info.custom:
            # Each CRD version has its own schema, so custom strategies are per version.
            return self._strategies.get((info.group, info.plural)) or CustomResourceStrategy(info)
        found = self._strategies.get((info.group, info.plural))
        if found is None:
            found = builtin_strategy(info.group, info.plural, info.has_status)
            self._strategies[(info.group, info.plural)] = found
        return found

    def resource(self, group: str, version: str, plural: str) -> ResourceStore | None:
        info = self.table.get(group, version, plural)
        if info is None or info.virtual:
            return None
        cached = self._stores.get((group, version, plural))
        if cached is not None and cached[0] is info:
            return cached[1]
        rs = ResourceStore(self, info, self.strategy(info))
        self._stores[(group, version, plural)] = (info, rs)
        return rs

    def must(self, group: str, version: str, plural: str) -> ResourceStore:
        rs = self.resource(group, version, plural)
        if rs is None:
            raise errors.path_not_found()
        return rs

    async def admit_namespace(self, namespace: str, gr: errors.GroupResource, name: str) -> None:
        """Namespaced creates need a namespace that exists and is not terminating."""
        if not namespace:
            cause = errors.cause("FieldValueRequired", "Required value", "metadata.namespace")
            raise errors.invalid("", "", name, [cause])
        try:
            kv = await self.store.get(self._namespaces.key("", namespace))
        except st.NotFound:
            raise errors.not_found(NAMESPACES, namespace) from None
        ns = decode(kv.value, kv.revision)
        if (ns.get("status") or {}).get("phase") == "Terminating" or ns["metadata"].get("deletionTimestamp"):
            why = f"unable to create new content in namespace {namespace} because it is being terminated"
            cause = errors.cause(
                "NamespaceTerminating", f"namespace {namespace} is being terminated", "metadata.namespace"
            )
            raise errors.forbidden(gr, name, why, [cause])
