"""Each feature family on the tiny hand-written world, against values worked out by hand (see tiny_world.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from eqsms.settings import Settings
from features.contract import latest_fact
from features.datasets import (
    build_dataset,
    milestone_rows,
    open_milestones,
    project_milestone_features,
)
from features.families import Context
from features.targets import horizon_band
from tests.tiny_world import validated_tables

AS_OF = pd.Timestamp("2020-12-17")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validated_tables()


@pytest.fixture(scope="module")
def ctx(tables) -> Context:
    # One row a milestone, 14 days before its plan: the hand-worked values below are of those rows.
    return Context.build(tables, Settings(recent_weeks=2, horizon_days=14))


@pytest.fixture(scope="module")
def m3(ctx, tables) -> pd.Series:
    """The features of P1's handover milestone, scored 14 days ahead."""
    rows = open_milestones(tables, AS_OF, milestone_ids=["M3"])
    assert len(rows) == 1
    return milestone_rows(ctx, rows).iloc[0]


def check(row: pd.Series, expected: dict[str, float | str]) -> None:
    for name, value in expected.items():
        got = row[name]
        if isinstance(value, float) and math.isnan(value):
            assert pd.isna(got), name
        elif isinstance(value, str):
            assert got == value, name
        else:
            assert got == pytest.approx(value), name


def test_project_and_milestone_features(m3):
    check(
        m3,
        {
            "project_type": "school",
            "region": "north",
            "contract_value": 1_000_000.0,
            "planned_duration_days": 334.0,  # 2020-02-01 .. 2020-12-31
            "days_since_start": 320.0,
            "elapsed_share": 320 / 334,
            "days_past_planned_end": -14.0,
            "days_since_award": 351.0,
            "milestone_kind": "handover",
            "milestone_sequence": 3.0,
            "milestones_in_plan": 3.0,
            "milestone_share": 1.0,
            "days_to_milestone": 14.0,
        },
    )


def test_inspection_features(m3):
    check(
        m3,
        {
            "inspections_30d": 3.0,  # I2, I3, I4 (I5 is after as_of)
            "inspections_failed_30d": 1.0,
            "inspection_fail_rate_30d": 1 / 3,
            "inspections_90d": 3.0,  # I1 (2020-09-01) is 107 days before
            "inspections_to_date": 4.0,
            "inspections_failed_to_date": 2.0,
            "inspection_fail_rate_to_date": 0.5,
            "inspection_conditional_rate_90d": 1 / 3,
            "defects_found_90d": 3.0,
            "defects_found_30d": 3.0,
            "severe_findings_30d": 1.0,
            "defects_open": 2.0,  # 6 found, I1 (3) and I4 (1) closed before; I2 closes after as_of
            "inspections_open": 2.0,
            "severe_findings_90d": 1.0,
            "max_severity_to_date": 3.0,
            "days_to_close_mean": (19 + 0.25) / 2,
            "days_since_failed_inspection": 26.625,  # 2020-11-20 09:00
        },
    )


def test_resource_features(m3):
    # The week of 2020-12-14 is not over on 2020-12-17; "recent" is the last 2 weeks (settings).
    check(
        m3,
        {
            "resource_weeks_reported": 3.0,
            "labour_hours_ratio_to_date": 1.0,
            "overtime_share_to_date": 0.1,
            "late_delivery_share_to_date": 0.2,
            "spi_to_date": 0.9,
            "cpi_to_date": 2700 / 2800,
            "downtime_hours_to_date": 8.0,
            "labour_hours_ratio_recent": 1.05,
            "overtime_share_recent": 20 / 210,
            "late_delivery_share_recent": 1 / 6,
            "spi_recent": 0.9,
            "cpi_recent": 1.0,
            "downtime_hours_recent": 3.0,
        },
    )


def test_complaint_features(m3):
    check(
        m3,
        {
            "complaints_30d": 2.0,
            "complaints_90d": 3.0,
            "complaints_to_date": 3.0,
            "complaints_open": 2.0,  # K2 is resolved after as_of
            "complaints_unanswered": 1.0,
            "complaint_severity_mean": 2.0,
            "complaint_response_hours_mean": 30.0,  # 12 h and 48 h
            "complaints_escalated": 0.0,  # K2's escalation is known only at its resolution, after as_of
        },
    )


def test_survey_features(m3):
    check(m3, {"surveys_to_date": 2.0, "csat_latest": 3.0, "csat_trend": -1.0, "nps_latest": 6.0, "nps_trend": -2.0})
    check(m3, {"csat_mean": 3.5, "nps_mean": 7.0})


def test_milestone_history_features(m3):
    check(
        m3,
        {
            "milestones_done": 2.0,
            "milestones_behind_plan": 0.0,
            "prior_slip_mean_days": 15.0,
            "prior_slip_last_days": 20.0,
            "prior_first_pass_failures": 1.0,
            "prior_first_pass_fail_rate": 0.5,
        },
    )


def test_kind_history_features(m3, ctx, tables):
    # Handovers whose acceptance was known across the firm before as_of: only P0's M0 (failed); M3 is still ahead.
    check(m3, {"firm_kind_first_pass_fail_rate": 1.0})
    # A project with no history of its own gets the firm's: P2's foundation after P1's M1 (passed first time).
    rows = open_milestones(tables, pd.Timestamp("2021-05-01"), project_ids=["P2"])
    row = milestone_rows(ctx, rows).iloc[0]
    check(row, {"milestones_done": 0.0, "firm_kind_first_pass_fail_rate": 0.0})
    # Before any foundation was accepted, and for a kind no milestone has had: nothing known.
    early = rows.assign(as_of=pd.Timestamp("2020-04-11"))
    check(milestone_rows(ctx, early).iloc[0], {"firm_kind_first_pass_fail_rate": float("nan")})
    check(
        milestone_rows(ctx, rows.assign(kind="commissioning")).iloc[0], {"firm_kind_first_pass_fail_rate": float("nan")}
    )


def test_client_features(m3):
    check(
        m3,
        {
            "client_projects_awarded": 2.0,  # P0 and P1; P2 is awarded in 2021
            "client_projects_completed": 1.0,
            "client_delay_mean_days": 10.0,  # P0: 2019-10-31 -> 2019-11-10
            "client_complaints_to_date": 3.0,
            "client_tenure_days": 716.0,
        },
    )


def test_missing_facts_give_missing_features(ctx, tables):
    """A project with no inspections, resources, complaints or surveys gets NaN rates, zero counts."""
    rows = open_milestones(tables, pd.Timestamp("2021-05-01"), project_ids=["P2"])
    row = milestone_rows(ctx, rows).iloc[0]
    check(row, {"inspections_to_date": 0.0, "inspection_fail_rate_to_date": float("nan"), "spi_to_date": float("nan")})
    check(row, {"csat_latest": float("nan"), "complaint_response_hours_mean": float("nan")})


def test_defect_risk_and_delay_rows(ctx, tables):
    ds = build_dataset("defect_risk", ctx)
    frame = ds.frame.set_index("milestone_id")
    assert list(frame.index) == ["M0", "M1", "M2", "M3"]  # M4 is not reached yet
    assert frame.loc["M3", "as_of"] == AS_OF
    assert frame["first_pass_failed"].tolist() == [1, 0, 1, 0]
    dl = build_dataset("delay", ctx).frame.set_index("milestone_id")
    assert dl["slip_days"].tolist() == [10.0, 10.0, 20.0, 20.0]
    assert dl["late"].tolist() == [1, 1, 1, 1]
    assert ds.feature_columns == build_dataset("delay", ctx).feature_columns
    assert set(ds.categorical_columns) == {"project_type", "region", "milestone_kind"}


def test_churn_rows(ctx, tables):
    assert latest_fact(tables) == pd.Timestamp("2021-03-01")  # P2's award
    frame = build_dataset("churn", ctx).frame.set_index("project_id")
    # P0: C1 came back (P1 awarded 52 days later); P3: C2 never did; P1's window is not over.
    assert frame["churned"].to_dict() == {"P0": 0, "P3": 1}
    assert frame.loc["P3", "as_of"] == pd.Timestamp("2019-12-01")


def test_fingerprint_changes_with_data_and_settings(tables):
    base = build_dataset("defect_risk", Context.build(tables, Settings()), "a").fingerprint
    assert build_dataset("defect_risk", Context.build(tables, Settings()), "a").fingerprint == base
    assert build_dataset("defect_risk", Context.build(tables, Settings()), "b").fingerprint != base
    assert build_dataset("defect_risk", Context.build(tables, Settings(horizon_days=21)), "a").fingerprint != base
    assert build_dataset("defect_risk", Context.build(tables, Settings(near_days=14)), "a").fingerprint != base


def test_band_rows_one_per_band_on_the_grid_before_the_milestone_is_reached(tables):
    """With no fixed horizon, a reached milestone gets a row in each horizon band it went through, on the weekly grid
    anchored on its plan, from the lead time (not before its project's start) until it was reached."""
    settings = Settings(recent_weeks=2)
    ds = build_dataset("delay", Context.build(tables, settings))
    frame = ds.frame.merge(tables["milestones"][["milestone_id", "planned_date", "actual_date"]], on="milestone_id")
    start = frame["project_id"].map(tables["projects"].set_index("project_id")["planned_start"])
    to_plan = (frame["planned_date"] - frame["as_of"]).dt.days
    assert (frame["days_to_milestone"] == to_plan).all()
    assert (to_plan % settings.as_of_step_days == 0).all()
    assert (frame["as_of"] <= frame["actual_date"]).all() and (frame["as_of"] >= start).all()
    assert (to_plan <= settings.as_of_lead_days).all()
    bands = pd.Series(horizon_band(to_plan, settings.near_days), index=frame.index)
    assert not bands.groupby(frame["milestone_id"]).value_counts().gt(1).any()  # at most one row a band
    # Every band a milestone went through on the grid has its row: an overdue one once reached a week after plan.
    went_overdue = (frame["actual_date"] - frame["planned_date"]).dt.days >= settings.as_of_step_days
    assert set(frame.loc[went_overdue, "milestone_id"]) == set(frame.loc[bands == "overdue", "milestone_id"])
    assert (frame.loc[bands == "overdue", "slip_days"] >= -frame.loc[bands == "overdue", "days_to_milestone"]).all()
    assert frame.groupby("milestone_id")["slip_days"].nunique().eq(1).all()


def test_serving_rows_are_the_open_milestones_with_training_features(ctx, tables):
    """At the as_of of a training row, the serving path gives that row's features exactly."""
    served = project_milestone_features(ctx, tables, ["P1"], as_of=AS_OF)
    assert served["milestone_id"].tolist() == ["M3"]  # M1 and M2 were reached before 2020-12-17
    trained = build_dataset("defect_risk", ctx).frame.set_index("milestone_id").loc[["M3"], served.columns[1:]]
    pd.testing.assert_frame_equal(served.set_index("milestone_id"), trained, check_categorical=False)


def test_serving_defaults_to_now(ctx, tables):
    served = project_milestone_features(ctx, tables, ["P2"])
    assert served["milestone_id"].tolist() == ["M4"]
    assert served["as_of"].iloc[0] > pd.Timestamp("2025-01-01")


def test_a_dataset_read_back_keeps_its_categoricals_even_when_all_missing(tables, tmp_path):
    """A firm's export without project types or regions (the Irish one) gives all-missing categorical columns;
    read back from Parquet they came back as plain objects, which LightGBM refuses, so a second `eqsms train`
    reusing the dataset crashed."""
    from features.datasets import read_dataset, write_dataset

    ds = build_dataset("defect_risk", Context.build(tables, Settings()), "a")
    ds.frame["region"] = pd.Categorical([None] * len(ds.frame))
    write_dataset(ds, tmp_path)
    back = read_dataset(tmp_path, "defect_risk")
    assert set(back.categorical_columns) == set(ds.categorical_columns)
    assert back.frame["region"].isna().all()
    assert list(back.frame["project_type"].cat.categories) == list(ds.frame["project_type"].cat.categories)
