"""Validate raw tables against the contract (``features.contract``): type what is good, quarantine what is not.

Nothing is dropped or blanked silently. A row with a bad required value (or key), a repeated key or an unknown
project goes to the table's quarantine frame with its source file, source row, the first failing column, the first
error code and every problem of the row in words. A bad value in an optional column only sets that cell missing:
the row is accepted, and the cell goes to the table's cell report with its source file, source row, column, first
error code, problems in words and the value as read. Per table, rows in = rows accepted + rows quarantined, and the
cell report lists every cell set missing in an accepted row. A problem that makes the data unusable (a required
table or column missing) raises ``ContractError`` with what to fix.

Checks, in the order that decides a row's (or a cell's) "first" error:

1. per cell, in contract column order: missing required value, unparseable value, negative or out-of-range
   number, text outside its allowed values, implausible date, fact dated after the export; in an optional column
   the cell is set missing before the checks below, so a bad value is never compared with another;
2. per row: each ``ordered`` pair of dates (the later one must not be before the earlier one): the row is
   quarantined if either column is required; if both are optional, both cells are set missing (neither can be
   trusted, and the row keeps its children);
3. duplicates of the table's key among rows that passed 1-2 (the first row is kept);
4. references: a child row's ``project_id`` must name an accepted project.

Everything is vectorised: columns already stored in a native type (Parquet) are not parsed again, and the work per
rejected row (building its reason) only touches the rejected rows.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eqsms.settings import Settings, get_settings
from features.contract import FACT_COLUMNS, TABLE_ORDER, TABLES, Column, Error, Kind, Table
from features.io import CONTRACT_DOC, SOURCE_FILE, SOURCE_ROW, ContractError, describe_sources, read_table, table_files

ERROR_COLUMN = "_column"
ERROR_CODE = "_error"
ERROR_REASON = "_reason"
CELL_VALUE = "_value"
QUARANTINE_META = (SOURCE_FILE, SOURCE_ROW, ERROR_COLUMN, ERROR_CODE, ERROR_REASON)
CELL_META = (*QUARANTINE_META, CELL_VALUE)
CELLS_SUFFIX = "_cells"  # <table>_cells.csv beside <table>.csv
SUMMARY_FILE = "summary.json"

TRUE_WORDS = ("true", "1", "yes", "t", "y")
FALSE_WORDS = ("false", "0", "no", "f", "n")
DATE_FORMAT = "%Y-%m-%d"
DATETIME = "datetime64[us]"


# ----------------------------------------------------------------------------------------------- results


@dataclass
class TableReport:
    table: str
    rows_in: int
    rows_accepted: int
    reasons: Counter  # Error code -> rows quarantined with it as their first error
    cells: Counter = field(default_factory=Counter)  # (column, Error code) -> cells set missing, by their first error

    @property
    def rows_quarantined(self) -> int:
        return self.rows_in - self.rows_accepted

    @property
    def cells_nulled(self) -> int:
        return sum(self.cells.values())

    def top_reasons(self, n: int = 3) -> list[tuple[str, int]]:
        return [(str(code), count) for code, count in self.reasons.most_common(n)]

    def top_cells(self, n: int = 3) -> list[tuple[str, int]]:
        return [(f"{column}: {code}", count) for (column, code), count in self.cells.most_common(n)]

    def as_dict(self) -> dict:
        cells: dict[str, dict[str, int]] = {}
        for (column, code), count in self.cells.most_common():
            cells.setdefault(column, {})[str(code)] = count
        return {
            "rows_in": self.rows_in,
            "accepted": self.rows_accepted,
            "quarantined": self.rows_quarantined,
            "reasons": {str(code): count for code, count in self.reasons.most_common()},
            "cells_nulled": self.cells_nulled,
            "cells": cells,
        }


@dataclass
class ValidatedData:
    data_dir: Path
    tables: dict[str, pd.DataFrame]  # all six contract tables, typed; a missing table is an empty typed frame
    quarantine: dict[str, pd.DataFrame]  # per table: one line per rejected row
    cells: dict[str, pd.DataFrame]  # per table: one line per cell set missing in an accepted row
    reports: dict[str, TableReport]  # per table that had a file
    missing_tables: list[str]  # optional tables with no file
    missing_columns: dict[str, list[str]]  # optional contract columns absent from a table's files

    def summary(self) -> dict:
        return {
            "data_dir": str(self.data_dir),
            "tables": {name: rep.as_dict() for name, rep in self.reports.items()},
            "missing_tables": list(self.missing_tables),
            "missing_columns": {k: list(v) for k, v in self.missing_columns.items()},
        }


class _Issue(NamedTuple):
    """One kind of problem found in one column: which rows, which code, and how to say it."""

    mask: np.ndarray  # bool, one per row
    code: Error
    text: str  # said after the value: "is not a number"
    quote: bool = True  # show the value quoted ('abc') or bare (7)


class _Finding(NamedTuple):
    """Rows (sorted positions) with one problem, and the problem of each row in words."""

    rows: np.ndarray
    column: str
    code: Error
    reasons: np.ndarray  # object array of str, one per row
    nulls: tuple[str, ...] = ()  # the cells it sets missing; none: it quarantines the row


# ----------------------------------------------------------------------------------------------- typing cells


def _empty_column(kind: Kind, n: int) -> pd.Series:
    """A column of ``n`` missing values in the typed dtype of ``kind``."""
    if kind in (Kind.ID, Kind.TEXT):
        return pd.Series(np.nan, index=pd.RangeIndex(n), dtype="str")
    if kind in (Kind.DATE, Kind.TIMESTAMP):
        return pd.Series(np.full(n, np.datetime64("NaT", "us")), index=pd.RangeIndex(n))
    if kind == Kind.BOOL:
        return pd.Series(pd.arrays.BooleanArray(np.zeros(n, bool), np.ones(n, bool)), index=pd.RangeIndex(n))
    return pd.Series(np.full(n, np.nan), index=pd.RangeIndex(n))


def empty_table(table: str) -> pd.DataFrame:
    """The typed frame of a table with no rows: every contract column in its dtype."""
    return pd.DataFrame({c.name: _empty_column(c.kind, 0) for c in TABLES[table].columns})


def _unwrap(col: pd.Series) -> pd.Series:
    """Categorical and Python-object columns as the plainest native dtype their values allow."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if col.dtype != object:
        return col
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    if inferred in ("string", "empty"):
        return col.astype("str")
    if inferred == "boolean":
        return col.astype("boolean")
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return pd.to_numeric(col, errors="coerce").astype("float64")
    if inferred in ("datetime", "datetime64", "date"):
        return pd.to_datetime(col, utc=True, errors="coerce")
    return col.astype("str")


def _as_text(col: pd.Series) -> pd.Series:
    """Any column as stripped strings (``str`` dtype); missing and empty cells are NA."""
    if not isinstance(col.dtype, pd.StringDtype):
        if pd.api.types.is_float_dtype(col.dtype):
            values = col.to_numpy(dtype="float64", na_value=np.nan)
            finite = values[np.isfinite(values)]
            if np.array_equal(finite, np.round(finite)) and (not finite.size or np.abs(finite).max() < 2**53):
                col = col.astype("Int64")
        col = col.astype("str")
    text = col.str.strip()
    if text.dtype != "str":
        text = text.astype("str")
    return text.mask(text.eq(""))


def _is_native_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col.dtype) and not isinstance(col.dtype, pd.StringDtype)


def _naive_utc(col: pd.Series) -> pd.Series:
    if getattr(col.dtype, "tz", None) is not None:
        col = col.dt.tz_convert("UTC").dt.tz_localize(None)
    return col.astype(DATETIME)


def _parse_text(col: pd.Series, spec: Column) -> tuple[pd.Series, list[_Issue]]:
    text = _as_text(col)
    if not spec.allowed:
        return text, []
    text = text.str.lower()
    bad = (text.notna() & ~text.isin(spec.allowed)).to_numpy()
    return text, [_Issue(bad, Error.NOT_ALLOWED, f"is not one of {', '.join(spec.allowed)}")]


def _arrow_times(text: pd.Series, kind: Kind) -> np.ndarray | None:
    """Strings to naive UTC datetime64[us] through Arrow's strict ISO 8601 cast, or None if any value needs pandas.

    A fast path for clean exports; pandas parses (and reports) the rest with the same meaning.
    """
    values = pa.array(text)
    if kind == Kind.DATE:
        if pc.all(pc.equal(pc.utf8_length(values), 10)).as_py() is False:
            return None
        targets = [pa.timestamp("us")]
    else:
        targets = [pa.timestamp("us"), pa.timestamp("us", tz="UTC")]
    for target in targets:
        try:
            return pc.cast(values, target).to_numpy(zero_copy_only=False).astype(DATETIME)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _parse_time(col: pd.Series, spec: Column) -> tuple[pd.Series, list[_Issue]]:
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return _naive_utc(col), []
    text = _as_text(col)
    date = spec.kind == Kind.DATE
    what = "is not a date (YYYY-MM-DD)" if date else "is not a date (YYYY-MM-DD or ISO 8601)"
    fast = _arrow_times(text, spec.kind)
    if fast is not None:
        return pd.Series(fast, index=col.index, copy=False), []
    if date:
        typed = pd.to_datetime(text, format=DATE_FORMAT, errors="coerce")
    else:
        typed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    typed = _naive_utc(typed)
    bad = (text.notna() & typed.isna()).to_numpy()
    return typed, [_Issue(bad, Error.UNPARSEABLE_DATE, what)]


def _to_float(text: pd.Series) -> np.ndarray:
    """Stripped strings to float64 (NaN where missing or not a number); Arrow's cast when every value parses."""
    try:
        return pc.cast(pa.array(text), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _range_issues(values: np.ndarray, valid: np.ndarray, spec: Column) -> list[_Issue]:
    """Valid numbers below ``min`` (``negative_value`` when min is 0) or above ``max`` (``out_of_range``)."""
    none = np.zeros(len(values), bool)
    low = valid & (values < spec.min) if spec.min is not None else none
    high = valid & (values > spec.max) if spec.max is not None else none
    issues = []
    if spec.min == 0:
        issues.append(_Issue(low, Error.NEGATIVE_VALUE, "is negative", quote=False))
        low = none
    if spec.min is not None and spec.max is not None:
        issues.append(_Issue(low | high, Error.OUT_OF_RANGE, f"is outside {spec.min:g}–{spec.max:g}", quote=False))
    elif spec.min is not None and spec.min != 0:
        issues.append(_Issue(low, Error.OUT_OF_RANGE, f"is below {spec.min:g}", quote=False))
    elif spec.max is not None:
        issues.append(_Issue(high, Error.OUT_OF_RANGE, f"is above {spec.max:g}", quote=False))
    return issues


def _parse_number(col: pd.Series, spec: Column) -> tuple[pd.Series, list[_Issue]]:
    whole = pd.api.types.is_integer_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)
    if _is_native_number(col):
        values = col.to_numpy(dtype="float64", na_value=np.nan)
        given = ~np.isnan(values)
    else:
        text = _as_text(col)
        values = _to_float(text)  # NaN where missing or not a number
        given = text.notna().to_numpy()
    valid = np.isfinite(values)
    issues = [_Issue(given & ~valid, Error.UNPARSEABLE_NUMBER, "is not a number")]
    if spec.kind == Kind.INT and not whole:
        fraction = valid & (values != np.rint(values))
        issues.append(_Issue(fraction, Error.UNPARSEABLE_NUMBER, "is not a whole number"))
        valid &= ~fraction
    issues += _range_issues(values, valid, spec)
    return pd.Series(values, index=col.index, copy=False), issues


def _parse_bool(col: pd.Series, spec: Column) -> tuple[pd.Series, list[_Issue]]:
    what = f"is not a boolean ({', '.join(f'{t}/{f}' for t, f in zip(TRUE_WORDS, FALSE_WORDS, strict=True))})"
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.astype("boolean"), []
    if _is_native_number(col):
        values = col.to_numpy(dtype="float64", na_value=np.nan)
        given = ~np.isnan(values)
        true, false = values == 1, values == 0
    else:
        text = _as_text(col).str.lower()
        given = text.notna().to_numpy()
        true, false = text.isin(TRUE_WORDS).to_numpy(), text.isin(FALSE_WORDS).to_numpy()
    typed = pd.Series(pd.arrays.BooleanArray(true, ~(true | false)), index=col.index, copy=False)
    return typed, [_Issue(given & ~(true | false), Error.UNPARSEABLE_BOOL, what)]


_PARSERS = {
    Kind.ID: _parse_text,
    Kind.TEXT: _parse_text,
    Kind.DATE: _parse_time,
    Kind.TIMESTAMP: _parse_time,
    Kind.FLOAT: _parse_number,
    Kind.INT: _parse_number,
    Kind.BOOL: _parse_bool,
}


def parse_column(col: pd.Series, spec: Column) -> tuple[pd.Series, list[_Issue]]:
    """A raw column typed per its contract kind, and its problems (a missing required value first).

    A cell that fails to parse is missing in the typed column (whether its row is kept is the caller's choice).
    """
    typed, issues = _PARSERS[spec.kind](_unwrap(col), spec)
    if spec.required:
        missing = typed.isna().to_numpy().copy()
        for issue in issues:
            missing &= ~issue.mask
        issues = [_Issue(missing, Error.MISSING_VALUE, "missing (required)"), *issues]
    return typed, issues


# ----------------------------------------------------------------------------------------------- findings


def _shown(col: pd.Series, rows: np.ndarray) -> np.ndarray:
    """How a message shows the values of ``rows`` of ``col``: as they were read."""
    values = col.iloc[rows]
    if isinstance(values.dtype, pd.StringDtype):
        return values.fillna("").to_numpy(dtype=object)
    return values.astype(str).to_numpy(dtype=object)


def _optional(spec: Table, name: str) -> bool:
    """Whether a bad value in column ``name`` sets the cell missing (True) or quarantines the row."""
    return not spec.column(name).required and name not in spec.key


def _finding(raw: pd.Series, name: str, issue: _Issue, nulls: tuple[str, ...] = ()) -> _Finding | None:
    rows = np.flatnonzero(issue.mask)
    if not rows.size:
        return None
    if issue.code == Error.MISSING_VALUE:
        reasons = np.full(rows.size, f"{name}: {issue.text}", dtype=object)
    else:
        shown = _shown(raw, rows)
        quote = "'" if issue.quote else ""
        reasons = f"{name}: {quote}" + shown + f"{quote} {issue.text}"
    return _Finding(rows, name, issue.code, reasons, nulls)


def _nulled(values: pd.Series, name: str, findings: list[_Finding]) -> pd.Series:
    """``values`` (column ``name``) with the cells that ``findings`` set missing."""
    rows = [f.rows for f in findings if name in f.nulls]
    if not rows:
        return values
    mask = np.zeros(len(values), bool)
    mask[np.concatenate(rows)] = True
    return values.mask(mask)


def _ordered_findings(spec: Table, raw: pd.DataFrame, typed: dict[str, pd.Series]) -> list[_Finding]:
    """Pairs out of order; a pair of optional columns sets both cells missing, any other quarantines the row."""
    findings = []
    for earlier, later in spec.ordered:
        if earlier not in raw.columns or later not in raw.columns:
            continue
        rows = np.flatnonzero((typed[later] < typed[earlier]).to_numpy())
        if rows.size:
            reasons = f"{later} " + _shown(raw[later], rows) + f" is before {earlier} " + _shown(raw[earlier], rows)
            nulls = (earlier, later) if _optional(spec, earlier) and _optional(spec, later) else ()
            findings.append(_Finding(rows, later, Error.INCONSISTENT_DATES, reasons, nulls))
    return findings


def _strictly_increasing(keys: list[pd.Series]) -> bool:
    """True if the rows are sorted by the key with no repeat: a cheap proof that the key is unique."""
    n = len(keys[0])
    if n < 2:
        return True
    greater, equal = np.zeros(n - 1, bool), np.ones(n - 1, bool)
    for key in keys:
        values = key.array
        after, before = values[1:], values[:-1]
        greater |= equal & np.asarray(after > before, dtype=bool)
        equal &= np.asarray(after == before, dtype=bool)
    return bool(greater.all())


KEY_HASHES = ("eqsms-key-hash-1", "eqsms-key-hash-2")  # two independent 64-bit hashes of a key: 128 bits


def key_hashes(keys: pd.DataFrame) -> pd.DataFrame:
    """Two independent 64-bit hashes of each row's key (``h1``, ``h2``): equal keys give equal pairs, and two
    different keys the same pair with a chance of about 2^-128. What the Dask engine compares across part files."""
    return pd.DataFrame(
        {
            name: pd.util.hash_pandas_object(keys, index=False, hash_key=k).to_numpy()
            for name, k in zip(("h1", "h2"), KEY_HASHES, strict=True)
        }
    )


def _key_candidates(spec: Table, typed: dict[str, pd.Series], passed: np.ndarray) -> pd.DataFrame:
    """The typed keys of the rows (among ``passed``) with a whole key: those the repeated-key rule compares. Its
    index is the rows' positions in the table."""
    frame = pd.DataFrame({k: typed[k] for k in spec.key})
    candidates = passed & frame.notna().all(axis=1).to_numpy()
    return frame if candidates.all() else frame.iloc[np.flatnonzero(candidates)]


def _repeats_of_prior(keys: pd.DataFrame, prior: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows (positions) whose key was first seen before this table's rows (``prior``: ``h1``, ``h2``, and where
    it was seen: ``file``, ``row``), with that file and row."""
    if prior is None or not len(prior) or not len(keys):
        return np.array([], np.int64), np.array([], object), np.array([], np.int64)
    found = key_hashes(keys).assign(position=keys.index.to_numpy()).merge(prior, on=["h1", "h2"], sort=False)
    return (
        found["position"].to_numpy(np.int64),
        found["file"].to_numpy(dtype=object),
        found["row"].to_numpy(np.int64),
    )


def _repeats_within(keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The rows (positions) whose key repeats an earlier row of ``keys``, with that first row's position."""
    none = np.array([], np.int64)
    if _strictly_increasing([keys[k] for k in keys.columns]):
        return none, none
    repeated = keys.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return none, none
    group = keys.iloc[np.flatnonzero(repeated)]
    positions = group.index.to_numpy()  # positions in the table
    ids = group.groupby(list(keys.columns), sort=False, dropna=False).ngroup().to_numpy()
    _, first_at = np.unique(ids, return_index=True)
    first = positions[first_at[ids]]
    later = positions != first
    return positions[later], first[later]


def _duplicate_finding(spec: Table, raw: pd.DataFrame, keys: pd.DataFrame, prior: pd.DataFrame | None = None):
    """Rows whose key repeats an earlier row: of ``prior`` (keys first seen in earlier files, as the Dask engine
    passes them), else of this table (the first row of each key is kept). ``keys``: ``_key_candidates``."""
    rows_p, file_p, row_p = _repeats_of_prior(keys, prior)
    rows_w, first_w = _repeats_within(keys.drop(index=rows_p) if rows_p.size else keys)
    if not rows_p.size and not rows_w.size:
        return None
    rows = np.concatenate([rows_p, rows_w])
    file_of_first = np.concatenate([file_p, _shown(raw[SOURCE_FILE], first_w)]).astype(object)
    row_of_first = np.concatenate([row_p, raw[SOURCE_ROW].to_numpy()[first_w]])
    order = np.argsort(rows, kind="stable")
    rows, file_of_first, row_of_first = rows[order], file_of_first[order], row_of_first[order]
    file_of_row = _shown(raw[SOURCE_FILE], rows)
    where = np.where(file_of_first == file_of_row, "source row ", file_of_first + " row ").astype(object)
    described = None
    for k in spec.key:
        part = f"{k} " + _shown(raw[k], rows)
        described = part if described is None else described + ", " + part
    reasons = described + " repeats " + where + row_of_first.astype(str).astype(object)
    return _Finding(rows, "+".join(spec.key), Error.DUPLICATE_ID, reasons)


class _Projects(NamedTuple):
    accepted: pd.Series  # project ids of accepted projects
    seen: pd.Series  # project ids of every project row, accepted or not


def _isin(values: pd.Series, choices: pd.Series) -> np.ndarray:
    """``values.isin(choices)`` for string columns, through Arrow's hash lookup (pandas' goes through Python)."""
    found = pc.is_in(pa.array(values), value_set=pa.array(choices.dropna().astype("str")))
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _reference_finding(typed: dict[str, pd.Series], projects: _Projects) -> _Finding | None:
    pid = typed["project_id"]
    unknown = pid.notna().to_numpy() & ~_isin(pid, projects.accepted)
    rows = np.flatnonzero(unknown)
    if not rows.size:
        return None
    ids = pid.iloc[rows]
    quarantined = _isin(ids, projects.seen)
    shown = ids.to_numpy(dtype=object)
    reasons = np.where(
        quarantined,
        "project_id: project " + shown + " was quarantined",
        "project_id: no project " + shown + " in projects",
    ).astype(object)
    return _Finding(rows, "project_id", Error.UNKNOWN_PROJECT, reasons)


def _resolve(findings: list[_Finding]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rejected rows (sorted): those with a finding that quarantines. For each, the column and code of its first such
    finding, and all its reasons joined (a bad optional cell's too)."""
    rejecting = [f.rows for f in findings if not f.nulls]
    if not rejecting:
        empty = np.array([], dtype=object)
        return np.array([], dtype=np.int64), empty, empty, empty
    bad = np.unique(np.concatenate(rejecting))
    column = np.empty(bad.size, dtype=object)
    code = np.empty(bad.size, dtype=object)
    reason = np.full(bad.size, "", dtype=object)
    named, said = np.zeros(bad.size, bool), np.zeros(bad.size, bool)
    for f in findings:
        pos = np.searchsorted(bad, f.rows)
        hit = bad[np.minimum(pos, bad.size - 1)] == f.rows
        pos, reasons = pos[hit], f.reasons[hit]
        if not f.nulls:
            new = pos[~named[pos]]
            column[new] = f.column
            code[new] = str(f.code)
            named[new] = True
        reason[pos] = np.where(said[pos], reason[pos] + "; " + reasons, reasons)
        said[pos] = True
    return bad, column, code, reason


def _cell_lines(findings: list[_Finding], bad: np.ndarray, columns: list[str]):
    """Cells set missing outside the ``bad`` rows, each once, by row then column (in ``columns`` order): row, column,
    the first code and all its reasons joined."""
    parts = []
    for f in findings:
        keep = ~np.isin(f.rows, bad)
        rows, reasons, n = f.rows[keep], f.reasons[keep], int(keep.sum())
        parts += [(rows, np.full(n, columns.index(c)), np.full(n, str(f.code), object), reasons) for c in f.nulls if n]
    if not parts:
        return np.array([], np.int64), np.array([], object), np.array([], object), np.array([], object)
    row, at, code, reason = (np.concatenate(p) for p in zip(*parts, strict=True))
    order = np.lexsort((at, row))  # stable: a cell's findings keep their order
    row, at, code, reason = row[order], at[order], code[order], reason[order]
    first = np.r_[True, (row[1:] != row[:-1]) | (at[1:] != at[:-1])]
    reason = np.add.reduceat(np.where(first, reason, "; " + reason), np.flatnonzero(first))
    return row[first], np.array(columns, object)[at[first]], code[first], reason


def _cells(spec: Table, raw: pd.DataFrame, findings: list[_Finding], bad: np.ndarray) -> pd.DataFrame:
    """One line per cell set missing in an accepted row: its source, column, first code, reasons and value as read."""
    row, name, code, reason = _cell_lines(findings, bad, [c.name for c in spec.columns])
    value = np.empty(row.size, dtype=object)
    for n in pd.unique(name):
        at = name == n
        value[at] = _shown(raw[n], row[at])
    cells = pd.DataFrame(
        {
            SOURCE_FILE: raw[SOURCE_FILE].iloc[row].astype(str).to_numpy(dtype=object),
            SOURCE_ROW: raw[SOURCE_ROW].to_numpy(dtype=np.int64)[row],
            ERROR_COLUMN: name,
            ERROR_CODE: code,
            ERROR_REASON: reason,
            CELL_VALUE: value,
        }
    )
    return cells.astype({c: "str" for c in CELL_META if c != SOURCE_ROW})


# ----------------------------------------------------------------------------------------------- tables


def _with_sources(raw: pd.DataFrame, table: str) -> pd.DataFrame:
    raw = raw.reset_index(drop=True)
    if SOURCE_FILE not in raw.columns:
        raw[SOURCE_FILE] = pd.Categorical.from_codes(np.zeros(len(raw), np.int32), categories=[table])
    if SOURCE_ROW not in raw.columns:
        raw[SOURCE_ROW] = np.arange(1, len(raw) + 1, dtype=np.int64)
    return raw


def _source_names(raw: pd.DataFrame, table: str) -> list[str]:
    names = raw.attrs.get("source_files")
    if names:
        return list(names)
    if SOURCE_FILE in raw.columns and len(raw):
        return [str(n) for n in pd.unique(raw[SOURCE_FILE].astype(str))]
    return []


def _missing_table(name: str, data_dir: Path) -> str:
    return (
        f"{name}: no file {name}.csv or {name}.parquet (or folder {name}/) in {data_dir}; the contract requires it "
        f"({CONTRACT_DOC})"
    )


def _fatal_problems(raw: dict[str, pd.DataFrame | None], data_dir: Path) -> list[str]:
    problems = []
    for name in TABLE_ORDER:
        spec, frame = TABLES[name], raw.get(name)
        if frame is None:
            if spec.required:
                problems.append(_missing_table(name, data_dir))
            continue
        absent = [c for c in spec.required_columns if c not in frame.columns]
        if absent:
            where = describe_sources(_source_names(frame, name), name)
            found = ", ".join(str(c) for c in frame.columns if c not in (SOURCE_FILE, SOURCE_ROW)) or "none"
            noun = "column" if len(absent) == 1 else "columns"
            verb = "is" if len(absent) == 1 else "are"
            problems.append(
                f"{where}: required {noun} {', '.join(absent)} {verb} missing; columns found: {found} ({CONTRACT_DOC})"
            )
    return problems


class _TableResult(NamedTuple):
    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    cells: pd.DataFrame
    report: TableReport
    missing_columns: list[str]
    project_ids: _Projects | None  # for the projects table: what child rows may reference
    first_keys: pd.DataFrame | None = None  # h1, h2, row: each key's first row here among those compared


def _quarantine_frame(raw: pd.DataFrame, rows: np.ndarray, column, code, reason) -> pd.DataFrame:
    picked = raw.iloc[:0] if not len(rows) else raw.iloc[rows].reset_index(drop=True)
    meta = pd.DataFrame(
        {
            SOURCE_FILE: picked[SOURCE_FILE].astype(str).to_numpy(dtype=object),
            SOURCE_ROW: picked[SOURCE_ROW].to_numpy(dtype=np.int64),
            ERROR_COLUMN: column,
            ERROR_CODE: code,
            ERROR_REASON: reason,
        }
    )
    meta = meta.astype({c: "str" for c in (SOURCE_FILE, ERROR_COLUMN, ERROR_CODE, ERROR_REASON)})
    values = picked.drop(columns=[SOURCE_FILE, SOURCE_ROW])
    return pd.concat([meta, values], axis=1)


class DateWindow(NamedTuple):
    """Plausible dates, and the time of the export: what happened cannot be dated after it."""

    earliest: np.datetime64
    latest: np.datetime64
    export: np.datetime64

    @classmethod
    def of(cls, settings) -> DateWindow:
        now = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(days=1)  # a day's slack for time zones
        return cls(*(np.datetime64(pd.Timestamp(t), "us") for t in (settings.earliest_date, settings.latest_date, now)))


def _date_issues(table: str, col: Column, values: pd.Series, window: DateWindow) -> list[_Issue]:
    """Dates outside the plausible window; facts (FACT_COLUMNS) dated after the export."""
    t = values.to_numpy(dtype=DATETIME)
    known = ~np.isnat(t)
    issues = [
        _Issue(
            known & ((t < window.earliest) | (t > window.latest)),
            Error.IMPLAUSIBLE_DATE,
            f"is outside the plausible dates {str(window.earliest)[:10]} .. {str(window.latest)[:10]}",
        )
    ]
    if col.name in FACT_COLUMNS.get(table, ()):
        issues.append(
            _Issue(known & (t > window.export), Error.FUTURE_FACT, "is after the export: it has not happened")
        )
    return issues


def _typed_columns(
    spec: Table, raw: pd.DataFrame, window: DateWindow
) -> tuple[dict[str, pd.Series], list[_Finding], list[str]]:
    """Every contract column typed, with a bad optional cell set missing; the cells' problems; the absent columns."""
    typed: dict[str, pd.Series] = {}
    findings: list[_Finding] = []
    absent = []
    for col in spec.columns:
        if col.name not in raw.columns:
            typed[col.name] = _empty_column(col.kind, len(raw))
            absent.append(col.name)
            continue
        values, issues = parse_column(raw[col.name], col)
        if col.kind in (Kind.DATE, Kind.TIMESTAMP):
            issues += _date_issues(spec.name, col, values, window)
        nulls = (col.name,) if _optional(spec, col.name) else ()
        found = [f for issue in issues if (f := _finding(raw[col.name], col.name, issue, nulls)) is not None]
        typed[col.name] = _nulled(values, col.name, found)
        findings += found
    return typed, findings, absent


def _validate_table(
    spec: Table,
    raw: pd.DataFrame,
    projects: _Projects | None,
    window: DateWindow,
    prior: pd.DataFrame | None = None,
    first_keys: bool = False,
) -> _TableResult:
    """Validate one table's rows (or one file's, for the Dask engine: ``prior`` then holds the hashes of keys first
    seen in earlier files, and ``first_keys`` asks for the hashes of the keys this file holds first)."""
    raw = _with_sources(raw, spec.name)
    n = len(raw)
    typed, findings, absent = _typed_columns(spec, raw, window)
    ordered = _ordered_findings(spec, raw, typed)
    for name in dict.fromkeys(c for pair in spec.ordered for c in pair):
        typed[name] = _nulled(typed[name], name, ordered)
    findings += ordered
    passed = np.ones(n, bool)
    for f in findings:
        if not f.nulls:
            passed[f.rows] = False
    keys = _key_candidates(spec, typed, passed)
    if (dup := _duplicate_finding(spec, raw, keys, prior)) is not None:
        findings.append(dup)
    if spec.references_project and projects is not None:
        if (ref := _reference_finding(typed, projects)) is not None:
            findings.append(ref)
    bad, column, code, reason = _resolve(findings)

    extras = [c for c in raw.columns if c not in typed and c not in (SOURCE_FILE, SOURCE_ROW)]
    frame = pd.DataFrame(typed, copy=False)  # no consolidation copy
    if extras:
        frame = pd.concat([frame, raw[extras]], axis=1)
    good = np.ones(n, bool)
    good[bad] = False
    accepted = frame if not bad.size else frame.iloc[np.flatnonzero(good)].reset_index(drop=True)
    quarantine = _quarantine_frame(raw, bad, column, code, reason)
    cells = _cells(spec, raw, findings, bad)
    nulled = Counter(zip(cells[ERROR_COLUMN].tolist(), cells[ERROR_CODE].tolist(), strict=True))
    report = TableReport(spec.name, n, n - bad.size, Counter(code.tolist()), nulled)
    ids = None
    if spec.name == "projects":
        seen = typed["project_id"].dropna()
        ids = _Projects(accepted=accepted["project_id"], seen=seen)
    firsts = None
    if first_keys:
        kept = keys if dup is None else keys.drop(index=dup.rows, errors="ignore")
        firsts = key_hashes(kept).assign(row=raw[SOURCE_ROW].to_numpy()[kept.index.to_numpy()])
    return _TableResult(accepted, quarantine, cells, report, absent, ids, firsts)


def _empty_quarantine(table: str) -> pd.DataFrame:
    meta = {c: pd.Series([], dtype="int64" if c == SOURCE_ROW else "str") for c in QUARANTINE_META}
    return pd.DataFrame(meta | {c.name: pd.Series([], dtype="str") for c in TABLES[table].columns})


def _empty_cells() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="int64" if c == SOURCE_ROW else "str") for c in CELL_META})


def validate_tables(
    raw: dict[str, pd.DataFrame | None],
    data_dir: Path = Path("."),
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ValidatedData:
    """Validate raw tables (as ``read_table`` returns them; None = no file) against the contract, with the
    plausible dates of ``settings`` (default: as the environment says now). ``progress(what, done, total)``, if
    given, hears of each table before it is validated (a command's progress display).

    Raises ``ContractError`` if a required table or a required column is missing.
    """
    data_dir = Path(data_dir)
    window = DateWindow.of(settings or get_settings())
    problems = _fatal_problems(raw, data_dir)
    if problems:
        raise ContractError("\n".join(problems))
    data = ValidatedData(data_dir, {}, {}, {}, {}, [], {})
    projects: _Projects | None = None
    for done, name in enumerate(TABLE_ORDER):
        if progress:
            progress(f"validating {name}", done, len(TABLE_ORDER))
        frame = raw.get(name)
        if frame is None:
            data.tables[name] = empty_table(name)
            data.quarantine[name] = _empty_quarantine(name)
            data.cells[name] = _empty_cells()
            data.missing_tables.append(name)
            continue
        result = _validate_table(TABLES[name], frame, projects, window)
        data.tables[name] = result.accepted
        data.quarantine[name] = result.quarantine
        data.cells[name] = result.cells
        data.reports[name] = result.report
        if result.missing_columns:
            data.missing_columns[name] = result.missing_columns
        if result.project_ids is not None:
            projects = result.project_ids
    return data


def load(
    data_dir: Path, settings: Settings | None = None, progress: Callable[[str, int, int], None] | None = None
) -> ValidatedData:
    """Read every contract table from ``data_dir`` and validate it; raises ``ContractError`` if it cannot be used.
    ``progress(what, done, total)``, if given, hears of each table before it is read and before it is validated."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"{data_dir} is not a folder; give the folder that holds the exported tables")
    absent = [t for t in TABLE_ORDER if TABLES[t].required and not table_files(data_dir, t)]
    if absent:  # say so before reading anything big
        raise ContractError("\n".join(_missing_table(t, data_dir) for t in absent))
    raw, n = {}, len(TABLE_ORDER)
    for done, t in enumerate(TABLE_ORDER):
        if progress:
            progress(f"reading {t}", done, 2 * n)
        raw[t] = read_table(data_dir, t)
    then = (lambda what, done, _: progress(what, n + done, 2 * n)) if progress else None
    return validate_tables(raw, data_dir, settings, then)


def write_quarantine(data: ValidatedData, out_dir: Path) -> list[Path]:
    """Write ``<table>.csv`` for each table with rejected rows, ``<table>_cells.csv`` for each with cells set missing,
    and ``summary.json``; returns the files written.

    Old quarantine files of the contract tables are removed first, so nothing stale is left behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLE_ORDER:
        for suffix, frames in (("", data.quarantine), (CELLS_SUFFIX, data.cells)):
            path = out_dir / f"{name}{suffix}.csv"
            path.unlink(missing_ok=True)
            frame = frames.get(name)
            if frame is not None and len(frame):
                frame.to_csv(path, index=False)
                written.append(path)
    summary = out_dir / SUMMARY_FILE
    summary.write_text(json.dumps(data.summary(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(summary)
    return written
