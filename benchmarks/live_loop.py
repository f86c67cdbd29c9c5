"""Benchmark: the whole loop with the real parts, a year of weeks (issue 13 §5).

Each week, on a generated world and on the same world with a shift, as a firm would run it:

1. **a new export**: the world as it stood that Monday (``monitoring.loop.export_at``: only the facts recorded by
   then) is written over the service's data folder, and the running service is told to reload
   (``POST /v1/admin/reload``, what ``eqsms reload --url`` does);
2. **serve**: a dashboard asks the real server (``eqsms serve``, two workers, the prediction log on: SQLite in the
   work folder) for every open project that Monday (``POST /v1/risk/batch``), and planners open projects one by one
   (``POST /v1/risk``; precomputed when that Monday is the board's day): the service's latency with the log on;
3. **monitor**: ``eqsms monitor EXPORT`` judges the log by the outcomes the export holds, watches drift and
   estimates the AUC before the outcomes (its verdict file);
4. **retrain**: the weekly cron's ``eqsms retrain EXPORT --when flagged --min-days 28 --url`` (retrain when the
   monitor flagged, at most every 28 days of data), and every 13 weeks the quarterly one, ``eqsms retrain EXPORT
   --min-days 28 --url`` (on schedule: labels have accrued): through the real gate, and the service reloads when a
   champion moved.

The champions at the start are trained once on the export at the cut (13 weeks before the shift) and copied into
each world's store, so both worlds start equal. Afterwards the log is read: the defect-risk predictions the batch
logged each week are judged by the outcomes the full world holds (``realised``), estimated from their
probabilities alone (CBPE, ``estimated``), and scored under the world's true probabilities (``oracle``: the luck of
the draws aside); the old champion, never retrained, is scored on the same rows in process
(``monitoring.loop.loop_world``), which is what retraining is judged against. Prints the weekly table of each world
and the summary (weeks to the first flag, flags in the control, mean |estimated - realised| AUC, the AUC of each
version served and after the shift against the old champion on the same rows and the oracle, prediction-log rows
written, latency), and writes benchmarks/results/live_loop.json. Only 127.0.0.1 is contacted.

    .venv/bin/python -m benchmarks.live_loop [--projects 1500] [--seed 21] [--weeks 52] [--min-days 28]
        [--worlds control,shifted]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from serving.local import HOST, call, free_port, start, stop, wait_ready

RESULTS = Path(__file__).parent / "results" / "live_loop.json"
SHIFT = ("workmanship", 1.0)
QUARTER = 13  # weeks between the scheduled retrains
SINGLE_REQUESTS = 40  # planners' one-project requests a week (the latency sample of the precomputed path)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def eqsms(args: list[str], env: dict[str, str], timeout: float = 1800) -> tuple[int, str, float]:
    """An ``eqsms`` command as cron would run it: its exit status, its last line and how long it took."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "eqsms.cli", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    wanted = [line for line in lines if line.startswith(f"{args[0]} ")] or lines or [""]
    return done.returncode, wanted[-1].strip(), time.perf_counter() - started


def new_export(tables: dict, at: pd.Timestamp, folder: Path) -> None:
    """The export as it stood at ``at`` written beside ``folder`` and swapped in (a reload never sees half of it)."""
    from monitoring.loop import export_at, write_export

    fresh = folder.with_name(folder.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    write_export(export_at(tables, at), fresh)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def serve_week(base: str, as_of: pd.Timestamp, open_ids: list[str]) -> dict:
    """The week's requests: the dashboard's batch of every open project at ``as_of``, then planners' single
    projects as of the same day (the board's day when the export's newest fact is the day before: precomputed); the
    latencies (ms) and any failure."""
    failures = []
    started = time.perf_counter()
    status, answer = call(f"{base}/v1/risk/batch", {"as_of": str(as_of.date()), "top_k": 3}, timeout=600)
    batch_ms = (time.perf_counter() - started) * 1000
    if status != 200:
        failures.append(f"batch {status}: {answer}")
    singles = []
    for project in open_ids[:SINGLE_REQUESTS]:
        started = time.perf_counter()
        status, answer = call(f"{base}/v1/risk", {"project_id": project, "as_of": str(as_of.date()), "top_k": 3})
        singles.append((time.perf_counter() - started) * 1000)
        if status != 200:
            failures.append(f"risk {project} {status}: {answer}")
    return {"batch_ms": batch_ms, "single_ms": singles, "failures": failures}


def live_world(name: str, folder: Path, store: Path, work: Path, dates: list, args) -> dict:
    """The loop on one world with the real server, monitor and retrain; a row per week and the log's counts."""
    from features.validate import load

    tables = load(folder).tables
    run = work / f"run_{name}"
    shutil.copytree(store, run)
    export = run / "export"
    new_export(tables, dates[0], export)
    env = {**os.environ, "EQSMS_DATA_DIR": str(export), "EQSMS_WORK_DIR": str(run), "EQSMS_SERVE_WORKERS": "2"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{run / 'mlflow.db'}"
    env["EQSMS_RELOAD_POLL_SECONDS"] = "0"  # reloads only when told: the loop's timing is its own
    env.pop("EQSMS_PREDICTION_LOG_URL", None)  # the default: SQLite in the work folder
    port = free_port()
    base = f"http://{HOST}:{port}"
    server = start(port, env, work / f"serve-{name}.log")
    weeks = []
    try:
        wait_ready(base, server, timeout=180)
        for k, as_of in enumerate(dates):
            week = {"week": k, "as_of": str(as_of.date())}
            if k:
                new_export(tables, as_of, export)
                started = time.perf_counter()
                status, answer = call(f"{base}/v1/admin/reload", {}, timeout=600)
                week["reload_s"] = time.perf_counter() - started
                week["reload_ok"] = status == 200 and bool(answer.get("ok"))
            projects = tables["projects"]
            open_ids = projects.loc[
                (projects["planned_start"] <= as_of) & ~(projects["actual_end"] < as_of), "project_id"
            ].tolist()
            week |= serve_week(base, as_of, open_ids)
            week["monitor_status"], week["monitor_line"], week["monitor_s"] = eqsms(["monitor", str(export)], env)
            verdict = json.loads((run / "monitor" / "verdict.json").read_text())
            watched = json.loads((run / "monitor" / "summary.json").read_text()).get("watched") or {}
            week["flagged"], week["reasons"] = verdict["flagged"], verdict["reasons"]
            week["watched"] = watched
            asked = ["retrain", str(export), "--when", "flagged", "--min-days", str(args.min_days), "--url", base]
            if k and k % QUARTER == 0:
                asked = ["retrain", str(export), "--min-days", str(args.min_days), "--url", base]
            week["retrain_kind"] = "scheduled" if "--when" not in asked else "if flagged"
            week["retrain_status"], week["retrain_line"], week["retrain_s"] = eqsms(asked, env)
            status, models = call(f"{base}/v1/models")
            week["versions"] = {m["name"]: m["version"] for m in models.get("models", [])} if status == 200 else {}
            weeks.append(week)
            print(
                f"  {name} wk {k:>2} {as_of.date()} batch {week['batch_ms']:>6.0f} ms, risk p50 "
                f"{percentile(week['single_ms'], 50):>5.1f} ms; monitor {week['monitor_s']:>4.0f} s "
                f"{'FLAG' if week['flagged'] else '-':<4}; retrain ({week['retrain_kind']}) "
                f"{week['retrain_status']}: {week['retrain_line'][:110]}",
                flush=True,
            )
    finally:
        stop(server)
    from eqsms.predlog import log_url
    from eqsms.settings import Settings

    return {"weeks": weeks, "log": log_counts(log_url(Settings(work_dir=run))), "run": run}


def log_counts(url: str) -> dict:
    """What the prediction log at ``url`` holds after the year: distinct predictions, answers served, and the
    predictions those answers carried (an answer's set once however often it is served)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    engine = sa.create_engine(url)
    with engine.connect() as db:
        counts = {t: db.execute(sa.text(f"select count(*) from {t}")).scalar() for t in ("predictions", "served")}
        counts["answer_predictions"] = db.execute(sa.text("select count(*) from answer_predictions")).scalar()
    engine.dispose()
    database = make_url(url).database
    return {**counts, "size_mb": Path(database).stat().st_size / 1e6 if database else None}


def logged_rows(run: Path, settings) -> pd.DataFrame:
    """The defect-risk predictions the batch logged each week (``as_of`` a Monday of the loop), with the version."""
    from eqsms.predlog import from_settings

    log = from_settings(settings.model_copy(update={"work_dir": run}))
    try:
        rows = log.predictions(model="defect_risk")
    finally:
        log.close()
    rows["as_of"] = pd.to_datetime(rows["as_of"])
    return rows


def judged_weeks(
    rows: pd.DataFrame, dates: list, known: pd.DataFrame, truth: pd.Series, old_rows: pd.DataFrame
) -> pd.DataFrame:
    """Per week, on the batch's rows in the model's domain (those the in-process loop scores: ``old_rows``, the old
    champion never retrained, on the same milestones and as_of): the served champion's version, the AUC estimated
    from its probabilities (CBPE), realised by the outcomes known after the as_of, and expected under the oracle;
    the old champion's realised and expected AUC on the same judged rows; and, while the old champion is the one
    served, how far the served probabilities are from the in-process ones (0: the service and the loop agree)."""
    from monitoring.estimate import estimated_auc
    from monitoring.loop import LABEL, MIN_POSITIVES, expected_auc, realised_auc

    lines = []
    outcome = known[["milestone_id", LABEL, "known_at"]]
    old = old_rows.rename(columns={"probability": "old_probability"})[["milestone_id", "as_of", "old_probability"]]
    for as_of in dates:
        week = rows[rows["as_of"] == as_of].merge(old, on=["milestone_id", "as_of"], how="inner")
        if week.empty:
            lines.append({"as_of": as_of, "rows": 0})
            continue
        judged = week.merge(outcome, on="milestone_id", how="inner")
        judged = judged[judged["known_at"] > judged["as_of"]]
        true = judged["milestone_id"].map(truth)
        mine = realised_auc(judged, MIN_POSITIVES)
        theirs = realised_auc(judged.assign(probability=judged["old_probability"]), MIN_POSITIVES)
        lines.append(
            {
                "as_of": as_of,
                "version": ",".join(sorted(week["model_version"].astype(str).unique())),
                "rows": len(week),
                "served_rows_of_the_week": int((rows["as_of"] == as_of).sum()),
                "max_abs_probability_vs_old": float((week["probability"] - week["old_probability"]).abs().max()),
                "estimated_auc": estimated_auc(week["probability"].to_numpy(dtype="float64")),
                "realised_auc": mine["realised_auc"],
                "judged": mine["judged"],
                "positives": mine["positives"],
                "oracle_auc": expected_auc(judged["probability"], true) if len(judged) else float("nan"),
                "old_realised_auc": theirs["realised_auc"],
                "old_oracle_auc": expected_auc(judged["old_probability"], true) if len(judged) else float("nan"),
            }
        )
    return pd.DataFrame(lines)


def pooled(frame: pd.DataFrame, columns: tuple[str, str]) -> dict:
    """The mean of two weekly columns over the weeks where both are figures (the same weeks for both)."""
    both = frame[list(columns)].dropna()
    return {c: (float(both[c].mean()) if len(both) else None) for c in columns} | {"weeks": len(both)}


def segments(table: pd.DataFrame, shift_from: pd.Timestamp | None) -> list[dict]:
    """The weeks split where the served defect-risk version changed, and the weeks after the shift as a whole: in
    each, the served champion against the old one (never retrained) on the same judged rows, mean weekly realised
    and oracle AUC over the weeks where both have a figure."""
    table = table[table["rows"] > 0].reset_index(drop=True)
    starts = [0] + [i for i in range(1, len(table)) if table.at[i, "version"] != table.at[i - 1, "version"]]
    ends = [*starts[1:], len(table)]
    parts = [(table.iloc[a:b], f"v{table.at[a, 'version']}") for a, b in zip(starts, ends, strict=True)]
    if shift_from is not None:
        parts.append((table[table["as_of"] >= shift_from], "after the shift (any version)"))
    out = []
    for part, label in parts:
        out.append(
            {
                "served": label,
                "from": str(pd.Timestamp(part["as_of"].min()).date()),
                "to": str(pd.Timestamp(part["as_of"].max()).date()),
                "realised": pooled(part, ("realised_auc", "old_realised_auc")),
                "oracle": pooled(part, ("oracle_auc", "old_oracle_auc")),
            }
        )
    return out


def summarise(name: str, live: dict, table: pd.DataFrame, shift_from: pd.Timestamp | None) -> dict:
    weeks = live["weeks"]
    flags = [w for w in weeks if w["flagged"]]
    first_flag = next((pd.Timestamp(w["as_of"]) for w in weeks if w["flagged"]), None)
    promoted = [
        (w["as_of"], w["versions"].get("defect_risk"))
        for prev, w in zip(weeks, weeks[1:], strict=False)
        if w["versions"].get("defect_risk") != prev["versions"].get("defect_risk")
    ]
    retrains = [
        w for w in weeks if w["retrain_line"].startswith("retrain") and "nothing to do" not in w["retrain_line"]
    ]
    gap = (table["estimated_auc"] - table["realised_auc"]).abs()
    out = {
        "weeks": len(weeks),
        "flags": len(flags),
        "flags_before_shift": sum(1 for w in flags if shift_from is not None and pd.Timestamp(w["as_of"]) < shift_from),
        "first_flag": str(first_flag.date()) if first_flag is not None else None,
        "weeks_from_shift_to_first_flag": None
        if first_flag is None or shift_from is None or first_flag < shift_from
        else float((first_flag - shift_from) / pd.Timedelta(days=7)),
        "retrains": [{"as_of": w["as_of"], "kind": w["retrain_kind"], "line": w["retrain_line"]} for w in retrains],
        "defect_risk_versions": promoted,
        "mean_abs_estimated_minus_realised_auc": float(gap.mean()) if gap.notna().any() else None,
        "weeks_judged": int(gap.notna().sum()),
        "failed_requests": sum(len(w["failures"]) for w in weeks),
        "reloads_failed": sum(1 for w in weeks if w.get("reload_ok") is False),
        "log": live["log"],
        "latency_ms": {
            "risk_p50": percentile([x for w in weeks for x in w["single_ms"]], 50),
            "risk_p99": percentile([x for w in weeks for x in w["single_ms"]], 99),
            "batch_p50": percentile([w["batch_ms"] for w in weeks], 50),
            "batch_max": max(w["batch_ms"] for w in weeks),
        },
        "monitor_s_p50": percentile([w["monitor_s"] for w in weeks], 50),
        "reload_s_p50": percentile([w["reload_s"] for w in weeks if "reload_s" in w], 50),
    }
    out["segments"] = segments(table, shift_from)
    return out


def weekly_lines(name: str, live: dict, table: pd.DataFrame) -> list[str]:
    lines = [
        f"\n{name}",
        f"{'as_of':<11}{'v':>3}{'rows':>6}{'flag':>5}{'est':>7}{'real':>7}{'oracle':>7}{'old_real':>9}"
        f"{'old_orc':>8}{'risk_p50':>9}{'batch_ms':>9}  retrain",
    ]
    for w, (_, t) in zip(live["weeks"], table.iterrows(), strict=True):
        lines.append(
            f"{w['as_of']:<11}{w['versions'].get('defect_risk', '?'):>3}{t['rows']:>6}"
            f"{'FLAG' if w['flagged'] else '-':>5}{t.get('estimated_auc', np.nan):>7.3f}"
            f"{t.get('realised_auc', np.nan):>7.3f}{t.get('oracle_auc', np.nan):>7.3f}"
            f"{t.get('old_realised_auc', np.nan):>9.3f}{t.get('old_oracle_auc', np.nan):>8.3f}"
            f"{percentile(w['single_ms'], 50):>9.1f}{w['batch_ms']:>9.0f}  "
            f"{'' if 'nothing to do' in w['retrain_line'] else w['retrain_line'][:90]}"
        )
    return lines


def main() -> None:
    from benchmarks.loop import oracle_truth, records, world_name
    from eqsms.settings import Settings
    from features.datasets import tables_fingerprint
    from features.validate import load
    from monitoring.loop import MODEL, WEEK, export_at, loop_world, schedule, train_champions, write_export
    from monitoring.outcomes import outcomes
    from world import generate_world
    from world.shift import Shift

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--weeks", type=int, default=52, help="weeks of the loop from the cut (13 before the shift)")
    parser.add_argument("--min-days", type=float, default=28, help="eqsms retrain --min-days")
    parser.add_argument(
        "--worlds",
        default="control,shifted",
        help="which worlds, comma-separated (two processes can run one each; each writes live_loop_<world>.json)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    results, tables_out = {}, {}

    with tempfile.TemporaryDirectory(prefix="eqsms-live-loop-") as tmp:
        work = Path(tmp)
        generate_world(args.projects, args.seed, work / "control", fmt="parquet")
        control = load(work / "control").tables
        shift_from, cut = schedule(control)
        shifted = world_name(*SHIFT)
        generate_world(
            args.projects,
            args.seed,
            work / shifted,
            fmt="parquet",
            shift=Shift(SHIFT[0], str(shift_from.date()), SHIFT[1]),
        )
        export = export_at(control, cut)
        if tables_fingerprint(export_at(load(work / shifted).tables, cut)) != tables_fingerprint(export):
            raise RuntimeError("the shifted world's export at the cut differs from the control's")
        write_export(export, work / "cut")
        settings = Settings(work_dir=work / "store", data_dir=work / "cut")
        mark = time.perf_counter()
        versions = train_champions(work / "cut", settings, source="benchmark-live-loop")
        timings["train_s"] = time.perf_counter() - mark
        dates = [cut + k * WEEK for k in range(args.weeks)]

        wanted = [shifted if w == "shifted" else w for w in args.worlds.split(",")]
        for name in [n for n in ("control", shifted) if n in wanted]:
            mark = time.perf_counter()
            print(f"{name}: the loop with the real server, {args.weeks} weeks from {cut.date()}", flush=True)
            live = live_world(name, work / name, work / "store", work, dates, args)
            timings[f"live_{name}_s"] = time.perf_counter() - mark
            mark = time.perf_counter()
            truth = oracle_truth(work / name)
            old = loop_world(work / name, settings, cut, dates, shift_from, truth=truth)  # never retrained
            world = settings.model_copy(update={"data_dir": work / name})
            known = outcomes(load(work / name).tables, world)[MODEL]
            table = judged_weeks(logged_rows(live["run"], settings), dates, known, truth, old["rows"])
            timings[f"judge_{name}_s"] = time.perf_counter() - mark
            results[name] = {"summary": summarise(name, live, table, shift_from), "weeks": live["weeks"]}
            tables_out[name] = table
            print("\n".join(weekly_lines(name, live, table)), flush=True)

    timings["total_s"] = time.perf_counter() - started
    report = {
        "benchmark": __doc__.splitlines()[0],
        "projects": args.projects,
        "seed": args.seed,
        "weeks": args.weeks,
        "shift": {"kind": SHIFT[0], "size_sd": SHIFT[1], "from": str(shift_from.date())},
        "cut": str(cut.date()),
        "champions_at_cut": versions,
        "policy": {
            "weekly": f"eqsms monitor; eqsms retrain --when flagged --min-days {args.min_days:g} --url",
            "quarterly": f"eqsms retrain --min-days {args.min_days:g} --url (every {QUARTER} weeks)",
        },
        "summary": {name: r["summary"] for name, r in results.items()},
        "timings": timings,
        "weekly": {name: {"service": results[name]["weeks"], "judged": records(tables_out[name])} for name in results},
    }
    out = RESULTS if len(results) == 2 else RESULTS.with_name(f"live_loop_{'_'.join(results)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str, allow_nan=True))
    print(f"\nsummary ({args.projects:,} projects, shift {SHIFT[0]} {SHIFT[1]:g} sd from {shift_from.date()})")
    for name, r in results.items():
        print(f"  {name}: {json.dumps(r['summary'], default=str)}")
    print(f"took {timings['total_s'] / 60:.1f} min; written to {out}")


if __name__ == "__main__":
    main()
