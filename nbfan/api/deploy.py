"""`nbfan deploy FILE.py` and `nbfan stop` (reading deployments back: `deployed.py`).

Deploying stores each function of the file's apps, cloudpickled (its module by value, so no
process needs the file afterwards), on the scheduler (`nbfan/scheduler/apps.py`): it outlives
the deploying process, and the scheduler's restarts when it keeps a journal. Redeploying an
app makes a new version of it; functions with a `schedule=` run on it while it is deployed.
"""

from __future__ import annotations

import functools
import os
import time
from typing import TYPE_CHECKING, Any, cast

from nbfan.api.deployed import describe_apps, list_apps
from nbfan.api.options import Scaling
from nbfan.cluster import get_client
from nbfan.engine.scheduled import fire
from nbfan.exception import InvalidError, NotFoundError
from nbfan.scheduler.apps import APPS_OP
from nbfan.scheduler.rpc import store_call
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
    scheduled = {name: function for name, function in app.registered_functions.items() if function.options.schedule}
    record = {"functions": blobs, "classes": classes, "source": source, "host": os.uname().nodename,
              "pid": os.getpid(), "time": time.time(),
              # the scheduler runs these (scheduler/apps.py): when, and the call that spawns the function
              "schedules": {name: function.options.schedule.spec() for name, function in scheduled.items()},
              "launchers": {name: _launcher(function) for name, function in scheduled.items()},
              # what an autoscaler keeps for them while the app is deployed (scheduler/demand.py)
              "scaling": {function.name: function.options.scaling.as_dict()
                          for function in app.registered_functions.values() if function.options.scaling != Scaling()}}
    reply = store_call(client or get_client(), APPS_OP, action="deploy", name=app.name, record=record)
    return {"app": app.name, "functions": sorted(blobs), "classes": sorted(classes), "replaced": reply["replaced"],
            "version": reply.get("version"), "schedules": {n: repr(f.options.schedule) for n, f in scheduled.items()}}


def _packed(app: App, name: str, defined: Any, what: Any) -> bytes:
    """A function or class pickled to deploy it, its module by value (no process needs the file)."""
    module = getattr(defined, "__module__", None)
    if module:
        ship_module_by_value(module)
    try:
        return pickle_function(what)
    except Exception as exc:
        raise InvalidError(f"{name!r} of app {app.name!r} cannot be serialized to deploy it: {exc}") from exc


def rollback_app(name: str, version: int | None = None, client: Any = None) -> dict[str, Any]:
    """Make version `version` of app `name` (default: the one before the current) current again,
    as a new version (a copy of it); its schedules run from now on. {"version", "from"}."""
    reply = store_call(client or get_client(), APPS_OP, action="rollback", name=name, app_version=version)
    if reply.get("missing"):
        raise NotFoundError(f"no deployed app named {name!r}; deployed: {describe_apps(list_apps(client))}")
    if not reply.get("ok"):
        raise InvalidError(str(reply.get("error")))
    return reply


def _launcher(function: Any) -> bytes:
    """The call the scheduler submits when `function`'s schedule is due (a plain cloudpickle:
    the scheduler's `run_pickled` calls it). Made after `_packed` pickled the function: its
    module travels by value here too, and a function that cannot travel was refused there."""
    import cloudpickle

    return cast(bytes, cloudpickle.dumps(functools.partial(fire, function), protocol=5))


def stop_app(name: str, client: Any = None) -> None:
    """Remove a deployed app."""
    if not store_call(client or get_client(), APPS_OP, action="stop", name=name)["found"]:
        raise NotFoundError(f"no deployed app named {name!r}; deployed: {describe_apps(list_apps(client))}")
