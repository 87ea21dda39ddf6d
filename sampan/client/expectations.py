"""Controller expectations: stop a controller from acting twice on a stale cache.

After a controller creates N pods for a ReplicaSet it records "expect N creations"; the
informer's add handler lowers the count as the pods show up. Until the count reaches
zero (or five minutes pass, in case an event was lost) the controller does not
create or delete more for that key. Deletions work the same way; the UID-tracking
variant remembers which objects it deleted so each one is counted once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class Expectation:
    add: int
    delete: int
    timestamp: float

    def fulfilled(self) -> bool:
        # Counts go negative when more was observed than expected; that is still fulfilled.
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    def __init__(self, ttl: float = EXPECTATIONS_TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[str, Expectation] = {}

    def get(self, key: str) -> Expectation | None:
        return self._items.get(key)

    def satisfied(self, key: str) -> bool:
        """True when the controller may act: nothing recorded, all observed, or expired."""
        exp = self._items.get(key)
        if exp is None:
            return True  # a new controller, or one whose record was deleted
        if exp.fulfilled():
            return True
        if self._clock() - exp.timestamp > self.ttl:
            log.info("expectations for %s expired (add=%d, delete=%d)", key, exp.add, exp.delete)
            return True
        return False

    def set(self, key: str, add: int, delete: int) -> None:
        self._items[key] = Expectation(add, delete, self._clock())

    def expect_creations(self, key: str, count: int) -> None:
        self.set(key, count, 0)

    def expect_deletions(self, key: str, count: int) -> None:
        self.set(key, 0, count)

    def raise_expectations(self, key: str, add: int, delete: int) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.add += add
            exp.delete += delete

    def lower_expectations(self, key: str, add: int, delete: int) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= add
            exp.delete -= delete

    def creation_observed(self, key: str) -> None:
        self.lower_expectations(key, 1, 0)

    def deletion_observed(self, key: str) -> None:
        self.lower_expectations(key, 0, 1)

    def delete(self, key: str) -> None:
        """Forget the key (its owner was deleted)."""
        self._items.pop(key, None)


class UIDTrackingExpectations:
    """Deletion expectations keyed by the deleted objects, so a delete seen twice
    (watch event plus a relist's synthesized delete) is counted once."""

    def __init__(self, expectations: ControllerExpectations | None = None) -> None:
        self.expectations = expectations or ControllerExpectations()
        self._uids: dict[str, set[str]] = {}

    def get_uids(self, key: str) -> set[str]:
        return set(self._uids.get(key, ()))

    def expect_deletions(self, key: str, deleted_keys: Iterable[str]) -> None:
        keys = set(deleted_keys)
        pending = self._uids.get(key)
        if pending:
            log.warning("%s: new deletion expectations while %d are still pending", key, len(pending))
        self._uids[key] = keys
        self.expectations.expect_deletions(key, len(keys))

    def deletion_observed(self, key: str, deleted_key: str) -> None:
        pending = self._uids.get(key)
        if pending and deleted_key in pending:
            pending.discard(deleted_key)
            self.expectations.lower_expectations(key, 0, 1)

    def delete(self, key: str) -> None:
        self._uids.pop(key, None)
        self.expectations.delete(key)

    # The rest is the plain expectations interface.
    def satisfied(self, key: str) -> bool:
        return self.expectations.satisfied(key)

    def get(self, key: str) -> Expectation | None:
        return self.expectations.get(key)

    def set(self, key: str, add: int, delete: int) -> None:
        self.expectations.set(key, add, delete)

    def expect_creations(self, key: str, count: int) -> None:
        self.expectations.expect_creations(key, count)

    def creation_observed(self, key: str) -> None:
        self.expectations.creation_observed(key)

    def raise_expectations(self, key: str, add: int, delete: int) -> None:
        self.expectations.raise_expectations(key, add, delete)

    def lower_expectations(self, key: str, add: int, delete: int) -> None:
        self.expectations.lower_expectations(key, add, delete)
