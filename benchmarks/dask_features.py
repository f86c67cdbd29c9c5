"""Benchmark: the point-in-time datasets on Dask (``features.dask_engine``) beside the pandas engine.

For each size (projects) a Parquet world is generated once (not timed), its tables but projects written as folders
of part files of ``--part-projects`` projects each. Then, each in a fresh process: the pandas engine (``load`` +
``build_all``; only up to ``--pandas-max`` projects) and the Dask engine on a new ``LocalCluster`` of ``--workers``
processes, a thread each (cluster start-up timed apart). Measured: wall time, events (input rows, every table) per
second, the pandas process's peak RSS, the Dask driver's peak RSS and each worker's peak RSS (psutil, sampled every
0.2 s), and a digest of each dataset's frame, which must be the same from both engines. Prints a table and writes
benchmarks/results/dask_features.json.

    .venv/bin/python -m benchmarks.dask_features [--sizes 10000 30000 100000] [--workers 2] [--memory-limit 1GiB]
        [--partitions N] [--pandas-max N] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import generate_apart

RESULTS = Path(__file__).parent / "results" / "dask_features.json"
MIB = 1024 * 1024


def _digest(frame) -> str:
    import pandas as pd

    values = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return hashlib.sha256(values + str(list(frame.dtypes.astype(str))).encode()).hexdigest()[:16]


def _datasets(results) -> dict:
    return {
        name: {"rows": len(r.dataset.frame), "digest": _digest(r.dataset.frame), "fingerprint": r.dataset.fingerprint}
        for name, r in results.items()
        if r.dataset is not None
    }


def child_pandas(data_dir: Path) -> dict:
    from eqsms.settings import Settings
    from features.datasets import build_all
    from features.validate import load

    settings = Settings(work_dir=Path(tempfile.mkdtemp(prefix="eqsms-bench-")))
    t0 = time.perf_counter()
    data = load(data_dir, settings)
    t1 = time.perf_counter()
    results = build_all(data, settings)
    t2 = time.perf_counter()
    events = sum(rep.rows_in for rep in data.reports.values())
    return {
        "events": events,
        "seconds_read_validate": round(t1 - t0, 2),
        "seconds_total": round(t2 - t0, 2),
        "events_per_second": round(events / (t2 - t0)),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "datasets": _datasets(results),
    }


class Sampler(threading.Thread):
    """Each worker process's resident memory, every ``every`` seconds: the peaks."""

    def __init__(self, pids: dict[str, int], every: float = 0.2) -> None:
        import psutil

        super().__init__(daemon=True)
        self.procs = {addr: psutil.Process(pid) for addr, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0)
        self.every, self.done = every, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for addr, proc in self.procs.items():
                try:
                    self.peaks[addr] = max(self.peaks[addr], proc.memory_info().rss)
                except Exception:  # noqa: BLE001 - a worker restarted: its peak so far stays
                    pass
            self.done.wait(self.every)


def child_dask(data_dir: Path, workers: int, partitions: int | None, memory_limit: str) -> dict:
    import psutil
    from distributed import Client, LocalCluster

    from eqsms.settings import Settings
    from features.dask_engine import build_all_dask

    settings = Settings(work_dir=Path(tempfile.mkdtemp(prefix="eqsms-bench-")))
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit, dashboard_address=":0"
    )
    client = Client(cluster)
    t1 = time.perf_counter()
    sampler = Sampler(client.run(os.getpid))
    sampler.start()
    driver = psutil.Process()
    marks: dict[str, list[int]] = {}  # the driver's resident memory as each step starts: now, peak so far (MiB)

    def mark(step: str, *_) -> None:
        marks[step] = [
            round(driver.memory_info().rss / MIB),
            round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        ]

    built = build_all_dask(data_dir, settings, client=client, partitions=partitions, progress=mark)
    t2 = time.perf_counter()
    mark("done")
    sampler.done.set()
    sampler.join()
    client.close()
    cluster.close()
    return {
        "events": built.input_rows,
        "partitions": built.partitions,
        "workers": workers,
        "worker_memory_limit": memory_limit,
        "seconds_cluster_start": round(t1 - t0, 2),
        "seconds_total": round(t2 - t1, 2),
        "seconds_by_step": {k: round(v, 2) for k, v in built.timings.items()},
        "events_per_second": round(built.input_rows / (t2 - t1)),
        "peak_rss_worker_mib": sorted(round(v / MIB) for v in sampler.peaks.values()),
        "peak_rss_driver_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "driver_rss_mib_at_step_now_peak": marks,
        "datasets": _datasets(built.results),
    }


def in_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.dask_features", "--child", *args],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(projects: int, workdir: Path, args) -> dict:
    data_dir = workdir / f"world_{projects}"
    t0 = time.perf_counter()
    generate_apart(data_dir, n_projects=projects, seed=1, fmt="parquet", part_projects=args.part_projects)
    generated = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in data_dir.rglob("*.parquet") if p.name != "oracle.parquet")
    row = {"projects": projects, "seconds_generate": round(generated, 1), "parquet_mib": round(size / MIB, 1)}
    limit = args.memory_limit
    row["dask"] = in_child("dask", str(data_dir), str(args.workers), str(args.partitions or 0), limit)
    if projects <= args.pandas_max:
        row["pandas"] = in_child("pandas", str(data_dir))
        same = {
            n: d["digest"] == row["pandas"]["datasets"].get(n, {}).get("digest")
            for n, d in row["dask"]["datasets"].items()
        }
        row["same_datasets"] = all(same.values()) and len(same) == len(row["pandas"]["datasets"])
    return row


def write_report(rows: list[dict], args) -> None:
    report = {
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "out", "tmp")},
        "sizes": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=None, help="default: the engine's")
    parser.add_argument("--memory-limit", default="auto", help="per worker, as LocalCluster takes it (auto: RAM / n)")
    parser.add_argument("--part-projects", type=int, default=None, help="default: world.write.PART_PROJECTS")
    parser.add_argument("--pandas-max", type=int, default=30_000, help="largest world the pandas engine runs on")
    parser.add_argument("--out", default=str(RESULTS), help="the JSON report to write")
    parser.add_argument("--tmp", default=None, help="folder for the generated worlds (default: the system's)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "pandas":
            result = child_pandas(Path(rest[0]))
        else:
            result = child_dask(Path(rest[0]), int(rest[1]), int(rest[2]) or None, rest[3])
        print(json.dumps(result))
        return
    from world.write import PART_PROJECTS

    args.part_projects = args.part_projects or PART_PROJECTS
    rows = []
    with tempfile.TemporaryDirectory(prefix="eqsms-dask-bench-", dir=args.tmp) as tmp:
        for projects in args.sizes:
            rows.append(run_size(projects, Path(tmp), args))
            write_report(rows, args)  # after every size: the largest may take an hour
            r = rows[-1]
            d, p = r["dask"], r.get("pandas")
            print(
                f"{projects:>7,} projects {d['events']:>11,} events | dask {d['seconds_total']:>7.1f} s "
                f"{d['events_per_second']:>9,}/s workers {d['peak_rss_worker_mib']} MiB driver "
                f"{d['peak_rss_driver_mib']} MiB | "
                + (
                    f"pandas {p['seconds_total']:>7.1f} s {p['events_per_second']:>9,}/s {p['peak_rss_mib']} MiB "
                    f"| same {r['same_datasets']}"
                    if p
                    else "pandas not run"
                ),
                flush=True,
            )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
