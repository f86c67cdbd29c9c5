"""Benchmark: read + validate + build the three point-in-time datasets from generated Parquet worlds.

For each size (projects) a world is generated once (not timed); then fresh processes (``--repeat``, default 3)
each read, validate and build all three datasets once, cold, so each peak memory is its own; the median run is
reported. Prints a table and writes benchmarks/results/features.json.

    .venv/bin/python -m benchmarks.features [--sizes 2500 5000 10000]

(Run as a module: a script named features.py would shadow the features package.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import generate_apart

RESULTS = Path(__file__).parent / "results" / "features.json"
TARGET_EVENTS_PER_SECOND = 1_000_000
TARGET_PEAK_MIB = 4096


def measure(data_dir: Path) -> dict:
    """Time one end-to-end run in this process: read + validate, then build the three datasets."""
    from eqsms.settings import Settings
    from features.datasets import build_all
    from features.validate import load

    t0 = time.perf_counter()
    data = load(data_dir)
    t1 = time.perf_counter()
    results = build_all(data, Settings())
    t2 = time.perf_counter()
    events = sum(rep.rows_in for rep in data.reports.values())
    rows = {name: len(r.dataset.frame) for name, r in results.items() if r.dataset is not None}
    return {
        "events_read": events,
        "events_by_table": {name: rep.rows_in for name, rep in data.reports.items()},
        "rows_built": sum(rows.values()),
        "rows_by_target": rows,
        "seconds_read_validate": round(t1 - t0, 3),
        "seconds_features": round(t2 - t1, 3),
        "seconds_total": round(t2 - t0, 3),
        "events_per_second": round(events / (t2 - t0)),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_size(projects: int, workdir: Path, repeat: int) -> dict:
    data_dir = workdir / f"world_{projects}"
    t0 = time.perf_counter()
    generate_apart(data_dir, n_projects=projects, seed=11, fmt="parquet", dirty=0.0)  # not here: see generate_apart
    generated = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.features", "--measure", str(data_dir)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        runs.append(json.loads(out.stdout))
    median = sorted(runs, key=lambda r: r["seconds_total"])[len(runs) // 2]
    return {
        "projects": projects,
        "seconds_generate": round(generated, 2),
        **median,
        "seconds_total_all_runs": [r["seconds_total"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per size; the median is reported")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return

    with tempfile.TemporaryDirectory(prefix="eqsms-bench-") as tmp:
        runs = [run_size(n, Path(tmp), args.repeat) for n in args.sizes]
    largest = runs[-1]
    per_event = [r["seconds_total"] / r["events_read"] * 1e6 for r in runs]
    report = {
        "benchmark": "features: read + validate + build defect_risk, delay, churn datasets (Parquet input)",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "runs": runs,
        "targets": {
            "events_per_second_at_largest": TARGET_EVENTS_PER_SECOND,
            "peak_rss_mib_at_largest": TARGET_PEAK_MIB,
        },
        "met": {
            "events_per_second": largest["events_per_second"] >= TARGET_EVENTS_PER_SECOND,
            "peak_memory": largest["peak_rss_mib"] < TARGET_PEAK_MIB,
        },
        "microseconds_per_event": [round(x, 3) for x in per_event],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(
        f"{'projects':>9} {'events':>10} {'rows':>8} {'read+val s':>10} {'features s':>10} {'total s':>8} "
        f"{'events/s':>10} {'peak MiB':>9} {'us/event':>9}"
    )
    for r, us in zip(runs, per_event, strict=True):
        print(
            f"{r['projects']:>9,} {r['events_read']:>10,} {r['rows_built']:>8,} {r['seconds_read_validate']:>10.2f} "
            f"{r['seconds_features']:>10.2f} {r['seconds_total']:>8.2f} {r['events_per_second']:>10,} "
            f"{r['peak_rss_mib']:>9,.0f} {us:>9.3f}"
        )
    print(
        f"targets at {largest['projects']:,} projects: >= {TARGET_EVENTS_PER_SECOND:,} events/s "
        f"({'met' if report['met']['events_per_second'] else 'NOT met'}), peak < {TARGET_PEAK_MIB} MiB "
        f"({'met' if report['met']['peak_memory'] else 'NOT met'}); written to {RESULTS}"
    )


if __name__ == "__main__":
    main()
