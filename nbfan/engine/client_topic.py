"""A topic each client of this process listens on, through the scheduler's nbfan plugin: the
output of its calls (output.py) and their pushed outcomes (pushed.py). Subscribed on a client's
first call; subscribed again after the client reconnects (the scheduler forgot it); None for a
client whose scheduler cannot load the plugin (callers then do without)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from distributed import Client

from nbfan.cluster.connect import on_reconnect
from nbfan.scheduler.rpc import ensure_plugin


class ClientTopic:
    def __init__(self, name_for: Callable[[str], str], handler: Callable[[tuple[float, Any]], None]) -> None:
        self._name_for = name_for  # client id -> topic name
        self._handler = handler  # runs on the client's event loop for each event
        self._listening: dict[str, bool] = {}  # client id -> whether it hears its topic
        self._lock = threading.Lock()
        on_reconnect.append(self.forget)

    def topic_for(self, client: Client) -> str | None:
        """`client`'s topic, subscribed to on first use; None when it cannot hear one."""
        client_id = client.id
        with self._lock:
            known = self._listening.get(client_id)
        if known is None:
            try:
                ensure_plugin(client)
                client.subscribe_topic(self._name_for(client_id), self._handler)
                known = True
            except Exception:  # no plugin on this scheduler
                known = False
            with self._lock:
                self._listening[client_id] = known
        return self._name_for(client_id) if known else None

    def forget(self, client: Client) -> None:
        """`client` connected again: the scheduler dropped its subscription."""
        with self._lock:
            self._listening.pop(client.id, None)
