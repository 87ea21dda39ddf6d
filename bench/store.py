"""Store benchmark: SQLite vs a real etcd, through the same store protocol.

    python bench/store.py [--quick] [--json FILE]

Measures, per backend: creates/s and updates/s with 1 and 16 concurrent writers,
get latency, list latency over 10k keys, watch delivery latency (write issued ->
event in the consumer) with 1 and 1,000 watchers, and for SQLite the file size after
many updates to 1,000 keys with compaction on. Ends with the line
``sqlite/etcd write throughput ratio: X`` (creates+updates, 16 writers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sampan.store.interface import Store  # noqa: E402
from sampan.store.sqlite import SQLiteStore  # noqa: E402
from tests.store.etcd_server import EtcdProcess  # noqa: E402

VALUE = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"},"data":{"k":"' + b"v" * 400 + b'"}}'


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def write_rate(store: Store, prefix: str, writers: int, per_writer: int, update: bool) -> float:
    async def worker(w: int) -> None:
        for i in range(per_writer):
            key = f"{prefix}{w}-{i % 50 if update else i}"
            if update:
                await store.guaranteed_update(key, lambda kv, i=i: VALUE + str(i).encode(), ignore_not_found=True)
            else:
                await store.create(key, VALUE)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(writers)))
    return writers * per_writer / (time.perf_counter() - start)


async def read_latencies(store: Store, prefix: str, keys: int, gets: int, lists: int) -> dict[str, float]:
    async def fill(w: int) -> None:
        for i in range(w, keys, 16):
            await store.create(f"{prefix}{i:06d}", VALUE)

    await asyncio.gather(*(fill(w) for w in range(16)))
    get_times = []
    for i in range(gets):
        start = time.perf_counter()
        await store.get(f"{prefix}{(i * 7919) % keys:06d}")
        get_times.append(time.perf_counter() - start)
    list_times = []
    for _ in range(lists):
        start = time.perf_counter()
        result = await store.list(prefix)
        list_times.append(time.perf_counter() - start)
        assert len(result.items) == keys
    return {
        "get_p50_ms": pct(get_times, 0.5) * 1e3,
        "get_p99_ms": pct(get_times, 0.99) * 1e3,
        "list_p50_ms": pct(list_times, 0.5) * 1e3,
        "list_p99_ms": pct(list_times, 0.99) * 1e3,
    }


async def watch_latency(store: Store, prefix: str, watchers: int, events: int) -> dict[str, float]:
    """One write at a time; latency per (watcher, event) from issuing the write, so it
    includes the commit itself (for SQLite an fsync)."""
    watches = [await store.watch(prefix) for _ in range(watchers)]
    issued: dict[str, float] = {}
    samples: list[float] = []
    remaining = asyncio.Semaphore(0)

    async def consume(watch) -> None:
        async for event in watch:
            if event.type == "BOOKMARK":
                continue
            samples.append(time.perf_counter() - issued[event.key])
            remaining.release()

    tasks = [asyncio.create_task(consume(w)) for w in watches]
    try:
        for i in range(events):
            key = f"{prefix}{i}"
            issued[key] = time.perf_counter()
            await store.create(key, VALUE)
            for _ in range(watchers):
                await asyncio.wait_for(remaining.acquire(), 30)
    finally:
        for watch in watches:
            watch.close()
        for task in tasks:
            task.cancel()
    return {"p50_ms": pct(samples, 0.5) * 1e3, "p99_ms": pct(samples, 0.99) * 1e3}


async def sqlite_size(directory: Path, updates: int, keys: int = 1000) -> dict[str, float]:
    store = SQLiteStore(directory / "size.db", compact_interval=5.0)
    await store.start()
    try:
        for k in range(keys):
            await store.create(f"/size/{k:04d}", VALUE)
        start = time.perf_counter()

        async def worker(w: int) -> None:
            for i in range(w, updates, 16):
                await store.guaranteed_update(f"/size/{i % keys:04d}", lambda kv, i=i: VALUE + b"%08d" % i)

        await asyncio.gather(*(worker(w) for w in range(16)))
        rate = updates / (time.perf_counter() - start)
        await asyncio.sleep(2.5)  # let the periodic compaction catch up
        live = sum(len(kv.key) + len(kv.value) for kv in (await store.list("/size/")).items)
        sizes = store.file_sizes()
        on_disk = sizes["db"] + sizes["db-wal"]
        return {"updates": updates, "rate": rate, "live_bytes": live, "file_bytes": on_disk, "ratio": on_disk / live}
    finally:
        await store.close()


async def bench_backend(store: Store, quick: bool) -> dict[str, object]:
    n1, n16 = (400, 100) if quick else (2000, 500)
    results: dict[str, object] = {}
    results["create_1"] = await write_rate(store, "/b/c1/", 1, n1, update=False)
    results["create_16"] = await write_rate(store, "/b/c16/", 16, n16, update=False)
    results["update_1"] = await write_rate(store, "/b/u1/", 1, n1, update=True)
    results["update_16"] = await write_rate(store, "/b/u16/", 16, n16, update=True)
    results["reads"] = await read_latencies(store, "/b/list/", 10_000, 500 if quick else 2000, 5 if quick else 20)
    results["watch_1"] = await watch_latency(store, "/b/w1/", 1, 100 if quick else 500)
    results["watch_1000"] = await watch_latency(store, "/b/w1000/", 1000, 10 if quick else 50)
    return results


def report(name: str, r: dict) -> None:
    reads = r["reads"]
    print(f"{name}: creates/s 1 writer {r['create_1']:.0f}, 16 writers {r['create_16']:.0f}; "
          f"updates/s 1 writer {r['update_1']:.0f}, 16 writers {r['update_16']:.0f}")
    print(f"{name}: get p50 {reads['get_p50_ms']:.3f} ms p99 {reads['get_p99_ms']:.3f} ms; "
          f"list 10k keys p50 {reads['list_p50_ms']:.1f} ms p99 {reads['list_p99_ms']:.1f} ms")
    for n in (1, 1000):
        w = r[f"watch_{n}"]
        print(f"{name}: watch delivery with {n} watcher(s) p50 {w['p50_ms']:.2f} ms p99 {w['p99_ms']:.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smaller run of the same measures")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="sampan-bench-") as tmp:
        tmpdir = Path(tmp)
        sqlite = SQLiteStore(tmpdir / "bench.db")
        await sqlite.start()
        try:
            results["sqlite"] = await bench_backend(sqlite, args.quick)
        finally:
            await sqlite.close()
        report("sqlite", results["sqlite"])

        from sampan.store.etcd import EtcdStore

        etcd_proc = EtcdProcess(tmpdir / "etcd")
        await etcd_proc.start()
        etcd = EtcdStore([etcd_proc.endpoint])
        await etcd.start()
        try:
            results["etcd"] = await bench_backend(etcd, args.quick)
        finally:
            await etcd.close()
            etcd_proc.stop()
        report("etcd", results["etcd"])

        size = await sqlite_size(tmpdir, 100_000 if args.quick else 1_000_000)
        results["sqlite_size"] = size
        print(f"sqlite: after {size['updates']} updates to 1000 keys ({size['rate']:.0f}/s, compaction on): "
              f"{size['file_bytes'] / 1e6:.2f} MB on disk for {size['live_bytes'] / 1e6:.2f} MB live "
              f"({size['ratio']:.2f}x)")

    s, e = results["sqlite"], results["etcd"]
    ratio = (s["create_16"] + s["update_16"]) / (e["create_16"] + e["update_16"])
    results["ratio"] = ratio
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"sqlite/etcd write throughput ratio: {ratio:.2f}")


if __name__ == "__main__":
    import uvloop  # the event loop the server runs on

    uvloop.run(main())
