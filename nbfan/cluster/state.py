"""The state file of the user's local nbfan cluster (`$NBFAN_HOME/cluster.json`)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbfan.config import nbfan_home


@dataclass
class ClusterState:
    address: str
    pid: int
    dashboard: str | None = None
    started_at: float = field(default_factory=time.time)
    tls: dict[str, str] | None = None  # ca_file / cert / key paths when started with --tls
    adaptive: dict[str, float] | None = None  # min / max CPU workers and scale-down window (--adaptive)


class CorruptStateError(ValueError):
    """The state file exists but is not a cluster state nbfan wrote."""


def state_path() -> Path:
    return nbfan_home() / "cluster.json"


def read_state() -> ClusterState | None:
    """The recorded cluster, or None. A file that is not valid state raises CorruptStateError."""
    path = state_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data: Any = json.loads(text)
        state = ClusterState(**data)
        _check_types(state)
        return state
    except (ValueError, TypeError) as exc:
        raise CorruptStateError(
            f"{path} is not a valid nbfan cluster state file ({exc}). Remove it, or run `nbfan cluster down`."
        ) from None


def _check_types(state: ClusterState) -> None:
    """JSON that parses but holds the wrong types (a hand edit, another program's file)."""
    if not isinstance(state.address, str) or "://" not in state.address:
        raise ValueError(f"address {state.address!r} is not a scheduler address")
    if isinstance(state.pid, bool) or not isinstance(state.pid, int) or state.pid <= 0:
        raise ValueError(f"pid {state.pid!r} is not a process id")
    if state.tls is not None and not (
        isinstance(state.tls, dict) and all(isinstance(v, str) for v in state.tls.values())
    ):
        raise ValueError(f"tls {state.tls!r} is not a dict of certificate paths")


def write_state(state: ClusterState) -> None:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def remove_state() -> None:
    state_path().unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
