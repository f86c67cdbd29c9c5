"""The monitoring loop, week by week, on a world whose truth is known (issue 13 §3's proof).

A champion is trained on the export as it stood at a cut date (:func:`export_at`: every fact recorded by then, and
only those), then scored each week after the cut on the world's full tables at that week's ``as_of`` (the engine
answers any point in time from the facts known before it), the way the service would have answered that week. Each
week is judged three ways: the drift of its feature rows and predictions against the reference window
(:mod:`monitoring.drift`), the performance estimated from its predictions alone (:mod:`monitoring.estimate`), and,
from the outcomes the full world holds (:mod:`monitoring.outcomes`), the performance realised on the same rows.
``benchmarks/loop.py`` runs it on a world with a shift and on its control; ``tests/test_loop.py`` on a small one.
When the monitor flags, the loop retrains (:func:`loop_retrained`): challengers trained on the export as it stood
that week, the real promotion gate, and, if the defect-risk challenger is promoted, the weeks after scored by the
new champion while the old one is still scored on the same rows (:func:`retrain_effect`: what retraining recovered).

Choices, and why:

- **A week's rows** (:func:`scored_rows`) are what the service would log that week: one row per open milestone of
  each open project, in the model's domain (planned at most ``as_of_lead_days`` ahead, or overdue: the horizon its
  training rows cover). A milestone open for ten weeks is a row in each of them, so consecutive weeks share most
  of their rows and outcomes, and pooling weeks (:func:`pooled`) adds less evidence than its row count suggests.
- **The reference** (:func:`reference_rows`) is the same kind of rows over the quarter before the cut, not the
  champion's training rows: those are drawn one per horizon band per milestone (a third of them within 30 days of
  the plan) over years of a growing firm, and on the benchmark's world the control, judged against them, was
  flagged every week (6 to 8 features: days to the milestone, the client's tenure and awards, firm-wide rates).
- **The realised AUC** counts a row only when its outcome became known after its ``as_of`` (nearly every row, the
  worlds running years past the loop), and is not given below ``MIN_POSITIVES`` positives or negatives. With a
  synthetic world's oracle, :func:`expected_auc` splits the gap between the estimate and the realised AUC into the
  estimate's own error and the luck of the outcomes drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from eqsms.settings import Settings
from features.targets import CLASSIFIER, MILESTONE, SLIP, TARGETS, horizon_band
from monitoring.drift import drift_summary, feature_drift, prediction_drift
from monitoring.estimate import (
    auc_spread,
    estimate,
    estimated_auc,
    estimated_mae,
    expected_brier,
    expected_positive_rate,
)

MODEL = "defect_risk"  # the model the loop judges: the classifier whose AUC the estimate is for
LABEL = "first_pass_failed"
WEEK = pd.Timedelta(days=7)
IDS = ("milestone_id", "project_id", "as_of", "planned_date")
REFERENCE_WEEKS = 13  # the reference window: the quarter before the cut, as the service would have logged it
MIN_POSITIVES = 30  # a week's realised AUC needs this many positives and negatives, or it is noise
WINDOW_WEEKS = 4  # weeks pooled when a week alone is too thin to judge


# ------------------------------------------------------------------------------------------- the dates
def schedule(
    tables: dict[str, pd.DataFrame], at: float = 0.6, lead: int = REFERENCE_WEEKS
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The shift's date, at the share ``at`` of the world's timeline (first award to newest fact) and moved back to
    a Monday, and the cut ``lead`` weeks before it: the champion learns from the export at the cut, and the loop's
    first ``lead`` weeks are before the shift."""
    from features.contract import latest_fact

    start, end = tables["projects"]["awarded_on"].min(), latest_fact(tables)
    shift = (start + at * (end - start)).normalize()
    shift -= pd.Timedelta(days=shift.weekday())
    return shift, shift - lead * WEEK


# ------------------------------------------------------------------------------------------- the past export
def export_at(tables: dict[str, pd.DataFrame], at: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The export as it stood at ``at``: the facts recorded before it, and nothing later.

    Projects awarded before ``at``; a handover, a milestone reached (its acceptance with it), a defect closed, a
    complaint answered or resolved on or after ``at`` is not known yet (left empty); inspections, complaints and
    surveys before ``at``; resource weeks over by then (``week_start + 7 days <= at``, as the features count them).
    A complaint's escalation carries no time of its own (within 3 days of receipt in the world): one received in the
    last 3 days is not known to be escalated yet.
    """
    projects = tables["projects"]
    projects = projects[projects["awarded_on"] < at].copy()
    projects.loc[projects["actual_end"] >= at, "actual_end"] = pd.NaT
    kept = projects["project_id"]

    def of_projects(name: str, time: str | None = None) -> pd.DataFrame:
        frame = tables[name]
        frame = frame[frame["project_id"].isin(kept)]
        return (frame[frame[time] < at] if time else frame).copy()

    milestones = of_projects("milestones")
    later = milestones["actual_date"] >= at
    milestones.loc[later, "actual_date"] = pd.NaT
    milestones.loc[later, "first_pass_accepted"] = pd.NA
    inspections = of_projects("inspections", "inspected_at")
    inspections.loc[inspections["closed_at"] >= at, "closed_at"] = pd.NaT
    resources = of_projects("resources")
    resources = resources[resources["week_start"] + WEEK <= at]
    complaints = of_projects("complaints", "received_at")
    for col in ("first_response_at", "resolved_at"):
        complaints.loc[complaints[col] >= at, col] = pd.NaT
    complaints["escalated"] = complaints["escalated"] & (complaints["received_at"] + pd.Timedelta(days=3) < at)
    return {
        "projects": projects,
        "milestones": milestones,
        "inspections": inspections,
        "resources": resources,
        "complaints": complaints,
        "surveys": of_projects("surveys", "surveyed_at"),
    }


def write_export(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    """The tables as Parquet files in ``folder`` (a data folder ``eqsms`` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.reset_index(drop=True).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def train_champions(data_dir: Path, settings: Settings, source: str = "monitoring-loop") -> dict[str, str]:
    """Every target trained on ``data_dir`` into the store of ``settings`` and made its ``@champion`` (the gate's
    baseline check off: the loop needs a champion for each model the engine loads, and judges it itself); the
    versions by model."""
    from features.targets import TARGETS
    from features.validate import load
    from training import tracking
    from training.pipeline import datasets_from_data, run_target

    settings = settings.model_copy(update={"baseline_tolerance": 1.0})
    client = tracking.configure(settings)
    versions = {}
    for name, ds in datasets_from_data(load(data_dir, settings), settings, list(TARGETS)).items():
        if isinstance(ds, str):
            raise ValueError(f"cannot train {name}: {ds}")
        outcome = run_target(ds, settings, None, source, True, client)
        versions[name] = outcome.registered.version
    return versions


# ------------------------------------------------------------------------------------------------- a week
OUTPUTS = {CLASSIFIER: ("probability",), SLIP: ("expected_slip_days", "late_probability")}  # watched, by kind
CLIENT_IDS = ("project_id", "client_id", "as_of")


def row_ids(model: str = MODEL) -> tuple[str, ...]:
    """The id columns of ``model``'s logged rows: a milestone's (:data:`IDS`), or a project's and its client's."""
    return IDS if TARGETS[model].scope == MILESTONE else CLIENT_IDS


def outcome_key(model: str = MODEL) -> str:
    """The column a logged row of ``model`` meets its outcome on (as ``monitoring.judge`` joins them)."""
    return "milestone_id" if TARGETS[model].scope == MILESTONE else "project_id"


def scored_rows(engine, as_of: pd.Timestamp, model: str = MODEL) -> pd.DataFrame:
    """The rows the service would log for ``model`` at ``as_of`` (:func:`rows_of` the block of every open project,
    begun and not handed over, scored at ``as_of``)."""
    return rows_of(engine, engine.block(engine.open_projects(as_of), as_of, top_k=0), model)


def rows_of(engine, block, model: str = MODEL) -> pd.DataFrame:
    """``model``'s rows of a scored block, as the service logs them (``serving.recorder``), by the scope its target
    declares: a milestone target's, one per open milestone in its domain, i.e. planned at most ``as_of_lead_days``
    ahead (the farthest its training rows reach) or overdue; a client target's, one per open project (the service
    answers it for each project it is asked about, at any point of the project, though it learned from handovers).
    Ids (:func:`row_ids`), the model's watched outputs (:data:`OUTPUTS`: ``probability``; the expected slip and
    P(late)) and its features."""
    spec, bundle = TARGETS[model], engine.bundles[model]
    outputs, ids = OUTPUTS[spec.kind], row_ids(model)
    if spec.scope == MILESTONE and not len(block.rows):
        return pd.DataFrame(columns=[*ids, *outputs])
    columns = block.columns[spec.scope]
    scored = block.scored[model].outputs
    frame = pd.DataFrame(
        {**{name: scored[name] for name in outputs}, **{n: columns[n] for n in bundle.features if n in columns}}
    )
    if spec.scope != MILESTONE:
        clients = engine.projects["client_id"].reindex(block.project_ids).to_numpy(dtype=object)
        who = pd.DataFrame({"project_id": block.project_ids, "client_id": clients, "as_of": block.as_of})
        return pd.concat([who, frame], axis=1)
    rows = pd.concat([block.rows[list(IDS)].reset_index(drop=True), frame], axis=1)
    ahead = (rows["planned_date"] - block.as_of) / pd.Timedelta(days=1)
    return rows[ahead <= engine.settings.as_of_lead_days].reset_index(drop=True)


def realised(
    rows: pd.DataFrame, outcomes: pd.DataFrame, label: str | tuple[str, ...] = LABEL, key: str = "milestone_id"
) -> pd.DataFrame:
    """``rows`` with their outcome (``label``, or several label columns, the first the one a row needs; met on
    ``key``) where it became known after the row's ``as_of`` (the milestone was reached, its acceptance recorded;
    the client's window closed); rows whose outcome the data does not hold are left out."""
    labels = [label] if isinstance(label, str) else list(label)
    known = outcomes[[key, *labels, "known_at"]].dropna(subset=labels[:1])
    both = rows.merge(known, on=key, how="inner")
    return both[both["known_at"] > both["as_of"]].reset_index(drop=True)


def judge_week(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    features: list[str],
    categorical: Iterable[str],
    settings: Settings,
    outcomes: pd.DataFrame,
    min_positives: int = MIN_POSITIVES,
    truth: pd.Series | None = None,
    model: str = MODEL,
    meta: dict | None = None,
) -> dict:
    """One week's row for ``model``: its rows, drift against ``reference`` (features and each watched output,
    flagged as the settings say), the performance estimated from its outputs alone (:func:`estimated`; ``meta``: the
    bundle's, for the slip model's MAE by band) and the performance realised on its rows whose outcome the data
    holds (:func:`realised_figures`). A classifier's AUC is NaN with fewer than ``min_positives`` positives or
    negatives: noise, not a figure. Given the ``truth`` (an oracle's probability per milestone id), also the AUC
    those rows' predictions realise on average (:func:`expected_auc`)."""
    spec = TARGETS[model]
    main, *others = OUTPUTS[spec.kind]
    table = feature_drift(reference, current, features, set(categorical), settings)
    prediction = prediction_drift(reference[main], current[main], settings)
    more = {name: prediction_drift(reference[name], current[name], settings) for name in others}
    drift = drift_summary(table, settings, prediction, more)
    judged = realised(current, outcomes, spec.label_columns, outcome_key(model))
    out = {
        "rows": len(current),
        "features_drifted": drift["features_drifted"],
        "drifted": drift["drifted"],
        "prediction_psi": drift["prediction_psi"],
        **{f"{name}_psi": psi for name, psi in drift["outputs_psi"].items()},
        "flagged": drift["flagged"],
        "reason": drift["reason"],
        **estimated(current, model, settings, meta),
        **realised_figures(judged, model, min_positives),
    }
    if spec.kind == CLASSIFIER:
        oracle = float("nan")
        if truth is not None and len(judged):
            oracle = expected_auc(judged["probability"], judged[outcome_key(model)].map(truth))
        out["oracle_auc"] = oracle
    return out


def estimated(current: pd.DataFrame, model: str, settings: Settings, meta: dict | None = None) -> dict:
    """What ``model``'s outputs on ``current`` say of its performance before the outcomes
    (:mod:`monitoring.estimate`). A classifier: the estimated ROC-AUC (CBPE) with its chance spread and the expected
    positive rate. The slip model: its P(late) is a calibrated probability, so the same for being late
    (``estimated_late_auc``, ``late_auc_spread``, ``expected_late_brier``, ``expected_late_rate``), and the MAE
    expected from its test MAE by horizon band weighted by the rows' bands (``estimated_mae``, from ``meta``'s
    evidence), or ``mae_note`` saying why not."""
    nan = float("nan")
    if TARGETS[model].kind == CLASSIFIER:
        p = current["probability"].to_numpy(dtype="float64")
        est = estimate(p, settings.risk_levels[model][-1]) if len(p) else {}
        keys = ("estimated_auc", "auc_spread", "expected_positive_rate")
        return {k: est.get(k, nan) for k in keys}
    p = current["late_probability"].to_numpy(dtype="float64")
    out = {
        "estimated_late_auc": estimated_auc(p) if len(p) else nan,
        "late_auc_spread": auc_spread(p) if len(p) else nan,
        "expected_late_brier": expected_brier(p) if len(p) else nan,
        "expected_late_rate": expected_positive_rate(p) if len(p) else nan,
    }
    mae, note = estimated_mae_of(current, meta or {})
    return {**out, "estimated_mae": mae, **({"mae_note": note} if note else {})}


def estimated_mae_of(current: pd.DataFrame, meta: dict) -> tuple[float, str | None]:
    """The slip model's MAE expected on ``current`` (:func:`monitoring.estimate.estimated_mae`): each row's horizon
    band from its days to the plan (``meta["time_to_plan"]``, ``meta["near_days"]``), weighted by the test MAE of
    each band the bundle logged (``meta["evidence"]["bands"]``); NaN and why when the bundle or the rows lack it."""
    bands = (meta.get("evidence") or {}).get("bands") or {}
    by_band = {band: figures["mae"] for band, figures in bands.items() if figures.get("mae") is not None}
    clock, near = meta.get("time_to_plan"), meta.get("near_days")
    if not by_band or clock is None or near is None:
        return float("nan"), "no estimated MAE: the model logged no test MAE by horizon band"
    if clock not in current:
        return float("nan"), f"no estimated MAE: the rows have no {clock}"
    try:
        return estimated_mae(horizon_band(current[clock].to_numpy(dtype="float64"), near), by_band), None
    except ValueError as err:
        return float("nan"), f"no estimated MAE: {err}"


def realised_figures(judged: pd.DataFrame, model: str, min_positives: int = MIN_POSITIVES) -> dict:
    """The performance realised on the rows whose outcome is known: a classifier's :func:`realised_auc`; the slip
    model's rows judged, MAE of the expected slip, and the realised late rate and P(late) AUC (NaN below
    ``min_positives`` late or on-time rows)."""
    spec = TARGETS[model]
    if spec.kind == CLASSIFIER:
        return realised_auc(judged, min_positives, spec.label)
    late = realised_auc(judged, min_positives, "late", "late_probability")
    slip = judged["expected_slip_days"].to_numpy(dtype="float64") - judged[spec.label].to_numpy(dtype="float64")
    return {
        "judged": late["judged"],
        "realised_mae": float(np.mean(np.abs(slip))) if len(slip) else float("nan"),
        "realised_late_rate": late["realised_rate"],
        "realised_late_auc": late["realised_auc"],
    }


def expected_auc(scores: Iterable, truth: Iterable) -> float:
    """The ROC-AUC ``scores`` realise on average when each row's outcome is a coin with its true probability
    ``truth`` (a synthetic world's oracle): the ratio of expectations of :func:`monitoring.estimate.estimated_auc`
    with the truth as the weights (``expected_auc(p, p)`` is the estimate itself). Where the estimate differs from it,
    the model's probabilities are not what calibration assumes; where the realised AUC differs from it, the outcomes
    drawn were luckier or unluckier than their probabilities. NaN when no pair can be a positive and a negative."""
    scores, truth = np.asarray(scores, dtype="float64"), np.asarray(truth, dtype="float64")
    values, group = np.unique(scores, return_inverse=True)
    s = np.bincount(group, weights=truth, minlength=values.size)
    f = np.bincount(group, weights=1 - truth, minlength=values.size)
    d = np.bincount(group, weights=truth * (1 - truth), minlength=values.size)
    below = np.cumsum(f) - f
    denominator = s.sum() * f.sum() - d.sum()
    return float((np.sum(s * below) + 0.5 * np.sum(s * f - d)) / denominator) if denominator > 0 else float("nan")


def realised_auc(
    judged: pd.DataFrame, min_positives: int = MIN_POSITIVES, label: str = LABEL, score: str = "probability"
) -> dict:
    """Rows judged, positives, the realised positive rate and ROC-AUC (NaN below ``min_positives`` of a class)."""
    y = judged[label].to_numpy(dtype=int)
    positives = int(y.sum())
    enough = min(positives, len(y) - positives) >= min_positives
    return {
        "judged": len(y),
        "positives": positives,
        "realised_rate": float(y.mean()) if len(y) else float("nan"),
        "realised_auc": float(roc_auc_score(y, judged[score])) if enough else float("nan"),
    }


# ------------------------------------------------------------------------------------------------- the loop
def reference_dates(cut: pd.Timestamp, weeks: int = REFERENCE_WEEKS) -> list[pd.Timestamp]:
    """The ``as_of`` of each week of the reference window: the ``weeks`` weeks before ``cut``, oldest first."""
    return [cut - k * WEEK for k in range(weeks, 0, -1)]


def reference_rows(engine, cut: pd.Timestamp, weeks: int = REFERENCE_WEEKS, model: str = MODEL) -> pd.DataFrame:
    """The reference window: the rows the service would have logged for ``model`` in the ``weeks`` weeks before
    ``cut`` (the end of the champion's training window), scored by the champion, as :func:`scored_rows` gives
    them."""
    return pd.concat([scored_rows(engine, t, model) for t in reference_dates(cut, weeks)], ignore_index=True)


def run_weeks(
    engine,
    reference: pd.DataFrame,
    outcomes: pd.DataFrame,
    weeks: list[pd.Timestamp],
    settings: Settings,
    min_positives: int = MIN_POSITIVES,
    truth: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The loop: each of ``weeks`` scored (:func:`scored_rows`) and judged (:func:`judge_week`, with the oracle's
    ``truth`` if given) against ``reference``; a row per week (``as_of`` first), and every week's rows with their
    outcome (``first_pass_failed`` NaN where the data holds none) for pooling."""
    bundle = engine.bundles[MODEL]
    table, logged = [], []
    known = outcomes[["milestone_id", LABEL, "known_at"]]
    for as_of in weeks:
        current = scored_rows(engine, as_of)
        week = judge_week(
            current, reference, bundle.features, bundle.categorical, settings, outcomes, min_positives, truth
        )
        table.append({"as_of": as_of, **week})
        rows = current[["milestone_id", "as_of", "probability"]].merge(known, on="milestone_id", how="left")
        rows.loc[~(rows["known_at"] > rows["as_of"]), LABEL] = np.nan  # not known after the prediction: none
        logged.append(rows.drop(columns="known_at"))
    return pd.DataFrame(table), pd.concat(logged, ignore_index=True)


def pooled(rows: pd.DataFrame, weeks: int = WINDOW_WEEKS, min_positives: int = MIN_POSITIVES) -> pd.DataFrame:
    """Estimated and realised AUC over windows of ``weeks`` consecutive weeks of :func:`run_weeks`' rows (a
    milestone open through a window counts once a week, as it was logged): for weeks too thin to judge alone."""
    dates = np.sort(rows["as_of"].unique())
    window = pd.Series(np.arange(len(dates)) // weeks, index=dates)
    out = []
    for _, group in rows.groupby(rows["as_of"].map(window), sort=True):
        judged = group[group[LABEL].notna()]
        out.append(
            {
                "from": group["as_of"].min(),
                "to": group["as_of"].max(),
                "rows": len(group),
                "estimated_auc": estimated_auc(group["probability"]),
                **realised_auc(judged, min_positives),
            }
        )
    frame = pd.DataFrame(out)
    frame["gap"] = frame["estimated_auc"] - frame["realised_auc"]
    return frame


def calibration_slope(p: np.ndarray, y: np.ndarray) -> float:
    """The slope of the logistic regression of the outcome on the prediction's log-odds: 1 for a calibrated model,
    above 1 when the model is too timid (its probabilities too close together: the realised AUC then beats the
    estimate, which assumes calibration), below 1 when it is too sure."""
    from sklearn.linear_model import LogisticRegression

    x = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    return float(LogisticRegression(C=1e6).fit(x[:, None], y.astype(int)).coef_[0][0])


def summary(table: pd.DataFrame, rows: pd.DataFrame, windows: pd.DataFrame, shift_from: pd.Timestamp | None) -> dict:
    """A world's loop in a few figures: weeks and flags (before the shift and after it), the first flag at or after
    the shift and the weeks from the shift to it (``weeks_to_flag``: the shift's data the monitor had seen), the
    mean absolute gap between estimated and realised AUC per week and per pooled window (:func:`pooled`), the mean
    chance spread, and the calibration slope of the logged rows before and after the shift."""
    gap = (table["estimated_auc"] - table["realised_auc"]).dropna()
    bias = (table["estimated_auc"] - table["oracle_auc"]).dropna()  # the estimate's own error, luck aside
    luck = (table["realised_auc"] - table["oracle_auc"]).dropna()  # the outcomes' draw, the estimate aside
    window_gap = windows["gap"].dropna()
    after = table["as_of"] >= shift_from if shift_from is not None else pd.Series(False, table.index)
    flagged_after = table[after & table["flagged"]]
    first = flagged_after["as_of"].min() if len(flagged_after) else None
    judged = rows[rows[LABEL].notna()]
    before_rows = judged["as_of"] < shift_from if shift_from is not None else pd.Series(True, judged.index)
    slopes = {
        f"calibration_slope_{name}": calibration_slope(part["probability"].to_numpy(), part[LABEL].to_numpy())
        if part[LABEL].nunique() == 2
        else float("nan")
        for name, part in (("before_shift", judged[before_rows]), ("after_shift", judged[~before_rows]))
    }
    return {
        "weeks": len(table),
        "flags": int(table["flagged"].sum()),
        "flags_before_shift": int((table["flagged"] & ~after).sum()),
        "first_flag_after_shift": None if first is None else str(pd.Timestamp(first).date()),
        "weeks_to_flag": None if first is None else float((first - shift_from) / WEEK),
        "weeks_judged": int(len(gap)),
        "mean_abs_auc_gap": float(gap.abs().mean()) if len(gap) else float("nan"),
        "mean_auc_gap": float(gap.mean()) if len(gap) else float("nan"),
        "max_abs_auc_gap": float(gap.abs().max()) if len(gap) else float("nan"),
        "mean_auc_spread": float(table["auc_spread"].mean()),
        "mean_abs_estimate_to_oracle": float(bias.abs().mean()) if len(bias) else float("nan"),
        "mean_estimate_to_oracle": float(bias.mean()) if len(bias) else float("nan"),
        "mean_abs_realised_to_oracle": float(luck.abs().mean()) if len(luck) else float("nan"),
        "windows_judged": int(len(window_gap)),
        "mean_abs_auc_gap_windows": float(window_gap.abs().mean()) if len(window_gap) else float("nan"),
        "mean_positives_per_week": float(table["positives"].mean()),
        **slopes,
    }


def loop_world(
    data_dir: Path,
    settings: Settings,
    cut: pd.Timestamp,
    dates: list[pd.Timestamp],
    shift_from: pd.Timestamp | None,
    min_positives: int = MIN_POSITIVES,
    truth: pd.Series | None = None,
) -> dict:
    """The loop on one world: the store's champions (``settings``, trained on the export at ``cut``) answering on
    ``data_dir``'s tables at each of ``dates`` (weekly from the cut), judged against the quarter before the cut
    (:func:`reference_rows`), by the world's outcomes and (given) its oracle's ``truth``; the weekly table, the rows,
    the pooled windows and the :func:`summary`."""
    from monitoring.outcomes import outcomes
    from serving.runtime import Engine

    world = settings.model_copy(update={"data_dir": Path(data_dir)})
    engine = Engine.from_settings(world)
    known = outcomes(engine.tables, world)[MODEL]
    reference = reference_rows(engine, cut)
    table, rows = run_weeks(engine, reference, known, dates, world, min_positives, truth)
    windows = pooled(rows, WINDOW_WEEKS, min_positives)
    return {
        "table": table,
        "rows": rows,
        "windows": windows,
        "summary": {"reference_rows": len(reference), **summary(table, rows, windows, shift_from)},
    }


# ------------------------------------------------------------------------------------------------- the retrain
def retrain_at(
    tables: dict[str, pd.DataFrame], at: pd.Timestamp, settings: Settings, folder: Path, source: str = "monitoring-loop"
) -> dict[str, dict]:
    """A challenger of every target trained on the export as it stood at ``at`` (:func:`export_at`, written to
    ``folder``; the training :func:`train_champions` runs at the cut) into the store of ``settings``, each judged by
    the real promotion gate (``run_target`` with the gate: :func:`training.tracking.promote` with the settings'
    tolerances, both models judged on the challenger's test rows newer than the champion's data); by model, whether
    it was promoted, the gate's reason, both versions and both values of the gate's metric."""
    from features.targets import TARGETS
    from features.validate import load
    from training import tracking
    from training.pipeline import datasets_from_data, run_target

    write_export(export_at(tables, at), folder)
    settings = settings.model_copy(update={"data_dir": folder})
    client = tracking.configure(settings)
    decisions = {}
    for name, ds in datasets_from_data(load(folder, settings), settings, list(TARGETS)).items():
        if isinstance(ds, str):
            decisions[name] = {"promoted": False, "reason": f"not trained: {ds}"}
            continue
        d = run_target(ds, settings, None, source, True, client).decision
        decisions[name] = {
            "promoted": d.promoted,
            "reason": d.reason,
            "challenger": d.challenger,
            "champion_before": d.champion_before,
            "metric": d.metric,
            "challenger_value": d.challenger_value,
            "champion_value": d.champion_value,
        }
    return decisions


def period(
    rows: pd.DataFrame, table: pd.DataFrame, truth: pd.Series | None, min_positives: int = MIN_POSITIVES
) -> dict:
    """One champion over a run of weeks (:func:`run_weeks`' ``table`` and ``rows`` cut to them): the weeks, the
    mean weekly realised AUC and the oracle's expected AUC of its predictions (:func:`expected_auc`, the luck of
    the outcomes aside), and the same pooled over the weeks' judged rows, with the AUC the oracle's own
    probabilities would realise on them (the ceiling: what any model could reach on those rows)."""
    judged = rows[rows[LABEL].notna()]
    out = {
        "weeks": len(table),
        "from": str(pd.Timestamp(table["as_of"].min()).date()) if len(table) else None,
        "to": str(pd.Timestamp(table["as_of"].max()).date()) if len(table) else None,
        "mean_weekly_realised_auc": float(table["realised_auc"].mean()) if len(table) else float("nan"),
        "mean_weekly_oracle_auc": float(table["oracle_auc"].mean()) if len(table) else float("nan"),
        **{f"pooled_{k}": v for k, v in realised_auc(judged, min_positives).items()},
    }
    nan = float("nan")
    true = judged["milestone_id"].map(truth) if truth is not None else None
    out["pooled_oracle_auc"] = expected_auc(judged["probability"], true) if true is not None and len(judged) else nan
    out["pooled_ceiling_auc"] = expected_auc(true, true) if true is not None and len(judged) else nan
    return out


def retrain_effect(
    old: dict,
    new: dict | None,
    shift_from: pd.Timestamp,
    at: pd.Timestamp | None,
    truth: pd.Series | None = None,
    name: str = "new",
) -> dict:
    """The old champion (``old``: :func:`loop_world`'s output, every week) and, if one was promoted at ``at``, the
    new one (``new``: :func:`run_weeks`' table and rows over the weeks after ``at``), over the weeks from the shift
    to the retrain (``before``: ``at`` itself included; the old champion alone) and over the weeks after it
    (``after``: both, on the same rows; the new one under ``name``). No retrain (``at`` None): every week from the
    shift is ``before``."""

    def cut(result: dict, first: pd.Timestamp, last: pd.Timestamp | None) -> dict:
        table, rows = result["table"], result["rows"]
        keep = (table["as_of"] >= first) & (table["as_of"] <= last if last is not None else True)
        kept = rows["as_of"] >= first
        if last is not None:
            kept &= rows["as_of"] <= last
        return period(rows[kept], table[keep], truth)

    out = {"before": {"old": cut(old, shift_from, at)}}
    if at is not None:
        after = at + pd.Timedelta(days=1)
        out["after"] = {"old": cut(old, after, None)}
        if new is not None:
            out["after"][name] = cut(new, after, None)
    return out


def loop_retrained(
    data_dir: Path,
    settings: Settings,
    store: Path,
    at: pd.Timestamp,
    dates: list[pd.Timestamp],
    min_positives: int = MIN_POSITIVES,
    truth: pd.Series | None = None,
    source: str = "monitoring-loop",
    score_refused: bool = False,
) -> dict:
    """The retrain the loop's monitor asks for at ``at`` on one world: the store of ``settings`` (the champions at
    the cut) copied to ``store`` (each world retrains in a registry of its own), challengers trained on the world's
    export at ``at`` and gated (:func:`retrain_at`); if the defect-risk challenger was promoted, a new engine on the
    world's full tables with the new champions scores the weeks of ``dates`` after ``at`` as the loop does, judged
    against the quarter before ``at`` scored by the new champion. With ``score_refused``, a defect-risk challenger
    the gate refused is scored so too, in the champion's place (a counterfactual: what promoting it would have
    done). The gate's decisions, and the new model's weekly ``table`` and ``rows``, its ``version`` and whether it
    was ``promoted`` (None when nothing was scored)."""
    import shutil

    from features.validate import load
    from monitoring.outcomes import outcomes
    from serving.runtime import Engine

    if not store.exists():
        shutil.copytree(settings.work_dir, store)
    mine = settings.model_copy(update={"work_dir": store, "data_dir": Path(data_dir)})
    decisions = retrain_at(load(data_dir, mine).tables, at, mine, store / "export", source)
    out = {"at": at, "decisions": decisions, "new": None}
    gate = decisions.get(MODEL, {})
    if not gate.get("promoted") and not (score_refused and gate.get("challenger")):
        return out
    engine = Engine.from_settings(mine)
    if not gate["promoted"]:  # the counterfactual: what the refused challenger would have done in its place
        from training.tracking import load_bundle

        engine.bundles[MODEL] = load_bundle(f"models:/{MODEL}/{gate['challenger']}")
    known = outcomes(engine.tables, mine)[MODEL]
    reference = reference_rows(engine, at)
    later = [t for t in dates if t > at]
    table, rows = run_weeks(engine, reference, known, later, mine, min_positives, truth)
    out["new"] = {"table": table, "rows": rows, "version": gate["challenger"], "promoted": gate["promoted"]}
    return out
