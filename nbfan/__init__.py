"""nbfan: Modal's function API on your own Dask cluster, native to Jupyter.

    app = nbfan.App("grid-search")

    @app.function(retries=2)
    def evaluate(x): ...

    results = list(evaluate.map(range(100)))
"""

from . import exception
from .app import App, Stub
from .calls import FunctionCall
from .cluster import connect, disconnect
from .cluster.gpus import current_gpus
from .config import config
from .fanout.spawn_map import MapCall
from .function import Function
from .options import Retries

__version__ = "0.1.0"

__all__ = [
    "App",
    "Function",
    "FunctionCall",
    "MapCall",
    "Retries",
    "Stub",
    "config",
    "connect",
    "current_gpus",
    "disconnect",
    "exception",
]


def load_ipython_extension(ipython):  # `%load_ext nbfan`
    from .notebook import load_ipython_extension as load

    load(ipython)
