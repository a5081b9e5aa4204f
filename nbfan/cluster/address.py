"""A Dask client for a scheduler address, with the TLS settings it needs and errors that say what
to do when the address is malformed, unreachable or needs certificates this process lacks."""

from __future__ import annotations

from typing import Any

from distributed import Client

from nbfan.config import config
from nbfan.exception import ClusterConnectionError, InvalidError


def security_for(address: str) -> Any:
    """TLS settings for `tls://` addresses (the local cluster's certificates when it has them)."""
    if not address.startswith("tls://"):
        return None
    try:
        from nbfan.cluster.tls import client_security
    except ImportError:
        return None
    return client_security()


def _require_tls_settings(address: str, security: Any) -> None:
    """A `tls://` address with no certificates would fail deep in Dask with a TypeError: say what to do."""
    if not address.startswith("tls://") or security is not None:
        return
    from distributed.security import Security

    if Security().get_connection_args("client").get("ssl_context") is None:
        from nbfan.config import nbfan_home

        raise ClusterConnectionError(
            f"the scheduler at {address} uses TLS, and this process has no certificate for it: none under "
            f"{nbfan_home() / 'tls'} and no `distributed.comm.tls.*` Dask config. Copy the cluster's ca.pem, "
            f"cluster.pem and cluster-key.pem into that folder, set NBFAN_HOME to the cluster's, or pass "
            f"nbfan.connect(distributed.Client(address, security=distributed.Security(...)))."
        )


def client_for_address(address: str, what: str) -> Client:
    security = security_for(address)
    _require_tls_settings(address, security)
    try:
        return Client(
            address,
            timeout=f"{config.connect_timeout}s",
            set_as_default=False,
            security=security,
        )
    except ValueError as exc:  # Dask's parse errors: unknown scheme, malformed host:port
        raise InvalidError(
            f"{address!r} ({what}) is not a usable scheduler address: {exc}. Give one like 'tcp://127.0.0.1:8786' "
            f"or 'tls://host:8786'."
        ) from None
    except (OSError, TimeoutError) as exc:
        hint = "Check that the scheduler is running and the address is right."
        if address.startswith("tls://") and "certificate" in str(exc).lower():
            hint = "The scheduler refused this process's TLS certificate: use the certificates of that cluster."
        elif not address.startswith("tls://") and "reset by peer" in str(exc):
            hint += " If the scheduler uses TLS, give a tls:// address."
        raise ClusterConnectionError(
            f"could not reach the Dask scheduler at {address} ({what}) within {config.connect_timeout:g}s: "
            f"{exc}. {hint}"
        ) from None
