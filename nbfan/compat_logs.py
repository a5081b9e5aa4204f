"""The log records of distributed that nbfan quiets, one filter each: messages that say nothing
to a user (a stream closed while its client closes; a result lost that nobody needs; a fetch of
a cancelled call's result). Each names the message and the distributed version it was checked
against; tests/unit/test_compat.py checks them against distributed's source. (Split from
compat.py, which holds the other uses of distributed's internals.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any


@contextlib.contextmanager
def closing_quietly(client: Any, whole_cluster: bool = False) -> Iterator[None]:
    """While `client` closes (and, `whole_cluster`, the cluster this process runs and closes with
    it: then any of its streams' "Batched Comm Closed"), drop records distributed logs for it that
    say nothing to a user:
    - "Batched Comm Closed" (INFO, with a traceback) for its own stream: a future released on
      another thread while the client closes is queued after "close-stream", and the scheduler
      has closed the stream when it is written (the release is moot: the scheduler forgets a
      closed client's keys);
    - when it closes while reconnecting to a scheduler that is gone (nbfan has already raised a
      clear error), the CancelledError of its reconnect attempt (ERROR, with a traceback) and
      "Failed to reconnect to scheduler after 10.00 seconds" (ERROR: the loop ends because the
      status left "connecting", and logs that whatever the time).
    distributed 2026.8.0: `BatchedSend._background_send` logs `"Batched Comm Closed %r"` with
    the comm (`Client.scheduler_comm.comm`); `Client._reconnect` runs under `log_errors`, which
    logs a cancellation as an error on the `distributed.client` logger, and its retry loop's
    `else:` logs the failure."""
    comm = getattr(getattr(client, "scheduler_comm", None), "comm", None)

    def stream_closed(record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        ours = whole_cluster or (comm is not None and args[:1] == (comm,))
        return not (record.msg == "Batched Comm Closed %r" and ours)

    def reconnect_ended(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        gave_up = str(record.msg).startswith("Failed to reconnect to scheduler after")
        return not (gave_up or isinstance(exc, asyncio.CancelledError))

    filters = [(logging.getLogger("distributed.batched"), stream_closed)]
    if client.status == "connecting":
        filters.append((logging.getLogger("distributed.client"), reconnect_ended))
    for logger, drop in filters:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger, drop in filters:
            logger.removeFilter(drop)


@contextlib.asynccontextmanager
async def scheduler_side_closing_quietly(scheduler: Any, client: Any) -> AsyncIterator[None]:
    """While a client the scheduler's own process runs (nbfan's plugin submits with one) closes:
    drop the scheduler's "Batched Comm Closed" record for its stream to that client, and wait
    until that stream is done. distributed 2026.8.0: when a client leaves, the scheduler sends it
    "stream-closed" (`Scheduler.add_client`'s finally), which fails once the client closed its
    end; its `BatchedSend` (`Scheduler.client_comms[client_id]`) then logs `"Batched Comm Closed
    %r"` with its comm at INFO with a traceback, and sets its `stopped` event."""
    stream = scheduler.client_comms.get(client.id)
    ours = getattr(getattr(getattr(client, "scheduler_comm", None), "comm", None), "local_address", None)

    def stream_closed(record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        peer = getattr(args[0], "peer_address", None) if args else None
        return not (record.msg == "Batched Comm Closed %r" and ours is not None and peer == ours)

    batched = logging.getLogger("distributed.batched")
    batched.addFilter(stream_closed)
    try:
        yield
        if stream is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stream.stopped.wait(), 5)
    finally:
        batched.removeFilter(stream_closed)


def quiet_lost_results(moot: Callable[[set[str]], bool]) -> Callable[[], None]:
    """Drop the scheduler's "Removing worker ... caused the cluster to lose already computed
    task(s)" warning (a scheduler in this process: LocalCluster) when `moot(keys)` says no one
    needs the results it names; returns what removes the filter. distributed 2026.8.0:
    `Scheduler.remove_worker` logs it as an f-string ending in `{recompute_keys}
    (stimulus_id=...)`, a set of the keys' reprs."""
    pattern = re.compile(r"caused the cluster to lose already computed task\(s\), which will be recomputed elsewhere: "
                         r"\{(.*)\} \(stimulus_id=")

    def drop(record: logging.LogRecord) -> bool:
        found = pattern.search(str(record.msg))
        if found is None:
            return True
        keys = {part.strip().strip("'\"") for part in found.group(1).split(",")}
        return not moot(keys)

    logger = logging.getLogger("distributed.scheduler")
    logger.addFilter(drop)
    return lambda: logger.removeFilter(drop)


def quiet_failed_gathers(moot: Callable[[set[str]], bool]) -> None:
    """Drop the "Couldn't gather" lines of both sides when `moot(keys)` says the keys they name
    were cancelled on purpose: a result fetched by `as_completed` as its task ended, while the
    caller cancelled the call (a map left early). The scheduler's error shows where it runs in
    this process (the embedded cluster, a LocalCluster); the client's warning everywhere.
    distributed 2026.8.0: `Scheduler.gather` logs `"Couldn't gather keys: %s"` with a dict of
    key -> state, `Client._gather` `"Couldn't gather %s keys, rescheduling %s"` with the count and
    the keys (both checked by test_compat)."""

    def drop_scheduler_side(record: logging.LogRecord) -> bool:
        states = record.args  # LogRecord unpacks a lone mapping argument: the dict itself
        if record.msg != "Couldn't gather keys: %s" or not isinstance(states, dict) or not states:
            return True
        return not moot({str(key) for key in states})

    def drop_client_side(record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg != "Couldn't gather %s keys, rescheduling %s" or not isinstance(args, tuple) or len(args) != 2:
            return True
        keys = args[1]
        return not (isinstance(keys, (list, tuple, set)) and keys and moot({str(key) for key in keys}))

    logging.getLogger("distributed.scheduler").addFilter(drop_scheduler_side)
    logging.getLogger("distributed.client").addFilter(drop_client_side)


def on_reconnect_given_up(handled: Callable[[], bool]) -> None:
    """Call `handled()` when a client of this process gives up reconnecting to its scheduler;
    Dask's own "Failed to reconnect to scheduler after 10.00 seconds, closing client" ERROR is
    dropped when it returns True (it said so itself). distributed 2026.8.0: `Client._reconnect`
    logs that record on `distributed.client` (checked by closing_quietly's test)."""

    def replace(record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Failed to reconnect to scheduler after"):
            return True
        return not handled()

    logging.getLogger("distributed.client").addFilter(replace)
