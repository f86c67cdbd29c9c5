"""`eqsms retrain` (issue 13 §4): when it trains, what it says in one line, and its exit status for a scheduler."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings
from monitoring.retrain import CANNOT, DONE, NOT_TOLD, too_soon, why_not
from serving.local import free_port

WORLD = Settings.model_construct().data_dir


def test_the_same_export_is_not_retrained_on():
    last = {"fingerprint": "abc123", "trained": True, "at": "2026-11-30T02:00:00+00:00"}
    assert "nothing to do" in why_not("abc123", last, "changed", None, force=False)
    assert why_not("abc123", last, "changed", None, force=True) is None
    assert why_not("def456", last, "changed", None, force=False) is None
    assert why_not("def456", {**last, "trained": False}, "changed", None, force=False) is None


def test_when_flagged_it_waits_for_the_monitor():
    assert "run `eqsms monitor`" in why_not("new", None, "flagged", None, force=False)
    assert "no flag" in why_not("new", None, "flagged", {"flagged": False, "reasons": []}, force=False)
    assert why_not("new", None, "flagged", {"flagged": True, "reasons": ["x"]}, force=False) is None


def test_min_days_counts_days_of_new_data_since_the_last_training():
    last = {"fingerprint": "abc", "trained": True, "data_until": "2021-06-01 00:00:00"}
    said = too_soon("2021-06-20", last, 28)
    assert "19 days of new data" in said and "--min-days asks for 28" in said
    assert too_soon("2021-06-29", last, 28) is None  # 28 days: enough
    assert "27 days of new data" in too_soon("2021-06-28 23:00", last, 28)  # 27.96 days: not yet, and not "28"
    assert too_soon("2021-06-20", last, 0) is None  # not asked
    assert too_soon("2021-06-20", {**last, "trained": False}, 28) is None  # the last run did not train
    assert too_soon("2021-06-20", {"fingerprint": "abc", "trained": True}, 28) is None  # a run before data_until


def run(*args: str):
    return CliRunner().invoke(app, ["retrain", *map(str, args)])


def test_an_export_that_cannot_be_used_is_exit_2_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    missing = run(tmp_path / "nowhere")
    assert missing.exit_code == CANNOT and len(missing.output.strip().splitlines()) == 1
    broken = tmp_path / "export"
    shutil.copytree(WORLD, broken)
    (broken / "milestones.csv").write_text("milestone_id,project_id\nM1,P1\n")
    unknown = run(WORLD, "--when", "sometimes")
    assert unknown.exit_code == CANNOT and "'sometimes' is not one of changed, flagged" in unknown.output
    refused = run(broken)
    assert refused.exit_code == CANNOT and "milestones" in refused.output
    assert "cannot use" in refused.output.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_first_retrain_promotes_and_says_when_the_service_was_not_told(tmp_path, monkeypatch):
    """An empty store: the three models trained and promoted (first models); the service at --url is down, so the
    exit status is 1 and the line says so. The same export again: nothing to do, exit 0."""
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    down = f"http://127.0.0.1:{free_port()}"
    first = run(WORLD, "--url", down)
    line = next(line for line in first.output.splitlines() if line.startswith("retrain "))  # MLflow prints too
    assert first.exit_code == NOT_TOLD, first.output
    assert line.startswith("retrain ATTENTION") and "defect_risk promoted v1" in line and "not reached" in line
    kept = json.loads((tmp_path / "retrain" / "last.json").read_text())
    assert kept["trained"] and sorted(kept["promoted"]) == ["churn", "defect_risk", "delay"]
    assert kept["data_until"].startswith("20")  # the export's newest fact, which --min-days counts from
    again = run(WORLD, "--url", down)
    assert again.exit_code == DONE and "nothing to do" in again.output
