"""The rows of `make bench-peers` measured where users take nbfan (issue 25), nbfan beside raw
Dask in the same run: a wide cluster, an interactive call under eight clients' maps, the user's
own LocalCluster. Each comes from the benchmark that owns it (bench_wide.py w1,
bench_shared.py, bench_any_cluster.py user), run in an interpreter of its own, which hands its
figures over through NBFAN_BENCH_JSON (field_record.py). Only Dask-based systems run these:
the other peers have no shared cluster to join or to share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = [("bench_wide.py", "w1"), ("bench_shared.py", ""), ("bench_any_cluster.py", "user")]


def measure(timeout: float = 1800) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Run the benchmarks; (their figures by row, the ones that failed)."""
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nbfan-field-") as tmp:
        out = Path(tmp) / "field.json"
        env = {**os.environ, "NBFAN_BENCH_JSON": str(out), "NBFAN_PROGRESS": "0"}
        for script, arg in BENCHMARKS:
            print(f"== in the field: {script} {arg}".rstrip(), flush=True)
            try:
                done = subprocess.run([sys.executable, str(HERE / script), *([arg] if arg else [])], env=env,
                                      timeout=timeout, capture_output=True, text=True)
            except subprocess.TimeoutExpired:
                failed.append(f"{script}: over {timeout:.0f} s")
                continue
            print("\n".join(f"  {line}" for line in done.stdout.splitlines()), flush=True)
            if done.returncode != 0:
                failed.append(f"{script}: exit {done.returncode}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        figures = json.loads(out.read_text()) if out.exists() else {}
    return figures, failed


def rows(figures: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(workload, nbfan, raw Dask, nbfan / raw Dask, goal) for each row measured."""
    found: list[tuple[str, str, str, str, str]] = []
    wide = figures.get("W1")
    if wide:
        found.append((f"(e) {wide['n']:,} x {wide['seconds']:g} s on {wide['slots']} slots (2 workers x 50 threads)",
                      f"{wide['nbfan_s']:.2f} s", f"{wide['raw_s']:.2f} s",
                      f"{wide['nbfan_s'] / wide['raw_s']:.2f}x time", "<= 1.1x"))
    shared = figures.get("S1")
    if shared:
        found.append((f"(f) a 9th client's one call while {shared['clients']} clients map {shared['inputs']:,} inputs "
                      f"each: p50 / p99", f"{shared['nbfan_p50']:.0f} / {shared['nbfan_p99']:.0f} ms",
                      f"{shared['raw_p50']:.0f} / {shared['raw_p99']:.0f} ms",
                      f"{shared['nbfan_p99'] / shared['raw_p99']:.2f}x p99", "p99 <= 250 ms"))
    user = figures.get("A1 [user's LocalCluster]")
    if user:
        found.append((f"(g) map x+1 over {user['n']:,} on the user's own LocalCluster (raw: chunked by hand x100)",
                      f"{user['nbfan_rate']:,.0f}/s", f"{user['chunked_rate']:,.0f}/s",
                      f"{user['nbfan_rate'] / user['chunked_rate']:.1f}x rate "
                      f"({user['nbfan_rate'] / user['pool_rate']:.2f}x a warm pool)", ">= 2x; >= 0.5x pool"))
    latency = figures.get("A2 [user's LocalCluster]")
    if latency:
        found.append(("(h) one call, round trip, on the user's own LocalCluster: p50 / p99",
                      f"{latency['nbfan_p50']:.2f} / {latency['nbfan_p99']:.2f} ms",
                      f"{latency['raw_p50']:.2f} / {latency['raw_p99']:.2f} ms",
                      f"{latency['nbfan_p50'] / latency['raw_p50']:.2f}x p50", "<= 0.4x"))
    return found


def markdown(found: list[tuple[str, str, str, str, str]], failed: list[str]) -> str:
    lines = ["| workload | nbfan | raw Dask | nbfan / raw Dask | goal |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in found]
    lines += [f"\n- not measured: {why}" for why in failed]
    return "\n".join(lines)


def chart(found: list[tuple[str, str, str, str, str]], figures: dict[str, dict[str, Any]], png: Path,
          subtitle: str) -> None:
    """nbfan over raw Dask per field row (below 1 is better for times, above 1 for rates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars: list[tuple[str, float, str]] = []
    if "W1" in figures:
        bars.append(("(e) wide: time", figures["W1"]["nbfan_s"] / figures["W1"]["raw_s"], "lower is better"))
    if "S1" in figures:
        bars.append(("(f) under load: p99", figures["S1"]["nbfan_p99"] / figures["S1"]["raw_p99"], "lower is better"))
    user = figures.get("A1 [user's LocalCluster]")
    if user:
        bars.append(("(g) user cluster: rate", user["nbfan_rate"] / user["chunked_rate"], "higher is better"))
    latency = figures.get("A2 [user's LocalCluster]")
    if latency:
        bars.append(("(h) user cluster: p50", latency["nbfan_p50"] / latency["raw_p50"], "lower is better"))
    if not bars:
        return
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(bars) + 1.5))
    ax.barh([f"{name}\n({better})" for name, _, better in bars], [value for _, value, _ in bars], color="#d62728")
    ax.axvline(1.0, color="#1f77b4", linestyle="--", label="raw Dask = 1")
    for y, (_, value, _) in enumerate(bars):
        ax.text(value, y, f" {value:.2f}x", va="center")
    ax.set_xscale("log")
    ax.set_xlabel("nbfan / raw Dask (log scale)")
    ax.set_title(f"nbfan in the field, beside raw Dask\n{subtitle}", fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
