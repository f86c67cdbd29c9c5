"""Benchmark: a real `eqsms serve` under sustained mixed load, with and without a reload in the middle.

Generates a world (default 1,000 projects), trains the three models into a fresh store (every model promoted), starts
the real server (two workers) on loopback and sends, from 32 keep-alive clients, at least 20,000 requests (bounded in
count and in time): `/v1/risk` (as of the board's day: precomputed), `/v1/risk/batch` of 50 projects, `/v1/predict`
(a feature row the service gave) and `/v1/whatif`, in the proportions 6 : 1 : 2 : 1. Measures errors (anything but a
200; target 0), p50 and p99 latency per endpoint, requests a second, and the server's resident memory (main process
and workers) at start, after warm-up (the first 10% of requests) and at the end (target: growth after warm-up under
10%). The second run promotes new versions of the three champions and asks for a reload half-way through.

Prints the figures and writes benchmarks/results/load.json. Only 127.0.0.1 is contacted.

    .venv/bin/python -m benchmarks.load [--projects 1000] [--requests 20000] [--concurrency 32] [--seconds 600]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.portfolio import rss_mb
from benchmarks.serving import prepare
from serving.local import HOST, call, free_port, start, stop, wait_ready

RESULTS = Path(__file__).parent / "results" / "load.json"
TARGETS = {"errors": 0, "memory_growth_after_warmup": 0.10}
MIX = ("risk",) * 6 + ("batch",) + ("predict",) * 2 + ("whatif",)


def bodies(base: str, open_projects: list[str], day: str) -> dict[str, list[bytes]]:
    """Requests of each kind, built from what the service says (open milestones and their feature rows)."""
    status, portfolio = call(f"{base}/v1/portfolio")
    lines = [p for p in portfolio["projects"] if p["next"]][:60]
    rows, whatifs = [], []
    for line in lines:
        milestone = line["next"]["milestone_id"]
        ask = {"project_id": line["project_id"], "milestone_id": milestone, "as_of": day}
        status, features = call(f"{base}/v1/features", ask)
        if status == 200:
            rows.append({k: v for k, v in features["features"].items() if v is not None})
        whatifs.append({**ask, "changes": {"defects_open": 0, "complaints_open": 0}})
    rng = random.Random(1)
    out = {
        "risk": [{"project_id": p, "as_of": day} for p in open_projects],
        "batch": [{"project_ids": rng.sample(open_projects, 50), "as_of": day, "top_k": 1} for _ in range(20)],
        "predict": [{"model": "defect_risk", "rows": [row]} for row in rows],
        "whatif": whatifs,
    }
    return {kind: [json.dumps(b).encode() for b in items] for kind, items in out.items()}


PATHS = {"risk": "/v1/risk", "batch": "/v1/risk/batch", "predict": "/v1/predict", "whatif": "/v1/whatif"}


class Run:
    """``total`` requests from ``concurrency`` clients, each taking the next request of the mix; latency kept per
    kind; hooks at given request counts (warm-up memory, a reload)."""

    def __init__(self, port: int, requests: dict[str, list[bytes]], total: int, concurrency: int, seconds: float):
        self.port, self.requests, self.total, self.concurrency = port, requests, total, concurrency
        self.deadline = time.monotonic() + seconds
        self.next = 0
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.hooks: dict[int, callable] = {}

    def take(self) -> int | None:
        with self.lock:
            if self.next >= self.total or time.monotonic() > self.deadline:
                return None
            self.next += 1
            n = self.next
        if n in self.hooks:
            threading.Thread(target=self.hooks[n], daemon=True).start()
        return n

    def client(self, k: int) -> None:
        rng = random.Random(k)
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        while (n := self.take()) is not None:
            kind = MIX[n % len(MIX)]
            body = self.requests[kind][rng.randrange(len(self.requests[kind]))]
            started = time.perf_counter()
            try:
                conn.request("POST", PATHS[kind], body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
            self.times[kind].append(time.perf_counter() - started)
            if status != 200:
                self.errors[f"{kind} {status}"] += 1

    def go(self) -> float:
        started = time.perf_counter()
        threads = [threading.Thread(target=self.client, args=(k,)) for k in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started


def one_run(world: Path, store: Path, work: Path, args, with_reload: bool) -> dict:
    port = free_port()
    env = {**os.environ, "EQSMS_DATA_DIR": str(world), "EQSMS_WORK_DIR": str(store), "EQSMS_SERVE_WORKERS": "2"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    base = f"http://{HOST}:{port}"
    server = start(port, env, work / f"serve-{'reload' if with_reload else 'plain'}.log")
    try:
        wait_ready(base, server, timeout=300)
        status, portfolio = call(f"{base}/v1/portfolio")
        day = portfolio["as_of"][:10]
        open_projects = [p["project_id"] for p in portfolio["projects"]]
        requests = bodies(base, open_projects, day)
        memory = {"start": rss_mb(server.pid)}
        run = Run(port, requests, args.requests, args.concurrency, args.seconds)
        run.hooks[args.requests // 10] = lambda: memory.__setitem__("after_warmup", rss_mb(server.pid))
        reload_outcome: dict = {}
        if with_reload:

            def reload() -> None:
                promoted = promote_all(store)
                reload_outcome.update(call(f"{base}/v1/admin/reload", {}, timeout=600)[1], promoted=promoted)

            run.hooks[args.requests // 2] = reload
        seconds = run.go()
        time.sleep(1)
        memory["end"] = rss_mb(server.pid)
        versions = call(f"{base}/v1/models")[1]
    finally:
        stop(server)
    done = sum(len(t) for t in run.times.values())
    per = {
        kind: {
            "requests": len(t),
            "p50_ms": float(np.percentile(np.array(t) * 1000, 50)),
            "p99_ms": float(np.percentile(np.array(t) * 1000, 99)),
        }
        for kind, t in run.times.items()
    }
    warm = memory.get("after_warmup", memory["start"])
    return {
        "reload": with_reload,
        "requests": done,
        "seconds": seconds,
        "requests_per_second": done / seconds,
        "errors": dict(run.errors),
        "error_count": sum(run.errors.values()),
        "per_endpoint": per,
        "memory_mb": memory,
        "memory_growth_after_warmup": (memory["end"] - warm) / warm,
        "reload_outcome": reload_outcome,
        "model_versions_at_end": [m["version"] for m in versions["models"]],
    }


def promote_all(store: Path) -> dict[str, str]:
    """Each champion registered again as a new version and moved to @champion (a real alias move). MLflow's URIs,
    which this sets for the process (and exports to its environment), are put back as they were."""
    import mlflow

    from eqsms.settings import Settings
    from training.tracking import configure

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        client = configure(Settings(work_dir=store, mlflow_tracking_uri=f"sqlite:///{store / 'mlflow.db'}"))
        out = {}
        for name in ("defect_risk", "delay", "churn"):
            old = client.get_model_version_by_alias(name, "champion")
            new = client.create_model_version(name, old.source, run_id=old.run_id)
            client.set_registered_model_alias(name, "champion", new.version)
            out[name] = str(new.version)
        return out
    finally:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)
        for name, value in saved.items():  # set_*_uri export themselves: the environment as it was
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=600.0, help="each run stops after this long at the latest")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="eqsms-load-bench-") as tmp:
        work = Path(tmp)
        world, _, _, _ = prepare(args.projects, work)
        store = work / "store"
        runs = [one_run(world, store, work, args, with_reload) for with_reload in (False, True)]

    report = {"benchmark": "sustained mixed load on `eqsms serve`, with and without a reload", "targets": TARGETS}
    report["runs"] = runs
    report["met"] = {
        ("with reload" if r["reload"] else "plain"): {
            "errors": r["error_count"] == TARGETS["errors"],
            "memory_growth_after_warmup": r["memory_growth_after_warmup"] < TARGETS["memory_growth_after_warmup"],
        }
        for r in runs
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    for r in runs:
        name = "with a reload half-way" if r["reload"] else "no reload"
        print(
            f"{name}: {r['requests']:,} requests at concurrency {args.concurrency} in {r['seconds']:.0f} s "
            f"({r['requests_per_second']:.0f}/s), errors {r['error_count']} {r['errors'] or ''}"
        )
        for kind, p in r["per_endpoint"].items():
            print(f"  {kind:<8} {p['requests']:>6,} requests  p50 {p['p50_ms']:7.1f} ms  p99 {p['p99_ms']:7.1f} ms")
        m = r["memory_mb"]
        print(
            f"  memory {m['start']:,.0f} MB at start, {m.get('after_warmup', float('nan')):,.0f} after warm-up, "
            f"{m['end']:,.0f} at the end: {r['memory_growth_after_warmup']:+.1%} after warm-up"
        )
        if r["reload"]:
            o = r["reload_outcome"]
            print(f"  reload: ok {o.get('ok')} in {o.get('seconds')} s, {', '.join(o.get('changed') or [])}")
    for name, met in report["met"].items():
        print(f"  {name}: " + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in met.items()))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
