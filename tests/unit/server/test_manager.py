"""The panel server's manager alone (server/manager.py), as jupyter_server tests its managers:
no HTTP, no browser; fake sockets that record what they are sent, the manager's own Dask
client on a real in-process cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import LocalCluster

import nbfan
from nbfan.server.manager import NoCluster, TelemetryManager

app = nbfan.App("test-manager")


@app.function
def boom(x: int) -> int:
    print(f"about to fail on {x}")
    raise ValueError(f"bad {x}")


class FakeSocket:
    """A panel's websocket: what it was sent, by type; `open=False` is a closed one."""

    def __init__(self, open: bool = True) -> None:
        self.open = open
        self.sent: list[dict[str, Any]] = []

    def send_json(self, message: dict[str, Any]) -> bool:
        if self.open:
            self.sent.append(message)
        return self.open

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    # a worker process of its own, as on a real cluster (in this process, pytest's capture of
    # sys.stdout would sit in front of the worker's capture of what inputs print)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster


async def until(predicate: Any, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_without_a_cluster_every_answer_says_how_to_start_one() -> None:
    async def main() -> None:
        manager = TelemetryManager(address=lambda: None)
        try:
            with pytest.raises(NoCluster, match="nbfan cluster up"):
                await manager.calls()
        finally:
            manager.close()

    asyncio.run(main())


def test_a_socket_is_greeted_then_fed_and_a_closed_one_is_dropped(cluster: LocalCluster) -> None:
    client = nbfan.connect(cluster)
    try:
        with pytest.raises(ValueError):
            boom.remote(3)
        (failed,) = [c for c in nbfan.api.queries.calls_snapshot(client)["calls"] if c["function"] == "boom"]

        async def main() -> tuple[FakeSocket, FakeSocket]:
            manager = TelemetryManager(address=lambda: cluster.scheduler_address)
            live, closed = FakeSocket(), FakeSocket(open=False)
            try:
                manager.add_socket(live)
                manager.add_socket(closed)
                await until(lambda: live.of("calls") and live.of("cluster"))
                manager.watch(live, failed["call_id"])
                await until(lambda: live.of("detail"))
                await until(lambda: closed not in manager.sockets)
                assert await manager.cancel(failed["call_id"]) is False  # it had already ended
                manager.watch(live, None)
                assert live not in manager.watching
            finally:
                manager.close()
            return live, closed

        live, closed = asyncio.run(main())
        calls = live.of("calls")[0]["calls"]
        assert failed["call_id"] in {c["call_id"] for c in calls}
        assert live.of("cluster")[0]["workers"] == 1
        detail = live.of("detail")[0]
        assert detail["call_id"] == failed["call_id"]
        assert [f["exc_type"] for f in detail["failures"]] == ["builtins.ValueError"]
        assert [line["text"] for line in detail["lines"]] == ["about to fail on 3"]
        assert closed.sent == []
    finally:
        nbfan.disconnect()
