"""Benchmark: the monitoring loop, week by week, on a world with a shift and on its control (issue 13 §3's proof).

Generates a world (default 2,500 projects, seed 21) and the same world with a shift from a date 60% into its
timeline (a Monday): workmanship worse by 1.0 sd (the main shift), by 0.5 sd, 30% of the projects' resource
reports going dark, and 30% of the projects awarded from the date built in a region the firm never worked in, their
work 0.5 sd worse (``world/shift.py``). The champions are trained once, into a fresh store, on the export as it
stood at the cut, 13 weeks before the shift (``monitoring.loop.export_at``: only facts recorded by then, so no label,
rate or churn window reaches past the cut); the exports of every world at the cut are checked to be identical, so
one champion serves them all and any difference in the loop is the shift's. Then for 52 weeks from the cut, in each
world: the service's rows of that week (every open milestone in the model's domain, one row each, scored by the
champion on the world's full tables at that ``as_of``), their feature and prediction drift against the quarter
before the cut (the settings' thresholds), the estimated AUC of the week's defect-risk predictions, and the AUC
realised on the same rows from the outcomes the world later holds. Prints the weekly tables of the control and the
main shift, every world's summary (weeks from the shift to the first flag, flags in the control, mean |estimated -
realised| AUC: target <= 0.03), and writes benchmarks/results/loop.json. Bounded: 52 weeks a world, a few minutes.

    .venv/bin/python -m benchmarks.loop [--projects 2500] [--seed 21] [--weeks 52]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results" / "loop.json"
TARGET_GAP = 0.03  # issue 13 §3: mean |estimated - realised| AUC per week
SHIFTS = (  # the first is the main one
    ("workmanship", 1.0),
    ("workmanship", 0.5),
    ("missing-resources", 0.3),
    ("new-region", 0.3),
)


def world_name(kind: str, size: float) -> str:
    return f"{kind}_{size:.1f}"


def against_training_rows(folder: Path, settings, cut: pd.Timestamp, weeks: list[pd.Timestamp]) -> dict:
    """The reference the loop does not use, measured: the control's weeks judged against the champion's own
    training rows (the defect-risk dataset at the cut) instead of the quarter the service logged before the cut."""
    from features.validate import load
    from monitoring.loop import MODEL, judge_week, scored_rows
    from monitoring.outcomes import outcomes
    from serving.runtime import Engine
    from training.pipeline import datasets_from_data

    dataset = datasets_from_data(load(folder / "cut", settings), settings, [MODEL])[MODEL]
    world = settings.model_copy(update={"data_dir": folder / "control"})
    engine = Engine.from_settings(world)
    bundle = engine.bundles[MODEL]
    reference = dataset.frame.assign(probability=bundle.predict(dataset.frame)["probability"])
    known = outcomes(engine.tables, world)[MODEL]
    judged = [
        judge_week(scored_rows(engine, t), reference, bundle.features, bundle.categorical, world, known) for t in weeks
    ]
    drifted = sorted({name for week in judged for name in week["drifted"]})
    return {
        "reference_rows": len(reference),
        "weeks": len(judged),
        "flags": sum(week["flagged"] for week in judged),
        "features_drifted_min": min(week["features_drifted"] for week in judged),
        "features_drifted_max": max(week["features_drifted"] for week in judged),
        "drifted": drifted,
    }


def oracle_truth(folder: Path) -> pd.Series:
    """The world's true first-pass failure probability of each reached milestone (its oracle), by milestone id."""
    oracle = pd.read_parquet(folder / "oracle.parquet")
    rows = oracle[oracle["target"] == "defect_risk"]
    return pd.Series(rows["truth"].to_numpy(), index=rows["row_id"].to_numpy())


def weekly_lines(name: str, table: pd.DataFrame, shift_from: pd.Timestamp) -> list[str]:
    lines = [
        f"\n{name}",
        f"{'as_of':<11}{'wk':>4}{'rows':>6}{'drift':>6}{'pred_psi':>9}{'flag':>5}"
        f"{'est_auc':>8}{'spread':>7}{'real_auc':>9}{'pos':>5}{'gap':>7}{'oracle':>7}",
    ]
    for _, w in table.iterrows():
        since = (w["as_of"] - shift_from) / pd.Timedelta(days=7)
        gap = w["estimated_auc"] - w["realised_auc"]
        lines.append(
            f"{w['as_of'].date()!s:<11}{since:>4.0f}{w['rows']:>6}{w['features_drifted']:>6}{w['prediction_psi']:>9.3f}"
            f"{'FLAG' if w['flagged'] else '-':>5}{w['estimated_auc']:>8.3f}{w['auc_spread']:>7.3f}"
            f"{w['realised_auc']:>9.3f}{w['positives']:>5}{gap:>+7.3f}{w['oracle_auc']:>7.3f}"
        )
    return lines


def summary_lines(name: str, s: dict) -> list[str]:
    first = s["first_flag_after_shift"]
    to_flag = "never" if first is None else f"{s['weeks_to_flag']:.0f} weeks ({first})"
    return [
        f"  {name:<22} flags {s['flags']:>2}/{s['weeks']} (before the shift {s['flags_before_shift']}); "
        f"first flag after the shift: {to_flag}",
        f"  {'':<22} mean |est - real| AUC {s['mean_abs_auc_gap']:.3f} over {s['weeks_judged']} weeks "
        f"(signed {s['mean_auc_gap']:+.3f}, max {s['max_abs_auc_gap']:.3f}; "
        f"chance spread {s['mean_auc_spread']:.3f}); 4-week windows {s['mean_abs_auc_gap_windows']:.3f}; "
        f"calibration slope {s['calibration_slope_before_shift']:.2f} before the shift, "
        f"{s['calibration_slope_after_shift']:.2f} after",
        f"  {'':<22} against the oracle's expected AUC: the estimate {s['mean_estimate_to_oracle']:+.3f} "
        f"(mean |.| {s['mean_abs_estimate_to_oracle']:.3f}), the realised mean |.| "
        f"{s['mean_abs_realised_to_oracle']:.3f} (the outcomes' luck)",
    ]


RETRAIN_DESIGN = (
    "in each world, at the first week the monitor flags (the control: never), challengers of every target are "
    "trained on the world's export as it stood that week (monitoring.loop.export_at; the champions' training) in a "
    "copy of the store, and the real gate (training.tracking.promote, the settings' tolerances) judges each; if the "
    "defect-risk challenger is promoted, a new engine on the world's full tables scores the weeks after the flag "
    "(point in time, as before); if refused, it is scored so all the same as a counterfactual ('refused'). "
    "before = the weeks from the shift to the flag (included; the old champion), after = "
    "the weeks after it, the old champion still scored on the same rows (the counterfactual) and the new one. "
    "realised: ROC-AUC on the rows whose outcome is known; oracle: the AUC the predictions realise on average under "
    "the world's true probabilities (luck aside); ceiling: the oracle's own probabilities' expected AUC on the same "
    "rows. weekly = mean of the weeks' figures; pooled = over all the period's judged rows"
)


def retrain_world(work: Path, name: str, settings, result: dict, shift_from: pd.Timestamp) -> dict:
    """The retrain at the world's first flag (none: no retrain) and its effect (monitoring.loop.retrain_effect)."""
    from monitoring.loop import loop_retrained, retrain_effect

    table = result["table"]
    flagged = table.loc[table["flagged"], "as_of"]
    at = pd.Timestamp(flagged.min()) if len(flagged) else None
    truth = oracle_truth(work / name)
    if at is None:
        return {
            "at": None,
            "weeks_after_shift": None,
            "decisions": {},
            "effect": retrain_effect(result, None, shift_from, None, truth),
        }
    dates = list(table["as_of"])
    store = work / f"store_{name}"
    run = loop_retrained(
        work / name, settings, store, at, dates, truth=truth, source="benchmark-loop", score_refused=True
    )
    new = run["new"]
    label = "new" if new is None or new["promoted"] else "refused"
    return {
        "at": str(at.date()),
        "weeks_after_shift": float((at - shift_from) / pd.Timedelta(days=7)),
        "decisions": run["decisions"],
        "new_version": new["version"] if new else None,
        "new_promoted": new["promoted"] if new else None,
        "new_flags": int(new["table"]["flagged"].sum()) if new else None,
        "effect": retrain_effect(result, new, shift_from, at, truth, label),
        "weekly": records(new["table"]) if new else None,
    }


def retrain_lines(retrains: dict) -> list[str]:
    lines = [
        "\nretrain at the first flag (the real gate); AUC over the weeks from the shift to the flag (before) and "
        "after it,\nthe old champion kept scoring on the same rows: realised (weekly mean / pooled), oracle = "
        "expected under the true probabilities, ceiling = the oracle's own",
        f"  {'world':<22}{'retrain':<20}{'gate (defect risk)':<24}{'period':<8}{'model':<8}{'wks':>4}"
        f"{'real_wk':>8}{'real_pool':>10}{'oracle_wk':>10}{'oracle_pool':>12}{'ceiling':>8}",
    ]
    for name, r in retrains.items():
        d = r["decisions"].get("defect_risk")
        when = "never (no flag)" if r["at"] is None else f"{r['at']} (wk {r['weeks_after_shift']:.0f})"
        gate = (
            "-" if d is None else (f"promoted v{d['challenger']}" if d["promoted"] else f"kept v{d['champion_before']}")
        )
        first = True
        for part, models in r["effect"].items():
            for model, p in models.items():
                lines.append(
                    f"  {name if first else '':<22}{when if first else '':<20}{gate if first else '':<24}{part:<8}"
                    f"{model:<8}{p['weeks']:>4}{p['mean_weekly_realised_auc']:>8.3f}{p['pooled_realised_auc']:>10.3f}"
                    f"{p['mean_weekly_oracle_auc']:>10.3f}{p['pooled_oracle_auc']:>12.3f}{p['pooled_ceiling_auc']:>8.3f}"
                )
                first = False
        for model, d in r["decisions"].items():
            values = ""
            if d.get("champion_value") is not None:
                values = (
                    f" ({d['metric']} challenger v{d['challenger']} {d['challenger_value']:.4f}, "
                    f"champion v{d['champion_before']} {d['champion_value']:.4f})"
                )
            said = "promoted" if d["promoted"] else "not promoted"
            lines.append(f"  {'':<22}gate {model}: {said}: {d['reason']}{values}")
    return lines


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def main() -> None:
    from eqsms.settings import Settings
    from features.datasets import tables_fingerprint
    from features.validate import load
    from monitoring.loop import WEEK, export_at, loop_world, schedule, train_champions, write_export
    from world import generate_world
    from world.shift import Shift

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--weeks", type=int, default=52, help="weeks of the loop from the cut (13 before the shift)")
    args = parser.parse_args()
    started = time.perf_counter()
    timings: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="eqsms-loop-bench-") as tmp:
        work = Path(tmp)
        generate_world(args.projects, args.seed, work / "control", fmt="parquet")
        control = load(work / "control").tables
        shift_from, cut = schedule(control)
        shifts = {world_name(k, s): Shift(k, str(shift_from.date()), s) for k, s in SHIFTS}
        for name, shift in shifts.items():
            generate_world(args.projects, args.seed, work / name, fmt="parquet", shift=shift)
        timings["generate_s"] = time.perf_counter() - started

        export = export_at(control, cut)
        for name in shifts:  # one champion for every world: their pasts up to the cut are the same
            if tables_fingerprint(export_at(load(work / name).tables, cut)) != tables_fingerprint(export):
                raise RuntimeError(f"the {name} world's export at the cut differs from the control's")
        write_export(export, work / "cut")
        settings = Settings(work_dir=work / "store", data_dir=work / "cut")
        mark = time.perf_counter()
        versions = train_champions(work / "cut", settings, source="benchmark-loop")
        timings["train_s"] = time.perf_counter() - mark

        results = {}
        for name in ("control", *shifts):
            mark = time.perf_counter()
            truth = oracle_truth(work / name)
            dates = [cut + k * WEEK for k in range(args.weeks)]
            results[name] = loop_world(work / name, settings, cut, dates, shift_from, truth=truth)
            timings[f"loop_{name}_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        checked = [cut + k * WEEK for k in range(0, args.weeks, 4)]
        training_reference = against_training_rows(work, settings, cut, checked)
        timings["training_reference_s"] = time.perf_counter() - mark

        retrains = {}
        for name in ("control", *shifts):  # the store is copied before the first retrain changes a champion
            mark = time.perf_counter()
            retrains[name] = retrain_world(work, name, settings, results[name], shift_from)
            timings[f"retrain_{name}_s"] = time.perf_counter() - mark

    timings["total_s"] = time.perf_counter() - started
    main_name = world_name(*SHIFTS[0])
    summaries = {name: r["summary"] for name, r in results.items()}
    gaps = {name: s["mean_abs_auc_gap"] for name, s in summaries.items()}
    report = {
        "benchmark": __doc__.splitlines()[0],
        "projects": args.projects,
        "seed": args.seed,
        "shift_from": str(shift_from.date()),
        "cut": str(cut.date()),
        "weeks": args.weeks,
        "champions": versions,
        "thresholds": {k: getattr(settings, k) for k in type(settings).model_fields if k.startswith("drift_")},
        "design": {
            "training": "every target trained on the export as it stood at the cut (facts recorded before it), "
            "promoted in a fresh store; the same champion for every world (their exports at the cut are identical)",
            "rows": "each week: one row per open milestone of each open project, planned at most as_of_lead_days "
            "ahead or overdue (the model's domain), as the service would log that week's snapshot; a milestone "
            "open for several weeks is a row in each of them",
            "reference": "the same rows over the 13 weeks before the cut, scored by the champion",
            "estimated_auc": "CBPE (monitoring.estimate) on all the week's rows",
            "realised_auc": "ROC-AUC on the week's rows whose first-pass outcome the full world holds, known after "
            "the row's as_of; NaN below 30 positives or negatives",
            "oracle_auc": "the AUC the same rows' predictions realise on average given the oracle's true "
            "probabilities (monitoring.loop.expected_auc): estimate - oracle is the estimate's error, realised - "
            "oracle the luck of the outcomes drawn",
        },
        "summary": summaries,
        "control_against_training_rows": training_reference,
        "targets": {"control_flags": 0, "mean_abs_auc_gap": TARGET_GAP},
        "met": {
            "control_flags": summaries["control"]["flags"] == 0,
            "main_shift_flagged": summaries[main_name]["weeks_to_flag"] is not None,
            **{f"mean_abs_auc_gap_{name}": bool(gap <= TARGET_GAP) for name, gap in gaps.items()},
        },
        "timings": timings,
        "weekly": {name: records(r["table"]) for name, r in results.items()},
        "retrain": {
            "design": RETRAIN_DESIGN,
            "worlds": {name: {k: v for k, v in r.items() if k != "weekly"} for name, r in retrains.items()},
            "weekly_new_champion": {name: r.get("weekly") for name, r in retrains.items()},
        },
        "windows": {name: records(r["windows"]) for name, r in results.items()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str, allow_nan=True))

    print(
        f"{args.projects:,} projects, seed {args.seed}; shift from {shift_from.date()}, champions trained on the "
        f"export at {cut.date()}; {args.weeks} weekly as_of from the cut (wk: weeks since the shift)"
    )
    for name in ("control", main_name):
        print("\n".join(weekly_lines(f"{name} (weekly)", results[name]["table"], shift_from)))
    print("\nsummary (flag: >= 3 features drifted or the predictions drifted; settings' thresholds)")
    for name, s in summaries.items():
        print("\n".join(summary_lines(name, s)))
    t = training_reference
    print(
        f"  reference = the training rows instead ({t['reference_rows']:,} rows): the control flagged "
        f"{t['flags']}/{t['weeks']} weeks checked ({t['features_drifted_min']}-{t['features_drifted_max']} features)"
    )
    print("\n".join(retrain_lines(retrains)))
    for key, ok in report["met"].items():
        print(f"  {key:<40} {'met' if ok else 'NOT met'}")
    minutes = math.ceil(timings["total_s"] / 6) / 10
    retrained = sum(v for k, v in timings.items() if k.startswith("retrain_"))
    print(
        f"took {minutes:.1f} min (training {timings['train_s']:.0f} s, the retrains with their weeks "
        f"{retrained:.0f} s); written to {RESULTS}"
    )


if __name__ == "__main__":
    main()
