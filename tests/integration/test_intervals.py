"""A cluster the user brings (a plain LocalCluster, no nbfan preload) gets the short send
intervals of clusters nbfan starts from nbfan's scheduler plugin: the scheduler's streams to
the workers and to clients, and each worker's stream to the scheduler, including workers and
clients that join after nbfan connected."""

from __future__ import annotations

from typing import Any

from distributed import Client, LocalCluster
from waiting import wait_until

import nbfan
from nbfan.scheduler.intervals import RETIRING_INTERVAL, SEND_INTERVAL


def _scheduler_side(dask_scheduler: Any = None) -> tuple[dict[str, float], dict[str, float]]:
    return (
        {w: c.interval for w, c in dask_scheduler.stream_comms.items()},
        {k: c.interval for k, c in dask_scheduler.client_comms.items()},
    )


def test_a_plain_local_cluster_gets_short_send_intervals_from_the_plugin() -> None:
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as before:  # connected before nbfan: set when it starts
            to_workers, _ = before.run_on_scheduler(_scheduler_side)
            assert set(to_workers.values()) != {SEND_INTERVAL}  # Dask's own 5 ms, to show the change
            client = nbfan.connect(cluster)
            try:
                cluster.scale(2)  # a worker that joins later
                client.wait_for_workers(2, timeout=60)
                with Client(cluster, set_as_default=False) as later:

                    def all_short() -> bool:
                        to_workers, to_clients = client.run_on_scheduler(_scheduler_side)
                        on_workers = client.run(lambda dask_worker: dask_worker.batched_stream.interval)
                        return (
                            len(to_workers) == 2 and set(to_workers.values()) == {SEND_INTERVAL}
                            and all(to_clients.get(c.id) == SEND_INTERVAL for c in (before, client, later))
                            and set(on_workers.values()) == {SEND_INTERVAL}
                        )

                    wait_until(all_short, timeout=10)
            finally:
                nbfan.disconnect()


def test_a_worker_being_retired_gets_a_longer_interval_and_back_if_it_stays() -> None:
    """While a worker is retired, the scheduler's stream to it waits RETIRING_INTERVAL, so that its
    cluster manager closes its nanny before the worker is told to close (see intervals.py)."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        client = nbfan.connect(cluster)
        try:
            def retire_then_stay(dask_scheduler: Any = None) -> list[float]:
                (worker,) = dask_scheduler.workers
                seen = []
                for status in ("closing_gracefully", "running"):  # as a retirement Dask undoes
                    dask_scheduler.handle_worker_status_change(status, worker, stimulus_id="test")
                    seen.append(dask_scheduler.stream_comms[worker].interval)
                return seen

            assert client.run_on_scheduler(retire_then_stay) == [RETIRING_INTERVAL, SEND_INTERVAL]
        finally:
            nbfan.disconnect()
