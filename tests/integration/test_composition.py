"""Functions that call functions: inside a task every nbfan call uses the cluster that task runs
on (the worker's client, never a second cluster), and while it waits the task leaves its worker
slot, so nested maps finish even when every slot runs a parent."""

from __future__ import annotations

import nbfan

app = nbfan.App("test-composition")


@app.function
def square(x: int) -> int:
    return x * x


@app.function
def sum_of_squares(n: int) -> tuple[int, str]:
    from nbfan.cluster import get_client

    return sum(square.map(range(n))), get_client().scheduler.address


@app.function
def remote_then_spawn(x: int) -> list[int]:
    first = square.remote(x)
    handles = [square.spawn(x + i) for i in range(3)]
    return [first, *(h.get(timeout=60) for h in handles)]


@app.generator
def countdown(n: int):
    yield from range(n, 0, -1)


@app.function
def collect_stream(n: int) -> list[int]:
    return list(countdown.remote_gen(n)) + list(square.starmap([(2,), (3,)]))


@app.function
def writes_to_a_dict(name: str, x: int) -> int:
    nbfan.Dict.from_name(name).put(x, square.remote(x))
    return x


@app.function
def spawn_map_inside(n: int) -> list[int]:
    return list(square.spawn_map(range(n)).get(timeout=120))


@app.function
async def aio_inside(n: int) -> tuple[int, list[int], list[int]]:
    one = await square.remote.aio(n)
    mapped = [x async for x in square.map.aio(range(n))]
    spawned = await (await square.spawn.aio(n + 1)).get.aio()
    return one, mapped, [spawned]


def test_spawn_map_and_async_calls_inside_functions(client) -> None:
    assert spawn_map_inside.remote(4) == [0, 1, 4, 9]
    assert aio_inside.remote(3) == (9, [0, 1, 4], [16])


def test_nested_maps_on_two_single_thread_workers_finish_on_the_same_cluster(client) -> None:
    # the session cluster has 2 workers of 1 thread: 4 parents each waiting on 10 children
    results = list(sum_of_squares.map([10] * 4))
    assert [total for total, _ in results] == [285] * 4
    assert {address for _, address in results} == {client.scheduler.address}


def test_remote_spawn_get_streams_and_starmap_inside_a_function(client) -> None:
    assert remote_then_spawn.remote(3) == [9, 9, 16, 25]
    assert collect_stream.remote(3) == [3, 2, 1, 4, 9]


def test_a_dict_written_inside_functions_is_the_callers_dict(client) -> None:
    with nbfan.Dict.ephemeral() as shared:
        assert sorted(writes_to_a_dict.map([shared.name] * 3, [1, 2, 3])) == [1, 2, 3]
        assert dict(shared.items()) == {1: 1, 2: 4, 3: 9}


@app.function
def scatter(n: int) -> tuple[list[str], str]:
    from distributed import get_worker

    return [square.spawn(i).object_id for i in range(n)], get_worker().address


def test_calls_spawned_inside_a_function_are_gathered_by_id_after_it_finished(client) -> None:
    ids, _worker = scatter.remote(5)
    assert [nbfan.FunctionCall.from_id(i).get(timeout=60) for i in ids] == [0, 1, 4, 9, 16]
    assert nbfan.FunctionCall.from_id(ids[0]).get(timeout=60) == 0  # read twice: still kept a while


def test_ids_still_resolve_after_the_spawners_worker_is_killed(client) -> None:
    ids, worker = scatter.remote(4)
    client.restart_workers([worker], timeout=120)  # the spawner's worker process is replaced
    client.wait_for_workers(2, timeout=120)
    assert [nbfan.FunctionCall.from_id(i).get(timeout=120) for i in ids] == [0, 1, 4, 9]


def test_ids_resolve_after_the_spawning_process_exited(client) -> None:
    from conftest import run_py

    code = (
        "import nbfan, sys\n"
        f"nbfan.connect({client.scheduler.address!r})\n"
        "from test_composition import square\n"
        "print('ID', square.spawn(12).object_id)\n"
    )
    out = run_py(code, env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parent)})
    assert out.returncode == 0, out.stderr
    object_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("ID"))
    assert nbfan.FunctionCall.from_id(object_id).get(timeout=60) == 144


def test_retention_drops_read_results_after_keep_for_and_the_oldest_unread_past_the_cap(client) -> None:
    from waiting import wait_until

    from nbfan.scheduler.rpc import request

    defaults = request(client, "retention.configure")
    try:
        request(client, "retention.configure", keep_for=0.2)
        read = square.spawn(3)
        assert read.get(timeout=60) == 9

        def gone(object_id: str) -> str:
            try:
                nbfan.FunctionCall.from_id(object_id)
            except nbfan.exception.NotFoundError as exc:
                return str(exc)
            return ""

        assert "was read and kept 0.2s" in wait_until(lambda: gone(read.object_id), timeout=30)
        request(client, "retention.configure", keep_for=600, max_unread=2)
        unread = [square.spawn(i) for i in range(3)]
        for call in unread:
            wait_until(call.done, timeout=60, what="the spawned call to finish")
        assert "oldest unread" in wait_until(lambda: gone(unread[0].object_id), timeout=30)
        assert nbfan.FunctionCall.from_id(unread[2].object_id).get(timeout=60) == 4
    finally:
        request(client, "retention.configure", **defaults)


@app.function
def maps_inside(n: int) -> int:
    return sum(square.map(range(n)))


def test_a_call_made_inside_another_records_its_parent_and_shows_under_it(client) -> None:
    from nbfan.api.queries import as_tree, calls_snapshot

    call = maps_inside.spawn(5)
    assert call.get(timeout=60) == 30
    calls = calls_snapshot(client)["calls"]
    children = [c for c in calls if c.get("parent") == call.object_id]
    assert [(c["function"], c["kind"], c["done"]) for c in children] == [("square", "map", 5)]
    tree = as_tree(calls)
    at = next(i for i, c in enumerate(tree) if c["call_id"] == call.object_id)
    assert tree[at + 1]["call_id"] == children[0]["call_id"] and tree[at + 1]["depth"] == tree[at]["depth"] + 1
    (graph,) = call.get_call_graph()  # Modal's view of the same tree
    assert (graph.call_id, graph.function_name, graph.state) == (call.object_id, "maps_inside", "done")
    assert [(c.call_id, c.function_name, c.state, c.children) for c in graph.children] == [
        (children[0]["call_id"], "square", "done", [])]


@app.function
def slow_child(i: int, folder: str) -> int:
    import time
    from pathlib import Path

    Path(folder, f"started-{i}").touch()
    time.sleep(0.2)
    return i


@app.function
def parent_of_slow_children(folder: str) -> int:
    return sum(slow_child.map(range(200), kwargs={"folder": folder}))


def test_cancelling_the_parent_cancels_its_children(client, tmp_path) -> None:
    from waiting import wait_until

    from nbfan.api.queries import calls_snapshot

    call = parent_of_slow_children.spawn(str(tmp_path))
    wait_until(lambda: len(list(tmp_path.glob("started-*"))) >= 2, what="the children to start")
    call.cancel()

    def child() -> dict:
        found = [c for c in calls_snapshot(client)["calls"] if c.get("parent") == call.object_id]
        return found[0] if found else {}

    wait_until(lambda: child().get("state") == "cancelled", what="the child call to be cancelled")
    prefix = f"nbfan-{child()['call_id']}-"

    def child_tasks(dask_scheduler=None) -> int:
        return sum(1 for k in dask_scheduler.tasks if str(k).startswith(prefix))

    wait_until(lambda: client.run_on_scheduler(child_tasks) == 0, what="the child's tasks to leave the scheduler")
    started = len(list(tmp_path.glob("started-*")))
    assert started < 200
    assert square.remote(2) == 4  # the cluster is free again
    assert len(list(tmp_path.glob("started-*"))) == started  # no new child input started after the cancel


COMPOSITION_SCRIPT = """
import nbfan
from nbfan.cluster import current_connection, get_client

app = nbfan.App("composition-script")

@app.function
def inner(x):
    return x * x

@app.function
def outer(n):
    return sum(inner.map(range(n))), get_client().scheduler.address

@app.function
def scatter(n):
    return [inner.spawn(i).object_id for i in range(n)]

if __name__ == "__main__":
    results = list(outer.map([10] * 4))
    assert [r[0] for r in results] == [285] * 4, results
    assert {r[1] for r in results} == {get_client().scheduler.address}, results
    ids = scatter.remote(3)
    assert [nbfan.FunctionCall.from_id(i).get(timeout=60) for i in ids] == [0, 1, 4]
    print("OK", current_connection().source)
"""


def _run_script(env: dict[str, str]) -> str:
    from conftest import run_py

    result = run_py(COMPOSITION_SCRIPT, env={"NBFAN_PROGRESS": "0", **env}, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_composition_on_the_embedded_default_cluster(tmp_path) -> None:
    assert "OK embedded" in _run_script({"NBFAN_HOME": str(tmp_path / "home")})


def test_composition_on_a_cli_started_cluster(tmp_path) -> None:
    from clitools import run_nbfan

    home = {"NBFAN_HOME": str(tmp_path / "home")}
    up = run_nbfan("cluster", "up", "--workers", "2", scheduler=None, env=home)
    assert up.returncode == 0, up.stderr
    try:
        assert "OK local" in _run_script(home)
    finally:
        run_nbfan("cluster", "down", scheduler=None, env=home)
