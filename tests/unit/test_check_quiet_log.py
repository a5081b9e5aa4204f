"""scripts/check_quiet_log.py, run by .ci/run on `make test`'s output: it fails on leaked noise
and lists it, and passes pytest's own report of a failing test and a quiet run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKER = REPO / "scripts" / "check_quiet_log.py"

QUIET = """\
============================= test session starts ==============================
platform linux -- Python 3.11.7, pytest-9.2.0, pluggy-1.6.0
rootdir: /work/main
configfile: pyproject.toml
plugins: timeout-2.4.0, jupyter-0.11.0, anyio-4.11.0
timeout: 300.0s
collected 33 items

tests/integration/test_remote.py ......................                  [ 66%]
tests/integration/test_spawn_map.py .........F.                          [100%]

=================================== FAILURES ===================================
______________________ test_a_spawn_map_survives_its_caller ____________________

    def test_a_spawn_map_survives_its_caller(client):
>       assert job.get() == 1
E       AssertionError
Traceback (most recent call last):
  File "x.py", line 1, in <module>
----------------------------- Captured stderr call -----------------------------
2026-12-04 21:00:00,001 - distributed.worker - ERROR - Compute Failed
=========================== short test summary info ============================
FAILED tests/integration/test_spawn_map.py::test_a_spawn_map_survives_its_caller
ERROR tests/integration/test_spawn_map.py::test_other - fixture 'x' not found
=================== 1 failed, 32 passed, 1 error in 41.20s =====================
core tests on Python 3.10
........                                                                 [100%]
8 passed in 12.00s
"""

NOISY = """\
============================= test session starts ==============================
collected 2 items

tests/integration/test_remote.py ..                                      [100%]
2026-12-04 21:00:00,001 - distributed.scheduler - ERROR - cannot schedule new futures after shutdown
tornado.application - ERROR - Exception in callback functools.partial(<function done_callback>)
Traceback (most recent call last):
Task was destroyed but it is pending!
=============================== warnings summary ===============================
tests/integration/test_remote.py::test_x
  PytestUnraisableExceptionWarning: Exception ignored in: <function Client.__del__>
============================== 2 passed in 3.00s ===============================
/usr/lib/python3.11/multiprocessing/resource_tracker.py:254: UserWarning: resource_tracker: There appear to be 1 leaked semaphore objects to clean up at shutdown
"""


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "make-test.log"
    log.write_text(text)
    return subprocess.run([sys.executable, str(CHECKER), str(log)], capture_output=True, text=True, timeout=60)


def test_a_quiet_log_passes_with_pytests_own_failure_report(tmp_path: Path) -> None:
    done = check(tmp_path, QUIET)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_log_with_leaked_noise_fails_listing_each_line(tmp_path: Path) -> None:
    done = check(tmp_path, NOISY)
    assert done.returncode == 1
    listed = [line.strip() for line in done.stderr.splitlines()[1:]]
    assert [line.split(":", 1)[0] for line in listed] == ["5", "6", "7", "8", "11", "13"]
    assert "distributed.scheduler - ERROR - cannot schedule" in listed[0]
    assert "leaked semaphore" in listed[-1]


def test_ci_runs_make_test_into_the_log_it_checks() -> None:
    run = (REPO / ".ci" / "run").read_text()
    assert "set -euo pipefail" in run
    assert 'make test 2>&1 | tee "$log"' in run
    assert 'scripts/check_quiet_log.py "$log"' in run
