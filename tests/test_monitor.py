"""Logged predictions judged by the outcomes an export holds (issue 13 §2): only outcomes known by the time of
judging and after the prediction, each target read as training labels it, the reference class on the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqsms.settings import Settings
from monitoring.judge import joined, weekly
from monitoring.outcomes import churn_outcomes, outcomes

SETTINGS = Settings.model_construct()


@pytest.fixture(scope="module")
def tables():
    from features.validate import load

    return load(SETTINGS.data_dir, SETTINGS).tables


@pytest.fixture(scope="module")
def known(tables):
    return outcomes(tables, SETTINGS)


def logged(frame: pd.DataFrame, model: str, probability, days_before: int = 30, **more) -> pd.DataFrame:
    """Predictions as the log reads them, one for each outcome, made ``days_before`` it was known."""
    out = pd.DataFrame(
        {
            "model": model,
            "model_version": "1",
            "project_id": frame["project_id"].to_numpy(),
            "milestone_id": frame["milestone_id"].to_numpy() if "milestone_id" in frame else None,
            "as_of": (frame["known_at"] - pd.Timedelta(days=days_before)).to_numpy(),
            "probability": probability,
            **more,
        }
    )
    return out


def test_milestone_outcomes_are_the_training_labels(tables, known):
    from features.families import Context
    from features.targets import first_pass_rows, slip_rows

    ctx = Context.build(tables, SETTINGS)
    trained = first_pass_rows(ctx)[0].drop_duplicates("milestone_id").set_index("milestone_id")["first_pass_failed"]
    judged = known["defect_risk"].set_index("milestone_id")["first_pass_failed"]
    assert len(judged) == len(trained) and (judged.loc[trained.index] == trained).all()
    slips = slip_rows(ctx)[0].drop_duplicates("milestone_id").set_index("milestone_id")["slip_days"]
    assert (known["delay"].set_index("milestone_id").loc[slips.index, "slip_days"] == slips).all()


def test_churn_is_known_at_the_next_award_or_when_the_window_closes(tables):
    window = pd.Timedelta(days=SETTINGS.churn_window_days)
    churn = churn_outcomes(tables, SETTINGS).set_index("project_id")
    projects = tables["projects"].set_index("project_id").loc[churn.index]
    stayed = churn[churn["churned"] == 0]
    assert (stayed["known_at"] > projects.loc[stayed.index, "actual_end"]).all()
    assert (stayed["known_at"] <= projects.loc[stayed.index, "actual_end"] + window).all()
    left = churn[churn["churned"] == 1]
    assert (left["known_at"] == projects.loc[left.index, "actual_end"] + window).all()
    assert len(stayed) and len(left)


def test_an_outcome_is_used_only_once_known_and_after_the_prediction(known):
    delay = known["delay"].head(50)
    predictions = logged(delay, "delay", 0.5, slip_days=3.0, slip_low=0.0, slip_high=9.0)
    day = delay["known_at"].sort_values().iloc[25]
    judged = joined(predictions, {"delay": delay}, at=day)
    assert set(judged["milestone_id"]) == set(delay.loc[delay["known_at"] <= day, "milestone_id"])
    late = logged(delay, "delay", 0.5, days_before=-1, slip_days=3.0, slip_low=0.0, slip_high=9.0)  # made after
    assert joined(late, {"delay": delay}, at=delay["known_at"].max()).empty


def test_weekly_scores_the_model_and_the_reference_class_on_the_same_rows(known):
    defects = known["defect_risk"]
    recent = defects[defects["known_at"] >= defects["known_at"].quantile(0.7)]
    rng = np.random.default_rng(3)
    sharp = np.clip(recent["first_pass_failed"].to_numpy() * 0.6 + rng.random(len(recent)) * 0.4, 0, 1)
    predictions = logged(recent, "defect_risk", sharp)
    judged = joined(predictions, known, at=defects["known_at"].max())
    table = weekly(judged, known, min_rows=5)
    scored = table.dropna(subset=["roc_auc"])
    assert table["rows"].sum() == len(judged) == len(recent)
    assert len(scored) and (scored["roc_auc"] > scored["reference.roc_auc"]).mean() > 0.8  # a sharp model wins
    assert all(
        sum(point["count"] for point in curve) == n
        for curve, n in zip(scored["reliability"], scored["rows"], strict=True)
    )


def test_eqsms_monitor_writes_the_page_and_a_run_per_model(known, tmp_path, monkeypatch):
    """Predictions logged as the service logs them (the prediction log in the work folder), then `eqsms monitor`
    on the export: one line a model, the page, an MLflow run per model with a step per week."""
    import mlflow
    from typer.testing import CliRunner

    from eqsms.cli import app
    from eqsms.predlog import PredictionLog, PredictionRecord, Served, default_url

    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    log = PredictionLog(default_url(tmp_path))
    for _, row in known["defect_risk"].tail(300).iterrows():
        as_of = row["known_at"] - pd.Timedelta(days=21)
        p = 0.7 if row["first_pass_failed"] else 0.2
        record = PredictionRecord(
            model="defect_risk", model_version="4", project_id=row["project_id"], milestone_id=row["milestone_id"],
            as_of=as_of, probability=p, level="high" if p > 0.3 else "low", data_fingerprint="f",
        )  # fmt: skip
        log.record([record], Served("risk", "r"))
    log.close()

    result = CliRunner().invoke(app, ["monitor", str(SETTINGS.data_dir)])
    assert result.exit_code == 0, result.output
    assert "defect_risk v4: 300 judged" in result.output and "reference class" in result.output
    page = (tmp_path / "monitor" / "index.html").read_text()
    assert "<h2>defect_risk</h2>" in page and "roc_auc" in page
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["eqsms-monitoring"])
        assert list(runs["tags.model"]) == ["defect_risk"] and runs["metrics.v4.roc_auc"].iloc[0] == pytest.approx(1.0)
        history = mlflow.MlflowClient().get_metric_history(runs["run_id"].iloc[0], "rows")
        assert sum(m.value for m in history) == 300
    finally:
        mlflow.set_tracking_uri(None)


def test_the_service_shows_the_latest_page(http, champions):
    from serving.security import security_headers

    page = champions.settings.monitor_page
    page.unlink(missing_ok=True)
    missing = http.get("/v1/monitor")
    assert missing.status_code == 404 and missing.json()["field"] == "monitor"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("<!DOCTYPE html><title>t</title><h1>How the predictions held up</h1>")
    try:
        shown = http.get("/v1/monitor")
        assert shown.status_code == 200 and "How the predictions held up" in shown.text
        assert shown.headers["content-type"].startswith("text/html")
    finally:
        page.unlink()
    policy = dict(security_headers("/v1/monitor"))[b"content-security-policy"].decode()
    assert policy.startswith("default-src 'none'") and "script" not in policy  # its styles, nothing to run


@pytest.mark.slow
def test_the_monitor_watches_drift_and_estimates_auc_before_the_outcomes(champions, tmp_path, monkeypatch):
    """With champions in the store, `eqsms monitor` scores the export's latest weeks as the service logs them and
    compares them with the quarter before the champion's data ended: drift and the estimated ROC-AUC on the page, in
    the board's summary (strict JSON) and in the verdict. The sample world is one world, unshifted: no drift flag."""
    import json
    import shutil

    from typer.testing import CliRunner

    from eqsms.cli import app

    store = tmp_path / "work"
    shutil.copytree(champions.work_dir, store, ignore=shutil.ignore_patterns("quarantine", "datasets", "monitor"))
    monkeypatch.setenv("EQSMS_WORK_DIR", str(store))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["monitor", str(SETTINGS.data_dir), "--no-mlflow"])
    assert result.exit_code == 0, result.output
    summary = json.loads((store / "monitor" / "summary.json").read_text())
    watched = summary["watched"]
    assert set(watched) == {"defect_risk", "delay", "churn"}
    risk, delay, churn = watched["defect_risk"], watched["delay"], watched["churn"]
    assert risk["rows"] > 0 and 0.5 < risk["estimated_auc"] < 1 and risk["flagged"] is False
    assert delay["rows"] == risk["rows"] and delay["flagged"] is False  # the same open milestones
    assert delay["estimated_mae"] > 0 and 0.5 < delay["estimated_late_auc"] <= 1
    assert churn["rows"] > 0 and ("note" in churn or 0 < churn["estimated_auc"] < 1)
    assert "Watched before the outcomes" in (store / "monitor" / "index.html").read_text()
    verdict = json.loads((store / "monitor" / "verdict.json").read_text())
    assert not any(r.startswith(("defect_risk", "delay")) and "drift" in r for r in verdict["reasons"])
    assert "drift" in result.output and "delay:" in result.output


def test_the_monitors_figures_reach_metrics(tmp_path):
    import json

    from prometheus_client import REGISTRY

    from serving.monitor_metrics import MonitorMetrics

    path = tmp_path / "summary.json"
    measure = MonitorMetrics(path)
    measure()  # no summary yet: nothing set, nothing raised
    path.write_text(json.dumps({"verdict": {"flagged": True}, "watched": watched_three()}))
    measure()
    value = REGISTRY.get_sample_value
    assert value("eqsms_monitor_flagged") == 1.0
    assert value("eqsms_drift_features_drifted", {"model": "defect_risk"}) == 4.0
    assert value("eqsms_drift_flagged", {"model": "defect_risk"}) == 1.0
    assert value("eqsms_drift_flagged", {"model": "delay"}) == 0.0
    assert value("eqsms_estimated_roc_auc", {"model": "defect_risk"}) == 0.69
    assert value("eqsms_estimated_mae_days", {"model": "delay"}) == 11.2
    assert value("eqsms_estimated_late_roc_auc", {"model": "delay"}) == 0.91
    assert value("eqsms_drift_features_drifted", {"model": "churn"}) is None  # noted, not watched: no figure
    # A summary written before the watch covered every model (one model's dict) is still read.
    old = {"model": "churn", "features_drifted": 2, "prediction_psi": 0.1, "estimated_auc": 0.7}
    path.write_text(json.dumps({"verdict": {"flagged": False}, "watched": old}))
    measure.seen = None
    measure()
    assert value("eqsms_drift_features_drifted", {"model": "churn"}) == 2.0 and value("eqsms_monitor_flagged") == 0


def watched_three() -> dict:
    """A watch as `eqsms monitor` writes it: defect risk flagged, delay watched, churn with too few rows."""
    return {
        "defect_risk": {
            "model": "defect_risk", "version": "3", "kind": "classifier", "reference_until": "2023-01-01",
            "weeks": 4, "rows": 900, "reference_rows": 3000, "features_drifted": 4, "drifted": ["a", "b", "c", "d"],
            "prediction_psi": 0.31, "flagged": True, "reason": "4 feature(s) drifted (flag at 3): a, b, c, d",
            "estimated_auc": 0.69, "auc_spread": 0.02, "expected_positive_rate": 0.14, "realised_auc": None,
        },
        "delay": {
            "model": "delay", "version": "2", "kind": "slip", "reference_until": "2023-01-01", "weeks": 4,
            "rows": 900, "reference_rows": 3000, "features_drifted": 1, "drifted": ["a"], "prediction_psi": 0.05,
            "late_probability_psi": 0.04, "flagged": False, "reason": "1 feature(s) drifted (flag at 3): a",
            "estimated_mae": 11.2, "estimated_late_auc": 0.91, "late_auc_spread": 0.01, "expected_late_brier": 0.1,
        },
        "churn": {"model": "churn", "version": "1", "rows": 40, "reference_rows": 120,
                  "note": "not watched: 40 rows in the latest weeks and 120 in the reference, fewer than "
                  "drift_min_rows (300) in one"},
    }  # fmt: skip


def test_the_verdict_page_and_board_give_each_watched_model_its_line():
    from monitoring.cli import board_summary, drift_line, render, verdict

    watched = watched_three()
    at = pd.Timestamp("2023-11-22")
    said = verdict(pd.DataFrame(), {}, 20, at, watched)
    # A reason a flagged model, named as the board lists a model's reasons (`${name} `), with its version.
    assert said["flagged"] and said["reasons"] == [f"defect_risk v3: drift: {watched['defect_risk']['reason']}"]
    assert not verdict(pd.DataFrame(), {}, 20, at, {"delay": watched["delay"]})["flagged"]
    line = drift_line(watched)
    assert line.startswith("defect_risk: FLAGGED: 4 feature(s)") and "delay: 1 feature(s)" in line
    assert "churn: not watched: 40 rows" in line
    page = render(pd.DataFrame(), pd.DataFrame(), 0, at, Path("x"), watched)
    assert all(f"<h3>{m}" in page for m in watched) and "<script" not in page
    assert "estimated MAE, days" in page and "11.200" in page and "fewer than drift_min_rows" in page
    assert board_summary(pd.DataFrame(columns=["model"]), said, 0, at, watched)["watched"] == watched


def test_a_model_with_too_few_rows_is_noted_not_judged():
    from monitoring.watch import judged

    few = pd.DataFrame({"project_id": ["p1", "p2"], "as_of": pd.Timestamp("2023-01-02"), "probability": [0.1, 0.2]})
    entry = judged("churn", None, few, few, SETTINGS, None, {"model": "churn", "version": "1"})
    assert entry["rows"] == 2 and "fewer than drift_min_rows (300)" in entry["note"] and "flagged" not in entry


def test_the_delay_models_mae_is_estimated_from_its_test_mae_by_band():
    from monitoring.loop import estimated_mae_of

    meta = {
        "time_to_plan": "days_to_milestone",
        "near_days": 30,
        "evidence": {"bands": {"ahead": {"mae": 13.0}, "near": {"mae": 10.0}, "overdue": {"mae": 4.0}}},
    }
    rows = pd.DataFrame({"days_to_milestone": [90.0, 60.0, 10.0, -5.0]})  # ahead, ahead, near, overdue
    assert estimated_mae_of(rows, meta) == (pytest.approx((13 + 13 + 10 + 4) / 4), None)
    mae, note = estimated_mae_of(rows, {})
    assert np.isnan(mae) and "no test MAE by horizon band" in note


@pytest.mark.slow
def test_the_watch_flags_a_shift_for_each_milestone_model_and_not_the_control(tmp_path):
    """600 projects, champions trained on the export at a cut (lighter training, as the loop's test), the watch of
    each world's export six weeks after a workmanship shift: defect risk and delay (their features move: the
    delay's labels do not, its inputs do) flagged in the shifted world, neither in the control; churn answered
    for the open projects, with a figure or a note saying why not."""
    from features.contract import latest_fact
    from features.validate import load
    from monitoring.loop import WEEK, export_at, schedule, train_champions, write_export
    from monitoring.watch import watch
    from world import generate_world
    from world.shift import Shift

    generate_world(600, 5, tmp_path / "control", fmt="parquet")
    control = load(tmp_path / "control").tables
    shift_from, cut = schedule(control, lead=2)
    generate_world(600, 5, tmp_path / "shifted", fmt="parquet", shift=Shift("workmanship", str(shift_from.date())))
    write_export(export_at(control, cut), tmp_path / "cut")
    settings = Settings(
        work_dir=tmp_path / "store", data_dir=tmp_path / "cut", drift_min_rows=100, n_estimators=100,
        backtest_folds=2,
    )  # fmt: skip
    train_champions(tmp_path / "cut", settings)
    at = shift_from + 6 * WEEK
    seen = {}
    for name in ("control", "shifted"):
        world = load(tmp_path / name).tables
        now = export_at(world, at)
        write_export(now, tmp_path / f"{name}_now")
        seen[name] = watch(settings, tmp_path / f"{name}_now", latest_fact(now), outcomes(now, settings))
    control_watch, shifted = seen["control"], seen["shifted"]
    for model in ("defect_risk", "delay"):
        assert control_watch[model]["flagged"] is False, control_watch[model]["reason"]
        assert shifted[model]["flagged"] is True and shifted[model]["features_drifted"] >= 3, shifted[model]
    assert shifted["delay"]["estimated_mae"] > 0 and "late_probability_psi" in shifted["delay"]
    # Churn's reference is the quarter before the export its champion learned from ended (monitoring.watch
    # .reference_end); it ended a churn window earlier before, and the control's clients' tenure and award counts
    # had grown by then (4 features drifted): a flag no retraining could clear.
    churn = control_watch["churn"]
    assert churn["rows"] > 0
    trained_until = latest_fact(load(tmp_path / "cut").tables).normalize()  # the export the champions learned from
    assert churn["reference_until"] == str(trained_until.date()), churn
    assert "fewer than drift_min_rows" in churn["note"] if "note" in churn else churn["flagged"] is False, churn
    print({w: {m: e.get("reason") or e.get("note") for m, e in seen[w].items()} for w in seen})
