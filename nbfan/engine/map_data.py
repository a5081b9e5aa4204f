"""Where a spawned map's large inputs and results live: on the workers, as Dask data.

The scheduler is the one process every user of a cluster shares: a `spawn_map` over 10,000
arrays must not grow it by their size. So inputs over `INLINE_INPUT_BYTES` (pickled) are
scattered by the caller in chunks of about `CHUNK_BYTES`, and batches of results over
`INLINE_RESULT_BYTES` are scattered by the coordinator; the map store holds their keys
(`scheduler/mapstore.py`) and the data stays on the workers, with a second copy where the
cluster has two workers or more (one worker lost loses no data). Readers fetch it by key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from distributed import Client, Future

from nbfan import compat
from nbfan.scheduler.mapstore import INLINE_INPUT_BYTES, INLINE_RESULT_BYTES
from nbfan.worker.payload import Args, Payload, dumps_inputs, loads

CHUNK_BYTES = 64 * 2**20  # inputs scattered per chunk, about (one input more when inputs are larger)
COPIES = 2  # copies of scattered data kept on different workers, where there are that many

__all__ = ["INLINE_INPUT_BYTES", "INLINE_RESULT_BYTES", "ChunkedInputs", "read_held", "scatter_inputs",
           "scatter_result"]


def _keep_copies(client: Client, futures: list[Future[Any]]) -> None:
    """A second copy on another worker, when there is one (best effort: the data is kept anyway)."""
    try:
        if len(client.scheduler_info().get("workers", {})) >= COPIES:
            client.replicate(futures, n=COPIES)
    except Exception:
        pass


def scatter_inputs(client: Client, items: Sequence[Args], nbytes: int) -> list[tuple[int, int, Future[Any]]]:
    """The inputs as chunks on the workers: (start, count, future) each."""
    n_chunks = max(1, min(len(items), math.ceil(nbytes / CHUNK_BYTES)))
    per_chunk = math.ceil(len(items) / n_chunks)
    starts = range(0, len(items), per_chunk)
    payloads = [dumps_inputs(items[start : start + per_chunk], start) for start in starts]
    futures = client.scatter(payloads, hash=False, direct=True)  # caller to workers: never through the scheduler
    _keep_copies(client, futures)
    return [(start, len(payload_items), future) for start, payload_items, future in
            zip(starts, (items[s : s + per_chunk] for s in starts), futures, strict=True)]


def scatter_result(client: Client, payload: Payload) -> Future[Any]:
    """A batch's outcomes kept on the workers (from the coordinator's worker)."""
    [future] = client.scatter([payload], hash=False, direct=True)
    _keep_copies(client, [future])
    return cast(Future[Any], future)


def read_held(client: Client, key: str) -> Any:
    """The data of a key the map store holds (a chunk of inputs, a batch of outcomes), decoded."""
    future: Future[Any] = Future(key, client)
    compat.desire_keys(client, [key])  # a Future made from a key is not reported until asked for
    try:
        return loads(future.result())
    finally:
        future.release()


class ChunkedInputs(Sequence[Args]):
    """A map's inputs read chunk by chunk from the workers as the coordinator slices batches:
    its memory holds one chunk at a time, whatever the map's size."""

    def __init__(self, client: Client, chunks: list[tuple[int, int, str]], total: int) -> None:
        self._client = client
        self._chunks = sorted((int(start), int(count), str(key)) for start, count, key in chunks)
        self._total = total
        self._loaded: tuple[int, Sequence[Args]] | None = None  # (start, inputs) of the chunk in memory

    def __len__(self) -> int:
        return self._total

    def _chunk_at(self, index: int) -> tuple[int, Sequence[Args]]:
        if self._loaded is not None and self._loaded[0] <= index < self._loaded[0] + len(self._loaded[1]):
            return self._loaded
        for start, count, key in self._chunks:
            if start <= index < start + count:
                self._loaded = (start, read_held(self._client, key))
                return self._loaded
        raise IndexError(index)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            begin, end, _step = index.indices(self._total)
            out: list[Args] = []
            while begin < end:
                start, inputs = self._chunk_at(begin)
                piece = list(inputs[begin - start : min(end, start + len(inputs)) - start])
                out.extend(piece)
                begin += len(piece)
            return out
        if index < 0:
            index += self._total
        start, inputs = self._chunk_at(index)
        return inputs[index - start]
