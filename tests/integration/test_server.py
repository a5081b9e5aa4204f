"""The jupyter_server extension on a real in-process jupyter server (pytest-jupyter): each route
with the token, every nbfan route refusing requests without it (enumerated from the server's
own routing table, so a new route cannot slip through), the websocket pushing a live map, and
the shared local cluster the extension brings up for JupyterLab's kernels."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from traitlets.config import Config

import nbfan
from nbfan.exception import InputCancellation

pytest_plugins = ["pytest_jupyter.jupyter_server"]

app = nbfan.App("test-server")


@app.function
def srv_step(x: int) -> int:
    time.sleep(0.05)
    return x


@app.function
def srv_fails_on_three(x: int) -> int:
    print(f"srv line {x}")
    if x == 3:
        raise ValueError("three")
    return x


@app.function
def srv_long(x: int) -> int:
    for _ in range(40):
        time.sleep(0.05)
    return x


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest) -> Config:
    lab_cluster = getattr(request, "param", False)
    return Config({
        "ServerApp": {"jpserver_extensions": {"nbfan.server": True}},
        "NbfanServer": {"lab_cluster": lab_cluster},
    })


@pytest.fixture
def cluster_env(local_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server (like JupyterLab's kernels) finds the cluster through NBFAN_SCHEDULER."""
    monkeypatch.setenv("NBFAN_SCHEDULER", local_cluster.scheduler_address)
    return local_cluster.scheduler_address


@pytest.fixture(autouse=True)
def close_manager(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever the server's own teardown does, the server's Dask client is closed here."""
    yield
    serverapp = request.node.funcargs.get("jp_serverapp")
    if serverapp is not None:
        from nbfan.server.extension import unload

        unload(serverapp)


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


async def get_json(jp_fetch: Any, *parts: str, **kwargs: Any) -> Any:
    response = await jp_fetch(*parts, **kwargs)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def wait_calls(jp_fetch: Any, pred: Any, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    calls: list = []
    while time.monotonic() < deadline:
        calls = (await get_json(jp_fetch, "nbfan", "api", "calls"))["calls"]
        for call in calls:
            if pred(call):
                return call
        await asyncio.sleep(0.1)
    raise AssertionError(f"no call matched within {timeout}s: {calls}")


async def test_routes_with_the_token(jp_fetch: Any, cluster_env: str, client: Any) -> None:
    cluster = await get_json(jp_fetch, "nbfan", "api", "cluster")
    assert cluster["version"] == 1 and cluster["address"] == cluster_env
    assert (cluster["workers"], cluster["threads"], cluster["gpus"]) == (2, 2, [])
    assert cluster["memory"] > 0

    thread, box = in_thread(lambda: list(srv_long.map(range(50))))
    running = await wait_calls(jp_fetch, lambda c: c["function"] == "srv_long" and c["state"] == "running" and c["running"])
    assert running["kind"] == "map" and running["app"] == "test-server"
    reply = await get_json(jp_fetch, "nbfan", "api", "calls", running["call_id"], "cancel", method="POST", body=b"")
    assert reply == {"cancelled": True}
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)
    assert isinstance(box.get("error"), InputCancellation), box
    call = await wait_calls(jp_fetch, lambda c: c["call_id"] == running["call_id"])
    assert call["state"] == "cancelled" and call["done"] < 50

    again = await get_json(jp_fetch, "nbfan", "api", "calls", running["call_id"], "cancel", method="POST", body=b"")
    assert again == {"cancelled": False}
    with pytest.raises(tornado.httpclient.HTTPClientError) as err:
        await jp_fetch("nbfan", "api", "calls", "abcdef0123456789abcd", "cancel", method="POST", body=b"")
    assert err.value.code == 404
    assert "no call" in json.loads(err.value.response.body)["message"]


async def test_no_cluster_is_a_clear_503(jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("NBFAN_SCHEDULER", raising=False)
    monkeypatch.setenv("NBFAN_HOME", str(tmp_path))  # no local cluster there
    for route in ("cluster", "calls"):
        with pytest.raises(tornado.httpclient.HTTPClientError) as err:
            await jp_fetch("nbfan", "api", route)
        assert err.value.code == 503
        assert "nbfan cluster up" in json.loads(err.value.response.body)["message"]


def nbfan_routes(web_app: Any) -> list[tuple[str, type]]:
    """(regex, handler class) of every nbfan route in the server's routing table."""
    found = []

    def walk(router: Any) -> None:
        for rule in getattr(router, "rules", []):
            target = rule.target
            if hasattr(target, "rules"):
                walk(target)
                continue
            regex = getattr(rule.matcher, "regex", None)
            if regex is not None and "nbfan" in regex.pattern and isinstance(target, type):
                found.append((regex.pattern, target))

    walk(web_app.default_router)
    walk(web_app.wildcard_router)
    return found


def concrete_path(pattern: str) -> str:
    """A request path for a route regex: named groups get a plausible call id."""
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "abcdef0123456789abcd", pattern)
    return path.rstrip("$").replace("\\", "")


async def test_every_nbfan_route_refuses_requests_without_the_token(
    jp_serverapp: Any, jp_http_port: int, jp_fetch: Any, cluster_env: str
) -> None:
    routes = nbfan_routes(jp_serverapp.web_app)
    paths = {concrete_path(p) for p, _ in routes}
    base = jp_serverapp.base_url
    for expected in ("nbfan/api/cluster", "nbfan/api/calls", "nbfan/api/calls/abcdef0123456789abcd/cancel", "nbfan/api/stream"):
        assert base + expected in paths, (expected, paths)  # the contract's routes are all there

    http = tornado.httpclient.AsyncHTTPClient()
    checked = 0
    for pattern, handler in routes:
        path = concrete_path(pattern)
        if issubclass(handler, tornado.websocket.WebSocketHandler):
            with pytest.raises(tornado.httpclient.HTTPClientError) as err:
                ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{jp_http_port}{path}")
                ws.close()
            assert err.value.code in (401, 403), (path, err.value)
            checked += 1
            continue
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if getattr(handler, method.lower()) is getattr(tornado.web.RequestHandler, method.lower()):
                continue  # not served by this handler
            body = b"" if method in ("POST", "PUT", "PATCH") else None
            response = await http.fetch(
                f"http://127.0.0.1:{jp_http_port}{path}", method=method, body=body, raise_error=False,
                follow_redirects=False,
            )
            assert response.code in (401, 403), (method, path, response.code)
            checked += 1
    assert checked >= 4

    # and with the token the same requests get through (so the refusals above were about auth)
    ok = await jp_fetch("nbfan", "api", "calls")
    assert ok.code == 200
    ws_url = f"ws://127.0.0.1:{jp_http_port}{base}nbfan/api/stream"
    token = jp_serverapp.identity_provider.token
    ws = await tornado.websocket.websocket_connect(ws_url + f"?token={token}")
    ws.close()


async def test_websocket_pushes_snapshots_while_a_map_runs(jp_ws_fetch: Any, cluster_env: str, client: Any) -> None:
    ws = await jp_ws_fetch("nbfan", "api", "stream")
    try:
        first = json.loads(await asyncio.wait_for(ws.read_message(), 20))
        assert first["type"] in ("calls", "cluster") and first["version"] == 1
        n = 60
        thread, box = in_thread(lambda: list(srv_step.map(range(n))))
        seen_running = seen_done = False
        progress: list[int] = []
        stamps: list[float] = []
        deadline = time.monotonic() + 60
        while not seen_done and time.monotonic() < deadline:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 20))
            if msg["type"] != "calls":
                continue
            for call in msg["calls"]:
                if call["function"] != "srv_step":
                    continue
                if call["state"] == "running":
                    seen_running = True
                    progress.append(call["done"])
                    stamps.append(time.monotonic())
                if call["state"] == "done" and call["done"] == n:
                    seen_done = True
        thread.join(30)
        assert box.get("value") == list(range(n))
        assert seen_running and seen_done
        assert len(set(progress)) >= 2  # the bar moved while it ran
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert gaps and min(gaps) >= 0.15  # at most ~4 pushes a second (timer slack allowed)
    finally:
        ws.close()


async def test_a_calls_detail_shows_its_failed_inputs_and_latest_lines(
    jp_fetch: Any, jp_ws_fetch: Any, cluster_env: str, client: Any
) -> None:
    results = await asyncio.get_running_loop().run_in_executor(
        None, lambda: list(srv_fails_on_three.map(range(5), return_exceptions=True)))
    assert isinstance(results[3], ValueError)
    call = await wait_calls(jp_fetch, lambda c: c["function"] == "srv_fails_on_three" and c["state"] != "running")
    detail = await get_json(jp_fetch, "nbfan", "api", "calls", call["call_id"])
    (failure,) = detail["failures"]
    assert (failure["input"], failure["exc_type"], failure["message"], failure["attempts"]) == (
        3, "builtins.ValueError", "three", 1)
    assert 'raise ValueError("three")' in failure["traceback"] and failure["worker"].startswith("tcp://")
    assert sorted(line["text"] for line in detail["lines"]) == [f"srv line {x}" for x in range(5)]
    ws = await jp_ws_fetch("nbfan", "api", "stream")
    try:
        await ws.write_message(json.dumps({"type": "watch", "call_id": call["call_id"]}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 20))
            if msg["type"] == "detail":
                assert msg["call_id"] == call["call_id"] and msg["failures"] == detail["failures"]
                break
        else:
            raise AssertionError("no detail pushed")
    finally:
        ws.close()


@pytest.mark.slow
@pytest.mark.parametrize("jp_server_config", [True], indirect=True)
async def test_lab_brings_up_a_shared_cluster_for_its_kernels(
    jp_serverapp: Any, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Started without NBFAN_SCHEDULER, the extension starts the user's local cluster and sets
    NBFAN_SCHEDULER for the kernels it launches (they inherit the server's environment)."""
    from nbfan.cluster import daemon
    from nbfan.server.extension import STATE_KEY

    ext = jp_serverapp.web_app.settings[STATE_KEY]
    try:
        ready = await asyncio.get_running_loop().run_in_executor(None, ext.cluster_ready.wait, 120)
        assert ready and ext.cluster_error is None
        state = daemon.running_state()
        assert state is not None and os.environ["NBFAN_SCHEDULER"] == state.address
        cluster = await get_json(jp_fetch, "nbfan", "api", "cluster")
        assert cluster["address"] == state.address and cluster["workers"] >= 1
    finally:
        if daemon.running_state() is not None:
            daemon.down()
        os.environ.pop("NBFAN_SCHEDULER", None)


@pytest.fixture(autouse=True)
def isolated_lab_cluster(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The bring-up test gets a fresh NBFAN_HOME and no NBFAN_SCHEDULER, before the server starts."""
    if request.node.name.startswith("test_lab_brings_up"):
        monkeypatch.delenv("NBFAN_SCHEDULER", raising=False)
        monkeypatch.setenv("NBFAN_HOME", str(tmp_path / "nbfan-home"))
