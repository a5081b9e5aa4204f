"""What an editor infers from nbfan's API: checked by `mypy --strict` and `pyright`
(tests/unit/test_typing.py), never run. `assert_type` fails the check on a wrong inference;
the `type: ignore` / `pyright: ignore` lines are calls that must be type errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from typing_extensions import assert_type

import nbfan

app = nbfan.App("typing")


@app.function
def f(x: int, y: str = "a") -> float:
    return x + len(y)


@app.function(gpu=None, retries=2, timeout=60)
def with_options(x: int) -> list[str]:
    return [str(x)]


@app.function
async def fetch(url: str) -> bytes:
    return url.encode()


@app.function
def count(n: int) -> Iterator[int]:
    yield from range(n)


@app.generator(timeout=10)
def words(text: str) -> Iterator[str]:
    yield from text.split()


@app.cls(gpu=None, timeout=60)
class Model:
    size: str = nbfan.parameter(default="small")
    scale: float = nbfan.parameter(default=1.0)

    @nbfan.enter()
    def load(self) -> None:
        self.weights = [self.scale] * 3

    @nbfan.method()
    def predict(self, x: int) -> float:
        return x * self.weights[0]

    @nbfan.method()
    def stream(self, n: int) -> Iterator[str]:
        yield from (self.size for _ in range(n))

    @nbfan.method()
    async def embed(self, text: str) -> list[float]:
        return [float(len(text))]


@app.cls
class Plain:
    @nbfan.method
    def double(self, x: int) -> int:
        return 2 * x


def class_calls() -> None:
    # mypy ignores what a class decorator returns (python/mypy#3135): to it `Model` stays the
    # class, so it takes no parameters and has no `with_options`; pyright sees `ClsOf[Model]`.
    model = Model(size="big")  # type: ignore[call-arg]
    assert_type(model.predict.remote(1), float)
    assert_type(model.predict.map([1, 2]), Iterator[float])
    assert_type(model.predict.spawn(1).get(), float)
    assert_type(model.stream.remote_gen(2), Iterator[str])
    assert_type(model.embed.remote("a"), list[float])
    assert_type(Model().predict.local(3), float)
    assert_type(Plain().double.remote(2), int)
    Model.with_options(gpu="A100")  # type: ignore[attr-defined]
    model.predict.remote("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    model.predict.remote(1, 2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def plain_calls() -> None:
    assert_type(f.remote(1), float)
    assert_type(f.local(1), float)
    assert_type(f(1, "b"), float)
    assert_type(f.spawn(1), nbfan.FunctionCall[float])
    assert_type(f.spawn(1).get(), float)
    assert_type(f.spawn(1).get(timeout=3), float)
    assert_type(f.map([1, 2]), Iterator[float])
    assert_type(f.starmap([(1, "a"), (2, "b")]), Iterator[float])
    assert_type(f.spawn_map([1, 2]), nbfan.MapCall[float])
    assert_type(f.spawn_map([1, 2]).get(), list[float])
    assert_type(list(f.spawn_map([1, 2])), list[float])
    assert_type(f.for_each([1, 2]), None)
    assert_type(with_options.remote(3), list[str])
    assert_type(fetch.remote("u"), bytes)  # an async function's result is the awaited value, as in Modal
    assert_type(count.remote_gen(3), Iterator[int])
    assert_type(count.map([1, 2]), Iterator[int])  # generator functions are flat-mapped
    assert_type(words.remote_gen("a b"), Iterator[str])
    assert_type(f.get_current_stats().backlog, int)
    assert_type(f.update_autoscaler(min_containers=1, scaledown_window=30), None)


def wrong_calls() -> None:
    f.remote("not an int")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    f.remote(1, "b", 3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    f.spawn(y=1)  # type: ignore[call-arg, arg-type]  # pyright: ignore[reportCallIssue]


async def async_calls() -> None:
    assert_type(await f.remote.aio(1), float)
    assert_type(await f.spawn.aio(1), nbfan.FunctionCall[float])
    assert_type(await (await f.spawn.aio(1)).get.aio(), float)
    assert_type((await f.get_current_stats.aio()).num_total_runners, int)
    async for value in f.map.aio([1, 2]):
        assert_type(value, float)
    async for word in words.remote_gen.aio("a b"):
        assert_type(word, str)
    assert_type(await f.spawn_map.aio([1]), nbfan.MapCall[float])
    await f.for_each.aio([1, 2])
    call = f.spawn(1)
    assert_type(await call.cancel.aio(), None)
    assert_type(await call.logs.aio(input=0), list[nbfan.LogLine])
    assert_type(await nbfan.FunctionCall.from_id.aio("ab12"), nbfan.FunctionCall[Any])
    assert_type(nbfan.FunctionCall.gather(call, call), list[Any])
    assert_type(await nbfan.FunctionCall.gather.aio(call), list[Any])
    job = f.spawn_map([1])
    assert_type(await job.get.aio(timeout=1.0), list[float])
    assert_type(await nbfan.MapCall.from_id.aio("ab12"), nbfan.MapCall[Any])
    assert_type((await job.progress.aio()).done, int)
    await job.cancel.aio()
    job.get(timeout="x")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    assert_type(job.get(index=1), float)
    assert_type(await job.get.aio(index=0), float)
    assert_type(job.num_inputs(), int)
    for value in job.iter(start=1, end=2):
        assert_type(value, float)


def objects() -> None:
    with nbfan.Dict.ephemeral() as d, nbfan.Queue.ephemeral() as q:
        assert_type(d, nbfan.Dict[Any, Any])  # unnamed types are unchecked, as in Modal
        assert_type(q, nbfan.Queue[Any])
        d["k"] = 1
        q.put(1)
    counts: nbfan.Dict[str, int] = nbfan.Dict.from_name("counts", create_if_missing=True)
    assert_type(counts["a"], int)
    assert_type(counts.get("a"), int | None)
    assert_type(counts.pop("a", 0), int)
    assert_type(list(counts.items()), list[tuple[str, int]])
    assert_type(counts.put("a", 1, skip_if_exists=True), bool)
    counts["a"] = "one"  # type: ignore[assignment]  # pyright: ignore[reportArgumentType]
    counts.get(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    jobs: nbfan.Queue[tuple[str, int]] = nbfan.Queue.from_name("jobs", create_if_missing=True)
    assert_type(jobs.get(timeout=1), tuple[str, int])
    assert_type(jobs.get_many(3), list[tuple[str, int]])
    assert_type(next(jobs.iterate()), tuple[str, int])
    jobs.put(("a", 1), partition="p")
    jobs.put("a")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    secret: nbfan.Secret = nbfan.Secret.from_dict({"TOKEN": "x"})
    volume: nbfan.Volume = nbfan.Volume.from_name("data", create_if_missing=True)
    by_name: nbfan.Function[..., Any] = nbfan.Function.from_name("app", "f")
    del secret, volume, by_name


async def async_objects(counts: nbfan.Dict[str, int], jobs: nbfan.Queue[bytes]) -> None:
    assert_type(await counts.get.aio("a"), int | None)
    assert_type(await counts.len.aio(), int)
    assert_type(await jobs.get.aio(), bytes)
    await jobs.put.aio(b"x")
    async for job in jobs.iterate.aio(item_poll_timeout=1):
        assert_type(job, bytes)
