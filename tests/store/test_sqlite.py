"""What only the SQLite backend has to show: durability, bounded size, clear failures."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sampan.store import Unavailable
from sampan.store.sqlite import SQLiteStore
from sampan.store.sqlite_writer import read_compacted

BURST_WRITER = r"""
import asyncio, sys
from sampan.store.sqlite import SQLiteStore

async def main(path):
    store = SQLiteStore(path)
    await store.start()
    async def writer(w):
        for i in range(100000):
            key = f"/registry/burst/{w}-{i}"
            await store.create(key, b"x" * 200)
            print(key, flush=True)  # printed only once the write is acknowledged
    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main(sys.argv[1]))
"""


async def open_store(path: Path, **kwargs) -> SQLiteStore:
    store = SQLiteStore(path, **kwargs)
    await store.start()
    return store


async def test_state_survives_restart(tmp_path):
    store = await open_store(tmp_path / "db")
    await store.create("/a", b"1")
    updated = await store.guaranteed_update("/a", lambda kv: b"2")
    await store.create("/b", b"3")
    await store.delete("/b")
    await store.close()

    store = await open_store(tmp_path / "db")
    try:
        assert (await store.get("/a")).value == b"2"
        assert [kv.key for kv in (await store.list("/")).items] == ["/a"]
        assert await store.current_revision() == updated.revision + 2
        later = await store.create("/c", b"4")
        assert later.revision == updated.revision + 3  # revisions never go back
    finally:
        await store.close()


def test_kill_9_during_write_burst_keeps_every_acknowledged_write(tmp_path):
    path = tmp_path / "db"
    proc = subprocess.Popen([sys.executable, "-c", BURST_WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    acknowledged = []
    try:
        for line in proc.stdout:
            acknowledged.append(line.strip())
            if len(acknowledged) >= 3000:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # Lines printed between our last read and the kill were acknowledged too.
        acknowledged += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    assert len(acknowledged) >= 3000

    async def check():
        store = await open_store(path)
        try:
            present = {kv.key for kv in (await store.list("/registry/burst/")).items}
            missing = [key for key in acknowledged if key not in present]
            assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        finally:
            await store.close()

    asyncio.run(check())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


async def test_compaction_keeps_the_file_bounded(tmp_path):
    store = await open_store(tmp_path / "db", retain_revisions=100, compact_every_writes=500, compact_interval=1)
    try:
        value = b"v" * 500
        for i in range(100):
            await store.create(f"/k/{i:03d}", value)

        async def churn(worker):
            for round_ in range(150):
                await store.guaranteed_update(f"/k/{worker * 10 + round_ % 10:03d}", lambda kv: value)
                await store.guaranteed_update(f"/k/{worker * 10 + round_ % 10:03d}",
                                              lambda kv, r=round_: b"%d" % r + value)

        await asyncio.gather(*(churn(w) for w in range(10)))
        # The compactor looks once a second; a quiet second later it has run after the
        # last write (by time), then checkpointed and truncated the WAL.
        # Watch what is committed in the file, not the writer's in-transaction state.
        last = await store.current_revision()
        conn = sqlite3.connect(tmp_path / "db")
        try:
            for _ in range(50):
                if read_compacted(conn) >= last - 100:
                    break
                await asyncio.sleep(0.1)
            assert read_compacted(conn) == last - 100
            rows = conn.execute("SELECT COUNT(*) FROM log").fetchone()[0]
        finally:
            conn.close()
        assert rows <= 100 + 100, rows  # 3,100 writes happened, history was dropped
        # The writer thread checkpoints and truncates the WAL just after the compaction
        # commits, so give that step a moment before measuring.
        bound = 3 * 100 * len(value) + 512 * 1024
        for _ in range(50):
            sizes = store.file_sizes()
            if sizes["db"] + sizes["db-wal"] < bound:
                break
            await asyncio.sleep(0.1)
        assert sizes["db"] + sizes["db-wal"] < bound, sizes
        assert len((await store.list("/k/")).items) == 100
    finally:
        await store.close()


async def test_corrupted_file_is_a_clear_error(tmp_path):
    path = tmp_path / "db"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(Unavailable, match="db"):
        await open_store(path)


@pytest.fixture
def tiny_mount(tmp_path):
    """A tmpfs we can fill or make read-only (root ignores file permissions)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    mounted = []

    def mount(options: str) -> Path:
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], check=True)
        mounted.append(mount_point)
        return mount_point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


async def test_read_only_data_dir_is_a_clear_error(tiny_mount):
    directory = tiny_mount("ro,size=1m")
    with pytest.raises(Unavailable, match="cannot open database"):
        await open_store(directory / "db" / "state.db")


async def test_full_disk_fails_writes_clearly_and_loses_nothing(tiny_mount):
    directory = tiny_mount("size=2m")
    store = await open_store(directory / "state.db")
    acknowledged = []
    try:
        with pytest.raises(Unavailable, match="full"):
            for i in range(10_000):
                await store.create(f"/fill/{i}", os.urandom(4096))
                acknowledged.append(f"/fill/{i}")
        assert acknowledged
        keys = {kv.key for kv in (await store.list("/fill/")).items}
        assert keys == set(acknowledged)
    finally:
        await store.close()
