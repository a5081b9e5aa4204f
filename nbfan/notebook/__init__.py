"""nbfan in notebooks: the `%%remote` and `%nbfan` magics, progress under cells, the kernel.

Importing this package pulls in nothing from Jupyter; `load_ipython_extension` does."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext nbfan` (the nbfan kernel runs it at start): register the magics and show
    fan-out progress under cells. Connecting to the cluster waits for the first use."""
    from nbfan.notebook import progress
    from nbfan.notebook.magics import NbfanMagics

    ipython.register_magics(NbfanMagics)
    progress.install()


def unload_ipython_extension(ipython: Any) -> None:
    from nbfan.engine.progress import set_progress_factory

    set_progress_factory(None)
