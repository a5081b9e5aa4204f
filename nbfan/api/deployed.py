"""What `nbfan deploy` left on the cluster, read back: the deployed apps, a deployed function or
class unpickled here (`Function.from_name`, `Cls.from_name`). It knows the store, not Function,
App or Cls: those look things up here (`deploy.py`, which deploys Apps, sits above them)."""

from __future__ import annotations

from typing import Any, cast

from nbfan.cluster import get_client
from nbfan.cluster.connect import scheduler_address
from nbfan.exception import InvalidError, NotFoundError
from nbfan.scheduler.apps import APPS_OP
from nbfan.scheduler.rpc import store_call
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


def lookup(app_name: str, function_name: str, client: Any = None, version: int | None = None) -> Any:
    """The deployed function (the `Function` that was deployed; of `version` when given, else
    the current one), unpickled here; NotFoundError listing what is deployed."""
    c = client or get_client()
    record = _record(c, app_name, version)
    if function_name not in record["functions"]:
        raise NotFoundError(
            f"no deployed function {function_name!r} in app {app_name!r} (version {record.get('version')}) on the "
            f"cluster at {scheduler_address(c)}; deployed: {describe_apps(list_apps(c))}"
        )
    return unpickle_function(record["functions"][function_name])


def _record(client: Any, app_name: str, version: int | None) -> dict[str, Any]:
    """A deployed app's record (a version of it), or NotFoundError saying what exists."""
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise InvalidError(f"version={version!r}: give a version number as `nbfan apps` lists them (1, 2, ...)")
    record = store_call(client, APPS_OP, action="get", name=app_name, app_version=version)["app"]
    if record is None:
        apps = list_apps(client)
        if version is not None and app_name in apps:
            raise NotFoundError(f"app {app_name!r} has no version {version}; kept: "
                                f"{', '.join(map(str, apps[app_name].get('versions', [])))}")
        raise NotFoundError(f"no deployed app {app_name!r} on the cluster at {scheduler_address(client)}; "
                            f"deployed: {describe_apps(apps)}")
    return cast(dict[str, Any], record)


def lookup_cls(app_name: str, class_name: str, client: Any = None) -> tuple[type, Any]:
    """The deployed class and its options, unpickled here; NotFoundError listing what is deployed."""
    c = client or get_client()
    record = _record(c, app_name, None)
    classes = record.get("classes", {})
    if class_name not in classes:
        raise NotFoundError(
            f"no deployed class {class_name!r} in app {app_name!r} on the cluster at {scheduler_address(c)}; "
            f"deployed: {describe_apps(list_apps(c))}"
        )
    user_cls, options = unpickle_function(classes[class_name])
    return user_cls, options
