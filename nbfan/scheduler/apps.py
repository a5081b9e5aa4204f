"""Deployed apps on the scheduler (a part of nbfan's plugin: the `apps` request), and the runs
of their scheduled functions.

Each `nbfan deploy` of an app is a new version of it; the last MAX_VERSIONS are kept, so that
`Function.from_name(app, fn, version=N)` reads an older one and `nbfan apps rollback APP
[VERSION]` makes an older one current again (as a new version, a copy of it, as Modal does).
Every change is journaled (journal.py: `("apps", ...)` records) when the cluster keeps one.

Schedules (`schedule=nbfan.Period(...)` / `nbfan.Cron(...)`) of the current version run here,
while the scheduler runs: when one is due, its launcher (a pickled call the deploying client
made, engine/scheduled.py) is submitted as a fire-and-forget task, which spawns the function
as any caller would (so `nbfan calls` shows each run). A run due while the previous run of the
same function is still going is skipped (counted, and shown by `nbfan apps`). Runs missed
while the scheduler was down are not made up; a Period counts from the deployment."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbfan.scheduler.cron import PeriodSpec, parse_cron
from nbfan.scheduler.journal import NoJournal, Record

logger = logging.getLogger("distributed.nbfan")

APPS_OP = "apps"
MAX_VERSIONS = 10  # versions of an app kept (the oldest go first)


@dataclass
class Schedule:
    """One scheduled function of a deployed app: when it runs next, and what it did so far."""

    spec: tuple[Any, ...]  # ("period", months, seconds) or ("cron", expression, timezone)
    anchor: float  # when its version was deployed
    next: float = 0.0
    runs: int = 0
    skipped: int = 0
    last: float | None = None

    def after(self, now: float) -> float:
        if self.spec[0] == "period":
            return PeriodSpec(int(self.spec[1]), float(self.spec[2])).next_after(now, self.anchor)
        return parse_cron(str(self.spec[1]), str(self.spec[2])).next_after(now)

    def describe(self) -> str:
        if self.spec[0] == "cron":
            return f"Cron({self.spec[1]!r}" + (f", {self.spec[2]}" if self.spec[2] != "UTC" else "") + ")"
        months, seconds = int(self.spec[1]), float(self.spec[2])
        parts = ([f"{months} month{'s' if months != 1 else ''}"] if months else []) + (
            [f"{seconds:g} s"] if seconds else [])
        return f"every {' + '.join(parts)}"


class Apps:
    """Deployed apps by name, every kept version, and their schedules."""

    def __init__(self) -> None:
        self.versions: dict[str, list[dict[str, Any]]] = {}  # app -> its records, oldest first; the last is current
        self.schedules: dict[tuple[str, str], Schedule] = {}
        self.journal: Any = NoJournal()
        self.clock: Callable[[], float] = time.time
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        """Attached to the scheduler by the plugin."""
        self.scheduler = scheduler

    def current(self, name: str) -> dict[str, Any] | None:
        versions = self.versions.get(name)
        return versions[-1] if versions else None

    # -- the `apps` request -----------------------------------------------------------------

    def apps_op(self, action: str, name: str | None = None, record: dict[str, Any] | None = None,
                app_version: int | None = None) -> dict[str, Any]:
        """deploy, list, get (`app_version`, the current one by default), stop, rollback (to
        `app_version`, the one before the current by default). (`version` names the request
        protocol's version: rpc.py.)"""
        if action == "list":
            return {"ok": True, "apps": {n: self._summary(n) for n in self.versions}}
        act = {"deploy": self._deploy, "get": self._get, "stop": self._stop, "rollback": self._rollback}.get(action)
        if act is None:
            return {"ok": False, "error": f"unknown apps action {action!r}"}
        if not isinstance(name, str) or not name:
            return {"ok": False, "error": f"apps {action}: give the app's name"}
        return act(name, record=record, version=app_version)

    def _deploy(self, name: str, *, record: dict[str, Any] | None, version: int | None) -> dict[str, Any]:
        replaced = name in self.versions
        self._add(name, dict(record or {}))
        return {"ok": True, "replaced": replaced, "version": self.versions[name][-1]["version"]}

    def _get(self, name: str, *, record: Any, version: int | None) -> dict[str, Any]:
        return {"ok": True, "app": self._version(name, version)}

    def _stop(self, name: str, *, record: Any, version: int | None) -> dict[str, Any]:
        found = self.versions.pop(name, None) is not None
        self._unschedule(name)
        self.journal.append(("apps", "stop", name))
        return {"ok": True, "found": found}

    def _version(self, name: str, version: int | None) -> dict[str, Any] | None:
        versions = self.versions.get(name) or []
        if version is None:
            return versions[-1] if versions else None
        return next((rec for rec in versions if rec.get("version") == version), None)

    def _add(self, name: str, record: dict[str, Any], *, journal: bool = True) -> None:
        versions = self.versions.setdefault(name, [])
        record.setdefault("version", (versions[-1]["version"] + 1) if versions else 1)
        record.setdefault("deployed", self.clock())
        versions.append(record)
        del versions[:-MAX_VERSIONS]
        self._reschedule(name, record)
        if journal:
            self.journal.append(("apps", "deploy", name, record))

    def _rollback(self, name: str, *, record: Any, version: int | None) -> dict[str, Any]:
        versions = self.versions.get(name) or []
        if not versions:
            return {"ok": False, "missing": True}
        if version is None:
            if len(versions) < 2:
                return {"ok": False, "error": f"app {name!r} has one version ({versions[-1]['version']}): nothing to "
                                              f"roll back to"}
            version = versions[-2]["version"]
        old = self._version(name, version)
        if old is None:
            kept = ", ".join(str(rec["version"]) for rec in versions)
            return {"ok": False, "error": f"app {name!r} has no version {version} (kept: {kept})"}
        copy = {k: v for k, v in old.items() if k not in ("version", "deployed")}
        self._add(name, {**copy, "rolled_back_from": version})
        return {"ok": True, "version": self.versions[name][-1]["version"], "from": version}

    def _summary(self, name: str) -> dict[str, Any]:
        rec = self.versions[name][-1]
        summary = {k: v for k, v in rec.items() if k not in ("functions", "classes", "launchers", "schedules")}
        summary["functions"] = sorted(rec.get("functions", {}))
        summary["classes"] = sorted(rec.get("classes", {}))
        summary["versions"] = [r["version"] for r in self.versions[name]]
        summary["schedules"] = {
            fn: {"schedule": s.describe(), "next": s.next, "runs": s.runs, "skipped": s.skipped, "last": s.last}
            for (app, fn), s in self.schedules.items() if app == name
        }
        return summary

    # -- schedules ----------------------------------------------------------------------------

    def _unschedule(self, name: str) -> None:
        for key in [key for key in self.schedules if key[0] == name]:
            del self.schedules[key]

    def _reschedule(self, name: str, record: dict[str, Any]) -> None:
        self._unschedule(name)
        for fn, spec in (record.get("schedules") or {}).items():
            try:
                schedule = Schedule(tuple(spec), float(record["deployed"]))
                schedule.next = schedule.after(self.clock())
                self.schedules[(name, fn)] = schedule
            except Exception as exc:  # a schedule that cannot run must not stop the others
                logger.warning("nbfan: the schedule of %s.%s cannot run: %s", name, fn, exc)

    def due(self, still_running: Callable[[str, str], bool]) -> list[tuple[str, str, bytes]]:
        """The (app, function, launcher) of each schedule due now; a due one whose last run
        still goes is skipped. Each schedule's next time moves on."""
        now = self.clock()
        fire: list[tuple[str, str, bytes]] = []
        for (name, fn), schedule in self.schedules.items():
            if now < schedule.next:
                continue
            schedule.next = schedule.after(now)
            if still_running(name, fn):
                schedule.skipped += 1
                logger.info("nbfan: skipped a scheduled run of %s.%s: its last run is still going", name, fn)
                continue
            launcher = (self.current(name) or {}).get("launchers", {}).get(fn)
            if launcher is None:
                continue
            schedule.runs += 1
            schedule.last = now
            fire.append((name, fn, launcher))
        return fire

    # -- the journal --------------------------------------------------------------------------

    def replay(self, record: Record) -> None:
        """Apply one journal record (as written above) on the plugin's start."""
        _apps, action, name, *rest = record
        if action == "deploy":
            self._add(name, dict(rest[0]), journal=False)
        elif action == "stop":
            self.versions.pop(name, None)
            self._unschedule(name)

    def snapshot(self) -> list[Record]:
        """Records that rebuild every kept version (for the journal's compaction)."""
        return [("apps", "deploy", name, rec) for name, versions in self.versions.items() for rec in versions]
