"""Finding, starting and describing the Dask cluster nbfan runs on."""

from nbfan.cluster.connect import connect, current_connection, disconnect, get_client, get_client_now

__all__ = ["connect", "current_connection", "disconnect", "get_client", "get_client_now"]
