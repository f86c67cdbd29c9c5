"""Benchmark: the prediction log's store (``eqsms.predlog``), in process, on an SQLite file in a temporary folder.

Records 100,000 distinct predictions as 10,000 answers of 10 (a project's milestones and models), each with five
drivers (feature, value, contribution, a text) and its feature row's hash, through the default log (batches of
1,000, every second), and measures:

- the request path: ``record()`` per call (p50, p99, max, in µs; and per prediction), and what a caller pays to make
  the records: a ``PredictionRecord`` and a ``features_hash`` of a 74-feature row;
- the writer: rows written per second inside its transactions (``stats()["write_seconds"]``), from the first
  ``record()`` to the last row written (wall), and the Python work a prediction costs it before the database
  (``rows_of_batch``: key, drivers JSON, times), which holds the GIL the service's threads share;
- the file: bytes per 1,000 predictions (each with its ``served`` row), after close;
- memory a queued prediction holds (record, drivers), which bounds ``prediction_log_max_queue``.

Prints the figures and writes benchmarks/results/predlog.json.

    .venv/bin/python -m benchmarks.predlog [--answers 10000] [--per-answer 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from eqsms.predlog import PredictionLog, PredictionRecord, Served, features_hash, features_hashes, rows_of_batch

RESULTS = Path(__file__).parent / "results" / "predlog.json"
DRIVERS = 5
FEATURES = 74  # the milestone models' feature row


def answer(a: int, per_answer: int) -> list[PredictionRecord]:
    """One project's answer: ``per_answer`` predictions, distinct from every other answer's."""
    models = ("defect_risk", "delay")
    return [
        PredictionRecord(
            model=models[i % 2],
            model_version="12",
            project_id=f"P{a:06d}",
            milestone_id=f"M{a:06d}{i:02d}",
            client_id=f"C{a % 997:05d}",
            as_of="2024-02-07",
            data_fingerprint="3f9c2a71d0b84e65",
            data_latest_fact="2024-02-06T21:24:00",
            probability=0.21 + i / 100,
            slip_days=38.2 if i % 2 else None,
            slip_low=12.5 if i % 2 else None,
            slip_high=71.0 if i % 2 else None,
            level="medium",
            drivers=[
                {
                    "feature": f"feature_{d}",
                    "value": float(d),
                    "contribution": 0.41 / (d + 1),
                    "text": f"{d} failed inspections in the last 30 days (quality) pushed first-pass failure risk up",
                }
                for d in range(DRIVERS)
            ],
            features_hash=f"{a:016x}{i:016x}",
        )
        for i in range(per_answer)
    ]


def caller_costs(rounds: int = 5_000) -> dict[str, float]:
    """What the service pays per prediction before ``record()``: the record, the feature row's hash (of a dict, or
    of each row of a frame of 10 rows, a project's milestones, or of 1,000)."""
    row = {f"feature_{i}": (i * 0.37 if i % 5 else np.nan) for i in range(FEATURES - 1)} | {"milestone_kind": "mep"}
    started = time.perf_counter()
    for _ in range(rounds):
        features_hash(row)
    hashed = time.perf_counter() - started
    costs = {"features_hash_dict_us": hashed / rounds * 1e6}
    for rows in (10, 1000):
        frame = pd.DataFrame([row] * rows)
        frame["milestone_kind"] = frame["milestone_kind"].astype("category")
        arrays = {name: frame[name].to_numpy() for name in frame.columns}  # as the engine scores them
        for form, given in (("frame", frame), ("arrays", arrays)):
            repeats = max(1, rounds // rows)
            started = time.perf_counter()
            for _ in range(repeats):
                features_hashes(given)
            costs[f"features_hashes_{form}_{rows}_rows_us_per_row"] = (
                (time.perf_counter() - started) / repeats / rows * 1e6
            )
    started = time.perf_counter()
    for a in range(rounds // 10):
        answer(a, 10)
    costs["record_with_5_driver_dicts_us"] = (time.perf_counter() - started) / rounds * 1e6
    return costs


def file_bytes(answers: list[list[PredictionRecord]]) -> float:
    """Bytes per 1,000 predictions (each with a served row) of a log of ``answers``, after close."""
    with tempfile.TemporaryDirectory(prefix="eqsms-predlog-") as folder:
        log = PredictionLog(f"sqlite:///{Path(folder) / 'predictions.db'}")
        for a, records in enumerate(answers):
            log.record(records, Served("risk", f"req-{a}"))
        log.close()
        size = sum(p.stat().st_size for p in Path(folder).glob("predictions.db*"))
    return size / (sum(len(records) for records in answers) / 1000)


def writer_python_us(answers: list[list[PredictionRecord]]) -> float:
    """The writer's Python work a prediction (key, drivers JSON, times), apart from the database."""
    items = [(records, Served("risk", str(a)), time.time()) for a, records in enumerate(answers)]
    n = sum(len(records) for records in answers)
    started = time.perf_counter()
    for i in range(0, len(items), 100):
        rows_of_batch(items[i : i + 100])
    return (time.perf_counter() - started) / n * 1e6


def queued_bytes(per_answer: int, answers: int = 1000) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [answer(a, per_answer) for a in range(answers)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / (answers * per_answer) if kept else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--per-answer", type=int, default=10)
    args = parser.parse_args()
    n = args.answers * args.per_answer
    answers = [answer(a, args.per_answer) for a in range(args.answers)]

    with tempfile.TemporaryDirectory(prefix="eqsms-predlog-") as folder:
        path = Path(folder) / "predictions.db"
        log = PredictionLog(f"sqlite:///{path}")
        took = np.empty(args.answers)
        started = time.perf_counter()
        for a, records in enumerate(answers):
            t = time.perf_counter_ns()
            log.record(records, Served("risk", f"req-{a}"))
            took[a] = time.perf_counter_ns() - t
        recorded = time.perf_counter() - started
        assert log.flush(300), "the writer did not finish"
        wall = time.perf_counter() - started
        stats = log.stats()
        log.close()
        size = sum(p.stat().st_size for p in Path(folder).glob("predictions.db*"))
        assert stats["written"] == n and not stats["failed"] + stats["dropped"], stats

    per_call = took / 1e3
    report = {
        "benchmark": "the prediction log: record() on the request path, the writer, the file (SQLite, WAL)",
        "predictions": n,
        "answers": args.answers,
        "per_answer": args.per_answer,
        "drivers_per_prediction": DRIVERS,
        "record": {
            "per_call_p50_us": float(np.percentile(per_call, 50)),
            "per_call_p99_us": float(np.percentile(per_call, 99)),
            "per_call_max_us": float(per_call.max()),
            "per_prediction_p50_us": float(np.percentile(per_call, 50)) / args.per_answer,
            "all_calls_s": recorded,
        },
        "caller": caller_costs(),
        "writer": {
            "rows_per_s_in_transactions": n / stats["write_seconds"],
            "rows_per_s_end_to_end": n / wall,
            "python_us_per_prediction": writer_python_us(answers[:2000]),
            "write_seconds": stats["write_seconds"],
            "end_to_end_s": wall,
        },
        "file": {
            "bytes": size,
            "bytes_per_1000_predictions": size / (n / 1000),
            "bytes_per_1000_predictions_without_driver_texts": file_bytes(
                [
                    [replace(r, drivers=[d | {"text": None} for d in r.drivers]) for r in records]
                    for records in answers[:2000]
                ]
            ),
        },
        "memory": {"bytes_per_queued_prediction": queued_bytes(args.per_answer)},
    }
    report["memory"]["max_queue_200000_mb"] = report["memory"]["bytes_per_queued_prediction"] * 200_000 / 2**20
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    r, c, w = report["record"], report["caller"], report["writer"]
    print(f"record(): {r['per_call_p50_us']:.1f} µs p50, {r['per_call_p99_us']:.1f} µs p99 a call of {args.per_answer}")
    print(
        f"caller: a record {c['record_with_5_driver_dicts_us']:.1f} µs; a row's hash "
        f"{c['features_hash_dict_us']:.1f} µs (dict), "
        f"{c['features_hashes_arrays_10_rows_us_per_row']:.1f} µs (10 rows' arrays), "
        f"{c['features_hashes_arrays_1000_rows_us_per_row']:.1f} µs (1,000 rows' arrays), "
        f"{c['features_hashes_frame_10_rows_us_per_row']:.1f} µs (a frame of 10)"
    )
    print(
        f"writer: {w['rows_per_s_in_transactions']:,.0f} rows/s in transactions, {w['rows_per_s_end_to_end']:,.0f} "
        f"end to end; {w['python_us_per_prediction']:.1f} µs of Python a prediction"
    )
    f = report["file"]
    print(
        f"file: {f['bytes_per_1000_predictions'] / 1024:,.0f} KiB per 1,000 predictions "
        f"({f['bytes_per_1000_predictions_without_driver_texts'] / 1024:,.0f} KiB without the drivers' texts)"
    )
    print(
        f"memory: {report['memory']['bytes_per_queued_prediction']:,.0f} bytes a queued prediction "
        f"({report['memory']['max_queue_200000_mb']:,.0f} MiB at the default bound)"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
