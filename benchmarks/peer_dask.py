"""Raw Dask and hand-chunked Dask in `make bench-peers`."""

from __future__ import annotations

from peer_base import (
    WORKERS,
    Runner,
    array_chunk_size,
    chunk_size,
    chunks,
    flat,
    inc,
    inc_chunk,
    total,
    total_chunk,
)


class DaskRunner(Runner):
    """Raw Dask as its users start it: a LocalCluster of 2 worker processes of 1 thread and a
    plain Client, one task per input (`--dask-cluster nbfan` runs it on nbfan's local cluster
    instead, still through a plain Client)."""

    chunked = False

    def __init__(self, cluster_kind: str) -> None:
        self.cluster_kind = cluster_kind

    def start(self) -> None:
        from distributed import Client, LocalCluster

        if self.cluster_kind == "nbfan":
            from nbfan.cluster.local import start_local_cluster

            self.cluster = start_local_cluster(WORKERS, gpus=[])
        else:
            self.cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None)
        self.client = Client(self.cluster)
        self.client.wait_for_workers(WORKERS)

    def map_trivial(self, inputs):
        if self.chunked:
            return flat(self.client.gather(self.client.map(inc_chunk, chunks(inputs, chunk_size(len(inputs))), pure=False)))
        return self.client.gather(self.client.map(inc, inputs, pure=False))

    def map_arrays(self, arrays):
        if self.chunked:
            parts = chunks(arrays, array_chunk_size(len(arrays)))
            return flat(self.client.gather(self.client.map(total_chunk, parts, pure=False)))
        return self.client.gather(self.client.map(total, arrays, pure=False))

    def call(self, x):
        return self.client.submit(inc, x, pure=False).result()

    def stop(self) -> None:
        self.client.close()
        self.cluster.close()


class DaskChunkedRunner(DaskRunner):
    """Dask with the inputs batched by hand: trivial inputs in CHUNKS tasks."""

    chunked = True
