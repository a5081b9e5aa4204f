"""What `nbfan deploy` left on the cluster, read back: the deployed apps, a deployed function or
class unpickled here (`Function.from_name`, `Cls.from_name`). It knows the store, not Function,
App or Cls: those look things up here (`deploy.py`, which deploys Apps, sits above them)."""

from __future__ import annotations

from typing import Any, cast

from nbfan.cluster import get_client
from nbfan.cluster.connect import scheduler_address
from nbfan.exception import NotFoundError
from nbfan.scheduler.rpc import store_call
from nbfan.scheduler.store import APPS_OP
from nbfan.worker.tracebacks import unpickle_function


def list_apps(client: Any = None) -> dict[str, dict[str, Any]]:
    """{app name: {"functions": [...], "source": ..., "deployed": epoch seconds, ...}}."""
    return cast(dict[str, dict[str, Any]], store_call(client or get_client(), APPS_OP, action="list")["apps"])


def describe_apps(apps: dict[str, dict[str, Any]]) -> str:
    """One line naming every deployed app and what it holds (for NotFoundError messages)."""
    if not apps:
        return "none (deploy one with `nbfan deploy FILE.py`)"
    return "; ".join(
        f"{name}: {', '.join([*rec['functions'], *rec.get('classes', [])])}" for name, rec in sorted(apps.items())
    )


def lookup(app_name: str, function_name: str, client: Any = None) -> Any:
    """The deployed function (the `Function` that was deployed), unpickled here; NotFoundError
    listing what is deployed."""
    c = client or get_client()
    record = store_call(c, APPS_OP, action="get", name=app_name)["app"]
    if record is None or function_name not in record["functions"]:
        what = f"app {app_name!r}" if record is None else f"function {function_name!r} in app {app_name!r}"
        raise NotFoundError(
            f"no deployed {what} on the cluster at {scheduler_address(c)}; deployed: {describe_apps(list_apps(c))}"
        )
    return unpickle_function(record["functions"][function_name])


def lookup_cls(app_name: str, class_name: str, client: Any = None) -> tuple[type, Any]:
    """The deployed class and its options, unpickled here; NotFoundError listing what is deployed."""
    c = client or get_client()
    record = store_call(c, APPS_OP, action="get", name=app_name)["app"]
    classes = (record or {}).get("classes", {})
    if class_name not in classes:
        what = f"app {app_name!r}" if record is None else f"class {class_name!r} in app {app_name!r}"
        raise NotFoundError(
            f"no deployed {what} on the cluster at {scheduler_address(c)}; deployed: {describe_apps(list_apps(c))}"
        )
    user_cls, options = unpickle_function(classes[class_name])
    return user_cls, options
