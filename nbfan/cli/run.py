"""`nbfan run`, `nbfan deploy` and `nbfan apps`."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Any

from nbfan.exception import Error


def _run(args: argparse.Namespace) -> int:
    from nbfan.api.session import require_shared_cluster, script_session
    from nbfan.cli.entrypoint import call_entry, choose_entry, load_script, parse_entry_args, split_target
    from nbfan.config import config

    path, wanted = split_target(args.target)
    entry_argv = list(args.entry_args)
    detach = args.detach
    if args.detach is False and "--detach" in entry_argv:  # `nbfan run job.py --detach` works too
        entry_argv.remove("--detach")
        detach = True
    if detach:
        require_shared_cluster("nbfan run --detach")  # before the script starts any work
    if config.progress:
        from nbfan.api.terminal_progress import install_terminal_progress

        install_terminal_progress()
    try:
        module = load_script(path, entry_argv)
    except Error:
        raise
    except BaseException:
        traceback.print_exc()
        print(f"nbfan: error: {path} failed while being imported (traceback above)", file=sys.stderr)
        return 1
    entry = choose_entry(module, path, wanted)
    kwargs = parse_entry_args(entry, entry_argv, prog=f"nbfan run {path}::{entry.name}")
    try:
        with script_session(detach=detach, what="nbfan run --detach"):
            result = call_entry(entry, kwargs)
        if entry.remote and result is not None:  # `nbfan run FILE.py::function` shows what it returned
            print(repr(result))
    except KeyboardInterrupt:
        print("nbfan: interrupted" + ("" if detach else "; the work it started was cancelled"), file=sys.stderr)
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        from nbfan.cluster import disconnect

        disconnect()
    if detach:
        print("nbfan: detached: work spawned by the script goes on on the cluster (see `nbfan calls`)", file=sys.stderr)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from nbfan.api.deploy import deploy_app
    from nbfan.api.session import require_shared_cluster
    from nbfan.cli.entrypoint import find_apps, load_script

    require_shared_cluster("nbfan deploy")
    module = load_script(args.file, [])
    apps = find_apps(module)
    if args.name:
        apps = [a for a in apps if a.name == args.name]
    if not apps:
        raise Error(f"{args.file} defines no nbfan.App{f' named {args.name!r}' if args.name else ''} to deploy")
    for app in apps:
        result = deploy_app(app, source=args.file)
        verb = "redeployed" if result["replaced"] else "deployed"
        print(f"app {result['app']!r} {verb} as version {result['version']}: "
              f"{', '.join([*result['functions'], *result['classes']])}")
        for function, schedule in sorted(result["schedules"].items()):
            print(f"  {function} runs on the cluster: {schedule} (`nbfan apps` shows the next run)")
    print("call them from any process on this cluster: nbfan.Function.from_name(APP, FUNCTION), "
          "nbfan.Cls.from_name(APP, CLASS)")
    return 0


def _apps(args: argparse.Namespace) -> int:
    from nbfan.api.deploy import rollback_app, stop_app
    from nbfan.api.deployed import list_apps
    from nbfan.api.session import require_shared_cluster

    require_shared_cluster("nbfan apps")
    if args.action in ("stop", "rollback") and not args.name:
        raise Error(f"nbfan apps {args.action} NAME: give the app's name (see `nbfan apps`)")
    if args.action == "stop":
        stop_app(args.name)
        print(f"app {args.name!r} stopped (removed from the cluster)")
        return 0
    if args.action == "rollback":
        reply = rollback_app(args.name, args.version)
        print(f"app {args.name!r} is now version {reply['version']}, a copy of version {reply['from']}")
        return 0
    apps = list_apps()
    if not apps:
        print("no deployed apps (deploy one with `nbfan deploy FILE.py`)")
        return 0
    _print_apps(apps)
    return 0


def _print_apps(apps: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    def clock(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"

    table = Table("app", "version", "functions", "deployed", "schedules (next run)", "source")
    for name, rec in sorted(apps.items()):
        kept = rec.get("versions") or []
        version = f"{rec.get('version', '?')}" + (f" (kept: {', '.join(map(str, kept))})" if len(kept) > 1 else "")
        schedules = "\n".join(
            f"{fn}: {s['schedule']} (next {clock(s['next'])}; {s['runs']} runs, {s['skipped']} skipped)"
            for fn, s in sorted((rec.get("schedules") or {}).items())
        )
        functions = ", ".join([*rec["functions"], *rec.get("classes", [])])
        source = str(rec.get("source") or "")
        table.add_row(name, version, functions, clock(rec.get("deployed")), schedules or "-", source)
    Console(width=max(120, Console().width)).print(table)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "run",
        help="run a script's @app.local_entrypoint() (FILE.py[::ENTRY] [--detach] [ENTRY OPTIONS])",
        description="Run FILE.py's local entrypoint; its typed parameters become options "
        "(`--n 20`, `--flag/--no-flag`). "
        "Work the script spawned is cancelled when it ends, unless --detach.",
    )
    p.add_argument("--detach", action="store_true", default=False,
                   help="let spawned calls and spawn_maps go on on the cluster after this command exits")
    p.add_argument("target", metavar="FILE.py[::ENTRY]", help="the script, and the entrypoint or function to run")
    p.add_argument("entry_args", nargs=argparse.REMAINDER, metavar="ENTRY OPTIONS",
                   help="options of the entrypoint (see `nbfan run FILE.py --help`)")
    p.set_defaults(handler=_run)

    p = sub.add_parser("deploy", help="register a script's apps and functions on the cluster by name")
    p.add_argument("file", metavar="FILE.py")
    p.add_argument("--name", default=None, help="deploy only the app with this name")
    p.set_defaults(handler=_deploy)

    p = sub.add_parser("apps", help="list deployed apps, their versions and schedules (`nbfan apps stop NAME` "
                                    "removes one, `nbfan apps rollback NAME [VERSION]` makes an older version current)")
    p.add_argument("action", nargs="?", choices=["list", "stop", "rollback"], default="list")
    p.add_argument("name", nargs="?", default=None)
    p.add_argument("version", nargs="?", type=int, default=None, help="rollback: the version (default: the one before)")
    p.set_defaults(handler=_apps)
