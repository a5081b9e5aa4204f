"""Process-wide switches users may flip at run time (`nbfan.config.progress = False`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def env_flag(name: str, default: bool) -> bool:
    """An on/off environment variable: `default` when unset; "0", "false", "no", "off" or empty turn it off."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


@dataclass
class Config:
    """Run-time settings. Read each time they are used, so changes apply at once."""

    progress: bool = field(default_factory=lambda: env_flag("NBFAN_PROGRESS", True))
    telemetry: bool = field(default_factory=lambda: env_flag("NBFAN_TELEMETRY", True))
    #: seconds after which tasks that no worker can run fail (clusters nbfan starts)
    no_workers_timeout: float = 30.0
    #: seconds to wait for a scheduler before giving up
    connect_timeout: float = 10.0
    #: seconds a waiting map gives a silent scheduler to answer before failing (not hanging)
    scheduler_silence_timeout: float = 10.0
    #: largest pickled arguments of one call (bytes); bigger ones belong in a Volume
    max_input_bytes: int = 1 << 30
    #: seconds the Dask client gathers messages to the scheduler before sending them (Dask's own
    #: default is 10 ms, most of a `.remote` round trip: a call's task waits out the interval
    #: begun by the previous call's release); applied to the clients nbfan uses
    send_interval: float = 0.0002
    #: run every function's inputs in a child process of the worker, not only those with secrets,
    #: an environment or a timeout: every cancel then stops them for real, even inside a C call
    isolate_all: bool = field(default_factory=lambda: env_flag("NBFAN_ISOLATE_ALL", False))
    #: large arrays of a `.map` or `.remote` go to workers on this host through shared memory
    #: (/dev/shm), not through the scheduler and sockets
    shared_memory: bool = field(default_factory=lambda: env_flag("NBFAN_SHARED_MEMORY", True))
    #: what functions print and log is captured on the workers, kept per call (`nbfan logs`) and
    #: shown to their caller live; off: it goes to the workers' own stdout/stderr, as in Dask
    forward_output: bool = field(default_factory=lambda: env_flag("NBFAN_FORWARD_OUTPUT", True))


config = Config()


def nbfan_home() -> Path:
    """Where nbfan keeps its state (cluster file, volumes, certificates)."""
    return Path(os.environ.get("NBFAN_HOME") or Path.home() / ".nbfan").expanduser()
