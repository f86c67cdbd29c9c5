"""Point-in-time datasets for the three targets, and the same rows for serving.

One function a target (DESIGN.md, "The three targets"):

- ``defect_risk``: a milestone, scored ``horizon_days`` before its planned date; label ``first_pass_failed``.
- ``delay``: the same rows; labels ``slip_days`` and ``late`` (slip above the tolerance).
- ``churn``: a client at a project's handover (``as_of = actual_end``); label ``churned``: no new award within
  ``churn_window_days``. Handovers whose window is not over at the data's latest fact are not labelled.

``milestone_rows`` and ``churn_rows`` compute the features of open milestones / a project's client at any
``as_of`` for serving, through the very same feature families.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import TABLES
from features.families import (
    MILESTONE_FAMILIES,
    MILESTONE_OWN_FAMILIES,
    PROJECT_FAMILIES,
    Columns,
    Context,
    compute,
    compute_columns,
)
from features.io import table_files
from features.settings import Settings

TARGETS = ("defect_risk", "delay", "churn")
MILESTONE_IDS = ["milestone_id", "project_id"]
CHURN_NEEDS = {"projects": ("client_id", "awarded_on", "actual_end")}


class TargetUnavailable(Exception):
    """The data cannot label this target (for example churn without client ids); the message says what is missing."""


@dataclass
class Dataset:
    """One target's rows: ids, ``as_of``, labels and features, with the fingerprint of what built them."""

    target: str
    frame: pd.DataFrame
    id_columns: list[str]
    label_columns: list[str]
    feature_columns: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def categorical_columns(self) -> list[str]:
        return [c for c in self.feature_columns if isinstance(self.frame[c].dtype, pd.CategoricalDtype)]

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def describe(self) -> str:
        window = self.meta["as_of_window"]
        return (
            f"{len(self.frame):,} rows, {len(self.feature_columns)} features, "
            f"as_of {window[0]} .. {window[1]}, fingerprint {self.fingerprint[:12]}"
        )


@dataclass
class BuildResult:
    dataset: Dataset | None = None
    error: str | None = None


# Columns that record something that happened (plans such as planned_end may lie in the future).
FACT_COLUMNS = {
    "projects": ("awarded_on", "actual_end"),
    "milestones": ("actual_date",),
    "inspections": ("inspected_at", "closed_at"),
    "resources": ("week_start",),
    "complaints": ("received_at", "first_response_at", "resolved_at"),
    "surveys": ("surveyed_at",),
}


def latest_fact(tables: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The latest recorded event in the data: how fresh it is, and where churn's labelling window must end."""
    latest = [
        tables[table][col].max()
        for table, cols in FACT_COLUMNS.items()
        for col in cols
        if table in tables and tables[table][col].notna().any()
    ]
    return max(latest) if latest else None


def files_fingerprint(paths: list[Path]) -> str:
    """A hash of the raw input files' names and bytes: the inputs a dataset was built from."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def tables_fingerprint(tables: dict[str, pd.DataFrame]) -> str:
    """A hash of the validated tables' content (values, columns and order)."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        df = tables[name]
        digest.update(f"{name}:{list(df.columns)}:{len(df)}".encode())
        if len(df):
            digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _finish(
    target: str,
    ctx: Context,
    rows: pd.DataFrame,
    features: pd.DataFrame,
    *,
    id_columns: list[str],
    label_columns: list[str],
    data_hash: str,
) -> Dataset:
    frame = pd.concat([rows[[*id_columns, "as_of", *label_columns]], features], axis=1).reset_index(drop=True)
    feature_columns = list(features.columns)
    params = {
        k: getattr(ctx.settings, k)
        for k in (
            "horizon_days",
            "late_tolerance_days",
            "churn_window_days",
            "short_window_days",
            "long_window_days",
            "recent_weeks",
        )
    }
    window = [str(frame["as_of"].min().date()), str(frame["as_of"].max().date())] if len(frame) else [None, None]
    meta = {
        "target": target,
        "rows": len(frame),
        "feature_columns": feature_columns,
        "as_of_window": window,
        "params": params,
        "data_hash": data_hash,
    }
    meta["fingerprint"] = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()
    return Dataset(target, frame, id_columns, label_columns, feature_columns, meta)


def _reached_milestones(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reached milestones, each scored ``horizon_days`` before its planned date (if not reached by then), and their
    features.

    defect_risk and delay share these rows, so they are computed once per context.
    """
    if "reached" not in ctx.memo:
        milestones = ctx.tables["milestones"]
        rows = milestones[milestones["actual_date"].notna()].copy()
        rows["as_of"] = rows["planned_date"] - pd.Timedelta(days=ctx.settings.horizon_days)
        # A milestone reached before its own as_of is no prediction to make: serving would not score it either.
        rows = rows[rows["actual_date"] >= rows["as_of"]]
        rows = rows.sort_values(["as_of", "milestone_id"], kind="stable")
        ctx.memo["reached"] = (rows, compute(ctx, rows, MILESTONE_FAMILIES))
    return ctx.memo["reached"]


def defect_risk(ctx: Context, data_hash: str = "") -> Dataset:
    """Milestones whose first-pass acceptance is known; label ``first_pass_failed``."""
    reached, reached_features = _reached_milestones(ctx)
    judged = reached["first_pass_accepted"].notna().to_numpy()
    rows = reached[judged].copy()
    rows["first_pass_failed"] = (~rows["first_pass_accepted"].astype(bool)).astype("int8")
    features = reached_features[judged]
    return _finish(
        "defect_risk",
        ctx,
        rows,
        features,
        id_columns=MILESTONE_IDS,
        label_columns=["first_pass_failed"],
        data_hash=data_hash,
    )


def delay(ctx: Context, data_hash: str = "") -> Dataset:
    """Reached milestones; labels ``slip_days`` (actual - planned) and ``late`` (slip above the tolerance)."""
    rows, features = _reached_milestones(ctx)
    rows = rows.copy()
    rows["slip_days"] = (rows["actual_date"] - rows["planned_date"]).dt.days.astype("float64")
    rows["late"] = (rows["slip_days"] > ctx.settings.late_tolerance_days).astype("int8")
    return _finish(
        "delay", ctx, rows, features, id_columns=MILESTONE_IDS, label_columns=["slip_days", "late"], data_hash=data_hash
    )


def churn_gaps(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Columns the churn target needs but the data lacks entirely."""
    return [
        f"{table}.{col}"
        for table, cols in CHURN_NEEDS.items()
        for col in cols
        if col not in tables[table] or tables[table][col].isna().all()
    ]


def churn(ctx: Context, data_hash: str = "") -> Dataset:
    """Clients at each labelled handover; label ``churned``: no new award in the window after ``actual_end``."""
    tables = ctx.tables
    gaps = churn_gaps(tables)
    if gaps:
        raise TargetUnavailable(f"churn needs {', '.join(gaps)}, which the data does not have")
    projects = tables["projects"]
    window = pd.Timedelta(days=ctx.settings.churn_window_days)
    snapshot = latest_fact(tables)
    rows = projects[projects["actual_end"].notna() & projects["client_id"].notna()].copy()
    rows["as_of"] = rows["actual_end"]
    rows = rows[rows["as_of"] + window <= snapshot]
    rows["churned"] = (~_awarded_within(projects, rows, window)).astype("int8")
    rows = rows.sort_values(["as_of", "project_id"], kind="stable")
    features = compute(ctx, rows, PROJECT_FAMILIES)
    return _finish(
        "churn",
        ctx,
        rows,
        features,
        id_columns=["project_id", "client_id"],
        label_columns=["churned"],
        data_hash=data_hash,
    )


def _awarded_within(projects: pd.DataFrame, rows: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    """Whether each row's client was awarded a project in ``(as_of, as_of + window]``."""
    awards = projects.loc[projects["client_id"].notna() & projects["awarded_on"].notna(), ["client_id", "awarded_on"]]
    awards = awards.sort_values(["client_id", "awarded_on"])
    clients = pd.Index(awards["client_id"].unique())
    a_code = clients.get_indexer(awards["client_id"])
    a_days = (awards["awarded_on"].to_numpy("datetime64[D]")).astype("int64")
    keys = a_code * (1 << 32) + a_days  # sorted by (client, day)
    r_code = clients.get_indexer(rows["client_id"])
    r_days = rows["as_of"].to_numpy("datetime64[D]").astype("int64")
    base = np.where(r_code >= 0, r_code, 0) * (1 << 32)
    after = np.searchsorted(keys, base + r_days, side="right")
    until = np.searchsorted(keys, base + r_days + window.days, side="right")
    return (r_code >= 0) & (until > after)


def build_all(data, settings: Settings) -> dict[str, BuildResult]:
    """The three datasets from validated data; a target the data cannot label is reported, not raised."""
    ctx = Context.build(data.tables, settings)
    sources = [path for table in TABLES for path in table_files(data.data_dir, table)]
    data_hash = files_fingerprint(sources) if sources else tables_fingerprint(data.tables)
    results: dict[str, BuildResult] = {}
    for target, build in (("defect_risk", defect_risk), ("delay", delay), ("churn", churn)):
        try:
            results[target] = BuildResult(dataset=build(ctx, data_hash))
        except TargetUnavailable as err:
            results[target] = BuildResult(error=str(err))
    return results


class MilestoneIndex:
    """The milestones table indexed by project: selects the milestones open at a time with a few numpy operations,
    so serving can call it per request (build it once)."""

    COLUMNS = ("milestone_id", "project_id", "kind", "sequence", "planned_date", "actual_date")

    def __init__(self, milestones: pd.DataFrame) -> None:
        self.columns = {c: milestones[c].to_numpy() for c in self.COLUMNS}
        self.of_project = milestones.groupby("project_id", sort=False).indices  # project_id -> row positions

    def open(
        self, as_of: pd.Timestamp, project_ids: list[str] | None = None, milestone_ids: list[str] | None = None
    ) -> pd.DataFrame:
        """Milestones not reached before ``as_of`` (of the given projects, or those milestone ids), with ``as_of``."""
        if project_ids is None:
            positions = np.arange(len(self.columns["milestone_id"]))
        else:
            positions = np.sort(np.concatenate([self.of_project.get(p, np.empty(0, int)) for p in project_ids]))
        actual = self.columns["actual_date"][positions]
        positions = positions[~(actual < np.datetime64(as_of))]  # NaT compares False: never reached stays open
        if milestone_ids is not None:
            positions = positions[np.isin(self.columns["milestone_id"][positions], milestone_ids)]
        rows = pd.DataFrame({c: values[positions] for c, values in self.columns.items()})
        rows["as_of"] = as_of
        return rows


def open_milestones(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    project_ids: list[str] | None = None,
    milestone_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Milestones not yet reached at ``as_of`` (of the given projects, or those milestone ids), with ``as_of``."""
    return MilestoneIndex(tables["milestones"]).open(as_of, project_ids, milestone_ids)


def write_dataset(dataset: Dataset, out_dir: Path) -> Path:
    """``<target>.parquet`` and, beside it, ``<target>.json`` with the fingerprint, columns and parameters."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{dataset.target}.parquet"
    dataset.frame.to_parquet(path, index=False)
    meta = {
        **dataset.meta,
        "id_columns": dataset.id_columns,
        "label_columns": dataset.label_columns,
        "categorical_columns": dataset.categorical_columns,
    }
    (out_dir / f"{dataset.target}.json").write_text(json.dumps(meta, indent=2, default=str))
    return path


def now() -> pd.Timestamp:
    """The default ``as_of`` for serving: the current UTC time, naive like the validated tables."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")


def project_milestone_features(
    ctx: Context,
    tables: dict[str, pd.DataFrame],
    project_ids: list[str],
    as_of: pd.Timestamp | None = None,
    milestone_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Ids, ``as_of`` and features of the projects' milestones still open at ``as_of`` (default: now)."""
    rows = open_milestones(tables, now() if as_of is None else as_of, project_ids, milestone_ids)
    features = milestone_rows(ctx, rows)
    return pd.concat([rows[[*MILESTONE_IDS, "as_of"]], features], axis=1).reset_index(drop=True)


def milestone_rows(ctx: Context, rows: pd.DataFrame) -> pd.DataFrame:
    """Features of milestone rows (project_id, kind, sequence, planned_date, as_of) for serving."""
    return compute(ctx, rows, MILESTONE_FAMILIES)


def churn_rows(ctx: Context, rows: pd.DataFrame) -> pd.DataFrame:
    """Features of client-at-project rows (project_id, as_of) for serving."""
    return compute(ctx, rows, PROJECT_FAMILIES)


def milestone_columns(ctx: Context, rows: pd.DataFrame, project_columns: Columns | None = None) -> Columns:
    """The features of ``milestone_rows`` as plain arrays: the serving hot path skips building a frame.

    ``project_columns``, the project families already computed for ``project_columns["project_id"]`` at the same
    as_of (``churn_columns`` of those projects), are reused rather than computed again per milestone: they depend
    only on the project and the as_of.
    """
    if project_columns is None:
        return compute_columns(ctx, rows, MILESTONE_FAMILIES)
    own = compute_columns(ctx, rows, MILESTONE_OWN_FAMILIES)
    where = pd.Index(project_columns["project_id"]).get_indexer(rows["project_id"])
    shared = {k: v[where] for k, v in project_columns.items() if k != "project_id"}
    return {**own, **shared}


def churn_columns(ctx: Context, rows: pd.DataFrame) -> Columns:
    """The features of ``churn_rows`` as plain arrays, with the rows' ``project_id``."""
    return {"project_id": rows["project_id"].to_numpy(dtype=object), **compute_columns(ctx, rows, PROJECT_FAMILIES)}
