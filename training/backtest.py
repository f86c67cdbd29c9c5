"""Backtests on a firm's real exports: judged by time, a project's rows on one side only, against named baselines.

- The main split is the training time split (earliest rows to fit, next to calibrate, latest to test), with each
  project's rows kept on one side: a project with most of its rows in the test part (half or more) is tested, and
  its earlier rows are left out; the others are learned from, and their rows in the test part are left out. Time
  order holds (every test row is later than every row learned from) and no project is both learned and tested.
  A tested project's earlier facts still enter its test rows' features through the point-in-time families, as
  they would at serving time. Where that leaves nothing to judge (a few long projects that all run to the end of
  the export), the split falls back to time within each project, and says so.
- Rolling-origin folds follow the same rule. On data with few projects, leave-one-project-out folds show how the
  model transfers to a project it has never seen (the other projects' rows, later ones included, are learned from:
  a transfer test, not a time test).
- Metrics and baselines are those of ``training.evaluate.train_target`` (reference class: the median slip, or the
  failure rate, per milestone kind and project type in the training rows), plus "on time" (a slip of 0 days) for
  delay, on the same test rows. The targets of issue 5 are checked and said met or not.
- A delay backtest also judges the range and the MAE with the milestones still open at the export's end, as
  right-censored test rows (their slip is at least the time since their plan): bounds free of assumptions and an
  IPCW estimate (:func:`censoring`, :mod:`training.censoring`), and the range with its margin refitted on
  IPCW-weighted calibration rows.
- Features a real export cannot know in time are left out (the registry's plan features: how many milestones the
  project will have, which a firm's export knows only at export time when milestones are added as work goes).

Pure apart from :func:`log_backtest` (MLflow) and :func:`write_results`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.contract import latest_fact
from features.datasets import Dataset
from features.datasets import build_dataset as build_target_dataset
from features.families import Context
from features.registry import plan_features
from features.targets import BANDS, MILESTONE, TargetSpec, horizon_band, of_scope, target
from training.bundle import ModelBundle
from training.censoring import (
    G_FLOOR,
    Judged,
    censored_frame,
    ipcw_weights,
    open_milestone_rows,
    weighted_conformal_margin,
)
from training.evaluate import TrainResult, score_rows, train_target
from training.kinds import COVERAGE_POINTS, MAE_REDUCTION, strategy
from training.splits import Split, rolling_origin, split_time, time_split

# Backtests judge the milestone targets: a real export has milestones, not always clients.
MODELS = tuple(spec.name for spec in of_scope(MILESTONE))
LOPO_MAX_PROJECTS = 30  # leave-one-project-out by default on data with at most this many projects
MIN_PROJECT_ROWS = 20  # a project with fewer rows is not a fold of its own
BOOTSTRAP = 1000  # resamples of the test rows for the interval of the gain


class BacktestError(Exception):
    """The data cannot be backtested for this model; the message says why."""


@dataclass
class Backtest:
    dataset: str
    model: str
    result: TrainResult
    rows: dict[str, int]
    projects: dict[str, int]
    target: dict
    windows: dict[str, list[str]] = field(default_factory=dict)
    split: dict = field(default_factory=dict)  # kind, description, and why it was chosen when it was a fallback
    lopo: dict | None = None
    censoring: dict | None = None
    settings: dict = field(default_factory=dict)
    mlflow: dict = field(default_factory=dict)

    def metrics(self) -> dict[str, dict[str, float]]:
        return self.result.metrics

    def as_dict(self) -> dict:
        return jsonable(
            {
                "dataset": self.dataset,
                "model": self.model,
                "rows": self.rows,
                "projects": self.projects,
                "split": self.split,
                "windows": self.windows,
                "settings": self.settings,
                "metrics": self.metrics(),
                "target": self.target,
                "rolling_origin": self.result.backtest,
                "leave_one_project_out": self.lopo,
                "censoring": self.censoring,
                "mlflow": self.mlflow,
            }
        )


# ----------------------------------------------------------------------------------------------- splits


def _parts(split: Split, n: int) -> np.ndarray:
    """Part of each row: 0 train, 1 calibration, 2 test, -1 none."""
    part = np.full(n, -1)
    for k, idx in enumerate((split.train, split.calibration, split.test)):
        part[idx] = k
    return part


def one_side(split: Split, project: pd.Series) -> tuple[Split, int]:
    """The split with each project's rows on one side of the test boundary: a project whose rows lie mostly in
    the test part (ties included) is tested, and its earlier rows are left out; any other project is learned from
    (fit and calibration), and its rows in the test part are left out. Returns the split and the rows left out."""
    part = _parts(split, len(project))
    used = part >= 0
    in_test = pd.Series(part[used] == 2).groupby(project.to_numpy()[used]).mean()
    tested = (in_test >= 0.5).reindex(project.to_numpy(), fill_value=False).to_numpy(dtype=bool)
    keep = used & np.where(tested, part == 2, part < 2)
    parts = [np.flatnonzero(keep & (part == k)) for k in range(3)]
    return Split(*parts), int(used.sum() - keep.sum())


def _when(ds: Dataset) -> pd.Series:
    """The time that places each row in a split: a milestone's rows go together (``training.splits.split_time``);
    a frame without the row id column has one row per id."""
    row_id = ds.spec.row_id
    return split_time(ds.frame["as_of"], ds.frame[row_id]) if row_id in ds.frame else ds.frame["as_of"]


def project_time_split(ds: Dataset, settings: Settings) -> tuple[Split, int]:
    """The training time split with each project's rows on one side."""
    split = time_split(_when(ds), settings.train_share, settings.calibration_share)
    return one_side(split, ds.frame["project_id"])


def project_rolling_origin(ds: Dataset, settings: Settings) -> list[Split]:
    """Rolling-origin folds with each project's rows on one side of each fold."""
    folds = [one_side(f, ds.frame["project_id"])[0] for f in rolling_origin(_when(ds), settings.backtest_folds)]
    return [f for f in folds if min(len(f.train), len(f.calibration), len(f.test))]


def leave_one_project_out(ds: Dataset, settings: Settings, min_rows: int = MIN_PROJECT_ROWS) -> list[tuple[str, Split]]:
    """One fold a project: test on all its rows; fit on the other projects' earlier rows and calibrate on their
    latest ``calibration_share`` (by split time: a milestone's rows stay on one side)."""
    project = ds.frame["project_id"].to_numpy()
    when = _when(ds).to_numpy()
    order = np.argsort(when, kind="stable")
    folds = []
    for p, n in pd.Series(project).value_counts().sort_index().items():
        if n < min_rows:
            continue
        others = order[project[order] != p]
        cut = int(round(len(others) * (1 - settings.calibration_share)))
        if cut < len(others):  # rows sharing a split time (a milestone's) stay together
            cut = int(np.searchsorted(when[others], when[others[cut]], side="left"))
        folds.append((str(p), Split(np.sort(others[:cut]), np.sort(others[cut:]), np.flatnonzero(project == p))))
    return folds


SPLITS = {
    "project-time": "by time, each project's rows on one side (learned from, or tested)",
    "time": "by time within each project (a project's earlier rows learned from, its later rows tested)",
}


def unusable(model: str, ds: Dataset, split: Split) -> str | None:
    """Why ``split`` cannot judge ``model`` (a part is empty, or too few failures to test on); None if it can."""
    sizes = {name: len(idx) for name, idx in split.parts().items()}
    if min(sizes.values()) == 0:
        return "a part is empty (" + ", ".join(f"{n} {name}" for name, n in sizes.items()) + " rows)"
    spec = target(model)
    return strategy(spec.kind).unusable(spec, ds, split)


def choose_split(model: str, ds: Dataset, settings: Settings, how: str = "auto") -> tuple[Split, str, int, str | None]:
    """The split, its kind, the rows it leaves out, and a note when it is a fallback.

    ``project-time`` keeps each project on one side; ``time`` splits by time within each project; ``auto`` takes
    ``project-time`` unless it cannot judge the model (a few long projects that all run to the end of the export
    leave the test part empty or without failures), then ``time``, and says so.
    """
    if how not in ("auto", *SPLITS):
        raise BacktestError(f"split '{how}' is not one of auto, {', '.join(SPLITS)}")
    note = None
    if how in ("auto", "project-time"):
        split, left_out = project_time_split(ds, settings)
        why = unusable(model, ds, split)
        if why is None:
            return split, "project-time", left_out, None
        if how == "project-time":
            raise BacktestError(f"{model}: keeping each project on one side, {why}; try --split time")
        note = (
            f"keeping each project on one side, {why}: split by time within each project instead; "
            "leave-one-project-out keeps projects apart"
        )
    split = time_split(_when(ds), settings.train_share, settings.calibration_share)
    if (why := unusable(model, ds, split)) is not None:
        raise BacktestError(f"{model}: too little data to backtest: {why}")
    return split, "time", 0, note


# ----------------------------------------------------------------------------------------------- datasets


def backtest_settings(settings: Settings, horizon_days: int | None) -> Settings:
    return settings if horizon_days is None else settings.model_copy(update={"horizon_days": horizon_days})


def build_dataset(
    tables: dict[str, pd.DataFrame], model: str, settings: Settings, drop: tuple[str, ...], ctx: Context | None = None
) -> Dataset:
    """The model's point-in-time dataset from validated tables (or their ``ctx``), without the ``drop`` features."""
    if model not in MODELS:
        raise BacktestError(f"'{model}' is not one of {', '.join(MODELS)}")
    spec = target(model)
    ds = build_target_dataset(spec, ctx or Context.build(tables, settings))
    if not len(ds.frame):
        need = ", ".join(spec.labelled_by)
        raise BacktestError(f"{model}: no labelled rows (they need {need}); nothing to backtest")
    features = [c for c in ds.feature_columns if c not in drop]
    return replace(ds, feature_columns=features, meta={**ds.meta, "dropped_features": list(drop)})


# ----------------------------------------------------------------------------------------------- scoring


def bootstrap_gain(spec: TargetSpec, result: TrainResult, seed: int, n: int = BOOTSTRAP) -> list[float]:
    """95% interval of the headline gain over the reference class (ROC-AUC difference; MAE reduction for a slip),
    resampling the test rows."""
    rng = np.random.default_rng(seed)
    gains = strategy(spec.kind).bootstrap_gain(spec, result.test_rows, result.predictions, rng, n)
    if not len(gains):
        return [float("nan"), float("nan")]
    return [float(np.quantile(gains, 0.025)), float(np.quantile(gains, 0.975))]


def target_check(
    spec: TargetSpec, result_metrics: dict[str, dict], settings: Settings, reference: str = "reference_class"
) -> dict:
    """Issue 5's target for the model against ``reference`` (the reference class, or the linear baseline when the
    reference class has no grouping column and is one rate), with the numbers and whether it is met."""
    found = strategy(spec.kind).target_check(result_metrics["model"], result_metrics[reference], settings)
    return {**found, "judged_against": reference}


def _pooled(spec: TargetSpec, folds: list[tuple[str, TrainResult]]) -> dict[str, dict[str, float]]:
    """Metrics of the model and the reference class over the test rows of all folds together."""
    rows = pd.concat([r.test_rows for _, r in folds], ignore_index=True)
    out = {}
    for who in ("model", "reference_class"):
        pred = {
            k.removeprefix(f"{who}_"): np.concatenate([r.predictions[k] for _, r in folds])
            for k in folds[0][1].predictions
            if k.startswith(f"{who}_")
        }
        out[who] = score_rows(spec, rows, pred)
    return out


def run_lopo(
    model: str, ds: Dataset, settings: Settings, progress: Callable[[str, int, int], None] | None = None
) -> dict:
    """Leave-one-project-out: per project, pooled over all projects' test rows, and the mean over the projects
    where the headline metric is defined, the model against the reference class. ``progress(what, done, total)``,
    if given, hears of each project's fold before it is fitted."""
    spec = target(model)
    headline = spec.headline
    done: list[tuple[str, TrainResult]] = []
    folds = []
    splits = leave_one_project_out(ds, settings)
    for k, (project, split) in enumerate(splits):
        if progress:
            progress(f"leave-one-project-out: project {project}", k, len(splits))
        result = train_target(ds, settings, split=split, backtest_splits=[])
        done.append((project, result))
        label = ds.frame[spec.label].to_numpy()[split.test]
        folds.append(
            {
                "project": project,
                "test_rows": len(split.test),
                "label_mean": float(np.mean(label)),
                "model": result.metrics["model"][headline],
                "reference_class": result.metrics["reference_class"][headline],
            }
        )
    if not done:
        return {"folds": [], "note": f"no project has {MIN_PROJECT_ROWS} rows or more"}
    pooled = _pooled(spec, done)
    defined = [f for f in folds if np.isfinite(f["model"]) and np.isfinite(f["reference_class"])]
    mean = {
        who: float(np.mean([f[who] for f in defined])) if defined else float("nan")
        for who in ("model", "reference_class")
    }
    return {
        "metric": headline,
        "folds": folds,
        "pooled": pooled,
        "mean_over_projects": {**mean, "projects": len(defined)},
        "target": target_check(spec, pooled, settings),
    }


CENSORING_PARTS = 4  # the test window cut into this many equal-count parts, oldest first


def _predict_rows(
    ds: Dataset,
    split: Split,
    settings: Settings,
    result: TrainResult,
    rows: pd.DataFrame,
    bundle: ModelBundle | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """who -> outputs on ``rows`` (labelled or not): the model (or ``bundle``, then alone), and the baselines
    fitted on the split's training rows as for the test rows (the reference class, "on time")."""
    if bundle is not None:
        return {"model": bundle.predict(rows[ds.feature_columns])}
    spec = ds.spec
    train = ds.frame.iloc[split.train]
    frame = pd.concat([train, rows[[c for c in rows if c in ds.frame]]], ignore_index=True)
    for col in ds.categorical_columns:
        frame[col] = frame[col].astype("object").astype("category")
    parts = Split(np.arange(len(train)), np.arange(0), np.arange(len(train), len(frame)))
    baselines = strategy(spec.kind).baselines(spec, replace(ds, frame=frame), parts, settings)
    return {"model": result.bundle.predict(rows[ds.feature_columns]), **{w: baselines[w] for w in CENSORING_WHO[1:]}}


CENSORING_WHO = ("model", "reference_class", "on_time")


def _judge(
    ds: Dataset,
    split: Split,
    settings: Settings,
    result: TrainResult,
    labelled: np.ndarray,
    censored: pd.DataFrame,
    entry_at: pd.Timestamp,
    planned: pd.Series,
    bundle: ModelBundle | None = None,
) -> Judged:
    """The labelled rows at positions ``labelled`` and the ``censored`` rows, judged together (the model with the
    baselines, or ``bundle`` alone)."""
    rows = ds.frame.iloc[labelled].reset_index(drop=True)
    both = pd.concat([rows, censored], ignore_index=True)
    pred = _predict_rows(ds, split, settings, result, both, bundle)
    plan = np.concatenate(
        [
            planned.reindex(rows[ds.spec.row_id]).to_numpy("datetime64[s]"),
            censored["planned_date"].to_numpy("datetime64[s]"),
        ]
    )
    entry = (np.datetime64(entry_at, "s") - plan) / np.timedelta64(1, "D")
    spec = ds.spec
    return Judged.of(rows, censored, spec.label, spec.time_to_plan, pred, settings.near_days, entry)


MIN_MARGIN_ROWS = 30  # a band with fewer calibration rows takes the margin of all rows


def censoring_adjusted_margins(
    ctx: Context, ds: Dataset, split: Split, settings: Settings, bundle: ModelBundle, at: pd.Timestamp
) -> tuple[ModelBundle, dict]:
    """The model with its range's conformal margins refitted on IPCW-weighted calibration rows: each weighted by
    1 / P(uncensored at its slip), the censoring as known at ``at`` (when the test period begins, the calibration
    rows' latest time): the milestones not reached by then, at the as_of rows they would get, censored at the slip
    they had by then (per horizon band, as the margins are). The calibration rows are the milestones that finished
    soonest; the weights give the slow ones their share back. Uses no test row's label."""
    spec = ds.spec
    by_band = bundle.meta.get("conformal_by_band")
    zero = {"conformal_by_band": {b: 0.0 for b in by_band}} if by_band else {}
    bare = replace(bundle, conformal=0.0, meta={**bundle.meta, **zero})
    cal = ds.frame.iloc[split.calibration]
    pred = bare.predict(cal[ds.feature_columns])
    slip = cal[spec.label].to_numpy("float64")
    scores = np.maximum(pred["lower_days"] - slip, slip - pred["upper_days"])
    band = horizon_band(cal[spec.time_to_plan].to_numpy("float64"), settings.near_days)
    learned = ds.frame[spec.row_id].iloc[np.concatenate([split.train, split.calibration])]
    opened = open_milestone_rows(ctx.tables, ctx.settings, at=at)
    opened = opened[~opened["milestone_id"].isin(set(learned))]
    open_band = horizon_band((opened["planned_date"] - opened["as_of"]).dt.days.to_numpy("float64"), settings.near_days)
    weights = np.ones(len(slip))
    for b in BANDS:
        inside = band == b
        weights[inside] = ipcw_weights(slip[inside], opened["censored_at_days"].to_numpy("float64")[open_band == b])
    coverage = settings.interval_coverage
    overall = weighted_conformal_margin(scores, weights, coverage)
    margins = {
        b: weighted_conformal_margin(scores[band == b], weights[band == b], coverage)
        if (band == b).sum() >= MIN_MARGIN_ROWS
        else overall
        for b in (by_band or {})
    }
    adjusted = replace(
        bundle, conformal=overall, meta={**bundle.meta, **({"conformal_by_band": margins} if by_band else {})}
    )
    info = {
        "margin_days": {"as_fitted": bundle.conformal, "ipcw": overall},
        "margin_days_by_band": {b: {"as_fitted": by_band[b], "ipcw": margins[b]} for b in (by_band or {})},
        "calibration_rows": len(slip),
        "open_at_test_start_rows": len(opened),
        "weight_sum": float(weights.sum()),
    }
    return adjusted, info


def _band_summaries(judged: Judged) -> dict:
    return {
        band: {who: judged.summary(who, judged.band == band) for who in ("model", "reference_class")}
        for band in BANDS
        if (judged.band == band).any()
    }


def _censored_target(judged: Judged, settings: Settings) -> dict:
    """Issue 10's target with censoring handled: coverage within 5 points of nominal, MAE 15% under the reference
    class, by the IPCW estimates; the delayed-entry IPCW and the bounds beside them."""
    model, ref = judged.summary("model"), judged.summary("reference_class")
    nominal = settings.interval_coverage

    def reduction(key: str) -> float:
        return 1 - model[key] / ref[key] if ref[key] else float("nan")

    return {
        "rows": model["rows"],
        "coverage_labelled": model["coverage_labelled"],
        "coverage_ipcw": model["coverage_ipcw"],
        "coverage_ipcw_delayed_entry": model["coverage_ipcw_delayed_entry"],
        "coverage_bounds": [model["coverage_min"], model["coverage_max"]],
        "reference_class_coverage_ipcw": ref["coverage_ipcw"],
        "nominal_coverage": nominal,
        "mae_labelled": model["mae_labelled"],
        "mae_ipcw": model["mae_ipcw"],
        "reference_class_mae_ipcw": ref["mae_ipcw"],
        "mae_reduction_ipcw": reduction("mae_ipcw"),
        "mae_reduction_ipcw_delayed_entry": reduction("mae_ipcw_delayed_entry"),
        "mae_at_least": model["mae_at_least"],
        "reference_class_mae_at_least": ref["mae_at_least"],
        "mean_width": model["mean_width"],
        "rows_the_weights_stand_for": model["weight_sum"],
        "rows_the_weights_stand_for_delayed_entry": model["weight_sum_delayed_entry"],
        "coverage_met_ipcw": bool(abs(model["coverage_ipcw"] - nominal) <= COVERAGE_POINTS),
        "mae_met_ipcw": bool(reduction("mae_ipcw") >= MAE_REDUCTION),
    }


def censoring(ctx: Context, ds: Dataset, split: Split, kind: str, settings: Settings, result: TrainResult) -> dict:
    """The test rows with the milestones still open at the data's latest fact, whose slip is right-censored.

    A time split sees only the milestones that are finished, which leans towards the ones that finished early,
    and more so late in the window. A milestone open at the end lies after every part in time, so it is a test
    milestone: its rows are built at the as_of the labelled rows get (the same horizon bands and weekly grid, or
    ``horizon_days`` before the plan) and the model's range and MAE are judged on labelled and censored rows
    together (:mod:`training.censoring`: bounds and IPCW), against the reference class on the same rows.
    A milestone counts as a test row because it was not reached when the test period began (the earliest split
    time of the test rows): that is each row's entry, for the estimates' risk sets.

    Two populations when the split keeps projects on one side: ``tested_projects``, the split's test rows and the
    open milestones of the projects it tests (the same projects as the headline metrics); ``every_project``, also
    the projects learned from: their test-period rows the split left out and their open milestones (most of a
    feed's open phases belong to projects whose earlier phases are finished, as at serving time). With a split by
    time within each project, every project is both, and ``every_project`` is the one population.

    ``by_part`` cuts the split's labelled test rows by ``as_of`` into equal-count parts (oldest first; a censored
    row of the first population falls in the part its as_of does, the first part if earlier) and gives each its
    share of labelled rows, mean slip, and the model's MAE and range coverage on the labelled rows, then with the
    censored rows. Early parts, whose late finishers have had time to be recorded, come closer to how the model
    does on every milestone; the last parts show the bias of rows judged before the slow ones could finish.
    """
    spec = ds.spec
    snapshot = latest_fact(ctx.tables)
    opened = open_milestone_rows(ctx.tables, ctx.settings)
    censored = censored_frame(ctx, opened, list(spec.id_columns))
    when = _when(ds)
    entry_at = when.iloc[split.test].min()
    planned = ctx.tables["milestones"].set_index("milestone_id")["planned_date"]
    learned = set(ds.frame["project_id"].iloc[np.concatenate([split.train, split.calibration])])
    test_part = np.flatnonzero(when.to_numpy() >= entry_at.to_datetime64())
    left_out = np.setdiff1d(test_part, np.concatenate([split.train, split.calibration, split.test]))
    every = np.concatenate([split.test, left_out])  # the split's test rows first (see _by_part)
    populations = {}
    if kind == "project-time":
        tested = ~censored["project_id"].isin(learned).to_numpy()
        populations["tested_projects"] = (split.test, censored[tested].reset_index(drop=True))
    populations["every_project"] = (every, censored)
    judged = {
        name: _judge(ds, split, settings, result, rows, cen, entry_at, planned)
        for name, (rows, cen) in populations.items()
    }
    out = {
        "snapshot": str(snapshot.date()),
        "test_period_from": str(pd.Timestamp(entry_at).date()),
        "open_milestones": int(opened["milestone_id"].nunique()),
        "open_milestones_overdue_at_snapshot": int(opened.loc[opened["overdue_at_snapshot"], "milestone_id"].nunique()),
        "method": {
            "censored_rows": "open milestones at the as_of a reached one gets, the snapshot as the day reached",
            "bounds": "a censored row whose range ends below its slip so far is missed; any other is undetermined",
            "ipcw": "labelled rows weighted by 1 / P(censoring time >= slip), Kaplan-Meier per horizon band; "
            "also with delayed entry at the test period's start",
            "weight_floor": G_FLOOR,
        },
    }
    for name, j in judged.items():
        cen = populations[name][1]
        out[name] = {
            "labelled_rows": int((~j.censored).sum()),
            "censored_rows": int(j.censored.sum()),
            "censored_milestones": int(cen["milestone_id"].nunique()),
            "censored_milestones_overdue_at_snapshot": int(
                cen.loc[cen["overdue_at_snapshot"], "milestone_id"].nunique()
            ),
            "target": _censored_target(j, settings),
            "summary": {who: j.summary(who) for who in CENSORING_WHO},
            "by_band": _band_summaries(j),
        }
    adjusted, info = censoring_adjusted_margins(ctx, ds, split, settings, result.bundle, entry_at)
    out["ipcw_margin"] = {
        "method": "the range's conformal margins refitted on the calibration rows weighted by 1 / P(uncensored at "
        "their slip), the censoring as known when the test period began; no test label used",
        **info,
    }
    for name, (rows, cen) in populations.items():
        s = _judge(ds, split, settings, result, rows, cen, entry_at, planned, adjusted).summary("model")
        out["ipcw_margin"][name] = {
            "coverage_labelled": s["coverage_labelled"],
            "coverage_ipcw": s["coverage_ipcw"],
            "coverage_bounds": [s["coverage_min"], s["coverage_max"]],
            "mean_width": s["mean_width"],
            "coverage_met_ipcw": bool(abs(s["coverage_ipcw"] - settings.interval_coverage) <= COVERAGE_POINTS),
        }
    out["by_part"] = _by_part(judged[next(iter(judged))], len(split.test))
    return out


def _by_part(judged: Judged, n_test: int) -> list[dict]:
    """The split's test rows (the first ``n_test`` labelled rows of ``judged``) cut by as_of into equal-count parts,
    oldest first, the censored rows falling in the part of their as_of (those before the first part in it)."""
    as_of = judged.as_of[:n_test]
    order = np.argsort(as_of, kind="stable")
    chunks = np.array_split(order, min(CENSORING_PARTS, len(order)))
    starts = np.array([as_of[idx].min() for idx in chunks[1:]])
    part_of = np.searchsorted(starts, judged.as_of, side="right")
    part_of[n_test : (~judged.censored).sum()] = -1  # labelled rows outside the split's test rows
    parts = []
    for k, idx in enumerate(chunks):
        s = judged.summary("model", part_of == k)
        parts.append(
            {
                "window": [str(pd.Timestamp(as_of[idx].min()).date()), str(pd.Timestamp(as_of[idx].max()).date())],
                "rows": len(idx),
                "censored_rows": s["censored"],
                "share_labelled": s["labelled"] / s["rows"],
                "mean_slip_days": float(np.mean(judged.time[idx])),
                "mae": s["mae_labelled"],
                "coverage": s["coverage_labelled"],
                "coverage_bounds": [s["coverage_min"], s["coverage_max"]],
                "coverage_ipcw": s["coverage_ipcw"],
            }
        )
    return parts


def run_backtest(
    tables: dict[str, pd.DataFrame],
    model: str,
    settings: Settings,
    dataset: str,
    drop: tuple[str, ...] | None = None,
    lopo: bool | None = None,
    how: str = "auto",
    progress: Callable[[str, int, int], None] | None = None,
) -> Backtest:
    """Backtest ``model`` on validated tables: the split (``how``, see :func:`choose_split`), rolling-origin folds,
    and (on data with few projects, or when asked) leave-one-project-out. ``progress(what, done, total)``, if given,
    hears of each step as it starts (``done`` and ``total`` count the leave-one-project-out folds there)."""

    def step(what: str) -> None:
        if progress:
            progress(what, 0, 0)

    settings = settings.model_copy(update={"delay_objective": settings.backtest_delay_objective})
    drop = plan_features(settings) if drop is None else drop
    step("building the dataset")
    ctx = Context.build(tables, settings)
    ds = build_dataset(tables, model, settings, drop, ctx)
    split, kind, left_out, note = choose_split(model, ds, settings, how)
    folds = project_rolling_origin(ds, settings) if kind == "project-time" else None
    step(f"fitting and testing on a {kind} split ({len(ds.frame):,} rows), then the rolling-origin folds")
    result = train_target(ds, settings, split=split, backtest_splits=folds)
    spec = target(model)
    strat = strategy(spec.kind)
    project = ds.frame["project_id"]
    n_projects = project.nunique()
    backtest = Backtest(
        dataset=dataset,
        model=model,
        result=result,
        rows={
            "dataset": len(ds.frame),
            "train": len(split.train),
            "calibration": len(split.calibration),
            "test": len(split.test),
            "left_out_to_keep_projects_on_one_side": left_out,
        },
        projects={
            "dataset": int(n_projects),
            **{name: int(project.iloc[idx].nunique()) for name, idx in split.parts().items()},
        },
        target={
            **target_check(spec, result.metrics, settings, result.reference),
            "gain_ci95": bootstrap_gain(spec, result, settings.seed),
        },
        windows=split.windows(ds.frame["as_of"]),
        split={"kind": kind, "description": SPLITS[kind], "note": note},
        settings={
            "horizon_days": settings.horizon_days,
            "train_share": settings.train_share,
            "calibration_share": settings.calibration_share,
            "interval_coverage": settings.interval_coverage,
            "late_tolerance_days": settings.late_tolerance_days,
            "dropped_features": list(drop),
            "features": len(ds.feature_columns),
        },
    )
    if lopo if lopo is not None else n_projects <= LOPO_MAX_PROJECTS:
        backtest.lopo = run_lopo(model, ds, settings, progress)
    if strat.reports_censoring:
        step("censoring: the open milestones")
        backtest.censoring = censoring(ctx, ds, split, kind, settings, result)
    return backtest


# ----------------------------------------------------------------------------------------------- output


def experiment_name(dataset: str, model: str) -> str:
    """Backtests have experiments of their own and register nothing: never a challenger of the main models."""
    return f"eqsms-backtest-{dataset}-{model}"


def flat(bt: Backtest) -> dict[str, float]:
    out = {f"{who}.{k}": v for who, values in bt.metrics().items() for k, v in values.items()}
    for k, v in bt.target.items():
        if isinstance(v, bool | int | float):
            out[f"target.{k}"] = float(v)
    for fold in bt.result.backtest:
        out.update({f"rolling.fold{fold['fold']}.{k}": v for k, v in fold.items() if isinstance(v, float | int)})
    if bt.lopo and bt.lopo.get("pooled"):
        for who, values in bt.lopo["pooled"].items():
            out.update({f"lopo.{who}.{k}": v for k, v in values.items()})
    out.update({f"rows.{k}": v for k, v in bt.rows.items()})
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(float(v))}


def log_backtest(bt: Backtest, settings: Settings, source: str) -> dict:
    """One MLflow run in ``eqsms-backtest-<dataset>-<model>``: parameters, metrics, the results; no model registered."""
    import mlflow

    from training.tracking import configure, experiment_id, git_commit

    client = configure(settings)
    exp = experiment_id(client, experiment_name(bt.dataset, bt.model).removeprefix("eqsms-"), settings)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_params({k: v for k, v in bt.settings.items() if not isinstance(v, list)})
        mlflow.set_tags(
            {
                "source": source,
                "dataset": bt.dataset,
                "target": bt.model,
                "split": bt.split["description"],
                "split.kind": bt.split["kind"],
                "dataset.fingerprint": bt.result.bundle.meta.get("dataset_fingerprint", ""),
                "target.met": str(bt.target["met"]),
                "git_commit": git_commit() or "unknown",
            }
        )
        mlflow.log_metrics(flat(bt))
        mlflow.log_dict(bt.as_dict(), "backtest.json")
    bt.mlflow = {"experiment": experiment_name(bt.dataset, bt.model), "run_id": run.info.run_id}
    return bt.mlflow


def write_results(bt: Backtest, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bt.as_dict(), indent=2) + "\n")
    return path


def summary_rows(bt: Backtest) -> list[list[str]]:
    """Model against baselines on the test rows, for the console: metric, model, reference class, linear, on time."""
    kind = strategy(target(bt.model).kind)
    m = bt.metrics()
    who = ["model", "reference_class", kind.linear, *kind.simplest]
    return [[k, *(_fmt(m.get(w, {}).get(k)) for w in who)] for k in kind.summary_metrics]


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
