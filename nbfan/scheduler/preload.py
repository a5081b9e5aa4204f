"""A Dask scheduler preload (`dask_setup(scheduler)`) for schedulers with a journal: nbfan's plugin
starts with the scheduler, so its journal is read back and interrupted spawn_maps resume
before any client connects (clients' `register_plugin` then leaves it as it is). Clusters nbfan
starts list it; on another cluster: `dask scheduler --preload nbfan.scheduler.preload`."""

from __future__ import annotations

from typing import Any

from nbfan.scheduler.journal import configured_dir
from nbfan.scheduler.plugin import PLUGIN_NAME, NbfanPlugin


def dask_setup(scheduler: Any) -> None:
    """Run by Dask in the scheduler's process as it starts."""
    if configured_dir() is not None:
        scheduler.add_plugin(NbfanPlugin(), name=PLUGIN_NAME)
