"""Issue 7 figures: nbfan.Dict / nbfan.Queue operations against distributed's own scheduler-held
objects (Variable, Queue) measured in the same run, and `nbfan run` start-to-exit wall time.

D1  Dict.put + Dict.get round trips from the caller vs distributed.Variable.set + .get.
D2  Queue.put + Queue.get vs distributed.Queue.put + .get (one item each).
D3  Queue.put_many(1000) + get_many(1000) vs distributed.Queue (put x1000 + get(batch=1000)).
R1  `nbfan run tests/scripts/hello_world.py` (a .remote and a 200-input map) wall time, against
    `python -c "import nbfan"` on the same cluster (the interpreter + import floor).

    .venv/bin/python benchmarks/bench_dict_queue.py

Each timing is the best of 3 runs (the machine is shared; noise only ever adds time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from distributed import LocalCluster, Variable
from distributed import Queue as DaskQueue

import nbfan

N = 300
REPO = Path(__file__).resolve().parent.parent


def best(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        client = nbfan.connect(cluster)
        d = nbfan.Dict.from_name("bench", create_if_missing=True)
        var = Variable("bench-var", client=client)

        def dict_ops() -> None:
            for i in range(N):
                d.put("k", i)
                d.get("k")

        def var_ops() -> None:
            for i in range(N):
                var.set(i)
                var.get()

        t_dict, t_var = best(dict_ops), best(var_ops)
        print(f"D1 Dict put+get      {N / t_dict:8.0f} pairs/s   Variable set+get {N / t_var:8.0f} pairs/s   ratio {t_var / t_dict:.2f}x")

        with nbfan.Queue.ephemeral() as q:
            dq = DaskQueue("bench-q", client=client)

            def queue_ops() -> None:
                for i in range(N):
                    q.put(i)
                    q.get()

            def dask_queue_ops() -> None:
                for i in range(N):
                    dq.put(i)
                    dq.get()

            t_q, t_dq = best(queue_ops), best(dask_queue_ops)
            print(f"D2 Queue put+get     {N / t_q:8.0f} pairs/s   dask Queue       {N / t_dq:8.0f} pairs/s   ratio {t_dq / t_q:.2f}x")

            def queue_bulk() -> None:
                q.put_many(range(1000))
                assert len(q.get_many(1000)) == 1000

            def dask_queue_bulk() -> None:
                for i in range(1000):
                    dq.put(i)
                assert len(dq.get(batch=1000)) == 1000

            t_qb, t_dqb = best(queue_bulk), best(dask_queue_bulk)
            print(f"D3 1000 items bulk   {t_qb * 1e3:8.1f} ms        dask Queue       {t_dqb * 1e3:8.1f} ms        ratio {t_dqb / t_qb:.2f}x")

        env = {**os.environ, "NBFAN_SCHEDULER": cluster.scheduler_address, "NBFAN_PROGRESS": "0",
               "PYTHONPATH": str(REPO)}
        nbfan_exe = str(Path(sys.executable).parent / "nbfan")

        def run_script() -> None:
            subprocess.run([nbfan_exe, "run", str(REPO / "tests/scripts/hello_world.py")], env=env, check=True,
                           capture_output=True)

        def bare_import() -> None:
            subprocess.run([sys.executable, "-c", "import nbfan; nbfan.cluster.get_client()"], env=env, check=True,
                           capture_output=True)

        t_run, t_import = best(run_script), best(bare_import)
        print(f"R1 nbfan run hello   {t_run:8.2f} s         import+connect   {t_import:8.2f} s         ratio {t_run / t_import:.2f}x")
        nbfan.disconnect()


if __name__ == "__main__":
    main()
