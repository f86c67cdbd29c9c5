"""Logged predictions judged by the outcomes an export holds (issue 13 §2): only outcomes known by the time of
judging and after the prediction, each target read as training labels it, the reference class on the same rows."""

from __future__ import annotations

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
    assert watched["model"] == "defect_risk" and watched["rows"] > 0
    assert 0.5 < watched["estimated_auc"] < 1 and watched["flagged"] is False
    assert "Watched before the outcomes" in (store / "monitor" / "index.html").read_text()
    verdict = json.loads((store / "monitor" / "verdict.json").read_text())
    assert not any("drift" in reason for reason in verdict["reasons"])


def test_the_monitors_figures_reach_metrics(tmp_path):
    import json

    from prometheus_client import REGISTRY

    from serving.monitor_metrics import MonitorMetrics

    path = tmp_path / "summary.json"
    measure = MonitorMetrics(path)
    measure()  # no summary yet: nothing set, nothing raised
    watched = {"model": "defect_risk", "features_drifted": 4, "prediction_psi": 0.31, "estimated_auc": 0.69}
    path.write_text(json.dumps({"verdict": {"flagged": True}, "watched": watched}))
    measure()
    value = REGISTRY.get_sample_value
    assert value("eqsms_monitor_flagged") == 1.0
    assert value("eqsms_drift_features_drifted", {"model": "defect_risk"}) == 4.0
    assert value("eqsms_estimated_roc_auc", {"model": "defect_risk"}) == 0.69
