"""Point-in-time datasets for the targets of ``features.targets``, and the same rows for serving.

:func:`build_dataset` turns a target's rows and features into a :class:`Dataset` with the fingerprint of what built
it; :func:`write_dataset` and :func:`read_dataset` are the named artifact that hands it to training (``eqsms
features build`` writes it, ``eqsms train`` reuses it when the fingerprint matches). One dataset has one identity:
the fingerprint hashes the raw input files, the feature list, the row count and the parameters.

``milestone_columns`` and ``project_columns_at`` compute the features of open milestones / a project's client at any
``as_of`` for serving, through the very same feature families.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.contract import TABLES, latest_fact
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
from features.targets import MILESTONE_IDS, TARGETS, TargetSpec, TargetUnavailable, target

# The parameters a dataset's rows and features depend on: part of its fingerprint.
PARAMS = (
    "horizon_days",
    "as_of_lead_days",
    "as_of_step_days",
    "near_days",
    "seed",
    "late_tolerance_days",
    "churn_window_days",
    "short_window_days",
    "long_window_days",
    "recent_weeks",
)


@dataclass
class Dataset:
    """One target's rows: ids, ``as_of``, labels and features, with the fingerprint of what built them."""

    target: str
    frame: pd.DataFrame
    id_columns: list[str]
    label_columns: list[str]
    feature_columns: list[str]
    meta: dict = field(default_factory=dict)
    source: str | None = None  # the Parquet file it was written to or read from (the artifact training logs)

    @property
    def spec(self) -> TargetSpec:
        return target(self.target)

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


def folder_fingerprint(data_dir: Path | None) -> str | None:
    """The identity of a folder of exports: its raw files' names and bytes (None if it has none)."""
    sources = [path for table in TABLES for path in table_files(data_dir, table)] if data_dir else []
    return files_fingerprint(sources) if sources else None


def data_fingerprint(data) -> str:
    """The identity of validated data: its raw files when it was read from a folder, else its content."""
    return folder_fingerprint(data.data_dir) or tables_fingerprint(data.tables)


def expected_meta(spec: TargetSpec, settings: Settings, data_hash: str) -> dict:
    """What a dataset's fingerprint covers, bar what only building it tells (rows, features, window)."""
    return {"target": spec.name, "params": {k: getattr(settings, k) for k in PARAMS}, "data_hash": data_hash}


def build_dataset(spec: TargetSpec | str, ctx: Context, data_hash: str = "") -> Dataset:
    """The target's labelled rows with ids, ``as_of``, labels and features (or :class:`TargetUnavailable`)."""
    spec = target(spec) if isinstance(spec, str) else spec
    rows, features = spec.rows(ctx)
    ids, labels = list(spec.id_columns), list(spec.label_columns)
    frame = pd.concat([rows[[*ids, "as_of", *labels]], features], axis=1).reset_index(drop=True)
    window = [str(frame["as_of"].min().date()), str(frame["as_of"].max().date())] if len(frame) else [None, None]
    newest = latest_fact(ctx.tables)
    meta = {
        **expected_meta(spec, ctx.settings, data_hash),
        "rows": len(frame),
        "feature_columns": list(features.columns),
        "as_of_window": window,
        "data_until": None if newest is None else str(newest),  # the export's newest fact: what it was built at
    }
    meta["fingerprint"] = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()
    return Dataset(spec.name, frame, ids, labels, list(features.columns), meta)


def build_all(
    data,
    settings: Settings,
    targets: list[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, BuildResult]:
    """Each target's dataset from validated data; a target the data cannot label is reported, not raised.
    ``progress(what, done, total)``, if given, hears of each target before its dataset is built."""
    ctx = Context.build(data.tables, settings)
    data_hash = data_fingerprint(data)
    results: dict[str, BuildResult] = {}
    names = targets or list(TARGETS)
    for done, name in enumerate(names):
        if progress:
            progress(name, done, len(names))
        try:
            results[name] = BuildResult(dataset=build_dataset(name, ctx, data_hash))
        except TargetUnavailable as err:
            results[name] = BuildResult(error=str(err))
    return results


class MilestoneIndex:
    """The milestones table indexed by project: selects the milestones open at a time with a few numpy operations,
    so serving can call it per request (build it once). Given the context, its rows carry their project's code, so
    the feature families need not look the ids up again."""

    COLUMNS = ("milestone_id", "project_id", "kind", "sequence", "planned_date", "actual_date")

    def __init__(self, milestones: pd.DataFrame, ctx: Context | None = None) -> None:
        self.columns = {c: milestones[c].to_numpy() for c in self.COLUMNS}
        if ctx is not None:
            self.columns["project_code"] = ctx.code(milestones["project_id"])
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


def dataset_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """Where a target's dataset lives: ``<name>.parquet`` and its ``<name>.json``."""
    return out_dir / f"{name}.parquet", out_dir / f"{name}.json"


def write_dataset(dataset: Dataset, out_dir: Path) -> Path:
    """``<target>.parquet`` and, beside it, ``<target>.json`` with the fingerprint, columns and parameters."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path, meta_path = dataset_paths(out_dir, dataset.target)
    dataset.frame.to_parquet(path, index=False)
    meta = {
        **dataset.meta,
        "id_columns": dataset.id_columns,
        "label_columns": dataset.label_columns,
        "categorical_columns": dataset.categorical_columns,
    }
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    dataset.source = str(path)
    return path


def read_dataset(out_dir: Path, name: str) -> Dataset:
    """A dataset :func:`write_dataset` wrote (its categoricals come back as they were)."""
    path, meta_path = dataset_paths(out_dir, name)
    meta = json.loads(meta_path.read_text())
    extra = ("id_columns", "label_columns", "categorical_columns")
    core = {k: v for k, v in meta.items() if k not in extra}
    frame = pd.read_parquet(path)
    for col in meta["categorical_columns"]:  # Parquet gives an all-missing categorical back as plain objects
        if not isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype("category")
    return Dataset(name, frame, meta["id_columns"], meta["label_columns"], core["feature_columns"], core, str(path))


def reusable_dataset(out_dir: Path, spec: TargetSpec, settings: Settings, data_hash: str) -> Dataset | None:
    """The dataset in ``out_dir`` if it was built from the same data with the same parameters, else None."""
    path, meta_path = dataset_paths(out_dir, spec.name)
    if not (path.exists() and meta_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    expected = expected_meta(spec, settings, data_hash)
    if any(meta.get(k) != v for k, v in expected.items()):
        return None
    return read_dataset(out_dir, spec.name)


def today() -> pd.Timestamp:
    """The default ``as_of`` for serving: today's date (UTC), naive like the validated tables. A date, not a clock
    time: two identical requests on one day get the same answer."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()


def project_milestone_features(
    ctx: Context,
    tables: dict[str, pd.DataFrame],
    project_ids: list[str],
    as_of: pd.Timestamp | None = None,
    milestone_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Ids, ``as_of`` and features of the projects' milestones still open at ``as_of`` (default: today)."""
    rows = open_milestones(tables, today() if as_of is None else as_of, project_ids, milestone_ids)
    features = milestone_rows(ctx, rows)
    return pd.concat([rows[[*MILESTONE_IDS, "as_of"]], features], axis=1).reset_index(drop=True)


def milestone_rows(ctx: Context, rows: pd.DataFrame) -> pd.DataFrame:
    """Features of milestone rows (project_id, kind, sequence, planned_date, as_of) for serving."""
    return compute(ctx, rows, MILESTONE_FAMILIES)


def project_rows(ctx: Context, rows: pd.DataFrame) -> pd.DataFrame:
    """Features of client-at-project rows (project_id, as_of) for serving."""
    return compute(ctx, rows, PROJECT_FAMILIES)


def milestone_columns(ctx: Context, rows: pd.DataFrame, project_columns: Columns | None = None) -> Columns:
    """The features of ``milestone_rows`` as plain arrays: the serving hot path skips building a frame.

    ``project_columns``, the project families already computed for ``project_columns["project_id"]`` at the same
    as_of (``project_columns_at`` of those projects), are reused rather than computed again per milestone: they depend
    only on the project and the as_of.
    """
    if project_columns is None:
        return compute_columns(ctx, rows, MILESTONE_FAMILIES)
    own = compute_columns(ctx, rows, MILESTONE_OWN_FAMILIES)
    where = pd.Index(project_columns["project_id"]).get_indexer(rows["project_id"])
    shared = {k: v[where] for k, v in project_columns.items() if k != "project_id"}
    return {**own, **shared}


def project_columns_at(ctx: Context, rows: pd.DataFrame) -> Columns:
    """The features of ``project_rows`` as plain arrays, with the rows' ``project_id``."""
    return {"project_id": rows["project_id"].to_numpy(dtype=object), **compute_columns(ctx, rows, PROJECT_FAMILIES)}
