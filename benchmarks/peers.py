"""nbfan beside its peers: the same workloads on nbfan, raw Dask, hand-chunked Dask, Ray,
joblib, ipyparallel and a process pool, one after the other on this machine (`make bench-peers`).

    .venv/bin/python benchmarks/peers.py [--quick] [--systems nbfan,dask,ray,...]

Every system gets 2 workers of 1 thread each, in processes. Each one runs in an interpreter of
its own, started and shut down before the next (nothing it leaves behind competes for the
cores), and each result is checked, so that a broken system cannot report a fast number.

Workloads:
  (a) map `x + 1` over 100,000 ints                      inputs/s
  (b) map `a.sum()` over 400 float64 arrays of 1 MiB      MB/s of input
  (c) map `a.sum()` over 60 float64 arrays of 16 MiB      MB/s of input
  (d) one trivial call, round trip: p50 / p90 in ms over 200 calls after 20 warm-up calls

A map's figure is the best of --repeat runs after a small warm-up map. Writes the table to
stdout and to benchmarks/results/peers.md, and a chart to benchmarks/results/peers.png.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import peers_field
from peer_base import FULL, LABELS, NEEDS, QUICK, SYSTEMS, WORKERS
from peers_measure import run_system
from peers_report import chart, machine_line, markdown_table, notes, plain_table, table_rows, versions_line

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# ---------------------------------------------------------------------------------------------
# the parent: one child per system, then the table and the chart


def processes_marked(marker: str) -> list[Any]:
    """Processes whose environment carries `marker`: everything a child started, however far
    it detached itself (Ray's and ipyparallel's daemons are not our children any more)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != os.getpid() and proc.environ().get("PEERS_RUN") == marker:
                found.append(proc)
    return found


def end_leftovers(marker: str, system: str) -> None:
    """Every process of this system must be gone before the next system starts."""
    try:
        import psutil
    except ImportError:
        return
    deadline = time.monotonic() + 15
    left = processes_marked(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if not left:
        return
    names = ", ".join(sorted({p.name() for p in left if p.is_running()}))
    print(f"  {system}: {len(left)} process(es) still running after its shutdown ({names}): ending them", flush=True)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(left, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def run_child(system: str, args: argparse.Namespace) -> dict[str, Any]:
    marker = f"{system}-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            system,
            "--out",
            str(out),
            "--repeat",
            str(args.repeat),
            "--dask-cluster",
            args.dask_cluster,
        ] + (["--quick"] if args.quick else [])
        path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))  # the peer modules
        env = {**os.environ, "PEERS_RUN": marker, "PYTHONPATH": path}
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            code = None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            end_leftovers(marker, system)
        result = json.loads(out.read_text()) if out.exists() else {"system": system, "workloads": {}}
    result["wall_s"] = time.perf_counter() - start
    if code is None:
        result["error"] = f"timed out after {args.timeout} s"
    elif code != 0 and "error" not in result:
        result["error"] = f"exited with code {code}"
    if "error" in result:
        first = result["error"].strip().splitlines()[-1] if result["error"].strip() else result["error"]
        result["error"] = first[:200]
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small workloads, for a smoke run (10k inputs, 40 x 1 MiB, 6 x 16 MiB, 50 calls)",
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from: {','.join(SYSTEMS)}")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed runs per map, the best counts (default 3, 1 with --quick)"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds one system may take (default 1800, 600 with --quick)"
    )
    parser.add_argument(
        "--dask-cluster",
        choices=["local", "nbfan"],
        default="local",
        help="raw Dask's cluster: distributed.LocalCluster (default) or nbfan's start_local_cluster",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where peers.md and peers.png go")
    parser.add_argument("--no-field", action="store_true",
                        help="skip the rows measured in the field (wide cluster, under load, user's cluster)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.timeout is None:
        args.timeout = 600 if args.quick else 1800

    if args.child:
        run_system(args.child, sizes, args.repeat, args.dask_cluster, args.out)
        return 0

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}: choose from {', '.join(SYSTEMS)}")
    machine, versions = machine_line(), versions_line()
    print(f"machine: {machine}\nversions: {versions}")
    print(
        f"workloads: {sizes['trivial']:,} trivial inputs, {sizes['arrays_1m']} x 1 MiB, {sizes['arrays_16m']} x 16 MiB, "
        f"{sizes['calls']} calls; best of {args.repeat}\n",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for system in systems:
        module = NEEDS[system]
        if importlib.util.find_spec(module.split(".")[0]) is None:
            print(f"== {LABELS[system]}: skipped ({module} is not installed)\n", flush=True)
            results[system] = {"system": system, "skipped": f"{module} is not installed", "workloads": {}}
            continue
        print(f"== {LABELS[system]}", flush=True)
        results[system] = run_child(system, args)
        if results[system].get("error"):
            print(f"  {LABELS[system]} failed: {results[system]['error']}", flush=True)
        print(f"  ({results[system]['wall_s']:.0f} s in all)\n", flush=True)

    rows = table_rows(systems, results, sizes)
    print(plain_table(rows))
    note_lines = notes(systems, results, args)
    print("\n" + "\n".join(note_lines))

    field_md = ""
    figures: dict[str, Any] = {}
    found: list[Any] = []
    if not args.no_field:
        figures, failed = peers_field.measure(args.timeout)
        found = peers_field.rows(figures)
        field_md = (f"\n## In the field: nbfan beside raw Dask\n\nMeasured by the benchmarks that own each row "
                    f"(benchmarks/peers_field.py), best of 3 where a time.\n\n{peers_field.markdown(found, failed)}\n")
        print("\n" + peers_field.markdown(found, failed))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    md = args.out_dir / "peers.md"
    header = f"Machine: {machine}" + (" (--quick)" if args.quick else "")
    md.write_text(
        f"{header}\n\nVersions: {versions}\n\n"
        f"# nbfan and its peers\n\n{markdown_table(rows)}\n\n" + "\n".join(f"- {line}" for line in note_lines) + "\n"
        + field_md
    )
    print(f"\nwrote {md}")
    try:
        png = args.out_dir / "peers.png"
        chart(
            systems,
            results,
            sizes,
            png,
            f"{WORKERS} workers of 1 thread each; {machine}" + (" (--quick)" if args.quick else ""),
        )
        print(f"wrote {png}")
        if found:
            field_png = args.out_dir / "peers-field.png"
            peers_field.chart(found, figures, field_png, machine)
            print(f"wrote {field_png}")
    except ImportError as e:
        print(f"no chart: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
