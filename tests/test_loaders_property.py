"""Property-based tests of the loaders (issue 12, §3): random dirty rows never crash validation, and per table rows in
= rows accepted + rows quarantined, each quarantined row with its file, row, column and reason.

Rows mix good values with the dirt real exports carry: bad dates, negatives, wrong types, unicode, empty strings,
huge numbers, keys repeated, required values missing, children of unknown projects. ``validate_tables`` gets them
as ``read_table`` hands them over (text from CSV, native types as from Parquet); ``load`` reads them from a folder
of CSV files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eqsms.settings import Settings
from features.contract import TABLE_ORDER, TABLES, Kind
from features.io import SOURCE_FILE, SOURCE_ROW
from features.validate import ERROR_COLUMN, ERROR_REASON, load, validate_tables

SETTINGS = Settings.model_construct()  # the contract's default date window, whatever the environment says
PROJECTS = ["P1", "P2", "P3"]  # a small pool: repeated keys and children of unknown projects are common
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)  # any unicode UTF-8 can write
dirt = st.one_of(
    st.just(""),
    st.just(" "),
    st.just("null"),
    st.just("NaN"),
    st.just("-inf"),
    st.just("1e309"),
    st.just("-1"),
    st.just("9" * 40),
    st.just("2023-02-30"),
    st.just("0001-01-01"),
    st.just("31/12/2023"),
    st.just("2999-01-01T00:00:00+14:00"),
    st.just("项目-001"),
    st.just("\u202eP1"),
    st.just("TRUE"),
    text,
)


def _good(kind: Kind, column) -> st.SearchStrategy[str]:
    if column.allowed:
        return st.sampled_from(column.allowed)
    if kind == Kind.ID:
        return (
            st.sampled_from([*PROJECTS, "X1", "X2"])
            if column.name == "project_id"
            else st.sampled_from(["A1", "A2", "A3", "A4", "P1", "P2"])
        )
    if kind == Kind.DATE:
        return st.dates(pd.Timestamp("2015-01-01").date(), pd.Timestamp("2024-12-31").date()).map(str)
    if kind == Kind.TIMESTAMP:
        return st.datetimes(pd.Timestamp("2015-01-01"), pd.Timestamp("2024-12-31")).map(lambda t: t.isoformat())
    if kind in (Kind.FLOAT, Kind.INT):
        lo = 0 if column.min is None else column.min
        hi = 1e7 if column.max is None else column.max
        return st.integers(int(lo), int(hi)).map(str)
    if kind == Kind.BOOL:
        return st.sampled_from(["true", "false", "1", "0", "yes", "no"])
    return text


def _cell(column) -> st.SearchStrategy[str]:
    return st.one_of(_good(column.kind, column), dirt)


def _rows(table: str) -> st.SearchStrategy[list[dict[str, str]]]:
    columns = TABLES[table].columns
    row = st.fixed_dictionaries({c.name: _cell(c) for c in columns})
    return st.lists(row, max_size=15)


tables = st.fixed_dictionaries({name: _rows(name) for name in TABLE_ORDER})


# Native values, as a Parquet file (or a careless export tool) may hand over a column of mixed types.
native = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(1e308),
    text,
    st.dates(),
)


def _raw(rows: list[dict], table: str, source: str) -> pd.DataFrame:
    """Rows as ``read_table`` hands them over: every contract column, the source file and row."""
    columns = [c.name for c in TABLES[table].columns]
    frame = pd.DataFrame(rows, columns=columns)
    frame[SOURCE_ROW] = range(1, len(frame) + 1)
    frame[SOURCE_FILE] = pd.Categorical([source] * len(frame))
    return frame


def _check(data, raw: dict[str, pd.DataFrame]) -> None:
    for name, frame in raw.items():
        report = data.reports[name]
        accepted, quarantined = data.tables[name], data.quarantine[name]
        assert report.rows_in == len(frame), name
        assert report.rows_accepted == len(accepted), name
        assert len(quarantined) == report.rows_quarantined, name
        assert len(accepted) + len(quarantined) == len(frame), name  # rows in = accepted + quarantined
        assert set(quarantined[SOURCE_ROW]) <= set(frame[SOURCE_ROW]), name
        for col in (SOURCE_FILE, SOURCE_ROW, ERROR_COLUMN, ERROR_REASON):
            assert quarantined[col].notna().all(), (name, col)
        for col in TABLES[name].required_columns:  # an accepted row has every required value
            assert accepted[col].notna().all(), (name, col)
        key = list(TABLES[name].key)
        assert not accepted.duplicated(key).any(), name  # a repeated key is kept once


@FEW
@given(tables)
def test_dirty_text_rows_never_crash_and_every_row_is_counted(rows):
    raw = {name: _raw(r, name, f"{name}.csv") for name, r in rows.items()}
    raw = {name: frame.astype({c.name: "str" for c in TABLES[name].columns}) for name, frame in raw.items()}
    _check(validate_tables(raw, Path("."), SETTINGS), raw)


@FEW
@given(st.data())
def test_columns_of_mixed_native_types_never_crash(data):
    raw = {}
    for name in TABLE_ORDER:
        n = data.draw(st.integers(0, 10), label=f"{name} rows")
        rows = [
            {c.name: data.draw(st.one_of(native, _good(c.kind, c))) for c in TABLES[name].columns} for _ in range(n)
        ]
        raw[name] = _raw(rows, name, f"{name}.parquet")
    _check(validate_tables(raw, Path("."), SETTINGS), raw)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables)
def test_a_folder_of_dirty_csv_files_loads(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("dirty")
    for name, table_rows in rows.items():
        columns = [c.name for c in TABLES[name].columns]
        with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            writer.writerows(table_rows)
    data = load(folder, SETTINGS)
    raw = {name: pd.DataFrame({SOURCE_ROW: range(1, len(r) + 1)}) for name, r in rows.items()}
    for name, frame in raw.items():
        assert data.reports[name].rows_in == len(frame) == len(data.tables[name]) + len(data.quarantine[name])
