"""nbfan in `make bench-peers`: `App.function(fn).map(inputs)` and `.remote(x)` on nbfan's local cluster."""

from __future__ import annotations

from peer_base import WORKERS, Runner, inc, total


class NbfanRunner(Runner):
    def start(self) -> None:
        import nbfan
        from nbfan.cluster.local import start_local_cluster

        self.cluster = start_local_cluster(WORKERS, gpus=[])
        client = nbfan.connect(self.cluster)
        client.wait_for_workers(WORKERS)
        app = nbfan.App("peers")
        self.inc = app.function(inc)
        self.total = app.function(total)

    def map_trivial(self, inputs):
        return list(self.inc.map(inputs))

    def map_arrays(self, arrays):
        return list(self.total.map(arrays))

    def call(self, x):
        return self.inc.remote(x)

    def stop(self) -> None:
        import nbfan

        nbfan.disconnect()
        self.cluster.close()
