"""concurrent.futures.ProcessPoolExecutor in `make bench-peers`."""

from __future__ import annotations

from peer_base import WORKERS, Runner, inc, total


class PoolRunner(Runner):
    """concurrent.futures.ProcessPoolExecutor(2). For the maps the pool's start-up is part of the
    time (`with ProcessPoolExecutor(2) as pool: pool.map(...)`, as it is used); the round trip
    uses one pool, started before the warm-up calls."""

    def start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor
        self.pool = ProcessPoolExecutor(WORKERS)
        assert self.pool.submit(inc, 1).result() == 2

    def map_trivial(self, inputs):
        with self.executor(WORKERS) as pool:
            return list(pool.map(inc, inputs, chunksize=max(1, len(inputs) // 8)))

    def map_arrays(self, arrays):
        with self.executor(WORKERS) as pool:
            return list(pool.map(total, arrays))

    def call(self, x):
        return self.pool.submit(inc, x).result()

    def stop(self) -> None:
        self.pool.shutdown(wait=True)
