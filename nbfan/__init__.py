"""nbfan: Modal's function API on your own Dask cluster, native to Jupyter.

app = nbfan.App("grid-search")

@app.function(retries=2)
def evaluate(x): ...

results = list(evaluate.map(range(100)))
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

from nbfan import exception
from nbfan.api.app import App, Stub
from nbfan.api.autoscale import autoscale
from nbfan.api.calls import FunctionCall
from nbfan.api.cls import Cls, enter, exit, method, parameter
from nbfan.api.function import Function, FunctionStats
from nbfan.api.modal_names import (
    Cron,
    Period,
    batched,
    concurrent,
    current_function_call_id,
    current_input_id,
    enable_output,
    is_local,
)
from nbfan.api.options import Retries
from nbfan.api.web import asgi_app, fastapi_endpoint, web_endpoint, web_server, wsgi_app
from nbfan.api.worker_groups import WorkerGroup
from nbfan.cluster import connect, disconnect
from nbfan.cluster.gpus import current_gpus
from nbfan.config import config
from nbfan.engine.call_graph import CallGraphNode
from nbfan.engine.output import FailedInput, LogLine
from nbfan.engine.spawn_map import MapCall, MapProgress
from nbfan.objects.dict import Dict
from nbfan.objects.image import Image
from nbfan.objects.queue import Queue
from nbfan.objects.secret import Secret
from nbfan.objects.volume import Volume
from nbfan.version import __version__ as __version__

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
    "asgi_app",
    "batched",
    "concurrent",
    "current_function_call_id",
    "current_input_id",
    "enable_output",
    "enter",
    "exit",
    "fastapi_endpoint",
    "is_local",
    "method",
    "parameter",
    "web_endpoint",
    "web_server",
    "wsgi_app",
]
__all__ += [
    # the rest of the API: apps, functions, calls, options and the cluster connection
    "App",
    "CallGraphNode",
    "FailedInput",
    "Function",
    "FunctionCall",
    "FunctionStats",
    "LogLine",
    "MapCall",
    "MapProgress",
    "Retries",
    "Stub",
    "WorkerGroup",
    "autoscale",
    "config",
    "connect",
    "current_gpus",
    "disconnect",
    "exception",
]


def load_ipython_extension(ipython: "InteractiveShell") -> None:  # `%load_ext nbfan`
    from nbfan.notebook import load_ipython_extension as load

    load(ipython)
