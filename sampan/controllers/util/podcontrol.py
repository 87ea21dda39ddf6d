"""Pod creation and deletion for controllers that track them with expectations (upstream's
PodControl): each write records the upstream event (SuccessfulCreate, FailedCreate,
SuccessfulDelete, FailedDelete) on the owner, and a write that fails lowers the expectation
at once, since the informer will never see it."""

from __future__ import annotations

from sampan.client.events import NORMAL, WARNING, EventRecorder
from sampan.client.expectations import UIDTrackingExpectations
from sampan.client.interface import PODS, Client, Obj, is_not_found, object_key
from sampan.controllers.util.writes import error_message, namespace_terminating


class PodControl:
    def __init__(self, client: Client, recorder: EventRecorder, expectations: UIDTrackingExpectations) -> None:
        self.client = client
        self.recorder = recorder
        self.expectations = expectations

    async def create(self, key: str, owner: Obj, pod: Obj) -> None:
        """Creates ``pod`` in the owner's namespace; a namespace being deleted drops it quietly."""
        try:
            created = await self.client.create(PODS, pod, owner["metadata"].get("namespace"))
        except Exception as exc:
            self.expectations.creation_observed(key)
            if namespace_terminating(exc):
                return
            self.recorder.event(owner, WARNING, "FailedCreate", f"Error creating: {error_message(exc)}")
            raise
        self.recorder.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def delete(self, key: str, owner: Obj, pod: Obj) -> None:
        """Deletes ``pod``; one that is already gone counts as deleted."""
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"))
        except Exception as exc:
            self.expectations.deletion_observed(key, object_key(pod))
            if is_not_found(exc):
                return
            self.recorder.event(owner, WARNING, "FailedDelete", f"Error deleting: {error_message(exc)}")
            raise
        self.recorder.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
