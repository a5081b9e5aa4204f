"""Waiting for the next finished task without hanging on a scheduler that is gone.

Dask notices a dead scheduler only when its TCP connection breaks: a scheduler killed on this
machine is noticed at once, but a host that drops off the network (packets just vanish) takes
the TCP timeout (30 s) plus the reconnect timeout before futures fail. While a map waits, this
watch asks the scheduler for a sign of life whenever no task has finished for a while, and
gives up with a clear error when it does not answer in time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from distributed import Client, Future, as_completed

from nbfan.cluster.connect import drop_lost_connection, scheduler_address
from nbfan.exception import ClusterConnectionError

#: seconds without a finished task before the scheduler is asked for a sign of life
IDLE_BEFORE_PING = 5.0
#: seconds the scheduler has to answer; `nbfan.config.scheduler_silence_timeout` when set
PING_TIMEOUT = 10.0
_LOST = ("connecting", "closing", "closed", "failed")


async def _ping(client: Client, timeout: float) -> None:
    if client.scheduler is None:  # the client closed meanwhile: as lost as a broken connection
        raise ConnectionError("the client is not connected to a scheduler")
    await asyncio.wait_for(client.scheduler.identity(), timeout)


class SchedulerWatch:
    """`next_done(completed)`: the next finished future, or ClusterConnectionError when the
    client has lost its scheduler (connection broken, or silent for `ping_timeout` seconds)."""

    def __init__(self, client: Client, idle_before_ping: float = IDLE_BEFORE_PING, ping_timeout: float | None = None):
        from nbfan.config import config

        self.client = client
        self.idle_before_ping = idle_before_ping
        self.ping_timeout = ping_timeout or getattr(config, "scheduler_silence_timeout", PING_TIMEOUT)
        self._last_sign = time.monotonic()
        self.gone = False  # set once the scheduler is known lost: nothing left there to cancel

    def lost(self, why: str) -> ClusterConnectionError:
        self.gone = True
        try:
            address = scheduler_address(self.client)
        except Exception:
            address = "?"
        drop_lost_connection(self.client)
        return ClusterConnectionError(
            f"lost the Dask scheduler at {address} during the map ({why}). The scheduler stopped or the network "
            f"failed; results already returned are right. Check the cluster (`nbfan cluster status`) and run the "
            f"map again."
        )

    def check(self) -> None:
        """Raise if the scheduler is known to be gone, or silent past the ping timeout."""
        status = self.client.status
        if status in _LOST:
            raise self.lost(f"the client is {status}")
        if time.monotonic() - self._last_sign < self.idle_before_ping:
            return
        try:
            self.client.sync(_ping, self.client, self.ping_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise self.lost(f"it did not answer for {self.ping_timeout:g}s") from None
        except OSError as exc:
            raise self.lost(f"{type(exc).__name__}: {exc}") from None
        self._last_sign = time.monotonic()

    def mark_alive(self) -> None:
        """The scheduler just answered (a result arrived): no ping needed for a while."""
        self._last_sign = time.monotonic()

    def next_done(self, completed: as_completed, timeout: float | None = None) -> tuple[Future[Any], Any] | None:
        """The next finished future of `completed` (made `with_results`: its result is fetched
        as soon as it finishes, while this thread handles others) with its result; None when
        none finished within `timeout` seconds; ClusterConnectionError when the scheduler is
        lost meanwhile, a transfer in progress included."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not completed.has_ready():
            if completed.is_empty():
                break  # let as_completed raise StopIteration as usual
            if deadline is not None and time.monotonic() >= deadline:
                return None
            wait_for_news(completed, 0.1)
            if not completed.has_ready():
                self.check()
        self.mark_alive()
        done: tuple[Future[Any], Any] = next(completed)
        return done


def wait_for_news(completed: as_completed, timeout: float) -> None:
    """Sleep until `completed` has news (a future of it ended) or `timeout` seconds passed.
    distributed 2026.8.0: `as_completed` notifies its `thread_condition` on each ending."""
    condition: Any = getattr(completed, "thread_condition", None)
    if condition is None:
        time.sleep(min(timeout, 0.01))
        return
    with condition:
        condition.wait(timeout=timeout)
