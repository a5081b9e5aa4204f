"""The report of `benchmarks/peers.py`: the table (plain and Markdown, ratios against raw Dask),
the notes under it, the machine and versions lines, and the chart."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from peer_base import (
    ARRAY_BYTES,
    ARRAY_CHUNK,
    CHUNKS,
    COLORS,
    LABELS,
    NOT_APPLICABLE,
    TITLES,
    VERSIONS,
    WORKERS,
    WORKLOADS,
)


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break
    cores = os.cpu_count()
    with contextlib.suppress(AttributeError):
        cores = len(os.sched_getaffinity(0))
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"{cpu}, {cores} cores, {ram} RAM, Python {platform.python_version()}, {now}"


def versions_line() -> str:
    found = []
    for name in VERSIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def cell(system: str, workload: str, results: dict[str, dict[str, Any]], ratios: bool = True) -> str:
    r = results.get(system)
    if r is None:
        return "-"
    if (system, workload) in NOT_APPLICABLE:
        return "n/a"
    got = r.get("workloads", {}).get(workload)
    if got is None:
        return "skipped" if r.get("skipped") else "failed"
    if "error" in got:
        return "failed"
    if workload == "latency":
        return f"{got['p50']:.2f} / {got['p90']:.2f}"
    text = f"{got['value']:,.0f}"
    base = results.get("dask", {}).get("workloads", {}).get(workload, {})
    if ratios and "value" in base and system != "dask":
        text += f" ({got['value'] / base['value']:.2f}x)"
    return text


def table_rows(systems: list[str], results: dict[str, dict[str, Any]], sizes: dict[str, int]) -> list[list[str]]:
    rows = [["workload"] + [LABELS[s] for s in systems]]
    for workload in WORKLOADS:
        if workload == "trivial":
            name = f"(a) map x+1, {sizes['trivial']:,} inputs: inputs/s"
        elif workload == "latency":
            name = f"(d) one call, {sizes['calls']} calls: ms p50 / p90"
        else:
            name = f"{TITLES[workload][:3]} map a.sum(), {sizes[workload]} x {ARRAY_BYTES[workload] >> 20} MiB: MB/s"
        rows.append([name] + [cell(s, workload, results) for s in systems])
    startup = ["start-up, s (not in the figures above)"]
    for s in systems:
        value = results.get(s, {}).get("startup_s")
        startup.append(f"{value:.1f}" if value is not None else "-")
    rows.append(startup)
    return rows


def plain_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def notes(systems: list[str], results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        f"Every system: {WORKERS} worker processes of 1 thread, started and shut down on its own, one system at a time. "
        f"Maps: best of {args.repeat} after a warm-up map; MB/s counts the input arrays' bytes. "
        "Throughput cells: (ratio against raw Dask, higher is faster).",
        "nbfan: `App.function(fn).map(inputs)` and `.remote(x)` on `start_local_cluster(2)`. "
        + (
            "raw Dask: plain `Client` on `LocalCluster(n_workers=2, threads_per_worker=1)`, `client.map` one task per input. "
            if args.dask_cluster == "local"
            else "raw Dask: plain `Client` on nbfan's `start_local_cluster(2)`, `client.map` one task per input. "
        )
        + f"Dask, chunked: trivial inputs in {CHUNKS} tasks; arrays min({ARRAY_CHUNK}, count/{2 * WORKERS}) per task.",
        f"Ray: `ray.init(num_cpus={WORKERS})`, trivial inputs in {CHUNKS} tasks, one task per array. "
        "joblib: `Parallel(n_jobs=2)` (loky, its automatic batching). "
        f"ipyparallel: `ipp.Cluster(n={WORKERS})`, load-balanced `map_sync` (trivial inputs in {CHUNKS} chunks), `apply_sync`. "
        "ProcessPool: `ProcessPoolExecutor(2)`, `map` with chunksize=N//8 for trivial inputs; its maps include the pool's start-up.",
    ]
    for s in systems:
        r = results.get(s, {})
        if r.get("skipped"):
            lines.append(f"{LABELS[s]}: skipped ({r['skipped']}).")
        elif r.get("error"):
            lines.append(f"{LABELS[s]}: failed: {r['error']}")
        for workload, got in r.get("workloads", {}).items():
            if "error" in got:
                lines.append(f"{LABELS[s]}, {TITLES[workload]}: failed: {got['error']}")
            elif got.get("inexact"):
                lines.append(
                    f"{LABELS[s]}, {TITLES[workload]}: {got['inexact']} of {got['n']} sums differ from the local ones "
                    "in the last bits (arrays that reach a worker unaligned are summed along another SIMD path)."
                )
        for (ns, nw), why in NOT_APPLICABLE.items():
            if ns == s and not r.get("skipped"):
                lines.append(f"{LABELS[s]}, {TITLES[nw]}: n/a ({why}).")
    return lines


def chart(
    systems: list[str], results: dict[str, dict[str, Any]], sizes: dict[str, int], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    for ax, workload in zip(axes.flat, WORKLOADS):
        labels, values, upper, shown = [], [], [], []
        for s in systems:
            got = results.get(s, {}).get("workloads", {}).get(workload)
            labels.append(LABELS[s])
            if got is None or "error" in got:
                values.append(0.0)
                upper.append(0.0)
                shown.append(cell(s, workload, results))
            elif workload == "latency":
                values.append(got["p50"])
                upper.append(got["p90"] - got["p50"])
                shown.append(f"{got['p50']:.2f}")
            else:
                values.append(got["value"])
                upper.append(0.0)
                shown.append(f"{got['value']:,.0f}")
        x = list(range(len(systems)))
        bars = ax.bar(x, values, color=[COLORS[s] for s in systems])
        if workload == "latency":
            ax.errorbar(x, values, yerr=[[0.0] * len(x), upper], fmt="none", ecolor="black", capsize=4, lw=1)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 8:
            ax.set_yscale("log")
        top = max([v + u for v, u in zip(values, upper)] + [1e-9])
        if ax.get_yscale() == "log":
            ax.set_ylim(min(positive) / 3, top * 4)
        else:
            ax.set_ylim(0, top * 1.2)
        for bar, value, extra, text in zip(bars, values, upper, shown):
            y = value + extra if value > 0 else (min(positive) / 2.5 if ax.get_yscale() == "log" and positive else 0)
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, y),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
                color="black" if value > 0 else "gray",
            )
        ax.set_xticks(x, labels, rotation=25, ha="right", fontsize=9)
        for tick, s in zip(ax.get_xticklabels(), systems):
            tick.set_fontweight("bold" if s == "nbfan" else "normal")
        if workload == "trivial":
            ax.set_title(f"{TITLES[workload]}, {sizes['trivial']:,} inputs (higher is better)", fontsize=10)
            ax.set_ylabel("inputs/s")
        elif workload == "latency":
            ax.set_title(f"{TITLES[workload]}: p50, bar to p90, {sizes['calls']} calls (lower is better)", fontsize=10)
            ax.set_ylabel("ms")
        else:
            ax.set_title(f"{TITLES[workload]}, {sizes[workload]} inputs (higher is better)", fontsize=10)
            ax.set_ylabel("MB/s of input")
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
