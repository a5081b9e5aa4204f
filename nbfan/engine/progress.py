"""Where a blocking map reports its progress. The engine knows nothing of widgets: the
notebook layer (or the CLI) installs a factory here; without one, nothing is shown."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from nbfan.config import config


@dataclass
class Counts:
    """Inputs, not tasks: `total` is None until the inputs are exhausted."""

    done: int = 0
    failed: int = 0
    running: int = 0
    total: int | None = None
    started: float = field(default_factory=time.monotonic)


class ProgressSink(Protocol):
    def update(self, counts: Counts) -> None: ...

    def close(self, counts: Counts, state: str) -> None:  # state: done | failed | cancelled
        ...


ProgressFactory = Callable[[str, str], "ProgressSink | None"]  # (label, call id) -> sink
_factory: ProgressFactory | None = None


def set_progress_factory(factory: ProgressFactory | None) -> None:
    """Install how progress is shown in this process (the notebook extension, the CLI)."""
    global _factory
    _factory = factory


def progress_factory() -> ProgressFactory | None:
    """How progress is shown in this process now (None: it is not)."""
    return _factory


class Progress:
    """Throttled fan-out progress: at most one update every `interval` seconds, plus the last."""

    def __init__(self, label: str, call_id: str, interval: float = 0.25) -> None:
        self.counts = Counts()
        self.interval = interval
        self._last = 0.0
        self._sink = _factory(label, call_id) if (_factory is not None and config.progress) else None

    def tick(self) -> None:
        if self._sink is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._sink.update(self.counts)

    def close(self, state: str) -> None:
        if self._sink is not None:
            self._sink.close(self.counts, state)
            self._sink = None
