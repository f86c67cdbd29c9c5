"""Backtests: the splits keep time order and projects apart, the command logs to MLflow without registering, and
on the real exports of ../shared/real/ (skipped, with the reason, where they are absent) README's results hold."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings, get_settings
from features.contract import latest_fact
from features.datasets import Dataset
from features.validate import load
from training.backtest import (
    BacktestError,
    choose_split,
    experiment_name,
    leave_one_project_out,
    one_side,
    project_time_split,
    run_backtest,
)
from training.censoring import Judged, open_milestone_rows, product_limit
from training.splits import Split, time_split

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "real"
SAMPLE = get_settings().data_dir


def frame(projects: list[str], days: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"project_id": projects, "as_of": pd.Timestamp("2021-01-01") + pd.to_timedelta(days, unit="D")})


def test_one_side_keeps_projects_apart_and_time_in_order():
    rng = np.random.default_rng(3)
    n = 600
    project = rng.integers(0, 40, n)  # project k runs from day 25k for 150 days
    f = frame([f"P{k}" for k in project], (25 * project + rng.integers(0, 150, n)).tolist())
    split, left_out = one_side(time_split(f["as_of"], 0.6, 0.2), f["project_id"])
    learned = set(f["project_id"].iloc[np.concatenate([split.train, split.calibration])])
    tested = set(f["project_id"].iloc[split.test])
    assert learned and tested and not learned & tested
    assert f["as_of"].iloc[split.train].max() <= f["as_of"].iloc[split.calibration].min()
    assert f["as_of"].iloc[split.calibration].max() <= f["as_of"].iloc[split.test].min()
    assert len(split.train) + len(split.calibration) + len(split.test) + left_out == n


def test_one_side_sends_a_project_to_test_when_most_of_it_is_there():
    f = frame(["A", "A", "B", "B", "B", "A", "B", "C", "C"], [0, 1, 2, 3, 4, 5, 6, 7, 8])
    split = Split(np.arange(0, 5), np.array([5]), np.arange(6, 9))
    kept, left_out = one_side(split, f["project_id"])
    assert kept.test.tolist() == [7, 8]  # C is tested; B's one late row is left out
    assert kept.train.tolist() == [0, 1, 2, 3, 4] and kept.calibration.tolist() == [5]
    assert left_out == 1


def test_leave_one_project_out_folds():
    f = frame(["A"] * 25 + ["B"] * 30 + ["C"] * 5, list(range(60)))
    ds = Dataset("delay", f, ["project_id"], [], [])
    folds = dict(leave_one_project_out(ds, Settings(calibration_share=0.2)))
    assert sorted(folds) == ["A", "B"]  # C is too small to be a fold of its own
    a = folds["A"]
    assert a.test.tolist() == list(range(25))
    assert set(a.train) | set(a.calibration) == set(range(25, 60))
    assert f["as_of"].iloc[a.train].max() < f["as_of"].iloc[a.calibration].min()  # calibrate on the latest


def test_a_milestones_rows_stay_on_one_side_of_every_split():
    # 40 projects of 5 milestones, each milestone at three as_of spread over 60 days (one in each horizon band).
    rng = np.random.default_rng(5)
    rows = []
    for p in range(40):
        for m in range(5):
            start = 10 * p + rng.integers(0, 200)
            rows += [(f"P{p}", f"P{p}/M{m}", start + k * 30) for k in range(3)]
    f = frame([r[0] for r in rows], [r[2] for r in rows])
    f["milestone_id"] = [r[1] for r in rows]
    f = f.sort_values("as_of", kind="stable").reset_index(drop=True)
    ds = Dataset("delay", f[["milestone_id", "project_id", "as_of"]], ["milestone_id", "project_id"], [], [])
    settings = Settings(calibration_share=0.2)
    split, _ = project_time_split(ds, settings)
    folds = [split, *(fold for _, fold in leave_one_project_out(ds, settings))]
    for fold in folds:
        part = pd.Series(-1, index=f.index)
        for k, idx in enumerate((fold.train, fold.calibration, fold.test)):
            part.iloc[idx] = k
        used = part >= 0
        assert (part[used].groupby(f["milestone_id"][used]).nunique() == 1).all()


def test_auto_split_falls_back_and_says_why():
    # Two long projects that both run to the end: on one side, the test part has no failure to judge.
    days = list(range(200)) * 2
    f = frame(["A"] * 200 + ["B"] * 200, days)
    f["first_pass_failed"] = np.tile((np.arange(200) % 5 == 0).astype("int8"), 2)
    f = f.sort_values("as_of", kind="stable").reset_index(drop=True)
    ds = Dataset("defect_risk", f, ["project_id"], ["first_pass_failed"], [])
    split, kind, left_out, note = choose_split("defect_risk", ds, Settings(), "auto")
    assert kind == "time" and left_out == 0 and "within each project" in note
    with pytest.raises(BacktestError, match="--split time"):
        choose_split("defect_risk", ds, Settings(), "project-time")


@pytest.fixture(scope="module")
def sample_tables():
    return load(SAMPLE).tables


def test_backtest_on_the_sample_world(sample_tables, tmp_path):
    bt = run_backtest(sample_tables, "delay", Settings(work_dir=tmp_path), "world")
    assert bt.split["kind"] == "project-time" and bt.lopo is None  # 300 projects: no leave-one-project-out
    out = bt.as_dict()
    assert set(out["metrics"]) >= {"model", "reference_class", "linear_regression", "on_time"}
    assert out["rows"]["test"] > 100 and out["projects"]["test"] > 50
    assert {"milestones_in_plan", "milestone_share"} & set(bt.result.bundle.features) == set()
    # The generated world has a signal: the same backtest that judges the real exports finds it.
    assert out["target"]["mae_met"], out["target"]
    assert abs(out["target"]["coverage"] - 0.8) < 0.1
    # The milestones still open at the end are right-censored test rows: the tested projects' ones beside the split's
    # test rows (its labelled figures unchanged), every project's beside those and the rows the split left out.
    c = out["censoring"]
    tested, every = c["tested_projects"], c["every_project"]
    assert tested["labelled_rows"] == out["rows"]["test"] and 0 < tested["censored_rows"] < every["censored_rows"]
    assert every["censored_milestones"] == c["open_milestones"] >= every["censored_milestones_overdue_at_snapshot"]
    assert every["labelled_rows"] >= tested["labelled_rows"]
    t = tested["target"]
    assert t["coverage_labelled"] == pytest.approx(out["target"]["coverage"])
    assert t["mae_labelled"] == pytest.approx(out["metrics"]["model"]["mae"])
    low, high = t["coverage_bounds"]
    share = tested["labelled_rows"] / t["rows"]
    assert low == pytest.approx(t["coverage_labelled"] * share) and low < t["coverage_ipcw"] < high
    # On this world the IPCW estimate came within 2.5 points of the true coverage (the simulator knows the open
    # milestones' slips; training/censoring.py), and the weights stand for about every row.
    assert abs(t["coverage_ipcw"] - 0.8) < 0.1 and t["mae_met_ipcw"], t
    assert t["rows_the_weights_stand_for"] == pytest.approx(t["rows"], rel=0.1)
    # The parts of the test window, oldest first, hold every test row once and add up to the whole's figures.
    parts = c["by_part"]
    assert len(parts) == 4 and sum(p["rows"] for p in parts) == out["rows"]["test"]
    assert sum(p["censored_rows"] for p in parts) == tested["censored_rows"]
    assert all(a["window"][1] <= b["window"][0] for a, b in zip(parts, parts[1:], strict=False))
    weighted = sum(p["coverage"] * p["rows"] for p in parts) / out["rows"]["test"]
    assert weighted == pytest.approx(out["target"]["coverage"])
    assert sum(p["mae"] * p["rows"] for p in parts) / out["rows"]["test"] == pytest.approx(
        out["metrics"]["model"]["mae"]
    )


def test_open_milestones_get_the_rows_a_reached_one_would(sample_tables):
    settings = Settings()
    snapshot = latest_fact(sample_tables)
    rows = open_milestone_rows(sample_tables, settings)
    assert len(rows) and rows["actual_date"].isna().all() and (rows["as_of"] <= snapshot).all()
    assert (rows["censored_at_days"] == (snapshot - rows["planned_date"]).dt.days).all()
    days = (rows["planned_date"] - rows["as_of"]).dt.days
    assert (days % settings.as_of_step_days == 0).all() and (days <= settings.as_of_lead_days).all()
    band = np.where(days < 0, "overdue", np.where(days <= settings.near_days, "near", "ahead"))
    assert not pd.Series(band).groupby(rows["milestone_id"].to_numpy()).value_counts().gt(1).any()
    # With a fixed horizon, one row a milestone that many days before its plan, if it was open then.
    fixed = open_milestone_rows(sample_tables, settings.model_copy(update={"horizon_days": 14}))
    assert (fixed["planned_date"] - fixed["as_of"] == pd.Timedelta(days=14)).all()
    assert fixed["milestone_id"].is_unique and (fixed["as_of"] <= snapshot).all()


def test_product_limit_is_kaplan_meier():
    # Times 1, 2, 2, 3, 4 with events at 1, 2 (once; the other 2 is censored) and 4.
    events, survival = product_limit(np.array([1, 2, 2, 3, 4.0]), np.array([1, 1, 0, 0, 1], bool))
    assert events.tolist() == [1, 2, 4]
    assert survival == pytest.approx([4 / 5, 4 / 5 * 3 / 4, 0.0])
    # Delayed entry: a row entered at 2.5 is not at risk at 1 or 2.
    events, survival = product_limit(np.array([1, 2, 3.0]), np.array([1, 1, 0], bool), entry=np.array([0, 0, 2.5]))
    assert survival == pytest.approx([1 / 2, 0.0])


def test_censored_rows_bound_coverage_and_weigh_the_labelled_ones():
    # Three labelled rows (slips 0, 10, 50; the last outside its range) and two censored (already 20 and 30 late):
    # the range of the first ends below 20 (missed for certain), the second's reaches past 30 (undetermined).
    labelled = pd.DataFrame({"slip_days": [0.0, 10, 50], "d": [5.0, 5, 5], "as_of": pd.Timestamp("2024-01-01")})
    censored = pd.DataFrame({"censored_at_days": [20.0, 30], "d": [5.0, 5], "as_of": pd.Timestamp("2024-01-01")})
    pred = {
        "expected_slip_days": np.array([0, 10, 20, 5, 40.0]),
        "lower_days": np.array([-5, 0, 0, 0, 0.0]),
        "upper_days": np.array([5, 20, 40, 15, 60.0]),
    }
    judged = Judged.of(labelled, censored, "slip_days", "d", {"model": pred}, near_days=30)
    s = judged.summary("model")
    assert (s["labelled"], s["censored"], s["certainly_missed"], s["undetermined"]) == (3, 2, 1, 1)
    assert (s["coverage_labelled"], s["coverage_min"], s["coverage_max"]) == pytest.approx((2 / 3, 2 / 5, 3 / 5))
    assert s["mae_labelled"] == pytest.approx(10) and s["mae_at_least"] == pytest.approx((0 + 0 + 30 + 15 + 0) / 5)
    # P(censoring time >= slip): 1 for slips 0 and 10; for 50, the two censorings at 20 and 30 came first.
    assert judged.weight[:3] == pytest.approx([1, 1, 1 / (2 / 3 * 1 / 2)])
    assert s["coverage_ipcw"] == pytest.approx(2 / 5) and s["weight_sum"] == pytest.approx(5)


@pytest.mark.slow
def test_backtest_command_logs_without_registering(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # work_dir is relative: the store lands in tmp_path/eqsms_work
    result = CliRunner().invoke(
        app, ["backtest", str(SAMPLE), "--model", "defect_risk", "--out", "bt.json", "--name", "world"]
    )
    assert result.exit_code == 0, result.output
    settings = get_settings()
    assert "target: ROC-AUC" in result.output and "reference class" in result.output
    saved = json.loads((tmp_path / "bt.json").read_text())
    assert saved["model"] == "defect_risk" and saved["mlflow"]["experiment"] == "eqsms-backtest-world-defect_risk"
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name("world", "defect_risk"))
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and "model.roc_auc" in runs[0].data.metrics
    assert client.search_registered_models() == []  # never a challenger of the main models
    mlflow.set_tracking_uri(None)


def test_backtest_command_refuses_other_models(tmp_path):
    result = CliRunner().invoke(app, ["backtest", str(SAMPLE), "--model", "churn", "--no-log"])
    assert result.exit_code == 2 and "'churn' is not one of defect_risk, delay" in result.output


# ----------------------------------------------------------------------------------------------- real data

needs_real = pytest.mark.skipif(
    not (REAL / "nyc_sca_capital_schedules").is_dir() or not (REAL / "construction_pm_ireland").is_dir(),
    reason=f"the real exports are not in {REAL} (see ../shared/real/README.md); CI has them",
)


def readme_section() -> str:
    return (ROOT / "README.md").read_text().split("## Results on real data", 1)[1].split("\n## ", 1)[0]


def readme_real_commands() -> list[str]:
    section = readme_section()
    blocks = re.findall(r"```text\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("eqsms ")]


def readme_results_table() -> dict[tuple[str, str], float]:
    """(dataset, metric) -> our figure, as README's results table states it."""
    out = {}
    for line in readme_section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[0] and cells[0][0].isalpha() and cells[5][:1].isdigit():
            out[(cells[0], cells[4])] = float(cells[5].split()[0].replace(",", "").rstrip("%"))
    return out


@pytest.mark.slow
@needs_real
def test_readme_real_data_commands_reproduce_the_table(tmp_path, monkeypatch):
    """README's real-data commands, run as written from a checkout beside ../shared/real, give README's figures."""
    (tmp_path / "shared").symlink_to(REAL.parent)
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    commands = readme_real_commands()
    assert [c.split()[1] for c in commands] == ["import", "backtest", "import", "backtest"]
    try:
        for command in commands:
            result = CliRunner().invoke(app, shlex.split(command)[1:])
            assert result.exit_code == 0, f"{command}\n{result.output}"
    finally:
        mlflow.set_tracking_uri(None)
    work = tmp_path / "main" / "eqsms_work"
    nyc = json.loads((work / "backtests" / "nyc-sca-delay.json").read_text())
    irish = json.loads((work / "backtests" / "field-forms-defect_risk.json").read_text())
    every, tested = nyc["censoring"]["every_project"]["target"], nyc["censoring"]["tested_projects"]["target"]
    measured = {
        ("NYC SCA capital schedules", "MAE, days"): nyc["target"]["model"],
        ("NYC SCA capital schedules", "range coverage"): nyc["target"]["coverage"] * 100,
        ("NYC SCA capital schedules", "range coverage, open phases included (IPCW)"): every["coverage_ipcw"] * 100,
        ("NYC SCA capital schedules", "MAE, days, open phases included (IPCW)"): every["mae_ipcw"],
        ("Irish field forms", "ROC-AUC"): irish["target"]["model"],
        ("Irish field forms", "ROC-AUC, pooled"): irish["leave_one_project_out"]["target"]["model"],
    }
    stated = readme_results_table()
    by_part = re.search(r"coverage is ([\d.]+)%,\s+([\d.]+)%,\s+([\d.]+)%\s+and\s+([\d.]+)%", readme_section())
    assert by_part, "README no longer states the NYC coverage by part of the test window"
    parts = nyc["censoring"]["by_part"]
    assert [float(v) for v in by_part.groups()] == pytest.approx([p["coverage"] * 100 for p in parts], abs=0.1)
    for key, value in measured.items():
        assert key in stated, f"README's table has no row {key}"
        assert stated[key] == pytest.approx(value, rel=0.02, abs=0.01), key
    # The open phases (right-censored): the coverage bounds, every project's then the tested projects', as stated.
    bounds = [float(v) for b in re.findall(r"between\s+([\d.]+)%\s+and\s+([\d.]+)%", readme_section()) for v in b]
    assert bounds == pytest.approx([v * 100 for t in (every, tested) for v in t["coverage_bounds"]], abs=0.1)
    adjusted = re.search(r"brings\s+the\s+tested\s+projects\s+to\s+([\d.]+)%\s+by\s+IPCW", readme_section())
    assert adjusted, "README no longer states the coverage with the IPCW-weighted margin"
    margin = nyc["censoring"]["ipcw_margin"]["tested_projects"]["coverage_ipcw"] * 100
    assert float(adjusted.group(1)) == pytest.approx(margin, abs=0.1)
    # What the importers found, as the README and IMPORTERS.md say.
    nyc_report = json.loads((work / "real" / "nyc_sca" / "import_report.json").read_text())
    assert nyc_report["validation"]["tables"]["milestones"]["quarantined"] == 0
    assert any("3,448 completed phases" in n for n in nyc_report["notes"])
    irish_report = json.loads((work / "real" / "field_forms" / "import_report.json").read_text())
    dropped = {u["what"]: u["count"] for u in irish_report["unmapped"]}
    assert dropped["forms of project 1345"] == 396  # the export's duplicated project, kept once under 1343
