"""Importers: real exports in their own formats, mapped onto the raw data contract v1.

Each importer is a pure mapping (raw frames in, contract tables as strings out, as a user's CSV export would hold
them) plus an :class:`ImportReport` that says what was mapped, what was not, and why. :func:`write_import` then
sends the tables through the same validation and quarantine as any other data (``features.validate``) and writes
the accepted rows as contract CSV files, so that ``eqsms validate`` on the output folder accepts every row.

``data_samples/IMPORTERS.md`` documents each mapping column by column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import FILE_SUFFIXES, TABLES, Kind
from features.io import SOURCE_FILE, SOURCE_ROW, ContractError, read_file
from features.validate import ValidatedData, validate_tables, write_quarantine

REPORT_FILE = "import_report.json"


@dataclass
class Unmapped:
    """Raw rows or columns that did not become contract data, and why."""

    what: str  # "rows: phases with no planned end date (code IEH)", "column: Total Phase Actual Spending Amount"
    count: int  # rows concerned (0 for a whole column)
    why: str


@dataclass
class ImportReport:
    source: str
    snapshot: str | None = None  # the latest date in the export: the moment the data describes
    mapped: dict[str, int] = field(default_factory=dict)  # contract table -> rows written by the mapping
    unmapped: list[Unmapped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # decisions a user should know (kept as, censored, ...)
    validation: dict = field(default_factory=dict)  # features.validate summary of the mapped tables

    def skip(self, what: str, count: int, why: str) -> None:
        if count:
            self.unmapped.append(Unmapped(what, int(count), why))

    def column(self, name: str, why: str) -> None:
        self.unmapped.append(Unmapped(f"column {name!r}", 0, why))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Imported:
    tables: dict[str, pd.DataFrame]  # contract tables as strings, with the raw file and row of each line
    report: ImportReport


# ----------------------------------------------------------------------------------------------- reading


def read_raw(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A raw export as written (strings, header stripped), with its file and 1-based row; says what is missing."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: no such file; give the {what} export (CSV)")
    frame = read_file(path)
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ContractError(
            f"{path.name}: not a {what} export: column(s) {', '.join(absent)} missing; "
            f"columns found: {', '.join(frame.columns)}"
        )
    frame[SOURCE_FILE] = path.name
    frame[SOURCE_ROW] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def parse_dates(text: pd.Series, fmt: str) -> pd.Series:
    """Dates written in ``fmt``; anything else (codes, blanks) is NaT."""
    return pd.to_datetime(text.str.strip(), format=fmt, errors="coerce")


def excel_serial_dates(text: pd.Series) -> pd.Series:
    """Excel serial day numbers (origin 1899-12-30) as dates; blanks and non-numbers are NaT."""
    days = pd.to_numeric(text.str.strip(), errors="coerce")
    return pd.to_datetime(days, unit="D", origin="1899-12-30", errors="coerce")


def numbers(text: pd.Series) -> pd.Series:
    """Decimal numbers (thousands separators and currency signs removed); codes and blanks are NaN."""
    cleaned = text.str.replace(r"[,$\s]", "", regex=True)
    return pd.to_numeric(cleaned, errors="coerce")


def unique_ids(ids: pd.Series) -> pd.Series:
    """The ids, with ``#2``, ``#3``, ... appended to the second and later rows that repeat one."""
    n = ids.groupby(ids, sort=False).cumcount()
    return ids.where(n == 0, ids + "#" + (n + 1).astype(str))


def slug(text: pd.Series) -> pd.Series:
    """Lower-case words joined by ``_``: ``CM,F&E`` -> ``cm_f_e``, ``Purch & Install`` -> ``purch_install``."""
    return text.str.lower().str.replace(r"[^0-9a-z]+", "_", regex=True).str.strip("_")


# ----------------------------------------------------------------------------------------------- writing


def date_text(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%Y-%m-%d").fillna("")


def timestamp_text(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("")


def number_text(values: pd.Series) -> pd.Series:
    """Numbers as a CSV holds them: whole numbers without ``.0``, missing as the empty string."""
    values = pd.to_numeric(values, errors="coerce").astype("float64")
    whole = values.notna() & (values == values.round())
    out = values.map(lambda v: f"{v:.10g}" if np.isfinite(v) and abs(v) < 1e15 else f"{v:.2f}")
    out = out.where(~whole, values.round().astype("Int64").astype(str))
    return out.where(values.notna(), "")


def bool_text(values: pd.Series) -> pd.Series:
    return values.map({True: "true", False: "false"}).fillna("").astype(str)


def contract_text(typed: pd.DataFrame, table: str) -> pd.DataFrame:
    """Validated (typed) rows of a contract table as the strings of a contract CSV; extra columns as they are."""
    out = typed.copy()
    for spec in TABLES[table].columns:
        col = out[spec.name]
        if spec.kind == Kind.DATE:
            out[spec.name] = date_text(col)
        elif spec.kind == Kind.TIMESTAMP:
            out[spec.name] = timestamp_text(col)
        elif spec.kind in (Kind.INT, Kind.FLOAT):
            out[spec.name] = number_text(col)
        elif spec.kind == Kind.BOOL:
            out[spec.name] = bool_text(col.astype(object))
        else:
            out[spec.name] = col.astype(object).where(col.notna(), "")
    return out


def _clear_other_formats(out_dir: Path, table: str) -> None:
    """A table already there in another format would make the folder ambiguous: refuse, say what to remove."""
    other = [out_dir / f"{table}{s}" for s in FILE_SUFFIXES if s != ".csv" and (out_dir / f"{table}{s}").exists()]
    if (out_dir / table).is_dir():
        other.append(out_dir / table)
    if other:
        raise ContractError(f"{out_dir}: {', '.join(map(str, other))} already hold {table}; remove it or pick --out")


def write_import(
    imported: Imported,
    out_dir: Path,
    quarantine_dir: Path,
    progress: Callable[[str, int, int], None] | None = None,
) -> ValidatedData:
    """Validate the mapped tables like any export, write the accepted rows as ``<table>.csv`` in ``out_dir``, the
    rejected ones to ``quarantine_dir``, and ``import_report.json`` (the report and the validation summary).
    ``progress(what, done, total)``, if given, hears of each table before it is validated."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in imported.tables:
        _clear_other_formats(out_dir, name)
    data = validate_tables(dict(imported.tables), out_dir, progress=progress)
    for name in imported.tables:
        contract_text(data.tables[name], name).to_csv(out_dir / f"{name}.csv", index=False)
    write_quarantine(data, quarantine_dir)
    imported.report.validation = data.summary()
    text = json.dumps(imported.report.as_dict(), indent=2, ensure_ascii=False, default=str)
    (out_dir / REPORT_FILE).write_text(text + "\n", encoding="utf-8")
    return data


def report_lines(report: ImportReport) -> list[str]:
    """The report in words, for the console."""
    lines = [f"source: {report.source}"]
    if report.snapshot:
        lines.append(f"snapshot (latest date in the export): {report.snapshot}")
    lines.append("mapped: " + ", ".join(f"{table} {n:,}" for table, n in report.mapped.items()))
    lines += [f"note: {note}" for note in report.notes]
    for u in report.unmapped:
        count = f"{u.count:,} rows: " if u.count else ""
        lines.append(f"not mapped: {u.what}: {count}{u.why}")
    return lines


__all__ = [
    "ImportReport",
    "Imported",
    "Unmapped",
    "contract_text",
    "read_raw",
    "report_lines",
    "write_import",
]
