"""A call and the calls made inside it, at any depth, with their states: Modal's
`FunctionCall.get_call_graph()`, from the parent/child links the scheduler's telemetry keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbfan.exception import NotFoundError
from nbfan.scheduler.rpc import request


@dataclass
class CallGraphNode:
    """A call in a call graph: its id, function, state (running, done, failed, cancelled) and
    the calls made inside it."""

    call_id: str
    function_name: str
    state: str
    children: list[CallGraphNode] = field(default_factory=list)


def call_graph(client: Any, call_id: str) -> list[CallGraphNode]:
    """The call `call_id` with the calls made inside it (telemetry keeps the running calls and
    the latest finished ones); NotFoundError when it keeps no such call."""
    calls = request(client, "calls")["calls"]
    children: dict[str | None, list[Any]] = {}
    for call in calls:
        children.setdefault(call["parent"], []).append(call)

    def node(call: Any) -> CallGraphNode:
        return CallGraphNode(call["call_id"], call["function"], call["state"],
                             [node(child) for child in children.get(call["call_id"], [])])

    found = [node(call) for call in calls if call["call_id"] == call_id]
    if not found:
        raise NotFoundError(f"call {call_id} is not in the cluster's telemetry (finished calls are kept for a while)")
    return found
