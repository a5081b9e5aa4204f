"""The caller's side of pushed results (worker/push.py). A one-input call (`.remote`, `.spawn`)
waits for whichever comes first: its outcome pushed by the worker, or its task finishing (a
result too large to push, an error Dask saw, a cancel, a lost scheduler); in the second case
the result is fetched from the worker as Dask does.

Each client listens on a topic of its own, subscribed on its first call (the subscription goes
ahead of that call's task in the client's stream, so no push can come before it). Only where
nbfan's scheduler plugin runs: it drops pushed events as soon as they are forwarded, which
Dask would otherwise keep (`distributed.scheduler.events-log-length` of them)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

from distributed import Client, Future

from nbfan.engine.client_topic import ClientTopic
from nbfan.engine.plan import batch_outcomes, decode_outcomes
from nbfan.keys import result_topic

#: call id -> its wait, while someone holds the wait (the caller, or the call's handle)
_expected: weakref.WeakValueDictionary[str, Pushed] = weakref.WeakValueDictionary()
_lock = threading.Lock()


class Pushed:
    """One call's wait: its pushed outcome blob once it arrived, and a wake-up for whoever waits
    when the blob arrives or the task finishes, whichever is first."""

    def __init__(self) -> None:
        self.blob: bytes | None = None
        self._settled = threading.Event()
        self._wakers: list[Callable[[], object]] = []
        self._lock = threading.Lock()

    def settle(self, blob: bytes | None = None) -> None:
        """The outcome arrived (`blob`), or the task finished (`None`: fetch its result)."""
        with self._lock:
            if blob is not None and self.blob is None:
                self.blob = blob
            self._settled.set()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def watch(self, future: Future[Any]) -> None:
        """Be woken when the call's task finishes too."""
        future.add_done_callback(lambda _: self.settle())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until settled; False when `timeout` passed first."""
        return self._settled.wait(timeout)

    async def wait_async(self) -> None:
        """Wait on the running event loop, holding no thread."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def settle_woken() -> None:
            if not woken.done():
                woken.set_result(None)

        with self._lock:
            if not self._settled.is_set():
                self._wakers.append(lambda: loop.call_soon_threadsafe(settle_woken))
            else:
                settle_woken()
        await woken


def topic_for(client: Client) -> str | None:
    """The topic a one-input call's task pushes its outcome to for this client, or None when
    the client cannot hear pushes (no nbfan plugin on the scheduler): its callers then fetch
    results as Dask does."""
    return _topic.topic_for(client)


def expect(call_id: str) -> Pushed:
    """Before submitting a call that pushes: its wait. The registry keeps it only while someone
    holds it (the caller, or the call's handle); a push nobody waits for is dropped."""
    pushed = Pushed()
    with _lock:
        _expected[call_id] = pushed
    return pushed


def call_outcomes(future: Future[Any], pushed: Pushed | None, timeout: float | None = None) -> list[tuple[bool, Any]]:
    """The (ok, value) outcomes of a one-input call: pushed, or fetched once its task finished.
    Raises what killed the task, or TimeoutError after `timeout` seconds."""
    if pushed is not None:
        if not pushed.wait(timeout):
            raise TimeoutError(f"the call has not finished after {timeout}s")
        if pushed.blob is not None:
            return decode_outcomes(pushed.blob)[1]
    return batch_outcomes(future, 0, 1, timeout)


def release_when_finished(future: Future[Any]) -> None:
    """Let Dask forget a one-input call's task once the scheduler has told this client that it
    ended. Its outcome is pushed before that: a release that overtook the task's end would make
    the scheduler drop a running task (telemetry would count the call cancelled). (A cluster
    closed meanwhile does not warn that it lost the result: the plugin knows it was delivered.)"""
    if future.done():
        future.release()
    else:
        future.add_done_callback(lambda finished: finished.release())


def _arrived(event: tuple[float, Any]) -> None:
    """A pushed outcome (on the client's event loop): settle its call's wait, if anyone waits."""
    _, msg = event
    if not isinstance(msg, dict):
        return
    with _lock:
        pushed = _expected.get(msg.get("call_id", ""))
    if pushed is not None:
        pushed.settle(msg.get("blob"))


_topic = ClientTopic(result_topic, _arrived)
