"""Logged predictions judged by the outcomes an export holds (issue 13 §2): per model version and week of prediction.

:func:`joined` pairs each logged prediction (``eqsms.predlog``) with its target's outcome
(:func:`monitoring.outcomes.outcomes`) when the outcome was known by the time of judging and after the prediction's
``as_of``: a prediction about a milestone already reached is no prediction, and an outcome not yet known is not
used. :func:`weekly` then scores each (model, version, week of ``as_of``) group the way training judged the model
(``training.metrics``), beside the reference class scored on the very same rows. The reference class is fitted
point in time, for each week, on the outcomes known before the week began (the rate, or the median slip and its
range, per milestone kind and project type: ``training.baselines.ReferenceClass``), so the baseline never sees
what the model could not.
"""

from __future__ import annotations

import pandas as pd

from features.targets import CLASSIFIER, TARGETS
from training import metrics
from training.baselines import ReferenceClass
from training.evaluate import reliability_points

RELIABILITY_BINS = 10


def joined(predictions: pd.DataFrame, outcomes: dict[str, pd.DataFrame], at: pd.Timestamp) -> pd.DataFrame:
    """Each logged prediction with its outcome, where the outcome was known after its ``as_of`` and by ``at``.
    Milestone targets join on the milestone, churn on the project (the client's answer after that handover)."""
    predictions = predictions.rename(columns={"slip_days": "slip_days_pred"})  # the outcome's slip keeps its name
    parts = []
    for name, frame in outcomes.items():
        spec = TARGETS[name]
        mine = predictions[predictions["model"] == name]
        if mine.empty or frame.empty:
            continue
        key = "milestone_id" if "milestone_id" in frame and spec.scope != "client" else "project_id"
        labels = [c for c in spec.label_columns if c in frame]
        known = frame[frame["known_at"] <= at][[key, *labels, "known_at", "milestone_kind", "project_type"]]
        both = mine.merge(known, on=key, how="inner", suffixes=("", "_outcome"))
        parts.append(both[both["known_at"] > both["as_of"]])
    if not parts:
        return predictions.iloc[:0].assign(known_at=pd.NaT, week=pd.NaT)
    out = pd.concat(parts, ignore_index=True)
    out["week"] = out["as_of"].dt.to_period("W-SUN").dt.start_time
    return out


def with_reference(judged: pd.DataFrame, history: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``judged`` with the reference class's predictions (``ref_*`` columns), each week's fitted on the outcomes
    known before that week began."""
    parts = []
    for (name, week), group in judged.groupby(["model", "week"], sort=True):
        reference = reference_predictions(name, group, history[name], week)
        parts.append(group.assign(**{f"ref_{k}": v for k, v in reference.items()}))
    return pd.concat(parts) if parts else judged


def weekly(judged: pd.DataFrame, history: dict[str, pd.DataFrame], min_rows: int = 20) -> pd.DataFrame:
    """One row per (model, model_version, week): the rows judged, the model's metrics and the reference class's on
    the same rows (``reference.<metric>``); a week with fewer than ``min_rows`` rows has its count and no metrics.
    ``history``: every outcome known (``outcomes``), for the reference class."""
    return _scored(with_reference(judged, history), ["model", "model_version", "week"], min_rows)


def overall(judged: pd.DataFrame, history: dict[str, pd.DataFrame], min_rows: int = 20) -> pd.DataFrame:
    """The same per (model, model_version), every week's rows pooled (the reference class still point in time)."""
    return _scored(with_reference(judged, history), ["model", "model_version"], min_rows)


def _scored(judged: pd.DataFrame, by: list[str], min_rows: int) -> pd.DataFrame:
    rows = []
    for keys, group in judged.groupby(by, sort=True):
        line = dict(zip(by, keys, strict=True)) | {"rows": len(group)}
        if by[-1] == "week":
            line["week"] = group["week"].iloc[0]
        else:
            line["weeks"] = group["week"].nunique()
        if len(group) >= min_rows:
            line |= scores(line["model"], group)
        rows.append(line)
    return pd.DataFrame(rows)


def reference_predictions(name: str, group: pd.DataFrame, history: pd.DataFrame, week: pd.Timestamp) -> dict:
    """The reference class's predictions for ``group``, fitted on the outcomes known before ``week`` began."""
    spec = TARGETS[name]
    past = history[history["known_at"] < week]
    fine = [k for k in ("milestone_kind", "project_type") if past[k].notna().any()]
    keys = [fine, fine[:1]] if len(fine) > 1 else [fine]
    X_past, X_now = past[fine], group[fine]
    if spec.kind == CLASSIFIER:
        return {"probability": ReferenceClass(keys).fit(X_past, past[spec.label]).predict(X_now)}
    slip = past["slip_days"]
    return {
        "slip_days": ReferenceClass(keys, "0.5").fit(X_past, slip).predict(X_now),
        "slip_low": ReferenceClass(keys, "0.1").fit(X_past, slip).predict(X_now),
        "slip_high": ReferenceClass(keys, "0.9").fit(X_past, slip).predict(X_now),
        "probability": ReferenceClass(keys).fit(X_past, past["late"]).predict(X_now),
    }


def scores(name: str, group: pd.DataFrame) -> dict:
    """The model's metrics on ``group`` and the reference class's (its ``ref_*`` columns) on the same rows, as
    ``training.metrics`` names them (a classifier: ROC-AUC, ECE, Brier...; the slip: MAE, range coverage, P(late) AUC
    and Brier), and the model's reliability curve."""
    spec = TARGETS[name]
    p = group["probability"].to_numpy(dtype=float)
    if spec.kind == CLASSIFIER:
        y = group[spec.label].to_numpy(dtype=int)
        model, theirs = metrics.classification(y, p), metrics.classification(y, group["ref_probability"])
        curve = reliability_points(y, p, RELIABILITY_BINS)
    else:
        y, late = group["slip_days"].to_numpy(dtype=float), group["late"].to_numpy(dtype=int)
        model = metrics.regression(y, group["slip_days_pred"], group["slip_low"], group["slip_high"], late, p)
        theirs = metrics.regression(
            y, group["ref_slip_days"], group["ref_slip_low"], group["ref_slip_high"], late, group["ref_probability"]
        )
        curve = reliability_points(late, p, RELIABILITY_BINS)
    return {**model, **{f"reference.{k}": v for k, v in theirs.items()}, "reliability": curve}
