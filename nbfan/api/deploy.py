"""`nbfan deploy FILE.py` and `nbfan stop` (reading deployments back: `deployed.py`).

Deploying stores each function of the file's apps, cloudpickled (its module by value, so no
process needs the file afterwards), in the scheduler's store (`nbfan/scheduler/store.py`): it outlives
the deploying process and lasts as long as the scheduler. Redeploying an app replaces it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from nbfan.api.deployed import describe_apps, list_apps
from nbfan.cluster import get_client
from nbfan.exception import InvalidError, NotFoundError
from nbfan.scheduler.rpc import store_call
from nbfan.scheduler.store import APPS_OP
from nbfan.worker.payload import ship_module_by_value
from nbfan.worker.tracebacks import pickle_function

if TYPE_CHECKING:
    from nbfan.api.app import App


def deploy_app(app: App, *, source: str = "", client: Any = None) -> dict[str, Any]:
    """Register `app`'s functions under its name on the cluster. Returns {"replaced": bool, ...}."""
    from nbfan.objects.name_rules import check_name

    if not app.name:
        raise InvalidError('deploying needs a named app: nbfan.App("my-app")')
    check_name(app.name, "App")
    if not app.registered_functions and not app.registered_classes:
        raise InvalidError(
            f"app {app.name!r} has no functions or classes to deploy (decorate them with @app.function or @app.cls)"
        )
    blobs = {name: _packed(app, name, function.raw_f, function) for name, function in app.registered_functions.items()}
    classes = {name: _packed(app, name, cls.user_cls, (cls.user_cls, cls.options))
               for name, cls in app.registered_classes.items()}
    record = {"functions": blobs, "classes": classes, "source": source, "host": os.uname().nodename,
              "pid": os.getpid(), "time": time.time()}
    reply = store_call(client or get_client(), APPS_OP, action="deploy", name=app.name, record=record)
    return {"app": app.name, "functions": sorted(blobs), "classes": sorted(classes), "replaced": reply["replaced"]}


def _packed(app: App, name: str, defined: Any, what: Any) -> bytes:
    """A function or class pickled to deploy it, its module by value (no process needs the file)."""
    module = getattr(defined, "__module__", None)
    if module:
        ship_module_by_value(module)
    try:
        return pickle_function(what)
    except Exception as exc:
        raise InvalidError(f"{name!r} of app {app.name!r} cannot be serialized to deploy it: {exc}") from exc


def stop_app(name: str, client: Any = None) -> None:
    """Remove a deployed app."""
    if not store_call(client or get_client(), APPS_OP, action="stop", name=name)["found"]:
        raise NotFoundError(f"no deployed app named {name!r}; deployed: {describe_apps(list_apps(client))}")
