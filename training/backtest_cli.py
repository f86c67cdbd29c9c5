"""`eqsms backtest`: a time-split backtest of one model on a folder of exports, against the baselines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from eqsms.cli_kit import console, fail, one_of, print_table, progress, summary, took, where
from eqsms.settings import data_name, get_settings
from features.targets import MILESTONE, of_scope

app = typer.Typer(no_args_is_help=True, add_completion=False)
MODELS = tuple(spec.name for spec in of_scope(MILESTONE))  # training.backtest.MODELS, without importing training


@app.command()
def backtest(
    data_dir: Annotated[Path, typer.Argument(help="folder of exports in the raw contract (e.g. from `eqsms import`)")],
    model: Annotated[str, typer.Option(help=" or ".join(MODELS), callback=one_of(MODELS))],
    out: Annotated[
        Path | None, typer.Option(help="results JSON; default <work_dir>/backtests/<data>-<model>.json")
    ] = None,
    split: Annotated[str, typer.Option(help="auto, project-time (each project on one side) or time")] = "auto",
    horizon_days: Annotated[
        int | None,
        typer.Option(
            help="score each milestone once, this many days before its planned date; default: settings' "
            "horizon_days, else one row in each horizon band (ahead, near, overdue) on a weekly grid"
        ),
    ] = None,
    lopo: Annotated[
        bool | None, typer.Option("--lopo/--no-lopo", help="leave-one-project-out too (default: at most 30 projects)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="dataset name for MLflow (default: the folder name)")] = None,
    plan_features: Annotated[
        bool, typer.Option("--plan-features/--no-plan-features", help="keep the count of the project's milestones")
    ] = False,
    log: Annotated[bool, typer.Option("--log/--no-log", help="log the run to MLflow")] = True,
) -> None:
    """Backtest a model: learn on the earlier period, test on the later one, against the reference class.

    A project's rows stay on one side. Checks issue 5's target, logs the run to MLflow (experiment
    eqsms-backtest-<data>-<model>; no model is registered) and writes a results file.
    """
    started = time.monotonic()
    from features.io import ContractError
    from features.targets import TargetUnavailable
    from features.validate import load
    from training.backtest import (
        BacktestError,
        backtest_settings,
        log_backtest,
        run_backtest,
        write_results,
    )

    settings = backtest_settings(get_settings(), horizon_days)
    dataset = name or data_name(data_dir)
    try:
        with progress(f"{model}: backtesting on {data_dir}") as shown:
            data = load(data_dir, progress=shown.hook(f"validating {data_dir}", count=True))
            bt = run_backtest(
                data.tables,
                model,
                settings,
                dataset,
                drop=() if plan_features else None,
                lopo=lopo,
                how=split,
                progress=shown.hook(model, count=True),
            )
    except (ContractError, BacktestError, TargetUnavailable) as err:
        fail(f"cannot backtest {data_dir}", err)
    if log:
        with progress(f"{model}: logging to MLflow"):
            info = log_backtest(bt, settings, str(data_dir))
        console.print(f"MLflow: experiment {info['experiment']}, run {info['run_id']} ({settings.tracking_uri})")
    path = write_results(bt, out or settings.work_dir / "backtests" / f"{dataset}-{model}.json")
    print_backtest(bt)
    console.print(f"results: {path}")
    t = bt.target
    said = {
        "rows": f"{bt.rows['dataset']:,} ({bt.rows['train']:,} train, {bt.rows['calibration']:,} calibration, "
        f"{bt.rows['test']:,} test)",
        "target": ("MET" if t["met"] else "NOT MET")
        + (
            f" (MAE {t['model']:.1f} vs reference class {t['reference_class']:.1f} days)"
            if t["metric"] == "mae"
            else f" (ROC-AUC {t['model']:.3f} vs reference class {t['reference_class']:.3f})"
        ),
    }
    if bt.lopo and bt.lopo.get("folds"):
        said["leave-one-project-out"] = f"{len(bt.lopo['folds'])} projects"
    said["results"] = where(path)
    if log:
        said["MLflow"] = f"experiment {info['experiment']}, run {info['run_id']}"
    summary(f"backtested {model} on {where(data_dir)}", said | {"time": took(started)})


def print_backtest(bt) -> None:
    from training.backtest import summary_rows

    rows, split = bt.rows, bt.split
    console.print(
        f"{bt.dataset} / {bt.model}: {rows['dataset']:,} rows; split {split['kind']} ({split['description']}): "
        f"{rows['train']:,} train, {rows['calibration']:,} calibration, {rows['test']:,} test "
        f"({bt.windows['test'][0]} .. {bt.windows['test'][1]}), {rows['left_out_to_keep_projects_on_one_side']:,} "
        "left out to keep projects on one side",
        highlight=False,
    )
    if split.get("note"):
        console.print(f"[yellow]note[/]: {split['note']}")
    table = RichTable(title="test rows: model against baselines")
    from features.targets import target
    from training.kinds import strategy

    kind = strategy(target(bt.model).kind)
    for col in ("metric", "model", "reference class", kind.linear, *kind.simplest):
        table.add_column(col.replace("_", " "), justify="left" if col == "metric" else "right")
    for row in summary_rows(bt):
        table.add_row(*row)
    print_table(table)
    console.print(_target_line("target", bt.target), highlight=False)
    if bt.lopo and bt.lopo.get("target"):
        mean = bt.lopo["mean_over_projects"]
        console.print(
            _target_line(f"leave-one-project-out, {len(bt.lopo['folds'])} projects pooled", bt.lopo["target"])
            + f"; mean over {mean['projects']} projects {mean['model']:.3f} vs {mean['reference_class']:.3f}",
            highlight=False,
        )
    if bt.censoring:
        print_censoring(bt.censoring)


def print_censoring(c: dict) -> None:
    """The test rows with the milestones still open at the data's end (right-censored), per population."""
    console.print(
        f"censoring: {c['open_milestones']:,} milestones are open at the data's latest fact ({c['snapshot']}), "
        f"{c['open_milestones_overdue_at_snapshot']:,} of them past their planned date: their slip is at least the "
        "time since, a right-censored test row at each as_of a reached milestone would get",
        highlight=False,
    )
    table = RichTable(title="range coverage and MAE with the open milestones (right-censored)")
    for col in (
        "test rows",
        "labelled",
        "censored",
        "coverage: labelled",
        "bounds",
        "IPCW",
        "MAE: labelled",
        "IPCW",
        "reference class IPCW",
        "reduction",
    ):
        table.add_column(col, justify="left" if col == "test rows" else "right")
    for name in ("tested_projects", "every_project"):
        if name not in c:
            continue
        p, t = c[name], c[name]["target"]
        table.add_row(
            name.replace("_", " "),
            f"{p['labelled_rows']:,}",
            f"{p['censored_rows']:,}",
            f"{t['coverage_labelled']:.1%}",
            f"{t['coverage_bounds'][0]:.1%} .. {t['coverage_bounds'][1]:.1%}",
            f"{t['coverage_ipcw']:.1%}",
            f"{t['mae_labelled']:.1f}",
            f"{t['mae_ipcw']:.1f}",
            f"{t['reference_class_mae_ipcw']:.1f}",
            f"{t['mae_reduction_ipcw']:+.1%}",
        )
    print_table(table)
    if m := c.get("ipcw_margin"):
        said = "; ".join(
            f"{name.replace('_', ' ')}: coverage {p['coverage_ipcw']:.1%} IPCW, {p['coverage_labelled']:.1%} labelled, "
            f"bounds {p['coverage_bounds'][0]:.1%} .. {p['coverage_bounds'][1]:.1%}, "
            f"mean width {p['mean_width']:.0f} days"
            for name, p in m.items()
            if name in ("tested_projects", "every_project")
        )
        margin = m["margin_days"]
        console.print(
            f"with the range's margin refitted on IPCW-weighted calibration rows ({margin['as_fitted']:.1f} -> "
            f"{margin['ipcw']:.1f} days; no test label used): {said}",
            highlight=False,
        )
    parts = RichTable(title="test window by part, oldest first: what censoring does to the judged rows")
    for col in ("as_of window", "rows", "censored", "share labelled", "mean slip", "MAE", "coverage", "bounds", "IPCW"):
        parts.add_column(col, justify="left" if col == "as_of window" else "right")
    for part in c["by_part"]:
        lo, hi = part["coverage_bounds"]
        parts.add_row(
            f"{part['window'][0]} .. {part['window'][1]}",
            f"{part['rows']:,}",
            f"{part['censored_rows']:,}",
            f"{part['share_labelled']:.0%}",
            f"{part['mean_slip_days']:.1f}",
            f"{part['mae']:.1f}",
            f"{part['coverage']:.1%}",
            f"{lo:.1%} .. {hi:.1%}",
            f"{part['coverage_ipcw']:.1%}",
        )
    print_table(parts)


def _target_line(what: str, t: dict) -> str:
    verdict = "MET" if t["met"] else "NOT MET"
    ci = t.get("gain_ci95")
    if t["metric"] == "mae":
        ci_text = f" (95% interval {ci[0]:+.1%} .. {ci[1]:+.1%})" if ci and None not in ci else ""
        return (
            f"{what}: MAE {t['model']:.1f} vs reference class {t['reference_class']:.1f} days, "
            f"{t['mae_reduction']:+.1%} reduction{ci_text}; coverage {t['coverage']:.1%} "
            f"(nominal {t['nominal_coverage']:.0%}); needed {t['required']}: {verdict}"
        )
    ci_text = f" (95% interval {ci[0]:+.3f} .. {ci[1]:+.3f})" if ci and None not in ci else ""
    return (
        f"{what}: ROC-AUC {t['model']:.3f} vs reference class {t['reference_class']:.3f}, "
        f"{t['auc_gain']:+.3f}{ci_text}; needed {t['required']}: {verdict}"
    )
