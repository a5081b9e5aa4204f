"""nbfan: Modal's function API on your own Dask cluster, native to Jupyter.

    app = nbfan.App("grid-search")

    @app.function(retries=2)
    def evaluate(x): ...

    results = list(evaluate.map(range(100)))
"""

from . import exception
from .app import App, Stub
from .calls import FunctionCall
from .cls import Cls, enter, exit, method, parameter
from .cluster import connect, disconnect
from .compat import Cron, Period, batched, concurrent, current_function_call_id, current_input_id, enable_output, is_local
from .cluster.gpus import current_gpus
from .config import config
from .fanout.spawn_map import MapCall
from .dicts import Dict
from .function import Function
from .image import Image
from .options import Retries
from .queues import Queue
from .secret import Secret
from .volume import Volume

__version__ = "0.1.0"

__all__ = [
    # Modal-compatible names (README "Modal compatibility")
    "Cls",
    "Cron",
    "Dict",
    "Image",
    "Period",
    "Queue",
    "Secret",
    "Volume",
    "batched",
    "concurrent",
    "current_function_call_id",
    "current_input_id",
    "enable_output",
    "enter",
    "exit",
    "is_local",
    "method",
    "parameter",
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
