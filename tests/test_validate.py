"""The validator: each error code on a hand-written world, counts that reconcile, fatal errors that say what to fix.

The base world below is clean; each test breaks one cell (or removes a table or a column) and checks the row lands
in quarantine (a bad required value) or the cell is set missing and reported (a bad optional value), with the
right code, column, source file and source row (1-based data record, header excluded).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import TABLE_ORDER, TABLES, Error, Kind
from features.io import ContractError
from features.validate import empty_table, load, validate_tables, write_quarantine

BASE: dict[str, str] = {
    "projects": """\
project_id,client_id,project_type,region,contract_value,awarded_on,planned_start,planned_end,actual_end
P1,C1,school,north,1000000,2020-01-01,2020-02-01,2020-12-31,2021-01-20
P2,C1,office,south,750000,2021-03-01,2021-04-01,2021-10-01,
P3,C2,school,north,500000,2019-01-01,2019-02-01,2019-10-31,2019-11-10
""",
    "milestones": """\
milestone_id,project_id,kind,sequence,planned_date,actual_date,first_pass_accepted
M1,P1,foundation,1,2020-03-01,2020-03-04,true
M2,P1,structure,2,2020-06-01,2020-06-20,false
M3,P2,foundation,1,2021-05-01,,
M4,P3,handover,1,2019-10-31,2019-11-10,yes
""",
    "inspections": """\
inspection_id,project_id,inspected_at,discipline,result,defects_found,max_severity,closed_at
I1,P1,2020-02-20T09:00:00,civil,pass,0,0,
I2,P1,2020-02-25T14:30:00+02:00,structural,fail,3,2,2020-03-02T10:00:00Z
I3,P2,2021-04-20,mep,conditional,1,1,2021-04-22
""",
    "resources": """\
project_id,week_start,labour_planned_hours,labour_actual_hours,overtime_hours,equipment_downtime_hours,\
deliveries_planned,deliveries_late,planned_value,earned_value,actual_cost
P1,2020-02-03,400,420,20,4,5,1,20000,18000,21000
P1,2020-02-10,400,380,0,0,4,0,20000,20500,19000
P2,2021-04-05,300,300,10,2,3,2,15000,14000,15500
""",
    "complaints": """\
complaint_id,project_id,received_at,category,severity,first_response_at,resolved_at,escalated
Q1,P1,2020-04-01T08:00:00,quality,2,2020-04-01T12:00:00,2020-04-10T08:00:00,false
Q2,P3,2019-06-01T08:00:00,schedule,3,2019-06-02T08:00:00,,1
""",
    "surveys": """\
survey_id,project_id,surveyed_at,csat,nps
S1,P1,2020-07-01T10:00:00,4,8
S2,P3,2019-11-20T10:00:00,2.5,3
S3,P2,2021-05-15T10:00:00,5,10
""",
}


def _rows(table: str) -> tuple[list[str], list[list[str]]]:
    lines = BASE[table].splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def write_world(
    folder: Path, edits: list[tuple[str, int, str, str]] = (), drop: tuple[str, ...] = (), **replace: str
) -> Path:
    """Write BASE as CSV into ``folder``; ``edits`` are (table, 1-based row, column, new value)."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLE_ORDER:
        if table in drop:
            continue
        if table in replace:
            (folder / f"{table}.csv").write_text(replace[table])
            continue
        header, rows = _rows(table)
        for t, row, column, value in edits:
            if t == table:
                rows[row - 1][header.index(column)] = value
        text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
        (folder / f"{table}.csv").write_text(text)
    return folder


def quarantined(data, table: str) -> pd.DataFrame:
    return data.quarantine[table].set_index("_source_row")


def is_optional(table: str, column: str) -> bool:
    """Whether a bad value in ``column`` of ``table`` is set missing, rather than quarantining its row."""
    spec = TABLES[table]
    return any(c.name == column and not c.required for c in spec.columns) and column not in spec.key


def assert_reconciles(data) -> None:
    """Rows in = accepted + quarantined; every nulled cell is listed once, in an accepted row, and is missing there."""
    for name, rep in data.reports.items():
        q, cells = data.quarantine[name], data.cells[name]
        assert rep.rows_in == rep.rows_accepted + rep.rows_quarantined, name
        assert rep.rows_accepted == len(data.tables[name]), name
        assert rep.rows_quarantined == len(q) == sum(rep.reasons.values()), name
        assert rep.cells_nulled == len(cells) == sum(rep.cells.values()), name
        assert not cells.duplicated(["_source_file", "_source_row", "_column"]).any(), name
        rejected = set(zip(q["_source_file"], q["_source_row"], strict=True))
        assert not rejected & set(zip(cells["_source_file"], cells["_source_row"], strict=True)), name
        if set(q["_source_file"]) | set(cells["_source_file"]) <= {f"{name}.csv"}:  # one file: rows map to positions
            kept = np.setdiff1d(np.arange(1, rep.rows_in + 1), q["_source_row"].to_numpy())
            at = np.searchsorted(kept, cells["_source_row"].to_numpy())
            for i, column in zip(at, cells["_column"], strict=True):
                assert pd.isna(data.tables[name][column].iloc[i]), (name, i, column)


# ----------------------------------------------------------------------------------------------- clean data


def test_clean_world_is_accepted_whole_and_typed(tmp_path):
    data = load(write_world(tmp_path))
    assert_reconciles(data)
    assert data.missing_tables == [] and data.missing_columns == {}
    for name in TABLE_ORDER:
        assert data.reports[name].rows_quarantined == 0, data.quarantine[name]
        frame = data.tables[name]
        assert list(frame.columns) == [c.name for c in TABLES[name].columns]
        assert isinstance(frame.index, pd.RangeIndex)
        for col in TABLES[name].columns:
            dtype = frame[col.name].dtype
            if col.kind in (Kind.ID, Kind.TEXT):
                assert dtype == "str", (name, col.name)
            elif col.kind in (Kind.DATE, Kind.TIMESTAMP):
                assert dtype == "datetime64[us]", (name, col.name)
            elif col.kind == Kind.BOOL:
                assert dtype == "boolean", (name, col.name)
            else:
                assert dtype == "float64", (name, col.name)
    ms = data.tables["milestones"]
    assert ms["first_pass_accepted"].tolist()[:2] == [True, False]
    assert pd.isna(ms["first_pass_accepted"][2]) and pd.isna(ms["actual_date"][2])
    insp = data.tables["inspections"]
    # offsets are converted to UTC, then dropped; a bare date is a valid timestamp
    assert insp["inspected_at"].tolist() == [
        pd.Timestamp("2020-02-20 09:00"),
        pd.Timestamp("2020-02-25 12:30"),
        pd.Timestamp("2021-04-20"),
    ]
    assert insp["closed_at"][1] == pd.Timestamp("2020-03-02 10:00")
    assert data.tables["complaints"]["escalated"].tolist() == [False, True]


def test_whitespace_is_stripped_and_closed_sets_are_lower_cased(tmp_path):
    edits = [
        ("projects", 1, "project_id", " P1 "),
        ("inspections", 1, "result", "PASS"),
        ("milestones", 1, "kind", "Fit_Out"),
    ]
    data = load(write_world(tmp_path, edits))
    assert data.reports["inspections"].rows_quarantined == 0
    assert data.tables["projects"]["project_id"][0] == "P1"
    assert data.tables["inspections"]["result"][0] == "pass"
    assert data.tables["milestones"]["kind"][0] == "Fit_Out"  # open set: kept as written


def test_extra_columns_are_kept_after_the_contract_columns(tmp_path):
    text = BASE["surveys"].replace("nps\n", "nps,channel\n", 1).replace("8\n", "8,email\n").replace("3\n", "3,\n")
    text = text.replace(",10\n", ",10,phone\n")
    data = load(write_world(tmp_path, surveys=text))
    frame = data.tables["surveys"]
    assert list(frame.columns) == ["survey_id", "project_id", "surveyed_at", "csat", "nps", "channel"]
    assert frame["channel"].tolist() == ["email", "", "phone"]  # as read
    assert "_source_file" not in frame.columns and "_source_row" not in frame.columns


# ----------------------------------------------------------------------------------------------- one test a code

# (table, row, column, bad value, expected code, words in the reason)
# A bad value in a required column (or the key), a repeated key or an unknown project: the row is quarantined.
ROW_CASES = [
    ("milestones", 2, "planned_date", "", Error.MISSING_VALUE, "planned_date: missing"),
    ("milestones", 3, "project_id", "  ", Error.MISSING_VALUE, "project_id: missing"),
    ("inspections", 1, "inspected_at", "2021-13-45", Error.UNPARSEABLE_DATE, "'2021-13-45' is not a date"),
    ("inspections", 1, "result", "passed", Error.NOT_ALLOWED, "'passed' is not one of pass, fail, conditional"),
    ("milestones", 3, "milestone_id", "M1", Error.DUPLICATE_ID, "milestone_id M1 repeats source row 1"),
    ("surveys", 2, "project_id", "P99", Error.UNKNOWN_PROJECT, "no project P99 in projects"),
    ("inspections", 2, "closed_at", "2020-02-01T00:00:00", Error.INCONSISTENT_DATES, "is before inspected_at"),
    ("milestones", 1, "planned_date", "9999-01-01", Error.IMPLAUSIBLE_DATE, "outside the plausible dates 1950-01-01"),
    ("surveys", 1, "surveyed_at", "1800-01-01", Error.IMPLAUSIBLE_DATE, "outside the plausible dates"),
    ("resources", 3, "week_start", "2099-06-01", Error.FUTURE_FACT, "'2099-06-01' is after the export"),
]
# A bad value in an optional column: the cell is set missing and reported; the row stays.
CELL_CASES = [
    ("projects", 2, "awarded_on", "01/03/2021", Error.UNPARSEABLE_DATE, "'01/03/2021' is not a date"),
    ("projects", 1, "planned_start", "2020-02-31", Error.UNPARSEABLE_DATE, "'2020-02-31' is not a date"),
    ("resources", 2, "labour_planned_hours", "12h", Error.UNPARSEABLE_NUMBER, "'12h' is not a number"),
    ("milestones", 2, "sequence", "2.5", Error.UNPARSEABLE_NUMBER, "'2.5' is not a whole number"),
    ("resources", 1, "overtime_hours", "inf", Error.UNPARSEABLE_NUMBER, "'inf' is not a number"),
    ("complaints", 2, "escalated", "maybe", Error.UNPARSEABLE_BOOL, "'maybe' is not a boolean"),
    ("inspections", 3, "defects_found", "-1", Error.NEGATIVE_VALUE, "defects_found: -1 is negative"),
    ("resources", 3, "actual_cost", "-15500", Error.NEGATIVE_VALUE, "actual_cost: -15500 is negative"),
    ("surveys", 3, "csat", "7", Error.OUT_OF_RANGE, "csat: 7 is outside 1–5"),
    ("inspections", 2, "max_severity", "4", Error.OUT_OF_RANGE, "max_severity: 4 is outside 0–3"),
    ("complaints", 1, "severity", "0", Error.OUT_OF_RANGE, "severity: 0 is outside 1–3"),
    ("complaints", 1, "category", "weather", Error.NOT_ALLOWED, "'weather' is not one of"),
    ("projects", 2, "awarded_on", "1800-01-01", Error.IMPLAUSIBLE_DATE, "outside the plausible dates"),
    ("projects", 3, "planned_start", "2999-01-01", Error.IMPLAUSIBLE_DATE, "outside the plausible dates"),
    ("milestones", 2, "actual_date", "2099-06-01", Error.FUTURE_FACT, "2099-06-01' is after the export"),
    ("inspections", 3, "closed_at", "2098-01-01", Error.FUTURE_FACT, "is after the export"),
]
CASES = ROW_CASES + CELL_CASES


def test_the_cases_follow_the_contract():
    # closed_at is optional, but it is out of order with inspected_at, which is required: the row goes
    assert [(t, c) for t, _, c, *_ in ROW_CASES if is_optional(t, c)] == [("inspections", "closed_at")]
    assert all(is_optional(table, column) for table, _, column, *_ in CELL_CASES)


@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: f"{c[4]}-{c[0]}.{c[2]}")
def test_each_error_code_names_file_row_and_column(tmp_path, case):
    table, row, column, value, code, words = case
    data = load(write_world(tmp_path, [(table, row, column, value)]))
    assert_reconciles(data)
    q = data.quarantine[table]
    assert len(q) == 1, q
    line = q.iloc[0]
    assert line["_source_file"] == f"{table}.csv"
    assert line["_source_row"] == row
    assert line["_column"] == column
    assert line["_error"] == code
    assert words in line["_reason"]
    assert line[column] == value  # the value as written
    assert data.reports[table].reasons == {code: 1}
    assert data.reports[table].cells_nulled == 0
    for other in set(TABLE_ORDER) - {table}:  # only children of a rejected project may follow it
        assert set(data.reports[other].reasons) <= {Error.UNKNOWN_PROJECT}, other
        assert data.quarantine[other]["_reason"].str.contains("was quarantined").all()


@pytest.mark.parametrize("case", CELL_CASES, ids=lambda c: f"{c[4]}-{c[0]}.{c[2]}")
def test_a_bad_optional_value_is_set_missing_and_reported_and_the_row_stays(tmp_path, case):
    table, row, column, value, code, words = case
    clean = load(write_world(tmp_path / "clean"))
    data = load(write_world(tmp_path / "dirty", [(table, row, column, value)]))
    assert_reconciles(data)
    assert all(rep.rows_quarantined == 0 for rep in data.reports.values())
    cells = data.cells[table]
    assert cells.columns.tolist() == ["_source_file", "_source_row", "_column", "_error", "_reason", "_value"]
    assert len(cells) == 1, cells
    line = cells.iloc[0]
    assert (line["_source_file"], line["_source_row"], line["_column"]) == (f"{table}.csv", row, column)
    assert line["_error"] == code
    assert words in line["_reason"]
    assert line["_value"] == value  # the value as written
    assert data.reports[table].cells == {(column, code): 1}
    expected = clean.tables[table].copy()
    expected[column] = expected[column].mask(expected.index == row - 1)  # only that cell differs
    pd.testing.assert_frame_equal(data.tables[table], expected)
    for other in set(TABLE_ORDER) - {table}:
        pd.testing.assert_frame_equal(data.tables[other], clean.tables[other], obj=other)
        assert len(data.cells[other]) == 0, other


def test_bad_optional_planned_starts_keep_their_projects_and_children(tmp_path):
    # Issue 10 §3: bad optional planned_start values quarantined their projects and every child row with them.
    edits = [("projects", 1, "planned_start", "2020-02-31"), ("projects", 2, "planned_start", "2999-01-01")]
    clean = load(write_world(tmp_path / "clean"))
    data = load(write_world(tmp_path / "dirty", edits))
    assert_reconciles(data)
    assert {name: rep.rows_quarantined for name, rep in data.reports.items()} == dict.fromkeys(TABLE_ORDER, 0)
    for name in set(TABLE_ORDER) - {"projects"}:
        pd.testing.assert_frame_equal(data.tables[name], clean.tables[name], obj=name)
    projects = data.tables["projects"]
    assert projects["planned_start"].isna().tolist() == [True, True, False]
    # 2999-01-01 is set missing before the order of the dates is checked: planned_end is not judged against it.
    pd.testing.assert_series_equal(projects["planned_end"], clean.tables["projects"]["planned_end"])
    cells = data.cells["projects"]
    assert cells[["_source_file", "_source_row", "_column", "_error", "_value"]].values.tolist() == [
        ["projects.csv", 1, "planned_start", "unparseable_date", "2020-02-31"],
        ["projects.csv", 2, "planned_start", "implausible_date", "2999-01-01"],
    ]
    assert cells["_reason"].tolist() == [
        "planned_start: '2020-02-31' is not a date (YYYY-MM-DD)",
        "planned_start: '2999-01-01' is outside the plausible dates 1950-01-01 .. 2100-12-31",
    ]
    assert data.reports["projects"].as_dict() == {
        "rows_in": 3,
        "accepted": 3,
        "quarantined": 0,
        "reasons": {},
        "cells_nulled": 2,
        "cells": {"planned_start": {"unparseable_date": 1, "implausible_date": 1}},
    }


def test_a_bad_required_value_quarantines_the_row_with_its_bad_optional_cells(tmp_path):
    edits = [("inspections", 2, "inspected_at", "yesterday"), ("inspections", 2, "max_severity", "9")]
    data = load(write_world(tmp_path, edits + [("inspections", 3, "max_severity", "9")]))
    assert_reconciles(data)
    line = quarantined(data, "inspections").loc[2]
    assert (line["_column"], line["_error"]) == ("inspected_at", Error.UNPARSEABLE_DATE)
    assert line["_reason"] == (
        "inspected_at: 'yesterday' is not a date (YYYY-MM-DD or ISO 8601); max_severity: 9 is outside 0–3"
    )
    assert line["max_severity"] == "9"
    # the quarantined row's bad cell is in its quarantine line, not in the cell report; row 3's is
    assert data.cells["inspections"][["_source_row", "_column"]].values.tolist() == [[3, "max_severity"]]
    assert data.reports["inspections"].reasons == {Error.UNPARSEABLE_DATE: 1}
    assert data.reports["inspections"].cells == {("max_severity", Error.OUT_OF_RANGE): 1}


def test_optional_dates_out_of_order_are_both_set_missing(tmp_path):
    # actual_end before awarded_on: which one is wrong is not known, so neither is kept; the project stays.
    data = load(write_world(tmp_path, [("projects", 3, "actual_end", "2018-12-01")]))
    assert_reconciles(data)
    assert data.reports["projects"].rows_quarantined == 0
    assert data.reports["milestones"].rows_quarantined == 0
    p3 = data.tables["projects"].iloc[2]
    assert pd.isna(p3["awarded_on"]) and pd.isna(p3["actual_end"])
    assert p3["planned_start"] == pd.Timestamp("2019-02-01")
    reason = "actual_end 2018-12-01 is before awarded_on 2019-01-01"
    assert data.cells["projects"][["_source_row", "_column", "_error", "_reason", "_value"]].values.tolist() == [
        [3, "awarded_on", "inconsistent_dates", reason, "2019-01-01"],
        [3, "actual_end", "inconsistent_dates", reason, "2018-12-01"],
    ]
    assert data.reports["projects"].cells == {
        ("awarded_on", Error.INCONSISTENT_DATES): 1,
        ("actual_end", Error.INCONSISTENT_DATES): 1,
    }


def test_a_cell_with_two_problems_is_listed_once_under_its_first(tmp_path):
    data = load(write_world(tmp_path, [("milestones", 1, "actual_date", "9999-01-01")]))
    assert_reconciles(data)
    cells = data.cells["milestones"]
    assert len(cells) == 1
    assert cells["_error"].tolist() == ["implausible_date"]
    assert cells["_reason"].iloc[0] == (
        "actual_date: '9999-01-01' is outside the plausible dates 1950-01-01 .. 2100-12-31; "
        "actual_date: '9999-01-01' is after the export: it has not happened"
    )
    assert data.reports["milestones"].cells == {("actual_date", Error.IMPLAUSIBLE_DATE): 1}


def test_duplicate_of_a_composite_key(tmp_path):
    data = load(write_world(tmp_path, [("resources", 2, "week_start", "2020-02-03")]))
    line = quarantined(data, "resources").loc[2]
    assert line["_error"] == Error.DUPLICATE_ID
    assert line["_reason"] == "project_id P1, week_start 2020-02-03 repeats source row 1"
    assert len(data.tables["resources"]) == 2


def test_duplicate_check_ignores_rows_already_rejected(tmp_path):
    # row 1 is rejected for its date, so row 3 (same id) is the first valid M1 and is kept
    edits = [("milestones", 1, "planned_date", "soon"), ("milestones", 3, "milestone_id", "M1")]
    data = load(write_world(tmp_path, edits))
    q = quarantined(data, "milestones")
    assert q.index.tolist() == [1]
    assert "M1" in data.tables["milestones"]["milestone_id"].tolist()


def test_children_of_a_quarantined_project_say_so(tmp_path, monkeypatch):
    # Under a contract that requires client_id, a project without one is quarantined, and its children with it.
    columns = tuple(
        dataclasses.replace(c, required=c.name == "client_id" or c.required) for c in TABLES["projects"].columns
    )
    monkeypatch.setitem(TABLES, "projects", dataclasses.replace(TABLES["projects"], columns=columns))
    data = load(write_world(tmp_path, [("projects", 3, "client_id", "")]))
    assert_reconciles(data)
    assert quarantined(data, "projects").loc[3, "_error"] == Error.MISSING_VALUE
    m = quarantined(data, "milestones").loc[4]
    assert (m["_column"], m["_error"]) == ("project_id", Error.UNKNOWN_PROJECT)
    assert m["_reason"] == "project_id: project P3 was quarantined"
    assert quarantined(data, "complaints").loc[2, "_error"] == Error.UNKNOWN_PROJECT
    assert quarantined(data, "surveys").loc[2, "_error"] == Error.UNKNOWN_PROJECT


def test_a_row_with_several_problems_is_counted_once_under_its_first(tmp_path):
    edits = [
        ("surveys", 1, "surveyed_at", "2021-13-45"),
        ("surveys", 1, "csat", "7"),
        ("surveys", 1, "project_id", "P42"),
    ]
    data = load(write_world(tmp_path, edits))
    assert_reconciles(data)
    line = quarantined(data, "surveys").loc[1]
    assert line["_column"] == "surveyed_at"
    assert line["_error"] == Error.UNPARSEABLE_DATE
    assert line["_reason"] == (
        "surveyed_at: '2021-13-45' is not a date (YYYY-MM-DD or ISO 8601); csat: 7 is outside 1–5; "
        "project_id: no project P42 in projects"
    )
    assert data.reports["surveys"].reasons == {Error.UNPARSEABLE_DATE: 1}
    assert data.reports["surveys"].top_reasons(3) == [("unparseable_date", 1)]
    assert len(data.cells["surveys"]) == 0  # csat is told in the quarantined row, not set missing in an accepted one


def test_counts_reconcile_with_many_faults(tmp_path):
    edits = [(t, r, c, v) for t, r, c, v, _, _ in CASES if (t, r) != ("milestones", 3)]
    data = load(write_world(tmp_path, edits))
    assert_reconciles(data)
    rows = {(t, r) for t, r, *_ in ROW_CASES if (t, r) != ("milestones", 3)}
    assert sum(rep.rows_quarantined for rep in data.reports.values()) == len(rows)
    cells = pd.concat([data.cells[t].assign(table=t) for t in TABLE_ORDER])
    listed = set(zip(cells["table"], cells["_source_row"], cells["_column"], strict=True))
    assert {(t, r, c) for t, r, c, *_ in CELL_CASES if (t, r) not in rows} <= listed


# ----------------------------------------------------------------------------------------------- missing things


def test_missing_required_table_is_fatal_and_says_what_to_fix(tmp_path):
    with pytest.raises(ContractError) as err:
        load(write_world(tmp_path, drop=("milestones",)))
    msg = str(err.value)
    assert "milestones: no file milestones.csv or milestones.parquet" in msg
    assert str(tmp_path) in msg and "requires it" in msg


def test_missing_required_column_is_fatal_and_lists_columns_found(tmp_path):
    text = "\n".join(",".join(r[:4] + r[5:]) for r in [line.split(",") for line in BASE["milestones"].splitlines()])
    with pytest.raises(ContractError) as err:
        load(write_world(tmp_path, milestones=text + "\n"))
    msg = str(err.value)
    assert "milestones.csv: required column planned_date is missing" in msg
    assert "columns found: milestone_id, project_id, kind, sequence, actual_date, first_pass_accepted" in msg


def test_missing_optional_table_gives_an_empty_typed_frame(tmp_path):
    data = load(write_world(tmp_path, drop=("complaints", "surveys")))
    assert data.missing_tables == ["complaints", "surveys"]
    assert set(data.reports) == set(TABLE_ORDER) - {"complaints", "surveys"}
    for name in ("complaints", "surveys"):
        frame = data.tables[name]
        assert len(frame) == 0
        pd.testing.assert_frame_equal(frame, empty_table(name))
        assert len(data.quarantine[name]) == 0
    assert data.tables["complaints"]["received_at"].dtype == "datetime64[us]"
    assert data.tables["complaints"]["escalated"].dtype == "boolean"


def test_missing_optional_column_is_added_empty_and_listed(tmp_path):
    lines = [line.split(",") for line in BASE["projects"].splitlines()]
    text = "\n".join(",".join(r[:1] + r[2:5] + r[6:]) for r in lines) + "\n"  # no client_id, no awarded_on
    data = load(write_world(tmp_path, projects=text))
    assert data.missing_columns == {"projects": ["client_id", "awarded_on"]}
    frame = data.tables["projects"]
    assert list(frame.columns) == [c.name for c in TABLES["projects"].columns]
    assert frame["client_id"].isna().all() and frame["client_id"].dtype == "str"
    assert frame["awarded_on"].isna().all() and frame["awarded_on"].dtype == "datetime64[us]"
    assert data.reports["projects"].rows_quarantined == 0


def test_unreadable_parquet_is_fatal(tmp_path):
    folder = write_world(tmp_path, drop=("milestones",))
    (folder / "milestones.parquet").write_bytes(b"this is not parquet at all \x00\x01\x02")
    with pytest.raises(ContractError, match=r"milestones\.parquet: cannot read as Parquet"):
        load(folder)


def test_ragged_csv_is_fatal(tmp_path):
    text = BASE["surveys"] + "S4,P1,2021-01-01,3,4,unexpected\n"
    with pytest.raises(ContractError, match=r"surveys\.csv: cannot read as CSV"):
        load(write_world(tmp_path, surveys=text))


def test_empty_csv_is_fatal(tmp_path):
    with pytest.raises(ContractError, match=r"surveys\.csv: the file is empty"):
        load(write_world(tmp_path, surveys=""))


def test_header_only_csv_is_an_empty_table(tmp_path):
    data = load(write_world(tmp_path, surveys=BASE["surveys"].splitlines()[0] + "\n"))
    assert data.reports["surveys"].rows_in == 0
    assert len(data.tables["surveys"]) == 0 and data.missing_tables == []


def test_not_a_folder_is_fatal(tmp_path):
    with pytest.raises(ContractError, match="is not a folder"):
        load(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------- formats


def _native(typed: pd.DataFrame, table: str) -> pd.DataFrame:
    """The typed table as a Parquet export would store it: native ints, bools, dates and tz-aware times."""
    out = typed.copy()
    for col in TABLES[table].columns:
        s = out[col.name]
        if col.kind == Kind.INT and s.notna().all():
            out[col.name] = s.astype("int64")
        elif col.kind == Kind.TIMESTAMP:
            out[col.name] = s.dt.tz_localize("UTC").dt.tz_convert("Europe/Dublin")
        elif col.kind == Kind.DATE:
            out[col.name] = s.astype("datetime64[ms]")
    return out


def test_csv_and_parquet_give_identical_typed_tables(tmp_path):
    from_csv = load(write_world(tmp_path / "csv"))
    pq_dir = tmp_path / "parquet"
    pq_dir.mkdir()
    for name, frame in from_csv.tables.items():
        _native(frame, name).to_parquet(pq_dir / f"{name}.parquet", index=False)
    from_parquet = load(pq_dir)
    for name in TABLE_ORDER:
        pd.testing.assert_frame_equal(from_parquet.tables[name], from_csv.tables[name], obj=name)
        assert from_parquet.reports[name].rows_in == from_csv.reports[name].rows_in


def test_parquet_faults_are_found_in_native_columns(tmp_path):
    folder = write_world(tmp_path, drop=("surveys",))
    pd.DataFrame(
        {
            "survey_id": ["S1", "S2", "S3"],
            "project_id": ["P1", "P1", "P1"],
            "surveyed_at": pd.to_datetime(["2021-01-01", None, "2021-01-03"]),
            "csat": [4.0, 3.0, 9.0],
            "nps": [8, 9, 10],
        }
    ).to_parquet(folder / "surveys.parquet", index=False)
    data = load(folder)
    q = quarantined(data, "surveys")
    assert q["_error"].to_dict() == {2: Error.MISSING_VALUE}
    assert (q["_source_file"] == "surveys.parquet").all()
    cells = data.cells["surveys"]
    assert cells.values.tolist() == [["surveys.parquet", 3, "csat", "out_of_range", "csat: 9.0 is outside 1–5", "9.0"]]
    assert data.tables["surveys"]["csat"].isna().tolist() == [False, True]


def test_part_files_in_a_folder_are_read_in_order_with_their_own_row_numbers(tmp_path):
    folder = write_world(tmp_path, drop=("inspections",))
    header, rows = _rows("inspections")
    (folder / "inspections").mkdir()
    (folder / "inspections" / "part-0.csv").write_text("\n".join(",".join(r) for r in [header, *rows[:2]]) + "\n")
    bad = rows[2][:4] + ["passed"] + rows[2][5:]
    (folder / "inspections" / "part-1.csv").write_text("\n".join(",".join(r) for r in [header, bad, rows[0]]) + "\n")
    data = load(folder)
    assert_reconciles(data)
    q = data.quarantine["inspections"]
    assert q[["_source_file", "_source_row", "_error"]].values.tolist() == [
        ["inspections/part-1.csv", 1, "not_allowed"],
        ["inspections/part-1.csv", 2, "duplicate_id"],
    ]
    assert q["_reason"].iloc[1] == "inspection_id I1 repeats inspections/part-0.csv row 1"


def test_pure_frames_without_source_columns(tmp_path):
    header, rows = _rows("projects")
    projects = pd.DataFrame(rows, columns=header, dtype="str")
    header, rows = _rows("milestones")
    milestones = pd.DataFrame(rows, columns=header, dtype="str")
    milestones.loc[1, "kind"] = ""
    data = validate_tables({"projects": projects, "milestones": milestones})
    q = data.quarantine["milestones"]
    assert q[["_source_file", "_source_row", "_column", "_error"]].values.tolist() == [
        ["milestones", 2, "kind", "missing_value"]
    ]
    assert data.missing_tables == ["inspections", "resources", "complaints", "surveys"]


def test_validate_tables_leaves_its_input_alone(tmp_path):
    from features.io import read_table

    folder = write_world(tmp_path, [("surveys", 1, "csat", "9")])
    raw = {t: read_table(folder, t) for t in TABLE_ORDER}
    before = {t: f.copy() for t, f in raw.items()}
    validate_tables(raw, folder)
    for t in TABLE_ORDER:
        pd.testing.assert_frame_equal(raw[t], before[t])


def test_python_object_columns_are_typed(tmp_path):
    projects = pd.DataFrame({"project_id": ["P1", "P2"], "contract_value": [1.5, None]})
    milestones = pd.DataFrame(
        {
            "milestone_id": ["M1", "M2"],
            "project_id": ["P1", "P2"],
            "kind": ["mep", "mep"],
            "planned_date": pd.Series([pd.Timestamp("2020-01-01").date(), None], dtype=object),
            "first_pass_accepted": pd.Series([True, None], dtype=object),
            "sequence": pd.Series([1, 2], dtype=object),
        }
    )
    data = validate_tables({"projects": projects, "milestones": milestones})
    ms = data.tables["milestones"]
    assert data.quarantine["milestones"]["_error"].tolist() == ["missing_value"]
    assert ms["planned_date"].tolist() == [pd.Timestamp("2020-01-01")]
    assert ms["first_pass_accepted"].dtype == "boolean" and ms["sequence"].tolist() == [1.0]


# ----------------------------------------------------------------------------------------------- quarantine files


def test_write_quarantine_round_trips_and_leaves_nothing_stale(tmp_path):
    out = tmp_path / "q"
    out.mkdir()
    (out / "complaints.csv").write_text("stale\n")
    (out / "complaints_cells.csv").write_text("stale\n")
    (out / "keep.txt").write_text("not ours\n")
    edits = [
        ("surveys", 3, "surveyed_at", "soon"),
        ("milestones", 2, "planned_date", ""),
        ("milestones", 1, "first_pass_accepted", "maybe"),
        ("surveys", 1, "csat", "7"),
    ]
    data = load(write_world(tmp_path / "world", edits))
    written = write_quarantine(data, out)
    assert sorted(p.name for p in written) == [
        "milestones.csv",
        "milestones_cells.csv",
        "summary.json",
        "surveys.csv",
        "surveys_cells.csv",
    ]
    assert not (out / "complaints.csv").exists() and not (out / "complaints_cells.csv").exists()
    assert (out / "keep.txt").exists()
    for name in ("milestones", "surveys"):
        for file, frame in ((f"{name}.csv", data.quarantine[name]), (f"{name}_cells.csv", data.cells[name])):
            back = pd.read_csv(out / file, dtype=str, keep_default_na=False)
            pd.testing.assert_frame_equal(back, frame.astype(str), check_dtype=False)
    back = pd.read_csv(out / "milestones_cells.csv", dtype=str, keep_default_na=False)
    assert back.values.tolist() == [
        ["milestones.csv", "1", "first_pass_accepted", "unparseable_bool",
         "first_pass_accepted: 'maybe' is not a boolean (true/false, 1/0, yes/no, t/f, y/n)", "maybe"]
    ]  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tables"]["surveys"] == {
        "rows_in": 3,
        "accepted": 2,
        "quarantined": 1,
        "reasons": {"unparseable_date": 1},
        "cells_nulled": 1,
        "cells": {"csat": {"out_of_range": 1}},
    }
    assert summary["tables"]["projects"]["quarantined"] == summary["tables"]["projects"]["cells_nulled"] == 0
    assert summary["missing_tables"] == []


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_validate_exit_codes(tmp_path):
    from eqsms.cli import app

    runner = CliRunner()
    good = write_world(tmp_path / "good", [("surveys", 3, "csat", "7"), ("surveys", 2, "surveyed_at", "1800-01-01")])
    result = runner.invoke(app, ["validate", str(good), "--quarantine", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert "surveys" in result.output and "implausible_date" in result.output
    assert "surveys: 1 bad optional value set missing (rows kept): csat: out_of_range (1)" in result.output
    assert (tmp_path / "q" / "surveys.csv").exists() and (tmp_path / "q" / "surveys_cells.csv").exists()

    bad = write_world(tmp_path / "bad", drop=("milestones",))
    result = runner.invoke(app, ["validate", str(bad), "--quarantine", str(tmp_path / "q2")])
    assert result.exit_code == 2
    assert "milestones" in result.output and "requires it" in result.output


# ----------------------------------------------------------------------------------------------- generated world


def test_every_injected_fault_of_a_dirty_world_is_found(tmp_path):
    """A fault in a required column, a key or a reference quarantines its row; one in an optional column is a cell
    set missing."""
    from world import generate_world

    out = tmp_path / "dirty"
    generate_world(n_projects=60, seed=11, out_dir=out, fmt="csv", dirty=0.05)
    manifest = pd.read_csv(out / "faults.csv", dtype={"table": str, "row": int, "column": str, "error": str})
    injected = manifest[manifest["cause"] == "injected"]
    optional = [is_optional(t, c) for t, c in zip(injected["table"], injected["column"], strict=True)]
    assert any(optional) and not all(optional), "a dirty world should have faults of both kinds"
    data = load(out)
    assert_reconciles(data)
    q = pd.concat([data.quarantine[t].assign(table=t) for t in TABLE_ORDER], ignore_index=True)
    cells = pd.concat([data.cells[t].assign(table=t) for t in TABLE_ORDER], ignore_index=True)
    rows = q.set_index(["table", "_source_row"])
    at = cells.set_index(["table", "_source_row", "_column"])
    for fault, in_a_cell in zip(injected.itertuples(), optional, strict=True):
        if in_a_cell:
            line = at.loc[(fault.table, fault.row, fault.column)]
        else:
            assert (fault.table, fault.row) in rows.index, f"{fault.table}.csv row {fault.row} was not quarantined"
            line = rows.loc[(fault.table, fault.row)]
        assert line["_source_file"] == f"{fault.table}.csv"
        assert line["_error"] == fault.error, (fault, line["_reason"])
    assert len(q) == len(optional) - sum(optional), "only injected faults quarantine a row"
    assert len(cells) == sum(optional), "only injected faults set a cell missing"


def test_empty_table_matches_contract():
    for name in TABLE_ORDER:
        frame = empty_table(name)
        assert list(frame.columns) == [c.name for c in TABLES[name].columns]
        assert len(frame) == 0 and isinstance(frame.index, pd.RangeIndex)
    assert np.dtype(empty_table("projects")["contract_value"].dtype) == np.float64


def test_a_full_width_year_far_away_is_not_accepted(tmp_path):
    data = load(write_world(tmp_path, [("milestones", 1, "actual_date", "９９９９-01-01")]))
    assert_reconciles(data)
    assert pd.isna(data.tables["milestones"]["actual_date"][0])
    assert data.cells["milestones"]["_error"].tolist() in ([Error.UNPARSEABLE_DATE], [Error.IMPLAUSIBLE_DATE])


def test_the_plausible_window_comes_from_settings(tmp_path):
    from eqsms.settings import Settings

    world = write_world(tmp_path, [])
    assert not len(load(world).quarantine["projects"])
    narrow = load(world, Settings(earliest_date="2019-06-01"))
    # P3 was awarded on 2019-01-01 and planned to start on 2019-02-01 (optional columns); M4 planned 2019-10-31
    assert narrow.reports["projects"].cells == {
        ("awarded_on", Error.IMPLAUSIBLE_DATE): 1,
        ("planned_start", Error.IMPLAUSIBLE_DATE): 1,
    }
    assert narrow.cells["projects"]["_source_row"].tolist() == [3, 3]
    narrower = load(world, Settings(earliest_date="2019-11-01"))
    assert quarantined(narrower, "milestones")["_column"].to_dict() == {4: "planned_date"}  # required
