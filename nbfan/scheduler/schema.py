"""The telemetry snapshot schema, version 1, shared by every view of running calls: the
JupyterLab panel (mirrored in labextension/src/types.ts), the `%nbfan` magic, the progress
widget and `nbfan calls`. Counts are INPUTS, never Dask tasks (a task holds a batch of inputs).

Change it only together with the TypeScript mirror, and bump SCHEMA_VERSION when a field's
meaning changes (adding an optional field is not a new version)."""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = [
    "CALL_KINDS", "CALL_STATES", "SCHEMA_VERSION", "CallKind", "CallSnapshot", "CallState", "Caller", "CallerKind",
    "CallsSnapshot", "ClusterSnapshot", "GpuSnapshot",
]

SCHEMA_VERSION = 1

CallKind = Literal["remote", "spawn", "remote_gen", "map", "starmap", "for_each", "spawn_map", "magic"]
CallState = Literal["running", "done", "failed", "cancelled"]
CallerKind = Literal["kernel", "script", "process"]

CALL_KINDS: tuple[str, ...] = ("remote", "spawn", "remote_gen", "map", "starmap", "for_each", "spawn_map", "magic")
CALL_STATES: tuple[str, ...] = ("running", "done", "failed", "cancelled")


class Caller(TypedDict):
    """Who started a call."""

    label: str  # what to show: notebook file name, script name, or "python (pid N)"
    kind: CallerKind
    host: str
    pid: int
    notebook: str | None


class CallSnapshot(TypedDict):
    """One call (a .remote, a .map...) as the cluster sees it."""

    call_id: str
    parent: str | None  # the call this one was made inside (a function calling another)
    function: str
    app: str | None
    kind: CallKind
    caller: Caller
    state: CallState
    total: int | None  # known once the inputs are exhausted
    done: int
    failed: int
    running: int
    retried: int
    per_worker: dict[str, int]  # inputs finished per worker address
    started: float  # epoch seconds
    ended: float | None
    rate: float  # inputs/s over the last few seconds


class CallsSnapshot(TypedDict):
    """Running calls first, then the most recently finished (at most 200 kept)."""

    version: int
    time: float
    calls: list[CallSnapshot]


class GpuSnapshot(TypedDict):
    worker: str
    model: str
    utilization: float | None  # percent 0..100
    memory_used: int | None  # bytes
    memory_total: int | None  # bytes


class ClusterSnapshot(TypedDict):
    version: int
    address: str
    workers: int
    threads: int
    memory: int  # bytes
    gpus: list[GpuSnapshot]
    dashboard: str | None
