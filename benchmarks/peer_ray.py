"""Ray in `make bench-peers`: trivial inputs in CHUNKS tasks, one task per array."""

from __future__ import annotations

import os

from peer_base import WORKERS, Runner, chunk_size, chunks, flat, inc, inc_chunk, total


class RayRunner(Runner):
    def start(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a benchmark
        import logging

        import ray

        ray.init(num_cpus=WORKERS, include_dashboard=False, logging_level=logging.WARNING)
        self.ray = ray
        self.inc = ray.remote(inc)
        self.inc_chunk = ray.remote(inc_chunk)
        self.total = ray.remote(total)

    def map_trivial(self, inputs):
        return flat(self.ray.get([self.inc_chunk.remote(c) for c in chunks(inputs, chunk_size(len(inputs)))]))

    def map_arrays(self, arrays):
        return self.ray.get([self.total.remote(a) for a in arrays])

    def call(self, x):
        return self.ray.get(self.inc.remote(x))

    def stop(self) -> None:
        self.ray.shutdown()
