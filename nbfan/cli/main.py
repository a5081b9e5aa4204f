"""The `nbfan` command. Each subcommand is a small function; `--help` works everywhere."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from nbfan.exception import Error


def _cluster_up(args: argparse.Namespace) -> int:
    from nbfan.cluster.autoscale import AdaptiveLimits
    from nbfan.cluster.daemon import up

    limits = AdaptiveLimits(args.min_workers, args.max_workers, args.scaledown_window) if args.adaptive else None
    state, started = up(args.workers, dashboard=args.dashboard, tls=args.tls, adaptive=limits)
    verb = "started" if started else "already running"
    print(f"nbfan cluster {verb} at {state.address} (pid {state.pid})")
    if state.adaptive:
        print(AdaptiveLimits(**state.adaptive).describe())  # type: ignore[arg-type]
    if state.dashboard:
        print(f"dashboard: {state.dashboard}")
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    from nbfan.cluster.daemon import down

    state = down(forget=args.forget)
    print(f"nbfan cluster at {state.address} stopped" + ("; its journal was discarded" if args.forget else ""))
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    from distributed import Client

    from nbfan.cluster.address import security_for
    from nbfan.cluster.daemon import ClusterCommandError, running_state
    from nbfan.cluster.describe import summarize
    from nbfan.scheduler.durable import journal_line
    from nbfan.scheduler.rpc import request

    state = running_state()
    if state is None:
        raise ClusterCommandError("no nbfan cluster is running; start one with `nbfan cluster up`")
    with Client(state.address, timeout="10s", set_as_default=False, security=security_for(state.address)) as client:
        summary = summarize(client.scheduler_info(), state.dashboard)
        journal = request(client, "journal.status")
    print(f"nbfan cluster (pid {state.pid})")
    print(summary.text())
    if state.adaptive:
        from nbfan.cluster.autoscale import AdaptiveLimits, recent_events
        from nbfan.cluster.daemon import autoscale_events_path

        print(AdaptiveLimits(**state.adaptive).describe())  # type: ignore[arg-type]
        for when, what in recent_events(autoscale_events_path())[-5:]:
            print(f"  {time.strftime('%H:%M:%S', time.localtime(when))} {what}")
    print(journal_line(journal))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbfan", description="Notebook-native fan-out compute on Dask.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    cluster = sub.add_parser("cluster", help="the persistent local cluster (up, down, status)")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION")
    csub.required = True
    p = csub.add_parser("up", help="start the local cluster (harmless if it runs)")
    p.add_argument("--workers", type=int, default=None, help="CPU workers (default: one per core not used by a GPU)")
    p.add_argument("--dashboard", action="store_true", help="serve the Dask dashboard on 127.0.0.1")
    p.add_argument("--tls", action="store_true", help="TLS with self-signed certificates under NBFAN_HOME")
    p.add_argument("--adaptive", action="store_true",
                   help="start and stop CPU workers with demand (within --min-workers and --max-workers)")
    p.add_argument("--min-workers", type=int, default=0, help="--adaptive: CPU workers kept while idle (default 0)")
    p.add_argument("--max-workers", type=int, default=0, help="--adaptive: the most CPU workers (default: one a core)")
    p.add_argument("--scaledown-window", type=float, default=60.0,
                   help="--adaptive: seconds a worker may go unneeded before it stops (default 60, as Modal)")
    p.set_defaults(handler=_cluster_up)
    p = csub.add_parser("down", help="stop the local cluster")
    p.add_argument("--forget", action="store_true",
                   help="also discard its journal: Dicts, Queues, deployments and spawn_maps are not kept")
    p.set_defaults(handler=_cluster_down)
    p = csub.add_parser("status", help="address, workers, threads, memory and GPUs of the local cluster")
    p.set_defaults(handler=_cluster_status)
    for register in COMMAND_REGISTRARS:
        register(sub)
    return parser


#: Other modules add subcommands here (run, deploy, calls...): each takes the subparsers object.
COMMAND_REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []

from nbfan.cli import calls as cli_calls  # noqa: E402
from nbfan.cli import logs as cli_logs  # noqa: E402
from nbfan.cli import run as cli_run  # noqa: E402

COMMAND_REGISTRARS += [cli_run.register, cli_calls.register, cli_logs.register]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (Error, RuntimeError, OSError) as exc:
        print(f"nbfan: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
