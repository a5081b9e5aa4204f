"""nbfan's one scheduler plugin answers one handler: a request of another protocol version, or
an unknown operation, is refused with a message that says what to do."""

from __future__ import annotations

import asyncio

from nbfan.scheduler.plugin import PROTOCOL_VERSION, NbfanPlugin


def test_requests_of_another_version_or_operation_are_refused_clearly() -> None:
    plugin = NbfanPlugin()
    old = asyncio.run(plugin.handle(operation="calls", version=PROTOCOL_VERSION + 1))
    assert "protocol" in old["error"] and str(PROTOCOL_VERSION) in old["error"] and "same nbfan version" in old["error"]
    unknown = asyncio.run(plugin.handle(operation="explode", version=PROTOCOL_VERSION))
    assert "unknown operation 'explode'" in unknown["error"] and "map.claim" in unknown["error"]


def test_a_request_reaches_its_part() -> None:
    plugin = NbfanPlugin()
    reply = asyncio.run(plugin.handle(operation="dict", version=PROTOCOL_VERSION, name="d", action="create"))
    assert reply == {"result": {"ok": True, "created": True}}
    calls = asyncio.run(plugin.handle(operation="calls", version=PROTOCOL_VERSION))["result"]
    assert calls["calls"] == [] and calls["version"] == 1
