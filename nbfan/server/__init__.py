"""nbfan's jupyter_server extension: the routes the JupyterLab panel reads (see handlers.py),
and the shared local cluster that JupyterLab's kernels use.

Enabled by the wheel through jupyter-config/jupyter_server_config.d/nbfan.json; jupyter_server
finds the two hooks below on this module. Importing `nbfan` never imports this package."""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbfan.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from nbfan.server.extension import load

    load(serverapp)


def _unload_jupyter_server_extension(serverapp: Any) -> None:
    from nbfan.server.extension import unload

    unload(serverapp)
