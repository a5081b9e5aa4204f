"""Short send intervals on every cluster nbfan's plugin runs on, not only the ones nbfan starts.

distributed's batched streams gather messages before sending (distributed 2026.8.0, no config):
the scheduler's to each worker for 5 ms, to each client for 2 ms, each worker's to the
scheduler for 2 ms. A `.remote` round trip crosses all three, and a map's small tasks queue
behind them. Clusters nbfan starts set 0.5 ms with preloads (cluster/scheduler_setup.py,
cluster/worker_setup.py); a cluster the user brings runs no nbfan preload, but it runs nbfan's
scheduler plugin (installed on connecting, the code shipped where nbfan is not installed), and
this part of it sets the same intervals: on the scheduler's streams as workers and clients
come (and on those already there), and on each worker's own stream through the scheduler.

One exception: a worker being retired (Dask's `retire_workers`, as an autoscaler does) gets
RETIRING_INTERVAL on the scheduler's stream to it. Its cluster manager closes its nanny right
after the retirement; a worker told to close before that (which a short interval makes
certain) asks the nanny to close too, while the nanny is closing it, and hangs until the nanny
kills it 4 s later, with three warnings ("Received heartbeat from unregistered worker",
"Scheduler was unaware of this worker", "Worker process still alive after 4.0 seconds,
killing"). A Dask race that its default 5 ms interval makes rare; nothing waits on that last
message.

The price: a busy scheduler sends the same messages in more, smaller batches (a few more
syscalls per second per peer); the scheduler's CPU per task stays about the same
(benchmarks/bench_any_cluster.py measures raw Dask on a cluster nbfan never joined and on one it joined).
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from nbfan import compat

logger = logging.getLogger("nbfan")

SEND_INTERVAL = 0.0005  # seconds; as the preloads of clusters nbfan starts
RETIRING_INTERVAL = 0.05  # seconds; the scheduler's stream to a worker being retired (see above)
PLUGIN_NAME = "nbfan-intervals"


def shorten_worker_stream(dask_worker: Any = None, seconds: float = SEND_INTERVAL) -> bool:
    """Run on a worker: its stream to the scheduler sends after `seconds`."""
    return compat.set_send_interval(dask_worker, seconds)


class SendIntervals(SchedulerPlugin):
    """Every worker's and client's stream with the scheduler sends after SEND_INTERVAL."""

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self, seconds: float = SEND_INTERVAL) -> None:
        self.seconds = seconds
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        for peer in [*scheduler.workers, *scheduler.clients]:
            compat.set_stream_interval(scheduler, peer, self.seconds)
        for worker in list(scheduler.workers):
            await self._shorten_on(worker)

    def add_worker(self, scheduler: Any, worker: str) -> None:
        compat.set_stream_interval(scheduler, worker, self.seconds)
        scheduler.loop.add_callback(self._shorten_on, worker)

    def add_client(self, scheduler: Any, client: str) -> None:
        # the client's stream is made right after this hook: set it on the next turn of the loop
        scheduler.loop.add_callback(compat.set_stream_interval, scheduler, client, self.seconds)

    def log_event(self, topic: str, msg: Any) -> None:
        """A worker's status changed: while it is being retired its stream waits longer."""
        status = compat.worker_status_change(topic, msg)
        if status is not None:
            seconds = RETIRING_INTERVAL if status == "closing_gracefully" else self.seconds
            compat.set_stream_interval(self.scheduler, topic, seconds)

    async def _shorten_on(self, worker: str) -> None:
        try:
            await compat.run_on_worker(self.scheduler, worker, shorten_worker_stream)
        except Exception:  # a worker that left meanwhile: nothing to set
            logger.debug("nbfan: could not shorten the send interval of worker %s", worker, exc_info=True)


async def install(scheduler: Any) -> None:
    """Add the part to the scheduler and start it (once: a second nbfan plugin start leaves it
    alone)."""
    if PLUGIN_NAME not in scheduler.plugins:
        plugin = SendIntervals()
        scheduler.add_plugin(plugin)
        await plugin.start(scheduler)
