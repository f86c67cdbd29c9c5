"""The monitoring loop (monitoring/loop.py): the export at a cut holds nothing later, the oracle's expected AUC, and
a few weeks of the loop on a small world with a shift and on its control (``benchmarks/loop.py`` runs a year)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eqsms.settings import Settings
from features.contract import FACT_COLUMNS, latest_fact
from features.datasets import milestone_rows, project_rows, tables_fingerprint
from features.families import Context
from features.validate import load
from monitoring.estimate import estimated_auc
from monitoring.loop import (
    LABEL,
    WEEK,
    expected_auc,
    export_at,
    loop_retrained,
    loop_world,
    retrain_effect,
    schedule,
    train_champions,
    write_export,
)
from world import generate_world, simulate_world
from world.shift import Shift


def test_the_export_at_a_cut_holds_what_was_recorded_before_it_and_gives_the_same_features():
    tables = simulate_world(150, seed=4).tables
    _, cut = schedule(tables)
    export = export_at(tables, cut)
    assert latest_fact(export) < cut
    for name, columns in FACT_COLUMNS.items():
        for column in columns:
            assert (export[name][column].dropna() < cut).all(), (name, column)
    assert (export["resources"]["week_start"] + WEEK <= cut).all()
    full, past = (frame.set_index("milestone_id") for frame in (tables["milestones"], export["milestones"]))
    later = full.loc[past.index, "actual_date"] >= cut
    assert later.any() and past.loc[later.to_numpy(), ["actual_date", "first_pass_accepted"]].isna().all().all()
    assert len(export["projects"]) < len(tables["projects"])

    # At the cut, the export and the full tables agree on every feature: what the champion learned from is what the
    # engine, answering on the full tables, computes at that as_of (the point-in-time rule, both ways).
    settings = Settings()
    still_open = export["milestones"][export["milestones"]["actual_date"].isna()].assign(as_of=cut)
    projects = still_open[["project_id"]].drop_duplicates().assign(as_of=cut)
    for compute, rows in ((milestone_rows, still_open), (project_rows, projects)):
        then, now = (compute(Context.build(t, settings), rows.reset_index(drop=True)) for t in (export, tables))
        pd.testing.assert_frame_equal(then, now, check_categorical=False)


def test_the_expected_auc_with_the_truth_as_weights():
    rng = np.random.default_rng(3)
    p = np.round(rng.random(400), 2)  # ties too
    assert expected_auc(p, p) == pytest.approx(estimated_auc(p), abs=1e-12)
    assert expected_auc(p, (p > 0.5).astype(float)) == pytest.approx(1.0)  # a truth p sorts perfectly
    assert expected_auc(p, np.full(p.size, 0.2)) == pytest.approx(0.5)  # a truth p knows nothing of
    assert np.isnan(expected_auc(p, np.zeros(p.size)))


def test_the_retrain_effect_compares_the_old_and_the_new_champion_on_the_same_weeks():
    rng = np.random.default_rng(8)
    start, at = pd.Timestamp("2021-01-04"), pd.Timestamp("2021-01-18")
    weeks = [start + k * WEEK for k in range(5)]
    truth = pd.Series(rng.uniform(0.05, 0.6, 300), index=np.arange(300))

    def run(noise: float, dates: list[pd.Timestamp]) -> dict:
        rows = pd.DataFrame([(m, t) for t in dates for m in range(300)], columns=["milestone_id", "as_of"])
        p = np.clip(rows["milestone_id"].map(truth) + rng.normal(0, noise, len(rows)), 0.01, 0.99)
        rows["probability"] = p
        rows[LABEL] = (rng.random(len(rows)) < rows["milestone_id"].map(truth)).astype(float)
        table = pd.DataFrame({"as_of": dates, "realised_auc": 0.7, "oracle_auc": 0.65})
        return {"table": table, "rows": rows}

    old, new = run(0.3, weeks), run(0.01, weeks[3:])
    effect = retrain_effect(old, new, start + WEEK, at, truth)
    before, after = effect["before"]["old"], effect["after"]
    assert (before["weeks"], before["from"], before["to"]) == (2, "2021-01-11", "2021-01-18")  # the flag's week too
    assert after["old"]["weeks"] == after["new"]["weeks"] == 2 and after["old"]["from"] == "2021-01-25"
    assert after["old"]["pooled_judged"] == after["new"]["pooled_judged"] == 600  # the same rows, both models
    assert after["new"]["pooled_oracle_auc"] > after["old"]["pooled_oracle_auc"]  # the new one nearer the truth
    assert after["new"]["pooled_ceiling_auc"] == pytest.approx(after["old"]["pooled_ceiling_auc"])
    assert after["new"]["pooled_oracle_auc"] <= after["new"]["pooled_ceiling_auc"] + 1e-12
    assert before["mean_weekly_realised_auc"] == pytest.approx(0.7)
    never = retrain_effect(old, None, start + WEEK, None, truth)
    assert list(never) == ["before"] and never["before"]["old"]["weeks"] == 4


@pytest.mark.slow
def test_the_loop_flags_the_shift_within_weeks_and_never_the_control(tmp_path):
    """600 projects, the champions trained on the export two weeks before a workmanship shift (lighter training:
    the loop is tested, not the model), four weeks judged in the control and the shifted world."""
    generate_world(600, 5, tmp_path / "control", fmt="parquet")
    control = load(tmp_path / "control").tables
    shift_from, cut = schedule(control, lead=2)
    generate_world(600, 5, tmp_path / "shifted", fmt="parquet", shift=Shift("workmanship", str(shift_from.date())))
    export = export_at(control, cut)
    assert tables_fingerprint(export_at(load(tmp_path / "shifted").tables, cut)) == tables_fingerprint(export)
    write_export(export, tmp_path / "cut")
    settings = Settings(
        work_dir=tmp_path / "store",
        data_dir=tmp_path / "cut",
        drift_min_rows=100,  # ~300 rows a week here
        n_estimators=100,
        backtest_folds=2,
        refit_on_all_rows=False,
    )
    assert set(train_champions(tmp_path / "cut", settings)) == {"defect_risk", "delay", "churn"}

    dates = [cut, shift_from, shift_from + 4 * WEEK, shift_from + 6 * WEEK]
    runs = {name: loop_world(tmp_path / name, settings, cut, dates, shift_from) for name in ("control", "shifted")}
    control_weeks, shifted_weeks = runs["control"]["table"], runs["shifted"]["table"]
    assert list(control_weeks["as_of"]) == dates and (control_weeks["rows"] >= 100).all()
    assert not control_weeks["flagged"].any(), control_weeks[["as_of", "drifted", "prediction_psi"]]
    assert list(shifted_weeks["flagged"]) == [False, False, True, True], shifted_weeks[["as_of", "drifted"]]
    assert (shifted_weeks["features_drifted"].iloc[2:] >= 5).all()  # the quality features, not one stray
    assert runs["control"]["summary"]["flags"] == 0 and runs["shifted"]["summary"]["weeks_to_flag"] == 4
    # Before the shift the worlds are one: the same rows, scores and estimate.
    pd.testing.assert_series_equal(control_weeks["estimated_auc"].iloc[:2], shifted_weeks["estimated_auc"].iloc[:2])
    judged = control_weeks.dropna(subset=["realised_auc"])
    assert len(judged) and ((judged["estimated_auc"] - judged["realised_auc"]).abs() < 0.15).all()

    # The retrain at the first flag: challengers trained on the shifted world's export at that week in a copy of the
    # store, judged by the gate (lenient here, so the new champion's weeks are tested too: the gate is tested
    # elsewhere); the new champion scores the weeks after the flag on the rows the old one scored.
    at, store = dates[2], tmp_path / "store_shifted"
    lenient = settings.model_copy(update={"promotion_tolerance": 1.0, "baseline_tolerance": 1.0})
    run = loop_retrained(tmp_path / "shifted", lenient, store, at, dates, min_positives=5)
    assert set(run["decisions"]) == {"defect_risk", "delay", "churn"}
    gate = run["decisions"]["defect_risk"]
    assert gate["promoted"] and "newer than the champion's data" in gate["reason"], gate  # the same fresh rows
    assert latest_fact(load(store / "export").tables) < at
    new = run["new"]
    assert new["version"] == gate["challenger"] != gate["champion_before"]
    assert list(new["table"]["as_of"]) == dates[3:]
    old_rows = runs["shifted"]["rows"]
    old_rows = old_rows[old_rows["as_of"] == dates[3]]
    assert list(new["rows"]["milestone_id"]) == list(old_rows["milestone_id"])  # the same rows, a new model
    assert not np.allclose(new["rows"]["probability"], old_rows["probability"])
    # The loop's own store is untouched: its champion is still the one trained at the cut.
    from training import tracking

    client = tracking.configure(settings)
    assert tracking.alias_version(client, "defect_risk", "champion") == gate["champion_before"]
    effect = retrain_effect(runs["shifted"], new, shift_from, at)
    assert effect["after"]["old"]["pooled_judged"] == effect["after"]["new"]["pooled_judged"]
