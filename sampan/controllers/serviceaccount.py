"""Every active namespace has a ``default`` ServiceAccount; a deleted one comes back."""

from __future__ import annotations

from sampan.api.errors import APIError
from sampan.client.interface import NAMESPACES, SERVICEACCOUNTS, Obj
from sampan.controllers.base import Controller, register

DEFAULT_ACCOUNT = "default"


def _namespace_of_default(obj: Obj) -> str | None:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") if meta.get("name") == DEFAULT_ACCOUNT else None


@register
class ServiceAccountsController(Controller):
    name = "serviceaccount"
    component = "serviceaccount-controller"

    def setup(self) -> None:
        self.namespaces = self.watch(NAMESPACES)
        self.accounts = self.watch(SERVICEACCOUNTS, _namespace_of_default)

    async def reconcile(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or ns["metadata"].get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            return
        if self.accounts.get_by_name(DEFAULT_ACCOUNT, key) is not None:
            return
        try:
            await self.client.create(SERVICEACCOUNTS, {"metadata": {"name": DEFAULT_ACCOUNT}}, key)
        except APIError as exc:
            # 409: it exists already (cache behind); 403/404: the namespace is going or gone.
            if exc.code not in (403, 404, 409):
                raise
