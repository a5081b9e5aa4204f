"""`nbfan deploy FILE.py`, `nbfan apps`, `Function.from_name(app, function)`.

Deploying stores each function of the file's apps, cloudpickled (its module by value, so no
process needs the file afterwards), in the scheduler's store (`nbfan/store.py`): it outlives
the deploying process and lasts as long as the scheduler. Redeploying an app replaces it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from nbfan.cluster import get_client
from nbfan.exception import InvalidError, NotFoundError
from nbfan.scheduler.rpc import store_call
from nbfan.scheduler.store import APPS_OP
from nbfan.worker.payload import ship_module_by_value
from nbfan.worker.tracebacks import pickle_function, unpickle_function

if TYPE_CHECKING:
    from nbfan.api.app import App
    from nbfan.api.function import Function


def deploy_app(app: App, *, source: str = "", client: Any = None) -> dict[str, Any]:
    """Register `app`'s functions under its name on the cluster. Returns {"replaced": bool, ...}."""
    from nbfan.objects.names import check_name

    if not app.name:
        raise InvalidError('deploying needs a named app: nbfan.App("my-app")')
    check_name(app.name, "App")
    if not app.registered_functions:
        raise InvalidError(f"app {app.name!r} has no functions to deploy (decorate them with @app.function)")
    blobs: dict[str, bytes] = {}
    for name, function in app.registered_functions.items():
        module = getattr(function.raw_f, "__module__", None)
        if module:
            ship_module_by_value(module)
        try:
            blobs[name] = pickle_function(function)
        except Exception as exc:
            raise InvalidError(
                f"function {name!r} of app {app.name!r} cannot be serialized to deploy it: {exc}"
            ) from exc
    record = {"functions": blobs, "source": source, "host": os.uname().nodename, "pid": os.getpid(),
              "time": time.time()}
    reply = store_call(client or get_client(), APPS_OP, action="deploy", name=app.name, record=record)
    return {"app": app.name, "functions": sorted(blobs), "replaced": reply["replaced"]}


def list_apps(client: Any = None) -> dict[str, dict[str, Any]]:
    """{app name: {"functions": [...], "source": ..., "deployed": epoch seconds, ...}}."""
    return store_call(client or get_client(), APPS_OP, action="list")["apps"]


def stop_app(name: str, client: Any = None) -> None:
    """Remove a deployed app."""
    if not store_call(client or get_client(), APPS_OP, action="stop", name=name)["found"]:
        raise NotFoundError(f"no deployed app named {name!r}; deployed: {_describe(list_apps(client))}")


def _describe(apps: dict[str, dict[str, Any]]) -> str:
    if not apps:
        return "none (deploy one with `nbfan deploy FILE.py`)"
    return "; ".join(f"{name}: {', '.join(rec['functions'])}" for name, rec in sorted(apps.items()))


def lookup(app_name: str, function_name: str, client: Any = None) -> Function[Any, Any]:
    """The deployed function, unpickled here; NotFoundError listing what is deployed."""
    c = client or get_client()
    record = store_call(c, APPS_OP, action="get", name=app_name)["app"]
    if record is None or function_name not in record["functions"]:
        what = f"app {app_name!r}" if record is None else f"function {function_name!r} in app {app_name!r}"
        raise NotFoundError(
            f"no deployed {what} on the cluster at {c.scheduler.address}; deployed: {_describe(list_apps(c))}"
        )
    return unpickle_function(record["functions"][function_name])
