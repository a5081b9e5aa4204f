"""The journal's file format (frames, CRC32, torn tails, compaction) and the parts' records read
back: what a Store and a MapStore wrote comes back the same in fresh ones."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from nbfan.scheduler.journal import MAGIC, Journal, configured_dir, encode, read_frames, replay
from nbfan.scheduler.mapstore import MapStore
from nbfan.scheduler.store import Store


def write(journal: Journal, *records: tuple[Any, ...]) -> None:
    for record in records:
        journal.append(record)
    future = journal.flush()
    assert future is not None
    future.result()


def log_file(directory: Path) -> Path:
    (path,) = directory.glob("log-*.nbj")
    return path


def test_records_come_back_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.load() == []
    write(journal, ("a", 1), ("b", b"x" * 1000))
    write(journal, ("c", None))
    journal.close()
    again = Journal(tmp_path)
    assert again.load() == [("a", 1), ("b", b"x" * 1000), ("c", None)]
    assert again.problems == []
    again.close()


def test_frames_are_length_crc_payload() -> None:
    frame = encode(("x", 1))
    assert len(frame) == 8 + int.from_bytes(frame[:4], "big")


@pytest.mark.parametrize("cut", [1, 5, 9])
def test_a_torn_tail_is_reported_by_name_and_the_prefix_kept(tmp_path: Path, cut: int,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path)
    journal.load()
    write(journal, ("kept", 1), ("kept", 2), ("torn", b"y" * 100))
    journal.close()
    path = log_file(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - cut)  # the last record's write was cut short
    valid_end = size - len(encode(("torn", b"y" * 100)))
    with caplog.at_level(logging.WARNING, logger="nbfan"):
        again = Journal(tmp_path)
        assert again.load() == [("kept", 1), ("kept", 2)]
    (problem,) = again.problems
    assert str(path) in problem and f"offset {valid_end}" in problem and "torn" in problem
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] == [problem]  # once
    assert path.stat().st_size == valid_end  # cut at the valid prefix: new records follow it
    assert path.with_name(f"{path.name}.torn-{valid_end}").exists()
    write(again, ("after", 3))
    again.close()
    third = Journal(tmp_path)
    assert third.load() == [("kept", 1), ("kept", 2), ("after", 3)]
    assert third.problems == []  # reported once: the damage was cut off
    third.close()


def test_a_corrupt_record_fails_its_crc(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.load()
    write(journal, ("kept", 1), ("flipped", b"z" * 50), ("after", 2))
    journal.close()
    path = log_file(tmp_path)
    data = bytearray(path.read_bytes())
    offset = len(MAGIC) + len(encode(("kept", 1)))
    data[offset + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    records, end, why = read_frames(path)
    assert records == [("kept", 1)] and end == offset and why is not None and "CRC32" in why
    again = Journal(tmp_path)
    assert again.load() == [("kept", 1)]
    assert f"offset {offset}" in again.problems[0] and "CRC32" in again.problems[0]
    again.close()


def test_a_file_without_the_header_is_reported(tmp_path: Path) -> None:
    (tmp_path / "log-000000.nbj").write_bytes(b"not a journal")
    journal = Journal(tmp_path)
    assert journal.load() == []
    assert "header" in journal.problems[0]
    write(journal, ("new", 1))
    journal.close()
    again = Journal(tmp_path)
    assert again.load() == [("new", 1)]
    again.close()


def test_compaction_bounds_the_disk_to_the_live_state(tmp_path: Path) -> None:
    live: dict[str, int] = {}

    def snapshot() -> list[tuple[Any, ...]]:
        return [("set", k, v) for k, v in live.items()]

    journal = Journal(tmp_path, snapshot, compact_ratio=2.0, compact_min_bytes=10_000)
    journal.load()
    for i in range(5_000):  # the same 10 keys again and again: the live state stays small
        key = f"k{i % 10}"
        live[key] = i
        journal.append(("set", key, i))
        if i % 50 == 49:
            journal.flush()
    journal.close()
    assert journal.compactions >= 3
    assert journal.disk_bytes() < 3 * 10_000 + 4096  # not the ~150 kB the records took in all
    assert len(list(tmp_path.glob("snapshot-*.nbj"))) == 1 and len(list(tmp_path.glob("log-*.nbj"))) == 1
    again = Journal(tmp_path)
    state: dict[str, int] = {}
    for _op, key, value in again.load():
        state[key] = value
    assert state == live
    again.close()


@pytest.mark.parametrize("step", ["snapshot written, not renamed", "an old-style log created first"])
def test_a_compaction_cut_short_keeps_the_generation_before_it(tmp_path: Path, step: str) -> None:
    journal = Journal(tmp_path)
    journal.load()
    write(journal, ("kept", 1), ("kept", 2))
    journal.close()
    # the process died inside the next compaction: generation 1 is half made
    if step == "snapshot written, not renamed":
        (tmp_path / "snapshot-000001.nbj.tmp").write_bytes(MAGIC + encode(("kept", 1)))
    else:
        (tmp_path / "log-000001.nbj").write_bytes(MAGIC)
    again = Journal(tmp_path)
    assert again.load() == [("kept", 1), ("kept", 2)]
    assert again.generation == 0 and again.problems == []
    write(again, ("after", 3))
    again.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock", "log-000000.nbj"]
    third = Journal(tmp_path)
    assert third.load() == [("kept", 1), ("kept", 2), ("after", 3)]
    third.close()


def test_a_failed_write_is_cut_back_so_later_records_read_back(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    journal = Journal(tmp_path)
    journal.load()
    write(journal, ("before", 1))
    real_fsync = os.fsync
    fail = {"now": True}

    def fsync(fd: int) -> None:
        if fail["now"]:
            fail["now"] = False
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal.append(("lost", b"x" * 100))
    future = journal.flush()
    assert future is not None
    with pytest.raises(OSError, match="No space left"):
        future.result()  # the request that wrote it gets the error
    assert "No space left" in journal.problems[0] and "cut back" in journal.problems[0]
    write(journal, ("after", 2))
    journal.close()
    again = Journal(tmp_path)
    assert again.load() == [("before", 1), ("after", 2)]
    assert again.problems == []
    again.close()


def test_one_scheduler_at_a_time_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    import stat

    from nbfan.scheduler.journal import JournalError

    journal = Journal(tmp_path / "j")
    journal.load()
    write(journal, ("secret", 1))
    with pytest.raises(JournalError, match="in use by another scheduler"):
        Journal(tmp_path / "j")
    assert stat.S_IMODE((tmp_path / "j").stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "j").iterdir()} == {0o600}
    journal.close()
    Journal(tmp_path / "j").close()  # free again once the first one closed


def test_a_tick_is_one_write_and_requests_wait_for_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.load()

    async def main() -> None:
        for i in range(100):
            journal.append(("r", i))  # one tick: flushed once, by call_soon
        await journal.durable()

    asyncio.run(main())
    assert journal.writes == 1
    journal.close()
    again = Journal(tmp_path)
    assert [r[1] for r in again.load()] == list(range(100))
    again.close()


def test_configured_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import dask

    monkeypatch.delenv("NBFAN_JOURNAL_DIR", raising=False)
    assert configured_dir() is None
    monkeypatch.setenv("NBFAN_JOURNAL_DIR", str(tmp_path))
    assert configured_dir() == tmp_path
    with dask.config.set({"nbfan.journal-dir": "off"}):
        assert configured_dir() is None
    with dask.config.set({"nbfan.journal-dir": str(tmp_path / "x")}):
        assert configured_dir() == tmp_path / "x"


# -- the parts' records --------------------------------------------------------------------------


def reopen(tmp_path: Path, part: Any, kind: str, fresh: Any) -> Any:
    part.journal.flush().result()
    part.journal.close()
    journal = Journal(tmp_path)
    assert list(replay(journal.load(), {kind: fresh})) == []
    journal.close()
    return fresh


def test_dicts_queues_and_apps_come_back(tmp_path: Path) -> None:
    store = Store()
    store.journal = Journal(tmp_path)
    store.journal.load()

    async def change() -> None:
        store.dict_op("d", "create")
        for i in range(100):
            store.dict_op("d", "put", key=b"k%d" % i, value=b"v%d" % i)
        store.dict_op("d", "put", key=b"k0", value=b"other", skip_if_exists=True)  # not written
        store.dict_op("d", "pop", key=b"k1")
        store.dict_op("d", "update", items=[(b"k2", b"new")])
        store.dict_op("gone", "create")
        store.dict_op("gone", "delete")
        await store.queue_op(name="q", action="create")
        await store.queue_op(name="q", action="put", values=[b"%d" % i for i in range(50)])
        await store.queue_op(name="q", action="put", partition="p", values=[b"x"])
        got = await store.queue_op(name="q", action="get", n=3, block=False)
        assert got["values"] == [b"0", b"1", b"2"]
        await store.queue_op(name="q", action="clear", partition="p")

    asyncio.run(change())
    back = reopen(tmp_path, store, "store", Store())
    assert back.dicts == store.dicts and len(back.dicts["d"]) == 99 and back.dicts["d"][b"k0"][1] == b"v0"
    assert back.queues == store.queues and list(back.queues["q"][None])[:2] == [b"3", b"4"]
    snap = Store()
    for record in store.snapshot():
        snap.replay(record)
    assert (snap.dicts, snap.queues) == (store.dicts, store.queues)


def test_app_versions_and_their_schedules_come_back(tmp_path: Path) -> None:
    from nbfan.scheduler.apps import Apps

    apps = Apps()
    apps.journal = Journal(tmp_path)
    apps.journal.load()
    apps.apps_op("deploy", "app", {"functions": {"f": b"v1"}})
    apps.apps_op("deploy", "app", {"functions": {"f": b"v2"}, "schedules": {"f": ("period", 0, 60.0)},
                                   "launchers": {"f": b"launch"}})
    apps.apps_op("rollback", "app")
    apps.apps_op("deploy", "stopped", {"functions": {}})
    apps.apps_op("stop", "stopped")
    back = reopen(tmp_path, apps, "apps", Apps())
    assert back.versions == apps.versions and list(back.versions) == ["app"]
    assert [(r["version"], r["functions"]["f"]) for r in back.versions["app"]] == [(1, b"v1"), (2, b"v2"), (3, b"v1")]
    assert back.schedules == {}  # the current version (a copy of 1) has no schedule
    snap = Apps()
    for record in apps.snapshot():
        snap.replay(record)
    assert snap.versions == apps.versions


def test_expiries_are_journaled_and_a_restart_keeps_each_partitions_last_put(tmp_path: Path) -> None:
    from nbfan.scheduler.store import DICT_ENTRY_TTL

    clock = [1_000_000.0]
    store = Store()
    store.clock = lambda: clock[0]
    store.journal = Journal(tmp_path)
    store.journal.load()

    async def change() -> None:
        store.dict_op("d", "create")
        store.dict_op("d", "put", key=b"old", value=b"1")
        await store.queue_op(name="q", action="create")
        await store.queue_op(name="q", action="put", partition="p", values=[b"x"], partition_ttl=2 * DICT_ENTRY_TTL)

    asyncio.run(change())
    clock[0] += DICT_ENTRY_TTL
    store.dict_op("d", "put", key=b"new", value=b"2")
    store.expire()  # "old" goes, and its expiry is journaled
    assert list(store.dicts["d"]) == [b"new"]
    back = Store()
    back.clock = lambda: clock[0]
    back = reopen(tmp_path, store, "store", back)
    assert list(back.dicts["d"]) == [b"new"]
    assert back.partition_life["q"]["p"] == (1_000_000.0, 2 * DICT_ENTRY_TTL)  # its put's time, not the restart's
    clock[0] += DICT_ENTRY_TTL
    back.expire()
    assert back.queues["q"] == {}
    snap = Store()
    for record in store.snapshot():
        snap.replay(record)
    assert snap.partition_life == store.partition_life


class FakeScheduler:
    tasks: dict[str, Any] = {}

    def client_desires_keys(self, keys: Any, client: Any) -> None:
        pass

    def client_releases_keys(self, keys: Any, client: Any, stimulus_id: Any) -> None:
        pass


def test_maps_come_back_and_running_ones_are_resumable(tmp_path: Path) -> None:
    maps = MapStore()
    maps.scheduler = FakeScheduler()
    maps.journal = Journal(tmp_path)
    maps.journal.load()

    async def change() -> None:
        maps.create("done", "f", 4, b"inputs", resume=b"call")
        epoch = maps.claim("done")["epoch"]
        maps.store("done", epoch, 0, 2, b"out0", done=2, failed=0)
        maps.store("done", epoch, 2, 2, b"out2", done=1, failed=1)
        maps.create("running", "f", 10, b"inputs", resume=b"call")
        epoch = maps.claim("running")["epoch"]
        maps.store("running", epoch, 0, 3, b"out0", done=3, failed=0)
        maps.store("running", epoch, 3, 3, None, done=3, failed=0, key="on-a-worker", nbytes=5 << 20)
        maps.create("big", "f", 10, None, chunks=[(0, 10, "inputs-on-a-worker")], resume=b"call")

    asyncio.run(change())
    assert maps.records["done"].state == "done"
    back = reopen(tmp_path, maps, "map", MapStore())
    back.scheduler = FakeScheduler()
    done = back.records["done"]
    assert (done.state, done.done, done.failed, sorted(done.batches)) == ("done", 3, 1, [0, 2])
    assert done.batches[2].blob == b"out2"
    running = back.records["running"]
    assert (running.state, running.epoch, running.done, running.resume) == ("running", 1, 6, b"call")
    back.restored_from_journal()
    assert back.restored == ["running"]
    assert sorted(running.batches) == [0] and running.done == 3  # the batch on a worker runs again
    assert back.records["big"].state == "failed" and "inputs" in (back.records["big"].error or "")
    assert back.claim("running")["epoch"] == 2
