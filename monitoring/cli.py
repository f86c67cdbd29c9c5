"""`eqsms monitor DATA_DIR`: the prediction log judged by a new export (issue 13 §2).

Reads the export (validated as every command does), the predictions the service logged (``eqsms.predlog``, from
settings), joins each with its outcome once known (:mod:`monitoring.judge`) and reports per model, version and
week of prediction: the model's metrics beside the reference class's on the same rows. The figures go to MLflow
(one monitoring run per model in the experiment ``eqsms-monitoring``, a step per week) and to a self-contained HTML
page (``<work_dir>/monitor/index.html``; ``--out`` elsewhere), which the service shows at ``/v1/monitor``.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from eqsms.cli_kit import console, fail, one_of, summary, took, where
from eqsms.settings import Settings, get_settings
from monitoring.retrain import WHEN, verdict_file
from monitoring.watch import RECENT_WEEKS, headline, watch, watched_models

app = typer.Typer(add_completion=False)
EXPERIMENT = "eqsms-monitoring"
SHOWN = {  # what the page and the run show of each kind, in this order
    "classifier": ("roc_auc", "ece", "brier", "positive_rate"),
    "slip": ("mae", "coverage", "late_auc", "late_brier"),
}


@app.command()
def monitor(
    data_dir: Annotated[Path, typer.Argument(help="the new export: its outcomes judge the logged predictions")],
    out: Annotated[Path | None, typer.Option(help="the HTML page (default: <work_dir>/monitor/index.html)")] = None,
    min_rows: Annotated[int, typer.Option(help="a week with fewer judged rows is counted, not scored")] = 20,
    mlflow_runs: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="log a monitoring run per model")] = True,
) -> None:
    """Judge the logged predictions by the outcomes DATA_DIR holds, per model version and week of prediction,
    beside the reference class on the same rows; write the page and the MLflow runs."""
    from eqsms.predlog import from_settings
    from features.contract import latest_fact
    from features.io import ContractError
    from features.validate import load
    from monitoring.judge import joined, overall, weekly
    from monitoring.outcomes import outcomes

    started = time.perf_counter()
    settings = get_settings()
    try:
        tables = load(data_dir, settings).tables
    except ContractError as err:
        fail(f"cannot use {data_dir}", err)
    at = latest_fact(tables)
    if at is None:
        fail(f"cannot judge by {data_dir}", "the export has no dated fact")
    log = from_settings(settings)
    try:
        if not log.enabled:
            fail("nothing to judge", "the prediction log is off (EQSMS_PREDICTION_LOG_URL=off)")
        predictions = log.predictions()
    finally:
        log.close()
    known = outcomes(tables, settings)
    judged = joined(predictions, known, at)
    table, pooled = weekly(judged, known, min_rows), overall(judged, known, min_rows)
    page = out or settings.monitor_page
    for folder in {page.parent, settings.monitor_page.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    runs = log_runs(table, pooled, settings, data_dir, at) if mlflow_runs and not table.empty else {}
    watched = watch(settings, data_dir, at, known)
    said = verdict(judged, known, min_rows, at, watched)
    page.write_text(render(table, pooled, len(predictions), at, data_dir, watched), encoding="utf-8")
    verdict_file(settings).write_text(json.dumps(said, indent=2, default=str) + "\n")
    board = board_summary(pooled, said, len(predictions), at, watched)
    summary_file(settings).write_text(json.dumps(plain(board), default=str, allow_nan=False))
    summary(
        "monitor",
        {
            "predictions logged": f"{len(predictions):,}",
            "judged (outcome known)": f"{len(judged):,}",
            "outcomes known by": str(at),
            "page": where(page),
            "MLflow runs": ", ".join(f"{m} {r[:8]}" for m, r in runs.items()) or "none",
            "drift": drift_line(watched),
            "estimated": "; ".join(f"{name}: {headline(entry)}" for name, entry in watched.items()),
            "verdict": "; ".join(said["reasons"]) or "no flag",
            "took": took(started),
        },
    )
    for line in headline_lines(pooled):
        console.print(line, highlight=False)


def summary_file(settings: Settings) -> Path:
    """What the board shows of the monitor (``GET /v1/monitor/summary``)."""
    return settings.monitor_page.parent / "summary.json"


def board_summary(pooled: pd.DataFrame, said: dict, logged: int, at: pd.Timestamp, watched: dict | None = None) -> dict:
    """Per model, each version's judged rows and metrics beside the reference class's (no curves), the verdict,
    and the watch by model (``watched``: :func:`monitoring.watch.watch`'s)."""
    from features.targets import TARGETS

    models: dict[str, list[dict]] = {}
    for _, line in pooled.iterrows():
        kind = TARGETS[line["model"]].kind
        shown = {m: line.get(m) for base in SHOWN[kind] for m in (base, f"reference.{base}")}
        models.setdefault(line["model"], []).append(
            {
                "version": str(line["model_version"]),
                "rows": int(line["rows"]),
                "weeks": int(line["weeks"]),
                "metrics": {m: (None if v is None or pd.isna(v) else float(v)) for m, v in shown.items()},
            }
        )
    return {
        "outcomes_known_by": str(at),
        "predictions_logged": logged,
        "models": models,
        "verdict": said,
        "watched": watched or {},
    }


def drift_line(watched: dict) -> str:
    """The summary's drift line: each model's drift reason (FLAGGED first when it flagged), or its note."""
    said = []
    for name, entry in watched_models(watched).items():
        text = entry.get("note") or entry.get("reason", "")
        said.append(f"{name}: {'FLAGGED: ' if entry.get('flagged') else ''}{text}")
    return "; ".join(said)


def plain(value):
    """``value`` as strict JSON takes it: NaN and infinities (a metric with too few rows) as null."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _num(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.3f}"


def verdict(judged: pd.DataFrame, known: dict, min_rows: int, at: pd.Timestamp, watched: dict | None = None) -> dict:
    """Whether a model should be retrained (``eqsms retrain --when flagged`` reads it): flagged when, on its latest
    :data:`RECENT_WEEKS` weeks of judged predictions, its headline metric is worse than the reference class's on the
    same rows, or when the watch (:func:`monitoring.watch.watch`, by model) flagged drift: a reason a model,
    ``<model> v<version>: drift: ...`` (the board lists a model's reasons by its name)."""
    from features.targets import TARGETS
    from monitoring.judge import overall
    from training.metrics import HIGHER_IS_BETTER

    reasons = []
    if not judged.empty:
        recent = judged[judged["week"] > judged["week"].max() - pd.Timedelta(weeks=RECENT_WEEKS)]
        for _, line in overall(recent, known, min_rows).iterrows():
            metric = TARGETS[line["model"]].headline
            ours, theirs = line.get(metric), line.get(f"reference.{metric}")
            if pd.isna(ours) or pd.isna(theirs):
                continue
            if (ours < theirs) if metric in HIGHER_IS_BETTER else (ours > theirs):
                reasons.append(
                    f"{line['model']} v{line['model_version']}: {metric} {ours:.3f} worse than the reference class "
                    f"({theirs:.3f}) over the latest {RECENT_WEEKS} weeks"
                )
    for name, entry in watched_models(watched or {}).items():
        if entry.get("flagged"):
            version = f" v{entry['version']}" if entry.get("version") else ""
            reasons.append(f"{name}{version}: drift: {entry['reason']}")
    return {"at": str(at), "flagged": bool(reasons), "reasons": reasons}


def headline_lines(pooled: pd.DataFrame) -> list[str]:
    """A line per model and version: the rows judged and the headline metric beside the reference class's."""
    from features.targets import TARGETS

    lines = []
    for _, line in pooled.iterrows():
        metric = TARGETS[line["model"]].headline
        ours, theirs = line.get(metric), line.get(f"reference.{metric}")
        said = (
            f"{metric} {ours:.3f} (reference class {theirs:.3f})"
            if pd.notna(ours) and pd.notna(theirs)
            else "too few rows to score"
        )
        lines.append(
            f"  {line['model']} v{line['model_version']}: {line['rows']:,} judged over {line['weeks']} weeks, {said}"
        )
    return lines


def log_runs(
    table: pd.DataFrame, pooled: pd.DataFrame, settings: Settings, data_dir: Path, at: pd.Timestamp
) -> dict[str, str]:
    """One MLflow run per model: each week's metrics as a step (weeks since the epoch), the pooled figures as the
    run's own, tagged with the versions judged and the export."""
    import mlflow

    from features.targets import TARGETS
    from training.tracking import configure

    client = configure(settings)
    found = client.get_experiment_by_name(EXPERIMENT)
    experiment = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    runs = {}
    for name, group in table.groupby("model"):
        kind = TARGETS[name].kind
        wanted = [m for base in SHOWN[kind] for m in (base, f"reference.{base}")]
        with mlflow.start_run(experiment_id=experiment, run_name=f"monitor-{name}") as run:
            mlflow.set_tags(
                {
                    "model": name,
                    "versions": ",".join(sorted(group["model_version"].astype(str).unique())),
                    "data_dir": str(data_dir),
                    "outcomes_known_by": str(at),
                }
            )
            for _, week in group.iterrows():
                step = int(pd.Timestamp(week["week"]).timestamp() // (7 * 86400))
                values = {m: float(week[m]) for m in wanted if m in week and pd.notna(week[m])}
                mlflow.log_metrics({"rows": float(week["rows"]), **values}, step=step)
            for _, line in pooled[pooled["model"] == name].iterrows():
                version = line["model_version"]
                values = {f"v{version}.{m}": float(line[m]) for m in wanted if m in line and pd.notna(line[m])}
                mlflow.log_metrics(values)
            mlflow.log_dict(json.loads(group.to_json(orient="records", date_format="iso")), "weekly.json")
            runs[name] = run.info.run_id
    return runs


def render(
    table: pd.DataFrame, pooled: pd.DataFrame, logged: int, at: pd.Timestamp, data_dir: Path, watched: dict
) -> str:
    """The page: per model, each version's figures over every week, then each week's, the reference class beside."""
    from features.targets import TARGETS

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>EQSMS Risk: how the predictions held up"
        "</title><style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:1em 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}th:first-child,"
        "td:first-child{text-align:left}.worse{color:#b00}</style></head><body>",
        "<h1>How the predictions held up</h1>",
        f"<p>{logged:,} predictions logged; judged by the outcomes known in {html.escape(str(data_dir))} by "
        f"{html.escape(str(at))}. Each model beside the reference class scored on the same rows.</p>",
    ]
    parts += watched_section(watched)
    if table.empty:
        parts.append("<p>No logged prediction has a known outcome yet.</p>")
    for name, group in table.groupby("model") if not table.empty else []:
        spec = TARGETS[name]
        shown = SHOWN[spec.kind]
        head = "".join(f"<th>{m}</th><th>reference</th>" for m in shown)
        parts.append(f"<h2>{html.escape(name)}</h2><table><tr><th>weeks</th><th>version</th><th>rows</th>{head}</tr>")
        for _, line in pooled[pooled["model"] == name].iterrows():
            cells = "".join(_pair(line, m) for m in shown)
            parts.append(
                f"<tr><td>all {int(line['weeks'])}</td><td>{html.escape(str(line['model_version']))}</td>"
                f"<td>{int(line['rows'])}</td>{cells}</tr>"
            )
        parts.append(f"</table><table><tr><th>week</th><th>version</th><th>rows</th>{head}</tr>")
        for _, week in group.sort_values("week").iterrows():
            cells = "".join(_pair(week, m) for m in shown)
            parts.append(
                f"<tr><td>{pd.Timestamp(week['week']).date()}</td><td>{html.escape(str(week['model_version']))}</td>"
                f"<td>{int(week['rows'])}</td>{cells}</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


WATCHED_ROWS = {  # what the page shows of each kind's watch
    "classifier": (("estimated ROC-AUC (probabilities alone)", "estimated_auc"), ("chance spread", "auc_spread"),
                   ("expected positive rate", "expected_positive_rate"), ("realised ROC-AUC", "realised_auc")),
    "slip": (("estimated MAE, days (band mix)", "estimated_mae"), ("P(late) PSI", "late_probability_psi"),
             ("estimated P(late) ROC-AUC", "estimated_late_auc"), ("chance spread", "late_auc_spread"),
             ("expected P(late) Brier", "expected_late_brier"), ("realised MAE, days", "realised_mae"),
             ("realised P(late) ROC-AUC", "realised_late_auc")),
}  # fmt: skip


def watched_section(watched: dict) -> list[str]:
    """The page's watch: a table a model (rows, drift, prediction PSI, its estimates and what is realised so far)."""
    parts = [
        "<h2>Watched before the outcomes</h2>",
        f"<p>Each champion's rows of the latest {RECENT_WEEKS} weeks, as the service logs them (open milestones in "
        "the model's domain; open projects for churn), against the same rows over the quarter before the export it "
        "learned from ended. Estimates assume the model is still calibrated.</p>",
    ]
    for name, entry in watched_models(watched).items():
        version = f" v{entry['version']}" if entry.get("version") else ""
        title = f"<h3>{html.escape(name + version)}</h3>"
        if "note" in entry:
            parts.append(f"{title}<p>{html.escape(entry['note'])}</p>")
            continue
        mark = " class='worse'" if entry.get("flagged") else ""
        cells = [
            ("rows (reference)", f"{entry['rows']:,} ({entry.get('reference_rows', 0):,} until "
             f"{html.escape(str(entry.get('reference_until')))})"),
            ("drift", f"<span{mark}>{'flagged: ' if entry.get('flagged') else ''}"
             f"{html.escape(str(entry.get('reason', '')))}</span>"),
            ("prediction PSI", _num(entry.get("prediction_psi"))),
            *((label, _num(entry.get(key))) for label, key in WATCHED_ROWS.get(entry.get("kind"), ())),
        ]  # fmt: skip
        if entry.get("mae_note"):
            cells.append(("note", html.escape(entry["mae_note"])))
        rows = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in cells)
        parts.append(f"{title}<table>{rows}</table>")
    return parts


def _pair(line: pd.Series, metric: str) -> str:
    from training.metrics import HIGHER_IS_BETTER

    ours, theirs = line.get(metric), line.get(f"reference.{metric}")
    if ours is None or pd.isna(ours):
        return "<td>–</td><td>–</td>"
    worse = theirs is not None and pd.notna(theirs) and metric in ("roc_auc", "mae", "late_auc", "brier", "late_brier")
    if worse:
        worse = ours < theirs if metric in HIGHER_IS_BETTER else ours > theirs
    mark = " class='worse'" if worse else ""
    return f"<td{mark}>{ours:.3f}</td><td>{'–' if theirs is None or pd.isna(theirs) else f'{theirs:.3f}'}</td>"


@app.command()
def retrain(
    data_dir: Annotated[Path, typer.Argument(help="the new export to train on")],
    url: Annotated[
        str | None,
        typer.Option(help="the running service to tell to reload when a champion moved (e.g. http://127.0.0.1:3000)"),
    ] = None,
    when: Annotated[
        str,
        typer.Option(
            help="changed: whenever the export changed; flagged: only when the monitor's last verdict flagged a model",
            callback=one_of(WHEN),
        ),
    ] = "changed",
    min_days: Annotated[
        float,
        typer.Option(
            min=0,
            help="retrain only when the export holds at least this many days of facts after the last retrain's",
        ),
    ] = 0,
    force: Annotated[bool, typer.Option("--force", help="retrain even on the export last retrained on")] = False,
) -> None:
    """Validate, build the datasets, train the challengers, gate, promote or not, and tell the service to reload:
    one line to end with, and exit 0 (done, or nothing to do), 1 (promoted but the service not told) or 2 (could not
    run). For cron or any scheduler."""
    from features.cli import load_or_exit
    from features.contract import latest_fact
    from features.datasets import folder_fingerprint
    from features.io import ContractError
    from monitoring import retrain as r
    from training.evaluate import TooFewRows, read_oracle
    from training.feedback import FeedbackUnreadable
    from training.pipeline import all_targets, run_target, training_datasets
    from training.tracking import MIDWAY_FAULTS, StoreUnavailable, open_store, store_problem

    settings = get_settings()
    try:
        fingerprint = folder_fingerprint(data_dir)
    except ContractError as err:
        fail(f"cannot retrain on {data_dir}", err)
    verdict, last = r.read_json(r.verdict_file(settings)), r.last_run(settings)
    run = r.Retrained(fingerprint)
    reason = r.why_not(fingerprint, last, when, verdict, force)
    if not reason:
        data = load_or_exit(data_dir)
        until = latest_fact(data.tables)
        run.data_until = None if until is None else str(until)
        reason = None if force else r.too_soon(until, last, min_days)
    if reason:
        run.reason = reason
        console.print(run.line(), highlight=False, soft_wrap=True)
        return
    try:
        datasets = training_datasets(data_dir, settings, all_targets("all"), lambda _folder: data)
    except FeedbackUnreadable as err:
        fail("cannot retrain", err)
    try:
        client = open_store(settings)
    except StoreUnavailable as err:
        fail("cannot retrain", err)
    oracle = read_oracle(data_dir)
    for name, ds in datasets.items():
        if isinstance(ds, str):
            run.models[name] = f"skipped ({ds})"
            continue
        try:
            outcome = run_target(ds, settings, oracle, str(data_dir), True, client)
        except TooFewRows as err:
            fail(f"cannot retrain {name}", err)
        except MIDWAY_FAULTS as err:
            fail(f"cannot retrain {name}", store_problem(settings.tracking_uri, err))
        run.models[name] = outcome.skipped or r.told(outcome.decision)
        if outcome.decision is not None and outcome.decision.promoted:
            run.promoted.append(name)
    run.trained = True
    if run.promoted and url:
        reloaded, run.reload = r.ask_reload(url, settings)
        run.status = r.DONE if reloaded else r.NOT_TOLD
    elif run.promoted:
        run.reload = "no --url: it takes the new champions at its next poll"
    else:
        run.reload = "nothing to reload"
    r.remember(settings, run)
    console.print(run.line(), highlight=False, soft_wrap=True)
    raise typer.Exit(run.status)
