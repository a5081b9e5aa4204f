"""joblib in `make bench-peers`: `Parallel(n_jobs=2)` (loky, its automatic batching)."""

from __future__ import annotations

from peer_base import WORKERS, Runner, inc, total


class JoblibRunner(Runner):
    def start(self) -> None:
        from joblib import Parallel, delayed

        self.parallel = Parallel(n_jobs=WORKERS, backend="loky")
        self.delayed = delayed
        assert self.parallel(delayed(inc)(i) for i in range(WORKERS)) == [1, 2]  # starts loky's workers

    def map_trivial(self, inputs):
        return self.parallel(self.delayed(inc)(x) for x in inputs)

    def map_arrays(self, arrays):
        return self.parallel(self.delayed(total)(a) for a in arrays)

    def stop(self) -> None:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True, kill_workers=True)
