"""Fit one target on a time split and measure it against the baselines and the oracle, on the same test rows.

Pure: a dataset in, a :class:`TrainResult` out (the bundle, the metrics, the split). Tracking happens elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.datasets import Dataset
from features.targets import BANDS, CLASSIFIER, TargetSpec, horizon_band
from training import metrics
from training.baselines import reference_keys
from training.bundle import ModelBundle
from training.kinds import strategy
from training.splits import Split, folds_before, share_note, split_time_of, time_split


class TooFewRows(ValueError):
    """The rows cannot be split into train, calibration and test parts; the message says how many there are."""


@dataclass
class TrainResult:
    target: str
    bundle: ModelBundle
    split: Split
    test_rows: pd.DataFrame  # ids, as_of, labels and features of the test rows (the gate re-scores them)
    metrics: dict[str, dict[str, float]]  # "model", the kind's linear baseline, "reference_class", "oracle"
    lifts: dict[str, float]
    backtest: list[dict] = field(default_factory=list)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # test predictions, for the plots
    notes: list[str] = field(default_factory=list)  # what a reviewer must know before trusting the metrics
    bands: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # horizon band -> name -> metrics
    out_of_fold: list[dict[str, np.ndarray]] = field(default_factory=list)  # calibration evidence, see refit
    evaluated: ModelBundle | None = None  # after refit_on_all_rows: the model the metrics were measured on
    reference: str = "reference_class"  # the baseline a target is judged against (the linear one if that is a constant)


def _fit_and_score(spec: TargetSpec, ds: Dataset, split: Split, settings: Settings) -> tuple[ModelBundle, dict]:
    """The model fitted on ``split.train`` (calibrated on ``split.calibration``) and its test predictions."""
    bundle = strategy(spec.kind).fit(spec, ds, split, settings)
    return bundle, bundle.predict(ds.frame[ds.feature_columns].iloc[split.test])


def score_rows(spec: TargetSpec, rows: pd.DataFrame, pred: dict[str, np.ndarray]) -> dict[str, float]:
    """The target's metrics of predictions ``pred`` (keys as ``ModelBundle.predict``'s) against ``rows``' labels."""
    return strategy(spec.kind).score(spec, rows, pred)


def _score(spec: TargetSpec, ds: Dataset, idx: np.ndarray, pred: dict[str, np.ndarray]) -> dict[str, float]:
    return score_rows(spec, ds.frame.iloc[idx], pred)


def read_oracle(data_dir: Path | None) -> pd.DataFrame | None:
    """The generator's truth (``oracle.csv`` or ``oracle.parquet``) if the data folder has one."""
    if data_dir is None:
        return None
    for name in ("oracle.parquet", "oracle.csv"):
        path = data_dir / name
        if path.exists():
            frame = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path, dtype={"row_id": str})
            return frame
    return None


def _oracle_predictions(spec: TargetSpec, oracle: pd.DataFrame, test: pd.DataFrame) -> dict[str, np.ndarray] | None:
    truth = oracle[oracle["target"] == spec.name].drop_duplicates("row_id").set_index("row_id")
    found = truth.reindex(test[spec.row_id].astype(str))
    if found["truth"].isna().any():
        return None  # the oracle does not cover these rows (another world, or rows it does not label)
    return strategy(spec.kind).oracle(found)


def feature_ranges(X: pd.DataFrame) -> dict[str, list[float]]:
    """[min, max] of each numeric feature on the training rows: serving flags values far outside them."""
    out = {}
    for col in X.columns:
        if isinstance(X[col].dtype, pd.CategoricalDtype):
            continue
        values = X[col].to_numpy(dtype="float64")
        if np.isfinite(values).any():
            out[col] = [float(np.nanmin(values)), float(np.nanmax(values))]
    return out


def train_target(
    ds: Dataset,
    settings: Settings,
    oracle: pd.DataFrame | None = None,
    split: Split | None = None,
    backtest_splits: list[Split] | None = None,
) -> TrainResult:
    """Fit, calibrate and test one model on a time split; score the baselines and the oracle on its test rows;
    repeat the fit on rolling-origin folds before the test rows to show how stable the metrics are.

    ``split`` and ``backtest_splits`` replace the default time split and rolling-origin folds (for example a split
    that also keeps each project's rows on one side, or leave-one-project-out folds).
    """
    spec, strat, split_given = ds.spec, strategy(ds.spec.kind), split
    when = split_time_of(ds)
    split = split or time_split(when, settings.train_share, settings.calibration_share)
    if min(len(split.train), len(split.calibration), len(split.test)) == 0:
        sizes = ", ".join(f"{len(idx)} {part}" for part, idx in split.parts().items())
        raise TooFewRows(
            f"{spec.name}: {len(ds.frame)} rows cannot be split by time into train, calibration and test ({sizes})"
        )
    bundle, pred = _fit_and_score(spec, ds, split, settings)
    test_rows = ds.frame.iloc[split.test].reset_index(drop=True)
    by_name = {"model": pred, **strat.baselines(spec, ds, split, settings)}
    results = {name: score_rows(spec, test_rows, p) for name, p in by_name.items()}
    predictions = {f"{name}_{k}": v for name, p in by_name.items() for k, v in p.items()}
    oracle_pred = _oracle_predictions(spec, oracle, test_rows) if oracle is not None else None
    bands = band_results(spec, test_rows, by_name, oracle_pred, settings)
    if oracle_pred is not None and all(oracle_holds(spec, band) for band in bands):
        results["oracle"] = score_rows(spec, test_rows, oracle_pred)
    headline = spec.headline
    lifts = {f"{headline}_vs_{name}": metrics.lift(results["model"], results[name], headline) for name in results}
    lifts.pop(f"{headline}_vs_model")
    backtest, skipped = [], []
    if backtest_splits is None:
        folds, skipped = folds_before(when, split, settings.backtest_folds)
    else:
        folds = backtest_splits
    out_of_fold = [strat.evidence(spec, bundle, ds, split.test)]
    for k, fold in enumerate(folds, start=1):
        fold_bundle, fold_pred = _fit_and_score(spec, ds, fold, settings)
        out_of_fold.append(strat.evidence(spec, fold_bundle, ds, fold.test))
        window = fold.windows(ds.frame["as_of"])["test"]
        backtest.append({"fold": k, "window": window, "test_rows": len(fold.test)})
        backtest[-1].update(_score(spec, ds, fold.test, fold_pred))
    bundle.meta.update(
        {
            "dataset_fingerprint": ds.fingerprint,
            "data_until": ds.meta.get("data_until"),  # the export's newest fact: the monitor's reference ends there
            "windows": split.windows(ds.frame["as_of"]),
            "rows": {name: int(len(idx)) for name, idx in split.parts().items()},
            "test_metrics": results["model"],
            "feature_ranges": feature_ranges(ds.frame[ds.feature_columns].iloc[split.train]),
            "interval_coverage": settings.interval_coverage,
            "late_tolerance_days": settings.late_tolerance_days,
            "horizon_days": settings.horizon_days,
            "evidence": evidence(spec, test_rows, pred, bands),
        }
    )
    keys = reference_keys(ds.frame[ds.feature_columns])
    notes = judgement_notes(spec, results, test_rows, keys)
    test_share = 1 - settings.train_share - settings.calibration_share
    nominal = {"train": settings.train_share, "calibration": settings.calibration_share, "test": test_share}
    if split_given is None and (note := share_note(split, len(ds.frame), nominal)):
        notes.append(note)
    notes += skipped
    result = TrainResult(spec.name, bundle, split, test_rows, results, lifts, backtest, predictions, notes)
    result.bands, result.out_of_fold = bands, out_of_fold
    result.reference = "reference_class" if keys else strat.linear
    return result


def refit_on_all_rows(ds: Dataset, result: TrainResult, settings: Settings) -> TrainResult:
    """The model to register learns from every labelled row, the latest ones most like tomorrow included.

    Its boosters grow on all rows the number of trees early stopping chose for the evaluated model; its calibrator
    and conformal margins are cross-fitted: fitted on out-of-fold predictions, each row scored by a model that
    learned only from rows before it (the rolling-origin folds' test rows and the main test rows). The metrics stay
    those of the evaluated model (``result.evaluated``), measured on rows it never saw.
    """
    from training.models import concat_evidence, rounds_of

    spec, strat, evaluated = ds.spec, strategy(ds.spec.kind), result.bundle
    rounds = rounds_of(evaluated)
    final = strat.boosters(spec, ds, np.arange(len(ds.frame)), settings, rounds)
    evidence = concat_evidence(result.out_of_fold)
    final = strat.calibrate(final, evidence, settings)
    out_of_fold_rows = len(next(iter(evidence.values())))
    refit = {"rows": len(ds.frame), "trees": rounds, "calibrated_on_out_of_fold_rows": out_of_fold_rows}
    final.meta = {**evaluated.meta, **final.meta, "refit": refit}
    final.meta["feature_ranges"] = feature_ranges(ds.frame[ds.feature_columns])
    result.evaluated, result.bundle = evaluated, final
    return result


RELIABILITY_BINS = 10


def evidence(
    spec: TargetSpec, rows: pd.DataFrame, pred: dict[str, np.ndarray], bands: dict[str, dict[str, dict[str, float]]]
) -> dict:
    """What the board shows of a model's test rows beside its metrics: the reliability curve of its probability
    (P(late) for a slip: a slip past the tolerance), in equal-count bins of the prediction, and its metrics per
    horizon band."""
    if spec.kind == CLASSIFIER:
        y, p = rows[spec.label].to_numpy(dtype="float64"), pred["probability"]
    else:
        y, p = rows["late"].to_numpy(dtype="float64"), pred["late_probability"]
    known = np.isfinite(y) & np.isfinite(p)
    by_band = {band: {"rows": int(named["rows"]["count"]), **named["model"]} for band, named in bands.items()}
    out = {
        "reliability_of": "probability" if spec.kind == CLASSIFIER else "late_probability",
        "reliability": reliability_points(y[known], p[known], RELIABILITY_BINS),
        "bands": by_band,
    }
    if spec.kind != CLASSIFIER:
        out["coverage_by_band"] = {band: metrics_of.get("coverage") for band, metrics_of in by_band.items()}
    return out


def reliability_points(y: np.ndarray, p: np.ndarray, n_bins: int) -> list[dict[str, float]]:
    """The mean prediction, the observed rate and the row count of ``n_bins`` equal-count bins of ``p``."""
    if not len(p):
        return []
    order = np.argsort(p, kind="stable")
    return [
        {"predicted": float(p[part].mean()), "observed": float(y[part].mean()), "count": int(len(part))}
        for part in np.array_split(order, min(n_bins, len(p)))
        if len(part)
    ]


def oracle_holds(spec: TargetSpec, band: str) -> bool:
    """Whether the oracle's truth is the right answer for rows of ``band``: a probability's holds at any as_of; a
    slip's is its expectation before the milestone is due, blind to a delay already incurred (not overdue rows)."""
    return spec.kind == CLASSIFIER or band != "overdue"


def band_results(
    spec: TargetSpec,
    rows: pd.DataFrame,
    by_name: dict[str, dict[str, np.ndarray]],
    oracle_pred: dict[str, np.ndarray] | None,
    settings: Settings,
) -> dict[str, dict[str, dict[str, float]]]:
    """The metrics of the model and each baseline per horizon band of the rows (band -> name -> metric), when the
    target has a time to plan; the oracle's where its truth holds (:func:`oracle_holds`)."""
    if not spec.time_to_plan or spec.time_to_plan not in rows:
        return {}
    bands = horizon_band(rows[spec.time_to_plan].to_numpy(dtype="float64"), settings.near_days)
    out = {}
    for band in BANDS:
        inside = np.flatnonzero(bands == band)
        if not len(inside):
            continue
        named = dict(by_name)
        if oracle_pred is not None and oracle_holds(spec, band):
            named["oracle"] = oracle_pred
        out[band] = {"rows": {"count": float(len(inside))}}
        for name, pred in named.items():
            out[band][name] = score_rows(spec, rows.iloc[inside], {k: v[inside] for k, v in pred.items()})
    return out


MIN_TEST_ROWS = 100  # fewer, and a test metric says little


def too_few_to_judge(spec: TargetSpec, test_rows: pd.DataFrame) -> list[str]:
    """Why the test rows are too few to judge a model by (none, when they suffice)."""
    few = len(test_rows) < MIN_TEST_ROWS
    notes = [f"only {len(test_rows)} test rows: too few to judge the model by"] if few else []
    return notes + strategy(spec.kind).too_few_to_judge(spec, test_rows)


def judgement_notes(
    spec: TargetSpec, results: dict[str, dict[str, float]], test_rows: pd.DataFrame, keys: list[list[str]]
) -> list[str]:
    """Plain words on how far the test metrics can be trusted and whom the model fails to beat."""
    notes = []
    if not keys:
        notes.append(
            "the reference class has no grouping column (no milestone kind or project type): it is one rate, so "
            f"the targets judge the model against {strategy(spec.kind).linear.replace('_', ' ')} instead"
        )
    notes += too_few_to_judge(spec, test_rows)
    metric, ours = spec.headline, results["model"].get(spec.headline, float("nan"))
    for name, values in results.items():
        theirs = values.get(metric, float("nan"))
        if name in ("model", "oracle") or not np.isfinite(theirs) or not np.isfinite(ours):
            continue
        if metrics.lift(results["model"], values, metric) < 1:
            who = name.replace("_", " ")
            notes.append(f"the model does not beat {who} on its test rows ({metric} {ours:.3f} vs {theirs:.3f})")
    return notes
