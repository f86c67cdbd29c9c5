"""Fault injection: a clean world's CSV export made dirty the way real exports are, with a manifest of every fault.

Faults are unparseable dates, negative amounts, scores out of their scale, rows naming no known project and
duplicated keys (a re-export, sometimes with one value changed). Each is a code of ``features.contract.Error``, so
the manifest says exactly what the validator should reject and why. :func:`inject_faults` is pure: it takes the
CSV string frames and a random generator and returns new frames and the manifest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import TABLES, Error, Kind

PROJECT_FAULT_SHARE = 0.2  # projects get faults at this share of the dirty rate (optional columns: cells set missing)
BAD_DATES = ("2021-13-45", "31/02/2021", "n/a")
BAD_TIMES = ("2021-13-45T10:00:00", "31/02/2021 10:00", "n/a")
# Which faults each table gets (the projects table gets none on project_id: see inject_faults).
FAULTS: dict[str, tuple[Error, ...]] = {
    "projects": (Error.UNPARSEABLE_DATE, Error.NEGATIVE_VALUE),
    "milestones": (Error.UNPARSEABLE_DATE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
    "inspections": (
        Error.UNPARSEABLE_DATE,
        Error.NEGATIVE_VALUE,
        Error.OUT_OF_RANGE,
        Error.UNKNOWN_PROJECT,
        Error.DUPLICATE_ID,
    ),
    "resources": (Error.UNPARSEABLE_DATE, Error.NEGATIVE_VALUE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
    "complaints": (Error.UNPARSEABLE_DATE, Error.OUT_OF_RANGE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
    "surveys": (Error.UNPARSEABLE_DATE, Error.OUT_OF_RANGE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
}
OUT_OF_RANGE = {"inspections": (("max_severity", "5"),), "complaints": (("severity", "0"),)}
OUT_OF_RANGE["surveys"] = (("csat", "7"), ("nps", "12"))
# A copied row may come with one value changed (a re-export after an edit); the key stays the same.
DUPLICATE_CHANGE = {
    "inspections": ("defects_found", lambda v: (v + 1).astype(np.int64).astype(str)),
    "resources": ("labour_actual_hours", lambda v: np.round(v * 1.1, 1).astype(str)),
    "surveys": ("nps", lambda v: np.minimum(v + 1, 10).astype(str)),
}


def _unknown_ids(rng: np.random.Generator, known: pd.Series, n: int) -> np.ndarray:
    """Project ids that look right but name no project in the file."""
    width = len(known.iloc[0]) - 1 if len(known) else 5
    lo = len(known) + 1
    num = rng.integers(lo, 10**width, n) if lo < 10**width else np.arange(n) + lo
    ids = np.array([f"P{k:0{width}d}" for k in num], dtype=object)
    return np.where(np.isin(ids, known.to_numpy()), ids + "X", ids)


def _columns_of(table: str, kinds: tuple[Kind, ...], nonnegative: bool = False) -> list[str]:
    cols = [c for c in TABLES[table].columns if c.kind in kinds and c.name != "sequence"]
    if nonnegative:
        cols = [c for c in cols if c.min == 0 and c.max is None]
    return [c.name for c in cols]


def _pick_filled(rng: np.random.Generator, filled: np.ndarray) -> np.ndarray:
    """For each row of a boolean matrix, a random column among its True ones (column 0 when none is)."""
    return np.argmax(filled * (1.0 + rng.random(filled.shape)), axis=1)


def _inject_table(
    rng: np.random.Generator, table: str, frame: pd.DataFrame, *, rate: float, exclude: np.ndarray, known: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Faults in one table at ``rate`` of its rows (never the ``exclude`` rows); at most one fault a row.

    Returns the dirty frame and its manifest rows (1-based row numbers in the dirty file). A duplicate is a copy
    of a clean row, placed later in the file (sometimes with one value changed); the copy is the faulty row.
    """
    cols = {c: frame[c].to_numpy(dtype=object).copy() for c in frame.columns}
    spec = TABLES[table]
    n = len(frame)
    chosen = np.flatnonzero((rng.random(n) < rate) & ~exclude)
    codes = np.array([str(k) for k in FAULTS[table]], dtype=object)
    fault = codes[rng.integers(0, len(codes), len(chosen))]
    column = np.empty(len(chosen), dtype=object)

    sel = fault == Error.UNPARSEABLE_DATE
    date_cols = _columns_of(table, (Kind.DATE, Kind.TIMESTAMP))
    pick = _pick_filled(rng, np.stack([cols[c][chosen[sel]] != "" for c in date_cols], axis=1))
    for j, c in enumerate(date_cols):
        rows = chosen[sel][pick == j]
        bad = np.array(BAD_TIMES if spec.column(c).kind == Kind.TIMESTAMP else BAD_DATES, dtype=object)
        cols[c][rows] = bad[rng.integers(0, len(bad), len(rows))]
    column[sel] = np.array(date_cols, dtype=object)[pick]

    sel = fault == Error.NEGATIVE_VALUE
    number_cols = _columns_of(table, (Kind.FLOAT, Kind.INT), nonnegative=True)
    pick = rng.integers(0, max(len(number_cols), 1), sel.sum())
    for j, c in enumerate(number_cols):
        rows = chosen[sel][pick == j]
        value = np.maximum(np.abs(cols[c][rows].astype(float)), 1.0)
        text = value.astype(np.int64).astype(str) if spec.column(c).kind == Kind.INT else value.astype(str)
        cols[c][rows] = np.char.add("-", text).astype(object)
    if number_cols:
        column[sel] = np.array(number_cols, dtype=object)[pick]

    sel = fault == Error.OUT_OF_RANGE
    options = OUT_OF_RANGE.get(table, ())
    pick = rng.integers(0, max(len(options), 1), sel.sum())
    for j, (c, bad) in enumerate(options):
        cols[c][chosen[sel][pick == j]] = bad
    if options:
        column[sel] = np.array([c for c, _ in options], dtype=object)[pick]

    sel = fault == Error.UNKNOWN_PROJECT
    cols["project_id"][chosen[sel]] = _unknown_ids(rng, known, int(sel.sum()))
    column[sel] = "project_id"

    sel = fault == Error.DUPLICATE_ID
    column[sel] = "+".join(spec.key)
    dup = chosen[sel]
    copies = {c: v[dup].copy() for c, v in cols.items()}
    if table in DUPLICATE_CHANGE:
        c, change = DUPLICATE_CHANGE[table]
        copies[c] = change(copies[c].astype(float)).astype(object)
    position = dup + 0.5 + np.floor(rng.random(len(dup)) * (n - dup))
    final = np.argsort(np.concatenate([np.arange(n, dtype=float), position]), kind="stable")
    dirty = pd.DataFrame({c: np.concatenate([cols[c], copies[c]])[final] for c in frame.columns})
    row_of = np.empty(len(final), dtype=np.int64)
    row_of[final] = np.arange(1, len(final) + 1)

    not_dup = ~sel
    manifest = pd.DataFrame(
        {
            "table": table,
            "row": np.concatenate([row_of[chosen[not_dup]], row_of[n + np.arange(len(dup))]]),
            "column": np.concatenate([column[not_dup], column[sel]]),
            "error": np.concatenate([fault[not_dup], fault[sel]]),
            "cause": "injected",
        }
    )
    return dirty, manifest


def inject_faults(
    frames: dict[str, pd.DataFrame], rate: float, rng: np.random.Generator
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Realistic faults in about ``rate`` of the rows of each table (CSV string frames), and their manifest.

    The manifest has one row a faulty data record: ``table, row`` (1-based, header excluded, in the dirty file),
    ``column``, ``error`` (a ``features.contract.Error`` code) and ``cause`` (``injected``). Projects get faults at a
    fifth of the rate, only in optional columns (the validator sets those cells missing and keeps the project and
    its children); rows of their children get no injected fault of their own and are never copied as duplicates.
    """
    if not 0 <= rate < 1:
        raise ValueError("dirty must be in [0, 1)")
    out: dict[str, pd.DataFrame] = {}
    parts = []
    projects = frames["projects"]
    no_rows = np.zeros(len(projects), bool)
    known = projects["project_id"]
    dirty, manifest = _inject_table(
        rng, "projects", projects, rate=rate * PROJECT_FAULT_SHARE, exclude=no_rows, known=known
    )
    out["projects"] = dirty
    parts.append(manifest)
    rejected = dirty["project_id"].iloc[manifest["row"].to_numpy() - 1].to_numpy()
    for table in TABLES:
        if table == "projects" or table not in frames:
            continue
        frame = frames[table]
        exclude = frame["project_id"].isin(rejected).to_numpy()
        out[table], manifest = _inject_table(rng, table, frame, rate=rate, exclude=exclude, known=known)
        parts.append(manifest)
    faults = pd.concat(parts, ignore_index=True)
    faults["order"] = faults["table"].map({t: i for i, t in enumerate(TABLES)})
    faults = faults.sort_values(["order", "row"], kind="stable").drop(columns="order").reset_index(drop=True)
    return out, faults
