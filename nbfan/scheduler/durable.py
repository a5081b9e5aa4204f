"""Durable state on the scheduler: the plugin's journal is opened, read back into its parts and
handed to them here, and the spawn_maps a restart interrupted are started again.

Who restarts an interrupted map: the scheduler itself. The plugin cannot run a map (that is
client code), but it holds, for each running map, the pickled coordinator call its spawner made
(`mapstore.MapRecord.resume`); once the scheduler runs, a Dask client of the plugin's own (on
the scheduler's loop) submits it fire-and-forget under the map's coordinator key, as
`spawn_map` did, and closes. This works on any cluster with a journal, whoever started it and
whether or not a client ever connects again; the daemon of `nbfan cluster up` needs no part in
it. The new coordinator claims the map (a new epoch) and runs what is not stored, so at most the
batches that were in flight when the cluster went down run again."""

from __future__ import annotations

import asyncio
import logging
import pickle
from typing import Any

from nbfan import compat, compat_logs
from nbfan.keys import coordinator_key
from nbfan.scheduler.journal import Journal, JournalError, configured_dir, replay

logger = logging.getLogger("nbfan")
# notices for the scheduler's own log: Dask's handler shows them on a `dask scheduler`, and
# in-process clusters that silence Dask's logs silence these too
scheduler_log = logging.getLogger("distributed.nbfan")

OFF_NOTICE = (
    "nbfan: the journal is off on this scheduler: Dicts, Queues, deployments and spawn_maps live in its memory "
    "only and are lost if it restarts. Set the Dask config key nbfan.journal-dir (or NBFAN_JOURNAL_DIR) on the "
    "scheduler to a directory to keep them."
)
RESUME_TIMEOUT = 60.0  # seconds to wait for the scheduler to run, and for it to hold a resubmitted coordinator


def open_journal(scheduler: Any, parts: dict[str, Any]) -> Journal | None:
    """The scheduler's journal, read back into `parts` (by record kind: "store", "map"), which
    then write to it; None (and one notice in the log) when none is configured."""
    directory = configured_dir()
    if directory is None:
        scheduler_log.info(OFF_NOTICE)
        return None
    try:
        journal = Journal(directory, lambda: [record for part in parts.values() for record in part.snapshot()])
        records = journal.load()
    except (JournalError, OSError) as exc:
        logger.error("nbfan: the journal at %s cannot be used (%s); it is off on this scheduler", directory, exc)
        return None
    for problem in replay(records, parts):
        logger.warning("nbfan: %s", problem)
    for part in parts.values():
        part.journal = journal
    maps = parts["map"]
    maps.restored_from_journal()
    scheduler_log.info("nbfan: journal at %s: %d records read back; %d interrupted spawn_maps to resume",
                directory, len(records), len(maps.restored))
    if maps.restored:
        calls = [(map_id, maps.records[map_id].resume) for map_id in maps.restored]
        maps.restored = []
        task = asyncio.ensure_future(resume_maps(scheduler, calls))
        _background.add(task)
        task.add_done_callback(_background.discard)
    return journal


_background: set[asyncio.Future[None]] = set()


# a map's progress (a stored batch, a claim, its end, a read) need not wait for the disk: lost in a
# crash, it is redone like any batch in flight; Dict/Queue/app changes and a new map do
NO_WAIT = frozenset({"map.store", "map.claim", "map.finish", "map.fail", "map.results", "map.progress",
                     "map.submitted"})


def waits_for_disk(operation: str) -> bool:
    """Whether a request's answer waits until what it wrote is fsynced."""
    return operation not in NO_WAIT


def status(journal: Journal | None) -> dict[str, Any]:
    """The `journal.status` request (for `nbfan cluster status`)."""
    return {"on": False} if journal is None else journal.status()


def journal_line(status: dict[str, Any]) -> str:
    """`nbfan cluster status`'s line about the journal."""
    if not status.get("on"):
        return "journal: off (state is lost when the scheduler restarts)"
    line = f"journal: {status['bytes'] / 2**20:.1f} MiB in {status['directory']}"
    return line + "".join(f"\n  {problem}" for problem in status.get("problems", ()))


def run_pickled(blob: bytes) -> Any:
    """Task body on a worker: the pickled call (a resumed map's coordinator), called."""
    return pickle.loads(blob)()


async def resume_maps(scheduler: Any, calls: list[tuple[str, bytes]]) -> None:
    """Submit the interrupted maps' coordinators, fire-and-forget, through a client of our own."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESUME_TIMEOUT
    while getattr(scheduler.status, "name", "") != "running" and loop.time() < deadline:
        await asyncio.sleep(0.05)
    try:
        await submit_fire_and_forget(scheduler, [(coordinator_key(map_id), blob) for map_id, blob in calls], deadline)
    except Exception:
        logger.exception("nbfan: could not resume the interrupted spawn_maps %s", [m for m, _b in calls])
        return
    scheduler_log.info("nbfan: resumed %d interrupted spawn_maps: %s", len(calls), ", ".join(m for m, _b in calls))


async def submit_fire_and_forget(scheduler: Any, calls: list[tuple[str, bytes]], deadline: float) -> None:
    """Submit each pickled call under its key, fire-and-forget, through a client of the plugin's
    own that closes once the scheduler holds them for nobody (so they run with no client)."""
    from distributed import Client, fire_and_forget

    loop = asyncio.get_running_loop()
    client = await Client(scheduler.address, asynchronous=True, set_as_default=False, security=scheduler.security,
                          name="nbfan-plugin")
    try:
        for key, blob in calls:
            fire_and_forget(client.submit(run_pickled, blob, key=key, pure=False))
        keys = {key for key, _blob in calls}
        while loop.time() < deadline and not all(
            "fire-and-forget" in compat.clients_wanting(scheduler, key) for key in keys
        ):  # held for nobody, once our client closes: then it may go
            await asyncio.sleep(0.01)
    finally:
        async with compat_logs.scheduler_side_closing_quietly(scheduler, client):
            await client.close()


# -- scheduled runs (apps.py decides when; this submits) ------------------------------------

submitting: set[str] = set()  # keys of scheduled runs being submitted (not on the scheduler yet)


def launch(scheduler: Any, blob: bytes, name: str) -> str:
    """Submit a scheduled run's launcher (a pickled call, engine/scheduled.py), fire-and-forget;
    its task key (the run goes on while the scheduler has the key)."""
    import uuid

    key = f"{name}-{uuid.uuid4().hex[:12]}"
    submitting.add(key)

    async def submit() -> None:
        try:
            await submit_fire_and_forget(scheduler, [(key, blob)], asyncio.get_running_loop().time() + RESUME_TIMEOUT)
        except Exception as exc:
            scheduler_log.warning("nbfan: could not start the scheduled run %s: %s: %s", name, type(exc).__name__, exc)
        finally:
            submitting.discard(key)

    task = asyncio.ensure_future(submit())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return key
