"""The telemetry snapshot schema, version 1, shared by every view of running calls: the
JupyterLab panel (mirrored in labextension/src/types.ts), the `%nbfan` magic, the progress
widget and `nbfan calls`. Counts are INPUTS, never Dask tasks (a task holds a batch of inputs).

Change it only together with the TypeScript mirror, and bump SCHEMA_VERSION when a field's
meaning changes (adding an optional field is not a new version)."""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, TypedDict

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
    notebook: Optional[str]


class CallSnapshot(TypedDict):
    """One call (a .remote, a .map...) as the cluster sees it."""

    call_id: str
    function: str
    app: Optional[str]
    kind: CallKind
    caller: Caller
    state: CallState
    total: Optional[int]  # known once the inputs are exhausted
    done: int
    failed: int
    running: int
    retried: int
    per_worker: Dict[str, int]  # inputs finished per worker address
    started: float  # epoch seconds
    ended: Optional[float]
    rate: float  # inputs/s over the last few seconds


class CallsSnapshot(TypedDict):
    """Running calls first, then the most recently finished (at most 200 kept)."""

    version: int
    time: float
    calls: List[CallSnapshot]


class GpuSnapshot(TypedDict):
    worker: str
    model: str
    utilization: Optional[float]  # percent 0..100
    memory_used: Optional[int]  # bytes
    memory_total: Optional[int]  # bytes


class ClusterSnapshot(TypedDict):
    version: int
    address: str
    workers: int
    threads: int
    memory: int  # bytes
    gpus: List[GpuSnapshot]
    dashboard: Optional[str]
