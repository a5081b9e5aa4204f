"""Set-up of the scheduler of clusters nbfan starts (a Dask preload: `dask_setup(scheduler)`).

The scheduler's batched streams gather messages before sending: 5 ms to each worker (compute
this task, free those keys), 2 ms to each client (a task finished); distributed 2026.8.0 has no
config for either. A `.remote` round trip crosses both, right after the previous call's
messages, so it waits for them: at 0.5 ms it is ~1.5 ms shorter (benchmarks/bench_remote.py).
A busy scheduler sends the same messages in more, smaller batches: a fair price on a cluster
of one user's own; clusters nbfan only joins (shared by many) are left as they are.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from nbfan import compat

SCHEDULER_SEND_INTERVAL = 0.0005


class ShortSendIntervals(SchedulerPlugin):
    """Send to every worker and client after SCHEDULER_SEND_INTERVAL at most."""

    name = "nbfan-send-intervals"

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def add_worker(self, scheduler: Any, worker: str) -> None:
        compat.set_stream_interval(scheduler, worker, SCHEDULER_SEND_INTERVAL)

    def add_client(self, scheduler: Any, client: str) -> None:
        # the client's stream is made right after this hook: set it on the next turn of the loop
        scheduler.loop.add_callback(compat.set_stream_interval, scheduler, client, SCHEDULER_SEND_INTERVAL)


def dask_setup(scheduler: Any) -> None:
    """Run by Dask in the scheduler's process as it starts."""
    scheduler.add_plugin(ShortSendIntervals(scheduler))
