"""A tiny hand-written world, in the raw contract, whose features are computed by hand in test_features.py.

Client C1 has three projects (P0 handed over, P1 handed over, P2 running); client C2 has one (P3, handed over,
never came back). Most facts concern P1, whose handover milestone M3 is scored on 2020-12-17 (14 days before
its planned 2020-12-31). Facts dated after that day are there to prove they are ignored.
"""

from __future__ import annotations

import pandas as pd

# One string a value, as a CSV export would give it.
RAW: dict[str, list[dict[str, str]]] = {
    "projects": [
        dict(
            project_id="P0",
            client_id="C1",
            project_type="school",
            region="north",
            contract_value="500000",
            awarded_on="2019-01-01",
            planned_start="2019-02-01",
            planned_end="2019-10-31",
            actual_end="2019-11-10",
        ),
        dict(
            project_id="P1",
            client_id="C1",
            project_type="school",
            region="north",
            contract_value="1000000",
            awarded_on="2020-01-01",
            planned_start="2020-02-01",
            planned_end="2020-12-31",
            actual_end="2021-01-20",
        ),
        dict(
            project_id="P2",
            client_id="C1",
            project_type="office",
            region="south",
            contract_value="750000",
            awarded_on="2021-03-01",
            planned_start="2021-04-01",
            planned_end="2021-10-01",
            actual_end="",
        ),
        dict(
            project_id="P3",
            client_id="C2",
            project_type="office",
            region="south",
            contract_value="250000",
            awarded_on="2019-06-01",
            planned_start="2019-06-15",
            planned_end="2019-11-15",
            actual_end="2019-12-01",
        ),
    ],
    "milestones": [
        dict(
            milestone_id="M1",
            project_id="P1",
            kind="foundation",
            sequence="1",
            planned_date="2020-04-01",
            actual_date="2020-04-11",
            first_pass_accepted="true",
        ),
        dict(
            milestone_id="M2",
            project_id="P1",
            kind="structure",
            sequence="2",
            planned_date="2020-07-01",
            actual_date="2020-07-21",
            first_pass_accepted="false",
        ),
        dict(
            milestone_id="M3",
            project_id="P1",
            kind="handover",
            sequence="3",
            planned_date="2020-12-31",
            actual_date="2021-01-20",
            first_pass_accepted="true",
        ),
        dict(
            milestone_id="M0",
            project_id="P0",
            kind="handover",
            sequence="1",
            planned_date="2019-10-31",
            actual_date="2019-11-10",
            first_pass_accepted="false",
        ),
        dict(
            milestone_id="M4",
            project_id="P2",
            kind="foundation",
            sequence="1",
            planned_date="2021-06-01",
            actual_date="",
            first_pass_accepted="",
        ),
    ],
    "inspections": [
        dict(
            inspection_id="I1",
            project_id="P1",
            inspected_at="2020-09-01T10:00:00",
            discipline="civil",
            result="fail",
            defects_found="3",
            max_severity="2",
            closed_at="2020-09-20T10:00:00",
        ),
        dict(
            inspection_id="I2",
            project_id="P1",
            inspected_at="2020-11-20T09:00:00",
            discipline="mep",
            result="fail",
            defects_found="2",
            max_severity="3",
            closed_at="2020-12-20T00:00:00",
        ),
        dict(
            inspection_id="I3",
            project_id="P1",
            inspected_at="2020-12-01T00:00:00",
            discipline="civil",
            result="pass",
            defects_found="0",
            max_severity="0",
            closed_at="",
        ),
        dict(
            inspection_id="I4",
            project_id="P1",
            inspected_at="2020-12-16T12:00:00",
            discipline="finishes",
            result="conditional",
            defects_found="1",
            max_severity="1",
            closed_at="2020-12-16T18:00:00",
        ),
        dict(
            inspection_id="I5",
            project_id="P1",
            inspected_at="2020-12-18T00:00:00",
            discipline="civil",
            result="fail",
            defects_found="9",
            max_severity="3",
            closed_at="",
        ),
    ],
    "resources": [
        dict(
            project_id="P1",
            week_start=w,
            labour_planned_hours=lp,
            labour_actual_hours=la,
            overtime_hours=ot,
            equipment_downtime_hours=dt,
            deliveries_planned=dp,
            deliveries_late=dl,
            planned_value=pv,
            earned_value=ev,
            actual_cost=ac,
        )
        for w, lp, la, ot, dt, dp, dl, pv, ev, ac in (
            ("2020-11-23", "100", "90", "10", "5", "4", "1", "1000", "900", "1000"),
            ("2020-11-30", "100", "110", "20", "0", "2", "1", "1000", "800", "1000"),
            ("2020-12-07", "100", "100", "0", "3", "4", "0", "1000", "1000", "800"),
            ("2020-12-14", "100", "200", "100", "50", "10", "10", "1000", "0", "5000"),  # not over on 12-17
        )
    ],
    "complaints": [
        dict(
            complaint_id="K1",
            project_id="P1",
            received_at="2020-10-01T08:00:00",
            category="quality",
            severity="2",
            first_response_at="2020-10-01T20:00:00",
            resolved_at="2020-10-10T00:00:00",
            escalated="false",
        ),
        dict(
            complaint_id="K2",
            project_id="P1",
            received_at="2020-12-01T08:00:00",
            category="schedule",
            severity="3",
            first_response_at="2020-12-03T08:00:00",
            resolved_at="2020-12-20T00:00:00",
            escalated="true",
        ),
        dict(
            complaint_id="K3",
            project_id="P1",
            received_at="2020-12-10T08:00:00",
            category="communication",
            severity="1",
            first_response_at="",
            resolved_at="",
            escalated="",
        ),
        dict(
            complaint_id="K4",
            project_id="P1",
            received_at="2020-12-20T00:00:00",
            category="quality",
            severity="3",
            first_response_at="",
            resolved_at="",
            escalated="",
        ),
    ],
    "surveys": [
        dict(survey_id="S1", project_id="P1", surveyed_at="2020-06-30T00:00:00", csat="4", nps="8"),
        dict(survey_id="S2", project_id="P1", surveyed_at="2020-09-30T00:00:00", csat="3", nps="6"),
        dict(survey_id="S3", project_id="P1", surveyed_at="2020-12-20T00:00:00", csat="1", nps="0"),
    ],
}


def raw_frames() -> dict[str, pd.DataFrame]:
    """The tiny world as read from CSV files: strings, with the source columns the reader adds."""
    frames = {}
    for table, records in RAW.items():
        df = pd.DataFrame(records, dtype="str")
        df["_source_file"] = f"{table}.csv"
        df["_source_row"] = range(1, len(df) + 1)
        frames[table] = df
    return frames


def validated_tables() -> dict[str, pd.DataFrame]:
    """The tiny world validated, as the features and the report read it (no row is quarantined)."""
    from features.validate import validate_tables

    data = validate_tables(raw_frames())
    assert all(rep.rows_quarantined == 0 for rep in data.reports.values())
    return data.tables
