"""Loading the extension into a jupyter_server: routes, the telemetry manager, and the shared
local cluster for JupyterLab's kernels.

When the server starts without NBFAN_SCHEDULER, it brings up (or joins) the user's local nbfan
cluster in a background thread and sets NBFAN_SCHEDULER in its own environment, so every kernel
it launches (they inherit it) and the panel share one cluster, and spawned work survives kernel
restarts. The cluster is the user's (`nbfan cluster down` stops it); the server leaves it running.
Turn this off with `c.NbfanServer.lab_cluster = False` or NBFAN_LAB_CLUSTER=0."""

from __future__ import annotations

import os
import threading
from typing import Any

from traitlets import Bool, default
from traitlets.config import LoggingConfigurable

from nbfan.config import env_flag
from nbfan.server.handlers import setup_handlers
from nbfan.server.manager import TelemetryManager

STATE_KEY = "nbfan_server"


class NbfanServer(LoggingConfigurable):
    """Settings of nbfan's server extension (`c.NbfanServer.<name>` in jupyter_server_config.py)."""

    lab_cluster = Bool(
        help="Bring up (or join) the user's local nbfan cluster when the server starts without "
        "NBFAN_SCHEDULER, and point the server's kernels at it. Env: NBFAN_LAB_CLUSTER=0 turns it off.",
    ).tag(config=True)

    @default("lab_cluster")
    def _lab_cluster_default(self) -> bool:
        return env_flag("NBFAN_LAB_CLUSTER", True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manager = TelemetryManager()
        self.cluster_ready = threading.Event()
        self.cluster_error: str | None = None

    def start_cluster(self) -> threading.Thread | None:
        """Bring up the local cluster off the server's start (it takes seconds)."""
        if not self.lab_cluster or os.environ.get("NBFAN_SCHEDULER", "").strip():
            self.cluster_ready.set()
            return None
        thread = threading.Thread(target=self._up, name="nbfan-lab-cluster", daemon=True)
        thread.start()
        return thread

    def _up(self) -> None:
        from nbfan.cluster.daemon import up

        try:
            state, started = up()
        except Exception as exc:
            self.cluster_error = str(exc)
            self.log.warning("nbfan: could not bring up the local cluster for JupyterLab's kernels: %s", exc)
        else:
            os.environ.setdefault("NBFAN_SCHEDULER", state.address)
            self.log.info(
                "nbfan: %s the local cluster at %s; kernels started from now on use it",
                "started" if started else "joined",
                state.address,
            )
        finally:
            self.cluster_ready.set()


def load(serverapp: Any) -> None:
    ext = NbfanServer(parent=serverapp)
    serverapp.web_app.settings[STATE_KEY] = ext
    setup_handlers(serverapp.web_app, ext.manager)
    ext.start_cluster()
    serverapp.log.info("nbfan: server extension loaded (routes under %snbfan/api/)", serverapp.base_url)


def unload(serverapp: Any) -> None:
    ext = serverapp.web_app.settings.pop(STATE_KEY, None)
    if ext is not None:
        ext.manager.close()
