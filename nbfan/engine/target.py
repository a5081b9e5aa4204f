"""What the engine needs of a function it runs. `nbfan.api.Function` is one; the engine never
imports the API (arrows point down), it only relies on this shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class CallTarget(Protocol):
    """A function with its options, as the engine plans and runs it."""

    raw_f: Callable[..., Any]
    name: str
    is_generator: bool

    @property
    def app_name(self) -> str | None:
        """The App's name (None for a function outside an App, such as a %%remote cell)."""

    @property
    def options(self) -> Any:
        """The parsed `@app.function(...)` options (`nbfan.api.options.FunctionOptions`)."""

    def secret_env(self) -> dict[str, str]:
        """Environment variables its secrets and image set on the worker."""

    def volume_mounts(self) -> dict[str, str]:
        """{mount path: volume folder} made on the worker before it runs."""
