"""Benchmark: backtests on the two real public exports in ../shared/real/, against issue 5's targets.

Imports the NYC School Construction Authority phase export (delay) and the Irish field-management export (defect
risk) with the project's importers, backtests each model on a time split that keeps a project's rows on one side
(leave-one-project-out too for the 7 Irish projects), and, as a control, the same backtests on the generated
sample world. A delay backtest also judges the range and the MAE with the milestones still open at the export's
end as right-censored test rows (bounds and IPCW, ``training.censoring``). Prints the table and writes
benchmarks/results/backtest_real.json. MLflow runs go to a temporary store (``--work-dir`` keeps them).

    .venv/bin/python -m benchmarks.backtest_real
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from eqsms.settings import Settings, get_settings
from features.importers import write_import
from features.importers.field_forms import import_field_forms
from features.importers.nyc_sca import import_nyc_sca
from features.validate import load
from training.backtest import Backtest, jsonable, log_backtest, run_backtest

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
NYC = REAL / "nyc_sca_capital_schedules" / "sca_capital_project_schedules_raw.csv"
IRL = REAL / "construction_pm_ireland"
IRL_TASKS = IRL / "Construction_Data_PM_Tasks_All_Projects_raw.csv"
IRL_FORMS = IRL / "Construction_Data_PM_Forms_All_Projects_raw.csv"
RESULTS = Path(__file__).parent / "results" / "backtest_real.json"
COMMANDS = {
    "nyc_sca": "eqsms backtest eqsms_work/real/nyc_sca --model delay",
    "field_forms": "eqsms backtest eqsms_work/real/field_forms --model defect_risk",
    "sample_world": "eqsms backtest data_samples/world --model {model}",
}


def missing_reason() -> str | None:
    absent = [p for p in (NYC, IRL_TASKS, IRL_FORMS) if not p.is_file()]
    return f"real exports not found: {', '.join(map(str, absent))}" if absent else None


def import_real(data_root: Path, quarantine_root: Path) -> dict[str, dict]:
    """Both real exports through their importers into ``data_root/<name>``; the import reports."""
    reports = {}
    for name, build in (
        ("nyc_sca", lambda: import_nyc_sca(NYC)),
        ("field_forms", lambda: import_field_forms(IRL_TASKS, IRL_FORMS)),
    ):
        imported = build()
        write_import(imported, data_root / name, quarantine_root / name)
        reports[name] = imported.report.as_dict()
    return reports


REAL_MODELS = {"field_forms": "defect_risk", "nyc_sca": "delay"}  # each export and the model it backtests


def imported_folders(root: Path) -> dict[str, Path]:
    """Both real exports imported into ``root/real/<name>`` (quarantine beside them); {} when ../shared/real is not
    beside the checkout. For the benchmarks that take the real data as one more dataset."""
    if missing_reason():
        return {}
    import_real(root / "real", root / "quarantine")
    return {name: root / "real" / name for name in REAL_MODELS}


def backtests(data_root: Path, settings: Settings) -> list[Backtest]:
    runs = [
        ("nyc_sca", data_root / "nyc_sca", "delay"),
        ("field_forms", data_root / "field_forms", "defect_risk"),
        ("sample_world", get_settings().data_dir, "delay"),
        ("sample_world", get_settings().data_dir, "defect_risk"),
    ]
    out = []
    for name, folder, model in runs:
        bt = run_backtest(load(folder).tables, model, settings, name.replace("_", "-"))
        log_backtest(bt, settings, str(folder))
        out.append(bt)
    return out


def table_rows(runs: list[Backtest]) -> list[dict]:
    rows = []
    for bt in runs:
        t, key = bt.target, bt.dataset.replace("-", "_")
        row = {
            "dataset": bt.dataset,
            "model": bt.model,
            "rows": bt.rows,
            "split": bt.split["kind"],
            "test_window": bt.windows["test"],
            "metric": t["metric"],
            "model_value": t["model"],
            "reference_class": t["reference_class"],
            "gain_ci95": t["gain_ci95"],
            "required": t["required"],
            "met": t["met"],
            "command": COMMANDS[key].format(model=bt.model),
        }
        if bt.model == "delay":
            row.update(coverage=t["coverage"], on_time_mae=bt.metrics()["on_time"]["mae"])
        if bt.censoring:  # the open milestones as right-censored test rows (training.censoring)
            populations = ("tested_projects", "every_project")
            row["censoring"] = {
                "open_milestones": bt.censoring["open_milestones"],
                "open_milestones_overdue_at_snapshot": bt.censoring["open_milestones_overdue_at_snapshot"],
                **{
                    p: {
                        "labelled_rows": bt.censoring[p]["labelled_rows"],
                        "censored_rows": bt.censoring[p]["censored_rows"],
                        **bt.censoring[p]["target"],
                    }
                    for p in populations
                    if p in bt.censoring
                },
            }
        if bt.lopo and bt.lopo.get("target"):
            row["lopo"] = {
                "pooled_model": bt.lopo["target"]["model"],
                "pooled_reference_class": bt.lopo["target"]["reference_class"],
                "mean_over_projects": bt.lopo["mean_over_projects"],
                "met": bt.lopo["target"]["met"],
            }
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'dataset':14} {'model':12} {'test rows':>9} {'split':13} {'metric':8} {'ours':>8} {'baseline':>8}  target")
    for r in rows:
        extra = f", coverage {r['coverage']:.1%}, on time MAE {r['on_time_mae']:.1f}" if "coverage" in r else ""
        print(
            f"{r['dataset']:14} {r['model']:12} {r['rows']['test']:>9,} {r['split']:13} {r['metric']:8} "
            f"{r['model_value']:>8.3f} {r['reference_class']:>8.3f}  {'met' if r['met'] else 'NOT met'}{extra}"
        )
        for name, c in r.get("censoring", {}).items():
            if isinstance(c, dict):
                lo, hi = c["coverage_bounds"]
                print(
                    f"{'':14} {'':12} {c['censored_rows']:>9,} {name.replace('_', ' '):13} censored rows added: "
                    f"coverage {c['coverage_labelled']:.1%} labelled, IPCW {c['coverage_ipcw']:.1%}, bounds "
                    f"{lo:.1%} .. {hi:.1%}; MAE IPCW {c['mae_ipcw']:.1f} vs {c['reference_class_mae_ipcw']:.1f} "
                    f"({c['mae_reduction_ipcw']:+.1%})"
                )
        if "lopo" in r:
            lo = r["lopo"]
            mean = lo["mean_over_projects"]
            print(
                f"{'':14} {'':12} {'LOPO':>9} {'pooled':13} {r['metric']:8} {lo['pooled_model']:>8.3f} "
                f"{lo['pooled_reference_class']:>8.3f}  {'met' if lo['met'] else 'NOT met'}; mean over "
                f"{mean['projects']} projects {mean['model']:.3f} vs {mean['reference_class']:.3f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="keep imports and MLflow runs here")
    args = parser.parse_args()
    if (why := missing_reason()) is not None:
        print(f"skipped: {why}")
        return 2
    with tempfile.TemporaryDirectory(prefix="eqsms-backtest-real-") as tmp:
        work = args.work_dir or Path(tmp)
        settings = get_settings().model_copy(update={"work_dir": work})
        t0 = time.perf_counter()
        reports = import_real(work / "real", work / "quarantine")
        t1 = time.perf_counter()
        runs = backtests(work / "real", settings)
        t2 = time.perf_counter()
    rows = table_rows(runs)
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    out = {
        "table": rows,
        "backtests": {f"{bt.dataset}/{bt.model}": bt.as_dict() for bt in runs},
        "imports": reports,
        "seconds": {"import": round(t1 - t0, 2), "backtests": round(t2 - t1, 2)},
    }
    RESULTS.write_text(json.dumps(jsonable(out), indent=2, default=str) + "\n")
    print(f"\nimports {out['seconds']['import']} s, backtests {out['seconds']['backtests']} s -> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
