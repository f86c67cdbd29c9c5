"""Benchmark: the risk board's portfolio at 10,000 open projects and more, in a real browser.

Generates a large world (default 28,000 projects, about 10,000 of them open at its end) and trains the three models
on a small one (1,000 projects: quality is not measured here, every model is promoted), then measures:

- in process: the snapshot's build (every open project scored with drivers and contributions, the portfolio lines),
  and the portfolio's JSON body serialised;
- the real server (`eqsms serve` on the large world): time to ready (the snapshot is built at start, per worker), the
  `GET /v1/portfolio` body size and latency (precomputed: serialised once), the server's resident memory;
- Debian's Chromium driven by Playwright: from navigation to the board's mark `eqsms:portfolio-drawn` (the page,
  its scripts, the portfolio fetched, parsed, filtered, sorted and its first rows drawn), over several loads, and
  a filter typed into the search box until the table is drawn again.

Prints the figures and writes benchmarks/results/portfolio.json. Only 127.0.0.1 is contacted.

    .venv/bin/python -m benchmarks.portfolio [--projects 28000] [--loads 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from serving.local import free_port, start, stop, wait_ready

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "portfolio.json"
TARGETS = {"open_projects": 10_000, "page_open_s": 1.0}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def prepare(projects: int, work: Path) -> tuple[Path, Path]:
    """The large world, and a store whose three champions were trained on a small world."""
    from eqsms.settings import Settings
    from features.validate import load
    from training import tracking
    from training.pipeline import datasets_from_data, run_target
    from world import generate_world

    big, small = work / "world", work / "train_world"
    started = time.perf_counter()
    generate_world(n_projects=projects, seed=23, out_dir=big, fmt="parquet", dirty=0.0)
    print(f"generated {projects:,} projects in {time.perf_counter() - started:.0f} s")
    generate_world(n_projects=1000, seed=21, out_dir=small, fmt="parquet", dirty=0.0)
    store = work / "store"
    settings = Settings(work_dir=store, data_dir=small, baseline_tolerance=1.0)
    client = tracking.configure(settings)
    for ds in datasets_from_data(load(small), settings, ["defect_risk", "delay", "churn"]).values():
        run_target(ds, settings, None, "benchmark", True, client)
    return big, store


def in_process(world: Path, store: Path) -> dict:
    from eqsms.settings import Settings
    from serving.runtime import Engine
    from serving.snapshot import Snapshot

    settings = Settings(work_dir=store, data_dir=world)
    started = time.perf_counter()
    engine = Engine.from_settings(settings)
    load_s = time.perf_counter() - started
    snapshot = Snapshot.build(engine)
    started = time.perf_counter()
    body = json.dumps(snapshot.lines).encode()
    return {
        "engine_load_s": load_s,
        "snapshot_build_s": snapshot.seconds,
        "open_projects": len(snapshot.projects),
        "open_milestones": int(len(snapshot.block.rows)) if snapshot.block is not None else 0,
        "portfolio_lines_json_s": time.perf_counter() - started,
        "portfolio_lines_bytes": len(body),
        "as_of": snapshot.as_of.isoformat(),
    }


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (BentoML's workers), in MB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pids += [int(c) for c in children]
    return total / 2**20


def portfolio_requests(base: str, count: int = 10) -> dict:
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/v1/portfolio", timeout=120) as response:
            size = len(response.read())
        times.append(time.perf_counter() - started)
    return {"requests": count, "p50_s": float(np.median(times)), "max_s": float(max(times)), "bytes": size}


def browser(base: str, loads: int) -> dict:
    from playwright.sync_api import sync_playwright

    opened, filtered = [], []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1440, "height": 900})
        for _ in range(loads):
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(f"{base}/ui/")
            page.wait_for_function("performance.getEntriesByName('eqsms:portfolio-drawn').length > 0", timeout=60000)
            opened.append(time.perf_counter() - started)
            drawn = page.evaluate("performance.getEntriesByName('eqsms:portfolio-drawn')[0].startTime") / 1000
            opened[-1] = min(opened[-1], drawn) if drawn > 0 else opened[-1]
        search = page.locator("input[type=search], input.search, #search").first
        for text in ("P001", "P0123", ""):
            page.evaluate("performance.clearMarks('eqsms:portfolio-drawn')")
            started = time.perf_counter()
            search.fill(text)
            page.wait_for_function("performance.getEntriesByName('eqsms:portfolio-drawn').length > 0", timeout=60000)
            filtered.append(time.perf_counter() - started)
        rows = page.locator("tr.project-row").count()
        chromium.close()
    return {
        "loads": loads,
        "open_p50_s": float(np.median(opened)),
        "open_max_s": float(max(opened)),
        "filter_p50_s": float(np.median(filtered)),
        "rows_drawn": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=28_000)
    parser.add_argument("--loads", type=int, default=5, help="page loads timed in the browser")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="eqsms-portfolio-bench-") as tmp:
        work = Path(tmp)
        world, store = prepare(args.projects, work)
        process = in_process(world, store)
        port = free_port()
        env = {**os.environ, "EQSMS_DATA_DIR": str(world), "EQSMS_WORK_DIR": str(store)}
        env.pop("MLFLOW_TRACKING_URI", None)
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        server = start(port, env, work / "server.log")
        try:
            wait_ready(base, server, timeout=900)
            ready_s = time.perf_counter() - started
            rss_ready = rss_mb(server.pid)
            requests = portfolio_requests(base)
            page = browser(base, args.loads)
            rss_end = rss_mb(server.pid)
        finally:
            stop(server)

    report = {
        "benchmark": "the risk board's portfolio: snapshot build, GET /v1/portfolio, the page in Chromium",
        "projects": args.projects,
        "in_process": process,
        "server": {"ready_s": ready_s, "rss_ready_mb": rss_ready, "rss_end_mb": rss_end, "portfolio": requests},
        "browser": page,
        "targets": TARGETS,
    }
    report["met"] = {
        "open_projects": process["open_projects"] >= TARGETS["open_projects"],
        "page_open_s": page["open_p50_s"] < TARGETS["page_open_s"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    opened, milestones = process["open_projects"], process["open_milestones"]
    print(f"{args.projects:,} projects, {opened:,} open ({milestones:,} open milestones)")
    build, load = process["snapshot_build_s"], process["engine_load_s"]
    print(f"  snapshot built in process: {build:.1f} s (engine load {load:.1f} s)")
    print(
        f"  server ready after {ready_s:.1f} s; resident memory {rss_ready:,.0f} MB at ready, {rss_end:,.0f} MB at end"
    )
    print(
        f"  GET /v1/portfolio: {requests['bytes'] / 2**20:.1f} MB, p50 {requests['p50_s'] * 1000:.0f} ms "
        f"(max {requests['max_s'] * 1000:.0f} ms)"
    )
    print(
        f"  board in Chromium: open to first rows drawn p50 {page['open_p50_s']:.2f} s "
        f"(max {page['open_max_s']:.2f} s, {page['loads']} loads); "
        f"a search redrawn in {page['filter_p50_s'] * 1000:.0f} ms"
    )
    for key, ok in report["met"].items():
        print(f"  {key:<14} {'met' if ok else 'NOT met'} (target {TARGETS[key]})")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
