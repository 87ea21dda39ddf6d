"""Watch fan-out micro-benchmark: many HTTP watchers of one collection, in process.

    python bench/watch_fanout.py [--watchers N] [--events N] [--selector]

An API server app over a memory store on loopback HTTP (no TLS, no controllers); this
process also runs the watchers, whose cost is the same for any server code, so the
CPU per delivered event compares server versions. ``--selector`` gives half of the
watchers a label selector. Bounded: every wait has a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import orjson
from aiohttp import web

from sampan.apiserver.app import build_app
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore
from sampan.store.watchcache import WatchCache

PATH = "/api/v1/namespaces/default/configmaps"


def configmap(i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": f"cm-{i}", "labels": {"app": "a" if i % 2 else "b"}},
                         "data": {f"k{j}": "v" * 40 for j in range(20)}})


async def run(watchers: int, events: int, selector: bool) -> None:
    backend = MemoryStore()
    await backend.start()
    store = WatchCache(backend)
    await store.start()
    reg = Registry(store)
    await bootstrap(reg)
    runner = web.AppRunner(build_app(reg))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}{PATH}"
    received = 0
    expected = 0
    done = asyncio.Event()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as http:
            async with http.get(url) as resp:
                rv = orjson.loads(await resp.read())["metadata"]["resourceVersion"]
            opened = 0

            async def watcher(i: int) -> None:
                nonlocal opened, received
                query = f"?watch=true&resourceVersion={rv}&timeoutSeconds=300"
                if selector and i % 2:
                    query += "&labelSelector=app%3Da"
                async with http.get(url + query) as resp:
                    opened += 1
                    async for line in resp.content:
                        orjson.loads(line)
                        received += 1
                        if received >= expected:
                            done.set()

            per_event = sum(1 if not (selector and i % 2) else 0 for i in range(watchers))
            selected = watchers - per_event
            expected = per_event * events + selected * (events // 2)
            tasks = [asyncio.create_task(watcher(i)) for i in range(watchers)]
            async with asyncio.timeout(120):
                while opened < watchers:
                    await asyncio.sleep(0.05)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for i in range(events):
                async with http.post(url, data=configmap(i), headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 201, await resp.text()
            async with asyncio.timeout(300):
                await done.wait()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        print(f"watchers={watchers} events={events} delivered={received} in {wall:.2f}s; "
              f"CPU {cpu / received * 1e6:.1f} us per delivered event, {cpu / events * 1e3:.1f} ms per write")
    finally:
        await runner.cleanup()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=300)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--selector", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.watchers, args.events, args.selector))


if __name__ == "__main__":
    main()
