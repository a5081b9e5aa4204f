"""Whether a caller can hand large buffers to its cluster's workers through shared memory
(worker/shared.py): its scheduler listens on a loopback address, so every worker runs on this
host, and each current worker reads a file this process put in /dev/shm (a container with a
/dev/shm of its own would not). Checked once per client, on its first large buffer."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from distributed import Client

from nbfan.cluster.connect import scheduler_address
from nbfan.config import config
from nbfan.worker import shared

_confirmed: dict[tuple[str, str], bool] = {}  # (client id, scheduler address) -> shares memory
_lock = threading.Lock()


def sharer(client: Client) -> Callable[[memoryview], shared.SharedFrame | None] | None:
    """What puts a call's large buffers in shared memory, or None where it cannot be used
    (`nbfan.config.shared_memory` off, a scheduler reached over the network, no /dev/shm)."""
    if not (config.shared_memory and shared.available() and _on_loopback(client)):
        return None

    def share(buffer: memoryview) -> shared.SharedFrame | None:
        return shared.share(buffer) if _workers_read_it(client) else None

    return share


def _on_loopback(client: Client) -> bool:
    try:
        host = str(urlparse(scheduler_address(client)).hostname or "")
    except Exception:
        return False
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _workers_read_it(client: Client) -> bool:
    key = (client.id, scheduler_address(client))
    with _lock:
        known = _confirmed.get(key)
    if known is not None:
        return known
    token = os.urandom(16)
    probe = shared.share(memoryview(token))
    try:
        seen = client.run(_read_probe, probe.name, probe.nbytes) if probe is not None else {}
        confirmed = bool(seen) and all(value == token for value in seen.values())
    except Exception:
        confirmed = False
    finally:
        if probe is not None:
            shared.release([probe.name])
    with _lock:
        _confirmed[key] = confirmed
    return confirmed


def _read_probe(name: str, nbytes: int) -> Any:
    try:
        return bytes(shared.SharedFrame(name, nbytes).data)
    except Exception:
        return None
