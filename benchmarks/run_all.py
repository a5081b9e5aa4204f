"""Run every benchmarks/bench_*.py in its own interpreter, one after the other (`make bench`).

    .venv/bin/python benchmarks/run_all.py [name-filter]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = argv[0] if argv else ""
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if wanted not in script.stem:
            continue
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        print(f"== {script.name}: exit {result.returncode} in {time.perf_counter() - start:.1f}s\n", flush=True)
        if result.returncode:
            failed.append(script.name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
