"""ipyparallel in `make bench-peers`: a load-balanced view on `ipp.Cluster(n=2)`."""

from __future__ import annotations

import contextlib

from peer_base import WORKERS, Runner, chunk_size, inc, total


class IpyparallelRunner(Runner):
    def start(self) -> None:
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=WORKERS, log_level=40)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(WORKERS, timeout=120)
        self.rc[:].use_cloudpickle()
        self.view = self.rc.load_balanced_view()

    def map_trivial(self, inputs):
        return list(self.view.map_sync(inc, inputs, chunksize=chunk_size(len(inputs))))

    def map_arrays(self, arrays):
        return list(self.view.map_sync(total, arrays))

    def call(self, x):
        return self.view.apply_sync(inc, x)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.rc.close()
        self.cluster.stop_cluster_sync()
