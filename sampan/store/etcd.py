"""The etcd v3 backend: the store protocol mapped onto etcd's KV, Txn and Watch RPCs.

The store revision is etcd's revision; a key's revision is its mod_revision. Every
conditional write is one etcd transaction comparing the revision we read, so racing
writers fail the compare and retry instead of overwriting each other.
"""

from __future__ import annotations

import weakref
from typing import Any

from aetcd import rpc

from .etcd_conn import EtcdConnection
from .etcd_watch import EtcdWatch, probe_compacted
from .interface import (
    AlreadyExists,
    Compacted,
    KeyValue,
    ListResult,
    NotFound,
    Preconditions,
    StoreError,
    TryUpdate,
    decode_continue,
    encode_continue,
    next_value,
)


def _bytes_end(prefix: bytes) -> bytes:
    """etcd's range end for a prefix: the prefix with its last byte incremented."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\0"  # every key
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _range_request(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


def _compare_mod(key: bytes, revision: int) -> Any:
    return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=key, mod_revision=revision)


def _compare_absent(key: bytes) -> Any:
    return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key, create_revision=0)


class EtcdStore:
    """A ``Store`` backed by an etcd v3 cluster; ``prefix`` namespaces every key."""

    def __init__(
        self,
        endpoints: list[str],
        prefix: str = "",
        *,
        request_timeout: float = 5.0,
        retry_budget: float = 10.0,
    ) -> None:
        self.prefix = prefix
        self.conn = EtcdConnection(endpoints, request_timeout, retry_budget)
        self._watches: weakref.WeakSet[EtcdWatch] = weakref.WeakSet()

    async def start(self) -> None:
        await self.conn.start()

    async def close(self) -> None:
        for watch in list(self._watches):
            watch.close()
        await self.conn.close()

    # -- key mapping ----------------------------------------------------------------------
    def _full(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    def user_key(self, raw: bytes) -> str:
        return raw.decode()[len(self.prefix) :]

    def range_of(self, prefix: str) -> tuple[bytes, bytes]:
        full = self._full(prefix)
        if not full:
            return b"\0", b"\0"  # etcd's spelling of "every key"
        return full, _bytes_end(full)

    def _kv(self, kv: Any) -> KeyValue:
        return KeyValue(self.user_key(kv.key), kv.value, kv.mod_revision, kv.create_revision)

    # -- reads ------------------------------------------------------------------------------
    async def _range(self, request: Any, what: str) -> Any:
        try:
            return await self.conn.call("Range", request, what=what)
        except Compacted:
            raise Compacted(request.revision, await probe_compacted(self, request.revision)) from None

    async def _get_or_none(self, key: str) -> KeyValue | None:
        resp = await self._range(rpc.RangeRequest(key=self._full(key)), key)
        return self._kv(resp.kvs[0]) if resp.kvs else None

    async def get(self, key: str) -> KeyValue:
        kv = await self._get_or_none(key)
        if kv is None:
            raise NotFound(key)
        return kv

    async def list(
        self,
        prefix: str,
        limit: int = 0,
        continue_token: str | None = None,
        at_revision: int = 0,
    ) -> ListResult:
        full, end = self.range_of(prefix)
        start = full
        if continue_token:
            at_revision, resume = decode_continue(prefix, continue_token)
            start = self._full(resume)
        request = rpc.RangeRequest(key=start, range_end=end, limit=max(limit, 0), revision=at_revision)
        resp = await self._range(request, prefix)
        items = [self._kv(kv) for kv in resp.kvs]
        revision = at_revision or resp.header.revision
        if not resp.more or not items:
            return ListResult(items, revision)
        # Resume just after the last key; the token pins this snapshot's revision.
        token = encode_continue(prefix, revision, items[-1].key + "\0")
        return ListResult(items, revision, token, resp.count - len(items))

    async def count(self, prefix: str) -> int:
        full, end = self.range_of(prefix)
        resp = await self._range(rpc.RangeRequest(key=full, range_end=end, count_only=True), prefix)
        return int(resp.count)

    async def current_revision(self) -> int:
        # Any range reports the store revision; etcd rejects an empty key.
        resp = await self._range(rpc.RangeRequest(key=self._full("") or b"\0", count_only=True), "")
        return int(resp.header.revision)

    # -- writes -----------------------------------------------------------------------------
    async def _txn(self, compare: Any, success: Any, key: str) -> Any:
        request = rpc.TxnRequest(
            compare=[compare], success=[success], failure=[_range_request(compare.key)]
        )
        return await self.conn.call("Txn", request, write=True, what=key)

    def _current_from(self, resp: Any) -> KeyValue | None:
        kvs = resp.responses[0].response_range.kvs
        return self._kv(kvs[0]) if kvs else None

    async def create(self, key: str, value: bytes) -> KeyValue:
        full = self._full(key)
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=full, value=value))
        resp = await self._txn(_compare_absent(full), put, key)
        if not resp.succeeded:
            raise AlreadyExists(key)
        revision = int(resp.header.revision)
        return KeyValue(key, value, revision, revision)

    async def guaranteed_update(
        self,
        key: str,
        try_update: TryUpdate,
        preconditions: Preconditions | None = None,
        ignore_not_found: bool = False,
        cached: KeyValue | None = None,  # not used yet: always reads
    ) -> KeyValue:
        full = self._full(key)
        current = await self._get_or_none(key)
        while True:
            new_value = await next_value(key, current, try_update, preconditions, ignore_not_found)
            if current is not None and new_value == current.value:
                return current
            put = rpc.RequestOp(request_put=rpc.PutRequest(key=full, value=new_value))
            if current is None:
                resp = await self._txn(_compare_absent(full), put, key)
            else:
                resp = await self._txn(_compare_mod(full, current.revision), put, key)
            if resp.succeeded:
                revision = int(resp.header.revision)
                created = current.create_revision if current is not None else revision
                return KeyValue(key, new_value, revision, created)
            current = self._current_from(resp)  # lost the race: retry on what won

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> KeyValue:
        full = self._full(key)
        current = await self._get_or_none(key)
        while True:
            if current is None:
                raise NotFound(key)
            if preconditions is not None:
                preconditions.verify(current)
            op = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=full, prev_kv=True))
            resp = await self._txn(_compare_mod(full, current.revision), op, key)
            if resp.succeeded:
                prev = resp.responses[0].response_delete_range.prev_kvs
                value = prev[0].value if prev else current.value
                return KeyValue(key, value, int(resp.header.revision), current.create_revision)
            current = self._current_from(resp)

    async def compact(self, revision: int) -> None:
        revision = min(revision, await self.current_revision())
        if revision <= 0:
            return
        try:
            await self.conn.call("Compact", rpc.CompactionRequest(revision=revision, physical=True), what="compact")
        except Compacted:
            pass  # already compacted at or past this revision: nothing to do

    # -- watch ------------------------------------------------------------------------------
    async def watch(
        self,
        prefix: str,
        since_revision: int = 0,
        send_initial: bool = False,
        bookmark_interval: float | None = None,
    ) -> EtcdWatch:
        if since_revision < 0:
            raise StoreError(f"invalid revision {since_revision}")
        watch = EtcdWatch(self, prefix, since_revision, bookmark_interval)
        self._watches.add(watch)
        try:
            await watch._start(send_initial)
        except BaseException:
            watch.close()
            raise
        return watch

    def _forget(self, watch: EtcdWatch) -> None:
        self._watches.discard(watch)
