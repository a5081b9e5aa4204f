"""Modal's web endpoint decorators (`@modal.asgi_app()`, `@modal.fastapi_endpoint()`,
`@modal.web_endpoint()`, `@modal.wsgi_app()`, `@modal.web_server(port)`).

nbfan runs functions on a Dask cluster and serves no HTTP. A script that defines an endpoint it
never calls (most Modal examples define one beside their `local_entrypoint`) imports and runs
unchanged; calling the endpoint raises an error that says so, before anything is submitted."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from nbfan.exception import InvalidError

ENDPOINT_MARK = "_nbfan_web_endpoint"


def refusal(kind: str, name: str) -> InvalidError:
    """The error a web endpoint raises when something calls it."""
    return InvalidError(
        f"{name} is a Modal web endpoint (@modal.{kind}): nbfan does not serve web endpoints. Call the "
        f"work it does as a function (.remote(), .map()), or serve the app yourself (e.g. `uvicorn`) from a "
        f"process connected to the cluster, calling nbfan functions from its handlers."
    )


def _endpoint_decorator(kind: str) -> Callable[..., Any]:
    def decorator(_f: Any = None, **_options: Any) -> Any:
        def mark(f: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(f)
            def endpoint(*args: Any, **kwargs: Any) -> Any:
                raise refusal(kind, getattr(f, "__name__", "function"))

            setattr(endpoint, ENDPOINT_MARK, kind)
            return endpoint

        return mark(_f) if callable(_f) else mark

    decorator.__doc__ = f"Modal's `@modal.{kind}(...)`: accepted; calling the endpoint raises (nbfan serves no HTTP)."
    decorator.__name__ = kind
    return decorator


asgi_app = _endpoint_decorator("asgi_app")
wsgi_app = _endpoint_decorator("wsgi_app")
fastapi_endpoint = _endpoint_decorator("fastapi_endpoint")
web_endpoint = _endpoint_decorator("web_endpoint")


def web_server(port: int = 8000, *, startup_timeout: float = 5.0, **_options: Any) -> Callable[..., Any]:
    """Modal's `@modal.web_server(port)`: accepted; calling the function raises (nbfan serves no HTTP)."""
    return cast(Callable[..., Any], _endpoint_decorator("web_server")())


def endpoint_kind(fn: Any) -> str | None:
    """The kind of web endpoint `fn` is (its decorator's name), None for plain functions."""
    return getattr(fn, ENDPOINT_MARK, None)
