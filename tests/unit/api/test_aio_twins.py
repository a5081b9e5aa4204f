"""Every public method that talks to the cluster (or waits) has a working async twin under
`.aio`, made the one way (`engine/aio.py`'s `twin`): the test walks the public API, so a
method added without one fails here. The methods that need none say why."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import pytest

import nbfan

# (class, method): why it has no `.aio`
NO_TWIN = {
    **{("App", m): "a decorator: it runs nothing" for m in ("cls", "function", "generator", "local_entrypoint")},
    **{(c, "function"): "a decorator: it runs nothing" for c in ("Stub",)},
    **{("Stub", m): "a decorator: it runs nothing" for m in ("cls", "generator", "local_entrypoint")},
    ("App", "run"): "a context manager (`with app.run():`)",
    ("Stub", "run"): "a context manager (`with app.run():`)",
    ("Dict", "ephemeral"): "a context manager (`with Dict.ephemeral() as d:`)",
    ("Queue", "ephemeral"): "a context manager (`with Queue.ephemeral() as q:`)",
    ("Volume", "batch_upload"): "a context manager (`with vol.batch_upload() as b:`)",
    ("Cls", "with_options"): "builds a new class here: nothing to wait for",
    ("Volume", "read_only"): "builds a new Volume handle here: nothing to wait for",
    ("Volume", "with_mount_options"): "builds a new Volume handle here: nothing to wait for",
    ("Function", "with_options"): "builds a new Function here: nothing to wait for",
    ("Function", "local"): "runs the function in this process, as called",
    ("Function", "with_concurrency"): "builds a new Function here: nothing to wait for",
    ("Function", "with_batching"): "builds a new Function here: nothing to wait for",
    ("Period", "spec"): "the schedule as data, here",
    ("Cron", "spec"): "the schedule as data, here",
    ("Function", "secret_env"): "reads the function's options (the engine's CallTarget shape)",
    ("Function", "volume_mounts"): "reads the function's options (the engine's CallTarget shape)",
    ("FunctionCall", "done"): "answers from this process without waiting",
    ("Retries", "delay"): "arithmetic",
    **{("Secret", m): "reads this machine (dicts, .env files, the environment, NBFAN_HOME/secrets)"
       for m in ("from_dict", "from_dotenv", "from_local_environ", "from_name")},
}
# classes none of whose methods wait: why
NO_TWINS = {"Image": "an image is a recipe built here; `check_on_cluster` is the engine's CallTarget shape"}


def public_methods() -> list[tuple[str, str, Any]]:
    found = []
    for class_name in sorted(nbfan.__all__):
        cls = getattr(nbfan, class_name)
        if not inspect.isclass(cls) or issubclass(cls, BaseException) or cls.__module__.startswith("enum"):
            continue
        for name in sorted(dir(cls)):
            if name.startswith("_"):
                continue
            raw = inspect.getattr_static(cls, name)
            owner = next(k for k in cls.__mro__ if name in vars(k))
            if isinstance(raw, property) or not callable(getattr(cls, name)) or not owner.__module__.startswith("nbfan"):
                continue  # data, or a method of a base outside nbfan (a NamedTuple's count)
            found.append((class_name, name, getattr(cls, name)))
    return found


def test_every_public_method_that_waits_has_an_aio_twin() -> None:
    missing, wrong = [], []
    for class_name, name, attribute in public_methods():
        if class_name in NO_TWINS or (class_name, name) in NO_TWIN:
            continue
        kind = type(attribute).__name__
        bound = attribute
        if kind in ("aio_method", "aio_iter_method"):  # as on an instance
            bound = type(attribute).__get__(attribute, object.__new__(getattr(nbfan, class_name)))
        aio = getattr(bound, "aio", None)
        if aio is None:
            missing.append(f"{class_name}.{name}")
        elif kind == "aio_iter_method":  # its twin returns an async iterator
            if not callable(aio):
                wrong.append(f"{class_name}.{name}.aio is {aio!r}")
        elif not (inspect.iscoroutinefunction(aio) or inspect.isasyncgenfunction(aio)):
            wrong.append(f"{class_name}.{name}.aio is neither a coroutine function nor an async generator: {aio!r}")
    assert not missing, "public methods without `.aio` (give them `@twin`, or say why in NO_TWIN):\n" + "\n".join(
        missing)
    assert not wrong, "\n".join(wrong)


def test_the_exceptions_are_still_public_methods() -> None:
    """A method or class listed in NO_TWIN / NO_TWINS that went away (or was renamed) is taken off the list."""
    public = {(c, n) for c, n, _ in public_methods()}
    assert set(NO_TWIN) <= public, sorted(set(NO_TWIN) - public)
    assert set(NO_TWINS) <= {c for c, _n in public}, sorted(set(NO_TWINS) - {c for c, _n in public})


def test_a_default_twin_runs_the_blocking_body_off_the_loop() -> None:
    from nbfan.engine.aio import twin

    started, release = threading.Event(), threading.Event()

    class Slow:
        @twin
        def wait(self, x: int) -> int:
            """Blocks until released."""
            started.set()
            release.wait(10)
            return x + 1

    async def main() -> tuple[int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                if started.is_set() and ticks > 5:
                    release.set()  # the loop kept running while the body blocked
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(tick())
        result = await Slow().wait.aio(1)
        await ticker
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result == 2 and ticks > 5
    assert Slow().wait(2) == 3  # the blocking form, as written
    assert Slow().wait.__doc__ == "Blocks until released."


def test_function_call_cancel_aio_never_blocks_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its body runs `client.sync` (which would fail or deadlock on the caller's loop): the twin
    runs it in a thread of its own."""
    import nbfan.api.calls as calls

    loops: list[Any] = []

    def fake_cancel_call(client: Any, call_id: str, futures: Any) -> None:
        try:
            loops.append(asyncio.get_running_loop())
        except RuntimeError:
            loops.append(None)
        time.sleep(0.05)

    monkeypatch.setattr(calls, "cancel_call", fake_cancel_call)
    call = object.__new__(calls.FunctionCall)
    call._future = type("F", (), {"client": None})()  # type: ignore[assignment]
    call.object_id = "ab"
    asyncio.run(call.cancel.aio())
    assert loops == [None]  # it ran where no event loop runs
