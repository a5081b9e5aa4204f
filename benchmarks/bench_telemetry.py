"""Issue 6 figure: the cost of telemetry on the P1 fine-grained workload.

100k trivial inputs through `.map` on a 2-worker cluster (one thread each), alternating runs
with telemetry off (no scheduler plugin, `nbfan.config.telemetry = False`) and on (plugin
installed, call events sent), on the same cluster. Goal: on/off <= 1.05. Also prints the
scheduler time spent in the plugin's transition hook and this process's CPU time per map
(figures the shared machine's noise blurs far less than wall time), and the `.remote` round
trip with telemetry off and on.

    .venv/bin/python benchmarks/bench_telemetry.py [--reps 5] [--n 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("NBFAN_HOME", str(Path("/tmp") / f"nbfan-bench-home-{os.getpid()}"))
os.environ["NBFAN_PROGRESS"] = "0"

import nbfan  # noqa: E402
from nbfan.api import queries as query  # noqa: E402
from nbfan.cluster.local import start_local_cluster  # noqa: E402
from nbfan.scheduler.rpc import PLUGIN_NAME, ensure_plugin  # noqa: E402


def inc(x: int) -> int:
    return x + 1


def set_telemetry(client: object, on: bool) -> None:
    nbfan.config.telemetry = on
    if on:
        ensure_plugin(client, again=True)  # the bench may have unregistered it: install for real
        client.run_on_scheduler(_time_plugin)
    elif PLUGIN_NAME in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.plugins)):
        client.unregister_scheduler_plugin(PLUGIN_NAME)


def _time_plugin(dask_scheduler: object) -> None:
    """Measure the scheduler time spent in the plugin's transition hook (bench only)."""
    import time as _time

    plugin = dask_scheduler.plugins[PLUGIN_NAME]
    if getattr(plugin, "_bench_timed", False):
        return
    inner = plugin.transition
    plugin._bench_seconds = 0.0
    plugin._bench_calls = 0

    def timed(*args, **kwargs):
        t = _time.perf_counter()
        inner(*args, **kwargs)
        plugin._bench_seconds += _time.perf_counter() - t
        plugin._bench_calls += 1

    plugin.transition = timed
    plugin._bench_timed = True


def _plugin_time(dask_scheduler: object) -> tuple[float, int]:
    plugin = dask_scheduler.plugins[PLUGIN_NAME]
    return plugin._bench_seconds, plugin._bench_calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    n = args.n
    cluster = start_local_cluster(2, gpus=[])
    try:
        client = nbfan.connect(cluster)
        f = nbfan.App("bench-telemetry").function(inc)
        list(f.map(range(2000)))  # warm up both paths
        off: list[float] = []
        on: list[float] = []
        cpu: dict[bool, list[float]] = {False: [], True: []}  # this process: client + scheduler
        for _ in range(args.reps):  # alternate, so drift on the shared machine hits both alike
            for flag, bucket in ((False, off), (True, on)):
                set_telemetry(client, flag)
                start, start_cpu = time.perf_counter(), time.process_time()
                out = list(f.map(range(n)))
                bucket.append(time.perf_counter() - start)
                cpu[flag].append(time.process_time() - start_cpu)
                assert out[-1] == n
        deadline = time.monotonic() + 10  # the end message travels on the client's batched stream
        while True:
            last = next(c for c in query.calls_snapshot(client)["calls"] if c["function"] == "inc")
            if last["state"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert last["done"] == n and last["state"] == "done", last
        hook_s, hook_calls = client.run_on_scheduler(_plugin_time)
        m_off, m_on = statistics.median(off), statistics.median(on)
        ratio = m_on / m_off
        print(f"runs off: {', '.join(f'{t:.3f}' for t in off)}; on: {', '.join(f'{t:.3f}' for t in on)}")
        print(
            f"P1 .map {n} trivial inputs, 2 workers: telemetry off median {m_off:.3f}s ({n / m_off:,.0f} inputs/s), "
            f"on {m_on:.3f}s ({n / m_on:,.0f} inputs/s); on/off = {ratio:.3f} (goal <= 1.05) "
            f"{'ok' if ratio <= 1.05 else 'MISSED'}; best-of on/off = {min(on) / min(off):.3f}"
        )
        c_off, c_on = statistics.median(cpu[False]), statistics.median(cpu[True])
        print(
            f"CPU time of this process (client + scheduler) per map: off median {c_off:.3f}s, on {c_on:.3f}s; "
            f"on/off = {c_on / c_off:.3f}"
        )
        print(
            f"scheduler time in the telemetry transition hook: {hook_s * 1e3 / len(on):.2f} ms per map "
            f"({hook_calls / len(on):.0f} transitions, {hook_s / max(hook_calls, 1) * 1e6:.2f} us each) = "
            f"{hook_s / sum(on) * 100:.3f}% of the maps' wall time"
        )
        remote_round_trip(client, f)
    finally:
        nbfan.disconnect()
        cluster.close()


def remote_round_trip(client: object, f: object, rounds: int = 200) -> None:
    """`.remote` must not get slower: median round trip with telemetry off vs on."""
    samples: dict[bool, list[float]] = {False: [], True: []}
    for block in range(10):  # alternate blocks of calls
        for flag in (False, True):
            set_telemetry(client, flag)
            for i in range(rounds // 10):
                start = time.perf_counter()
                assert f.remote(i) == i + 1
                samples[flag].append(time.perf_counter() - start)
    m_off, m_on = statistics.median(samples[False]), statistics.median(samples[True])
    print(
        f".remote round trip: telemetry off median {m_off * 1e3:.2f} ms, on {m_on * 1e3:.2f} ms; "
        f"on/off = {m_on / m_off:.3f}"
    )


if __name__ == "__main__":
    main()
