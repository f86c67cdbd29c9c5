"""Planners' stated outcomes as training labels (issue 13 §1, ``training.feedback``): where the export has no outcome,
known from the feedback's time, the export winning, and never a feature value changed."""

from __future__ import annotations

import pandas as pd
import pytest

from eqsms.predlog import PredictionLog, read_feedback
from eqsms.settings import Settings
from features.families import MILESTONE_FAMILIES, Context, compute
from features.targets import target
from features.validate import validate_tables
from tests.tiny_world import raw_frames
from training.feedback import Counts, merge_outcomes, stated_outcomes
from training.pipeline import datasets_from_data, training_datasets
from training.tracking import feedback_metrics

T = pd.Timestamp


def _feedback(*rows: dict) -> pd.DataFrame:
    """Feedback rows as ``PredictionLog.feedback`` reads them."""
    base = {"milestone_id": None, "outcome_label": float("nan"), "corrected_level": None, "note": ""}
    frame = pd.DataFrame([{**base, **row} for row in rows])
    frame["id"] = range(1, len(frame) + 1)
    frame["at"] = pd.to_datetime(frame["at"])
    return frame


# ------------------------------------------------------------------------------------------------- pure function
def test_newest_outcome_counts_and_notes_or_levels_state_none():
    stated = stated_outcomes(
        _feedback(
            dict(model="defect_risk", project_id="P1", milestone_id="M1", outcome_label=1.0, at="2021-01-05"),
            dict(model="defect_risk", project_id="P1", milestone_id="M1", outcome_label=0.0, at="2021-01-09"),
            dict(model="defect_risk", project_id="P1", milestone_id="M1", corrected_level="high", at="2021-01-12"),
            dict(model="defect_risk", project_id="P1", milestone_id="M2", note="sub replaced", at="2021-01-12"),
            dict(model="defect_risk", project_id="P1", milestone_id="M3", corrected_level="low", at="2021-01-12"),
            dict(model="churn", project_id="P1", outcome_label=1.0, at="2021-01-03"),
            dict(model="churn", project_id="P1", outcome_label=0.0, at="2021-01-02"),  # older, given after by id
        )
    )
    assert len(stated) == 2  # the note and the levels state no outcome; one outcome a target
    m1 = stated[stated["model"] == "defect_risk"].iloc[0]
    assert (m1["milestone_id"], m1["outcome"], m1["known_at"]) == ("M1", 0.0, T("2021-01-09"))  # newest by time
    assert stated.loc[stated["model"] == "churn", "outcome"].item() == 1.0
    assert stated_outcomes(_feedback(dict(model="delay", project_id="P", note="hm", at="2021-01-01"))).empty


def test_the_export_wins_and_missing_labels_are_filled():
    spec = target("defect_risk")
    known = pd.DataFrame(
        {
            "project_id": ["P1", "P1", "P1", "P2"],
            "milestone_id": ["M1", "M2", "M3", "M4"],
            "export": [1.0, 0.0, float("nan"), float("nan")],  # M3, M4: no outcome in the export
        }
    )
    stated = stated_outcomes(
        _feedback(
            dict(model="defect_risk", project_id="P1", milestone_id="M1", outcome_label=1.0, at="2021-02-01"),
            dict(model="defect_risk", project_id="P1", milestone_id="M2", outcome_label=1.0, at="2021-02-01"),
            dict(model="defect_risk", project_id="P1", milestone_id="M3", outcome_label=1.0, at="2021-02-01"),
            dict(model="defect_risk", project_id="P2", milestone_id="M4", corrected_level="high", at="2021-02-01"),
            dict(model="defect_risk", project_id="P1", milestone_id="M9", outcome_label=0.0, at="2021-02-01"),
            dict(model="defect_risk", project_id="P2", milestone_id="M1", outcome_label=0.0, at="2021-02-01"),
            dict(model="delay", project_id="P2", milestone_id="M4", outcome_label=5.0, at="2021-02-01"),
        )
    )
    merged = merge_outcomes(spec, known, stated)

    assert merged.labels[["milestone_id", "outcome"]].values.tolist() == [["M3", 1.0]]  # M4: a level, no outcome
    assert merged.labels["known_at"].tolist() == [T("2021-02-01")]
    # M1 agrees, M2 conflicts (export kept); M9 and M1-of-P2 name no milestone of the export; delay is another target
    assert merged.counts == Counts(stated=5, labels=1, agreed=1, conflicts=1, unknown=2)

    slip = pd.DataFrame({"project_id": ["P1"], "milestone_id": ["M1"], "export": [10.0]})
    said = stated_outcomes(
        _feedback(dict(model="delay", project_id="P1", milestone_id="M1", outcome_label=10.2, at="2021-02-01"))
    )
    assert merge_outcomes(target("delay"), slip, said).counts.agreed == 1  # within half a day
    said.loc[0, "outcome"] = 12.0
    assert merge_outcomes(target("delay"), slip, said).counts.conflicts == 1


# ------------------------------------------------------------------------------------------ the tiny world, log in
def _world(without: tuple[str, ...] = ("M2",)) -> tuple[dict, object]:
    """The tiny world with the acceptance of ``without`` not exported (the raw frames, and them validated)."""
    raw = raw_frames()
    ms = raw["milestones"]
    ms.loc[ms["milestone_id"].isin(without), "first_pass_accepted"] = ""
    return raw, validate_tables(raw)


def _log(tmp_path, *feedback: dict) -> str:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    with PredictionLog(url) as log:
        for row in feedback:
            log.add_feedback(**row)
    return url


M2_FAILED = dict(project_id="P1", milestone_id="M2", model="defect_risk", outcome_label=1, at="2020-07-10T15:00:00")


def _rows(ds, milestone: str) -> pd.DataFrame:
    return ds.frame[ds.frame["milestone_id"] == milestone]


def test_a_stated_outcome_labels_rows_before_the_feedback_only(tmp_path):
    _, data = _world()
    url = _log(tmp_path, M2_FAILED, dict(M2_FAILED, outcome_label=0, note="typo", at="2020-07-01T08:00:00"))
    settings = Settings(prediction_log_url=url, work_dir=tmp_path)

    ds = datasets_from_data(data, settings, ["defect_risk"])["defect_risk"]

    m2 = _rows(ds, "M2")
    assert len(m2) and (m2["first_pass_failed"] == 1).all()  # the newest feedback: failed
    assert (m2["as_of"] < T("2020-07-10T15:00:00")).all()  # known at the feedback's time, not before
    assert m2["as_of"].max() == T("2020-07-08")  # the grid's last point before it (M2 planned 2020-07-01)
    assert ds.frame["as_of"].is_monotonic_increasing
    assert ds.meta["feedback"] == Counts(stated=1, labels=1, rows=len(m2)).as_dict()
    assert feedback_metrics(ds)["feedback.labels"] == 1.0 and feedback_metrics(ds)["feedback.conflicts"] == 0.0
    plain = datasets_from_data(data, Settings(prediction_log_url="off", work_dir=tmp_path), ["defect_risk"])
    assert ds.fingerprint != plain["defect_risk"].fingerprint  # another dataset, another identity
    assert ds.categorical_columns == plain["defect_risk"].categorical_columns  # categories kept through the merge


def test_feedback_never_changes_a_feature(tmp_path):
    """The planner-labelled rows' features are those of the export at the same as_of, even of the export that
    holds the outcome (it is known only when reached, after those as_of); the export's rows are unchanged."""
    _, data = _world()
    settings = Settings(prediction_log_url=_log(tmp_path, M2_FAILED), work_dir=tmp_path)
    ds = datasets_from_data(data, settings, ["defect_risk"])["defect_risk"]
    plain = datasets_from_data(data, Settings(prediction_log_url="off", work_dir=tmp_path), ["defect_risk"])
    plain = plain["defect_risk"]

    keys = ["milestone_id", "as_of"]
    same = ds.frame.merge(plain.frame[keys], on=keys).sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(same, plain.frame.sort_values(keys, ignore_index=True), check_categorical=False)

    full = validate_tables(raw_frames()).tables  # M2's acceptance exported (it failed), known from 2020-07-21
    m2 = _rows(ds, "M2")
    rows = full["milestones"].set_index("milestone_id").loc[m2["milestone_id"]].reset_index()
    rows["as_of"] = m2["as_of"].to_numpy()
    expected = compute(Context.build(full, settings), rows, MILESTONE_FAMILIES)
    got = m2[ds.feature_columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected[ds.feature_columns], check_categorical=False, check_dtype=False)


def test_delay_and_churn_outcomes_and_unknown_ids(tmp_path):
    _, data = _world(without=())
    url = _log(
        tmp_path,
        # M4 (P2) is not reached in the export: a 12-day slip, said on 2021-06-20
        dict(project_id="P2", milestone_id="M4", model="delay", outcome_label=12, at="2021-06-20T09:00:00"),
        dict(project_id="P1", milestone_id="M1", model="delay", outcome_label=3, at="2021-06-20"),  # export: 10
        dict(project_id="P9", milestone_id="M9", model="delay", outcome_label=3, at="2021-06-20"),  # unknown
        dict(project_id="P1", model="churn", outcome_label=1, at="2021-06-20"),  # handed over, window not over
        dict(project_id="P2", model="churn", outcome_label=1, at="2021-06-20"),  # no handover: no row
        # M4 said to be accepted before any row of it could be built: labelled, but no row
        dict(project_id="P2", milestone_id="M4", model="defect_risk", outcome_label=0, at="2020-01-01"),
    )
    targets = ["defect_risk", "delay", "churn"]
    out = datasets_from_data(data, Settings(prediction_log_url=url, work_dir=tmp_path), targets)

    delay, churn = out["delay"], out["churn"]
    m4 = _rows(delay, "M4")
    assert len(m4) and (m4["slip_days"] == 12).all() and (m4["late"] == 1).all()
    assert (m4["as_of"] <= T("2021-06-13")).all()  # never after the stated day it was reached (plan + 12)
    assert (_rows(delay, "M1")["slip_days"] == 10).all()  # the export's slip kept
    assert delay.meta["feedback"] == Counts(stated=3, labels=1, rows=len(m4), conflicts=1, unknown=1).as_dict()
    assert feedback_metrics(delay)["feedback.conflicts"] == 1.0
    p1 = churn.frame[churn.frame["project_id"] == "P1"]
    assert p1[["as_of", "churned"]].values.tolist() == [[T("2021-01-20"), 1]]
    assert churn.meta["feedback"] == Counts(stated=2, labels=2, rows=1, no_rows=1).as_dict()
    assert out["defect_risk"].meta["feedback"] == Counts(stated=1, labels=1, no_rows=1).as_dict()
    assert "M4" not in set(out["defect_risk"].frame["milestone_id"])


# ----------------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("on", [True, False])
def test_training_datasets_read_the_log_only_when_asked(tmp_path, on):
    """`eqsms train`'s datasets from a folder: the planners' outcomes join after the named artifact is written (it
    stays the export's), on a rebuilt and on a reused dataset alike; with the setting off, none."""
    raw, _ = _world(without=("M2", "M3"))
    world = tmp_path / "world"
    world.mkdir()
    for table, frame in raw.items():
        frame.drop(columns=["_source_file", "_source_row"]).to_csv(world / f"{table}.csv", index=False)
    m3 = dict(M2_FAILED, milestone_id="M3", outcome_label=0, at="2021-02-01")
    url = _log(tmp_path, M2_FAILED, m3, dict(M2_FAILED, milestone_id="M4", project_id="P7"))
    settings = Settings(prediction_log_url=url, work_dir=tmp_path, training_uses_feedback=on)

    def load(folder):
        from features.validate import load as read

        return read(folder, settings=settings)

    built = training_datasets(world, settings, ["defect_risk"], load)["defect_risk"]
    reused = training_datasets(world, settings, ["defect_risk"], load)["defect_risk"]

    on_disk = pd.read_parquet(settings.datasets_dir / "defect_risk.parquet")
    assert not on_disk["milestone_id"].isin(["M2", "M3"]).any()  # the artifact: the export's labels alone
    for ds in (built, reused):
        labelled = ds.frame.groupby("milestone_id")["first_pass_failed"].first().to_dict()
        if on:
            assert labelled["M2"] == 1 and labelled["M3"] == 0
            assert ds.meta["feedback"]["labels"] == 2 and ds.meta["feedback"]["unknown"] == 1
        else:
            assert "M2" not in labelled and "M3" not in labelled and "feedback" not in ds.meta
    assert built.fingerprint == reused.fingerprint


def test_no_log_no_feedback_and_no_file_made(tmp_path):
    _, data = _world()
    missing = tmp_path / "nowhere" / "predictions.db"
    assert read_feedback(f"sqlite:///{missing}").empty and not missing.parent.exists()  # reading makes nothing
    out = datasets_from_data(data, Settings(prediction_log_url=f"sqlite:///{missing}"), ["defect_risk"])
    assert out["defect_risk"].meta["feedback"] == Counts().as_dict()
    assert "M2" not in set(out["defect_risk"].frame["milestone_id"])


def test_eqsms_train_uses_the_planners_outcomes_and_says_so(tmp_path, monkeypatch):
    """`eqsms train` on a small generated world whose export lost two acceptances, with a planner's outcome for each
    (and one for an unknown milestone): the run logs the counts to MLflow and the summary says them."""
    import mlflow
    from typer.testing import CliRunner

    from eqsms.cli import app

    work, world = tmp_path / "work", tmp_path / "world"
    monkeypatch.setenv("EQSMS_WORK_DIR", str(work))
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--projects", "60", "--out", str(world)]).exit_code == 0
    ms = pd.read_csv(world / "milestones.csv", dtype=str)
    judged = ms[ms["first_pass_accepted"].notna()].tail(2)
    ms.loc[judged.index, "first_pass_accepted"] = None
    ms.to_csv(world / "milestones.csv", index=False)
    feedback = [
        dict(
            project_id=m.project_id, milestone_id=m.milestone_id, model="defect_risk", outcome_label=1, at=m.actual_date
        )
        for m in judged.itertuples()
    ]
    _log(work, *feedback, dict(feedback[0], project_id="P-unknown"))

    done = runner.invoke(app, ["train", str(world), "--model", "defect_risk"])

    assert done.exit_code == 0, done.output
    said = "defect_risk: 2 planner-stated outcomes used as labels"
    assert f"planners' feedback: {said}" in done.output and "1 for unknown ids (ignored)" in done.output
    assert any(line.split()[:2] == ["planners'", "outcomes"] and said in line for line in done.output.splitlines())
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    run = mlflow.search_runs(experiment_names=["eqsms-defect_risk"], output_format="list")[0]
    assert run.data.metrics["feedback.labels"] == 2 and run.data.metrics["feedback.conflicts"] == 0
    assert run.data.metrics["feedback.unknown"] == 1 and run.data.metrics["feedback.rows"] > 0


def test_an_unreadable_log_stops_training_in_one_line(tmp_path, monkeypatch):
    """The log is on and training uses its feedback, but the file is no database: `eqsms train` says so in one line
    with what to set (exit 2), rather than train on other labels than asked or print a traceback."""
    from typer.testing import CliRunner

    from eqsms.cli import app

    work, world = tmp_path / "work", tmp_path / "world"
    work.mkdir()
    (work / "predictions.db").write_text("not a database\n" * 100)
    monkeypatch.setenv("EQSMS_WORK_DIR", str(work))
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--projects", "60", "--out", str(world)]).exit_code == 0

    done = runner.invoke(app, ["train", str(world), "--model", "defect_risk"])

    assert done.exit_code == 2, done.output
    last = done.output.strip().splitlines()[-1]
    assert "cannot build the datasets" in done.output and "Traceback" not in done.output
    assert "EQSMS_TRAINING_USES_FEEDBACK=false" in done.output and "predictions.db" in done.output, last
