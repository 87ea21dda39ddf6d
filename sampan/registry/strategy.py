"""Per-kind behaviour of the generic store. A kind overrides only what it needs;
the status and scale subresources are the same store with another strategy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sampan.api import fieldsets
from sampan.api.selectors import FieldSelector
from sampan.registry import hooks
from sampan.registry.meta import Obj

if TYPE_CHECKING:
    from sampan.apiserver.resources import ResourceInfo
    from sampan.registry.options import WriteOptions

# Built-in kinds with a status subresource whose generation upstream does not track.
_NO_GENERATION = {
    ("", "pods"),
    ("", "nodes"),
    ("", "namespaces"),
    ("", "services"),
    ("", "persistentvolumes"),
    ("", "persistentvolumeclaims"),
    ("", "resourcequotas"),
}

# Called once the write is stored (True) or has failed (False).
Finish = Callable[[bool], Awaitable[None]]


class Strategy:
    """Defaults suit most kinds: nothing to prepare, no graceful deletion."""

    def __init__(self, group: str, plural: str, has_status: bool, custom: bool = False) -> None:
        self.group = group
        self.plural = plural
        self.has_status = has_status
        self.tracks_generation = custom or (has_status and (group, plural) not in _NO_GENERATION)

    def prepare_for_create(self, obj: Obj) -> None:
        """Kinds with a status subresource start with an empty status."""
        if self.has_status:
            obj.pop("status", None)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        pass

    def check_decoding(self, obj: Obj, info: ResourceInfo, opts: WriteOptions) -> None:
        """A create body's decoding checks (types, unknown fields); see hooks.check_decoding."""
        hooks.check_decoding(obj, info, opts.field_validation, opts.warnings)

    def record_create(self, obj: Obj, manager: str, info: ResourceInfo) -> None:
        """The managedFields entry of a create by ``manager`` (operation Update)."""
        hooks.update_managed_fields(None, obj, manager, info, "")

    def validate(self, obj: Obj, old: Obj | None) -> list[dict[str, Any]]:
        """Kind-specific checks the schema cannot express (beyond sampan.api.validation)."""
        return []

    async def begin_create(self, obj: Obj, dry_run: bool) -> Finish | None:
        """Reserve what the object needs outside itself (e.g. a Service's IP) just before storing."""
        return None

    async def begin_update(self, new: Obj, old: Obj, dry_run: bool) -> Finish | None:
        return None

    async def after_delete(self, obj: Obj) -> None:
        """The object has been removed from the store."""

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        """Seconds to wait before removal; 0 means delete now (unless finalizers)."""
        return 0

    def before_delete(self, obj: Obj) -> bool:
        """Adjust a live object that is being deleted; True keeps it (deletion pending)."""
        return False

    def fields(self, obj: Obj) -> dict[str, str]:
        """Selectable fields for fieldSelector (custom resources override this)."""
        return fieldsets.field_set(self.group, self.plural, obj)

    def convert_field_selector(self, selector: FieldSelector) -> FieldSelector:
        """Raises SelectorError for labels this kind does not support."""
        return fieldsets.convert_field_selector(self.group, self.plural, selector)
