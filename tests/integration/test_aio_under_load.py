"""Many `.aio` calls at once, on an event loop whose default executor has two threads (as on
a small machine): none may wait behind another for a thread."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nbfan

app = nbfan.App("test-aio-load")
CONCURRENT = 30


@app.function
def double(x: int) -> int:
    return 2 * x


@app.function
def count(n: int) -> Any:
    yield from range(n)


async def _small_loop() -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))


def test_many_concurrent_maps_remote_calls_and_spawned_maps(client: Any) -> None:
    async def one_map(i: int) -> list[int]:
        return [x async for x in double.map.aio(range(i, i + 5))]

    async def one_gen(n: int) -> list[int]:
        return [x async for x in count.remote_gen.aio(n)]

    async def one_spawned_map(i: int) -> list[int]:
        call = await double.spawn_map.aio(range(i, i + 3))
        return list(await call.get.aio(timeout=120))

    async def scenario() -> tuple[list[Any], ...]:
        await _small_loop()
        maps = asyncio.gather(*(one_map(i) for i in range(CONCURRENT)))
        gens = asyncio.gather(*(one_gen(i % 7) for i in range(CONCURRENT)))
        remotes = asyncio.gather(*(double.remote.aio(i) for i in range(CONCURRENT)))
        spawned = asyncio.gather(*(one_spawned_map(i) for i in range(CONCURRENT)))
        return await asyncio.wait_for(asyncio.gather(maps, gens, remotes, spawned), timeout=300)

    with app.run():
        maps, gens, remotes, spawned = asyncio.run(scenario())
    assert maps == [[2 * x for x in range(i, i + 5)] for i in range(CONCURRENT)]
    assert gens == [list(range(i % 7)) for i in range(CONCURRENT)]
    assert remotes == [2 * i for i in range(CONCURRENT)]
    assert spawned == [[2 * x for x in range(i, i + 3)] for i in range(CONCURRENT)]
