"""Fit one target on a time split and measure it against the baselines and the oracle, on the same test rows.

Pure: a dataset in, a :class:`TrainResult` out (the bundle, the metrics, the split). Tracking happens elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.datasets import Dataset
from features.settings import Settings
from training import metrics
from training.baselines import Linear, ReferenceClass, reference_keys
from training.bundle import ModelBundle
from training.models import fit_classifier, fit_delay
from training.splits import Split, rolling_origin, time_split

LABEL = {"defect_risk": "first_pass_failed", "churn": "churned", "delay": "slip_days"}
HEADLINE = {"defect_risk": "roc_auc", "churn": "roc_auc", "delay": "mae"}  # the promotion gate's metric
ID_COLUMN = {"defect_risk": "milestone_id", "delay": "milestone_id", "churn": "project_id"}


@dataclass
class TrainResult:
    target: str
    bundle: ModelBundle
    split: Split
    test_rows: pd.DataFrame  # ids, as_of, labels and features of the test rows (the gate re-scores them)
    metrics: dict[str, dict[str, float]]  # "model", "logistic_regression", "reference_class", "oracle"
    lifts: dict[str, float]
    backtest: list[dict] = field(default_factory=list)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # test predictions, for the plots


def _fit_and_score(target: str, ds: Dataset, split: Split, settings: Settings) -> tuple[ModelBundle, dict]:
    """The model fitted on ``split.train`` (calibrated on ``split.calibration``) and its test predictions."""
    X = ds.frame[ds.feature_columns]
    Xtr, Xcal, Xte = (X.iloc[idx] for idx in (split.train, split.calibration, split.test))
    if target == "delay":
        slip, late = ds.frame["slip_days"].to_numpy(), ds.frame["late"].to_numpy()
        bundle = fit_delay(
            Xtr, slip[split.train], late[split.train], Xcal, slip[split.calibration], late[split.calibration], settings
        )
    else:
        y = ds.frame[LABEL[target]].to_numpy()
        bundle = fit_classifier(target, Xtr, y[split.train], Xcal, y[split.calibration], settings)
    return bundle, bundle.predict(Xte)


def _score(target: str, ds: Dataset, idx: np.ndarray, pred: dict[str, np.ndarray]) -> dict[str, float]:
    return score_rows(target, ds.frame.iloc[idx], pred)


def score_rows(target: str, rows: pd.DataFrame, pred: dict[str, np.ndarray]) -> dict[str, float]:
    """The target's metrics of predictions ``pred`` (keys as ``ModelBundle.predict``'s) against ``rows``' labels."""
    if target == "delay":
        return metrics.regression(
            rows["slip_days"].to_numpy(),
            pred["expected_slip_days"],
            pred.get("lower_days"),
            pred.get("upper_days"),
            rows["late"].to_numpy(),
            pred.get("late_probability"),
        )
    return metrics.classification(rows[LABEL[target]].to_numpy(), pred["probability"])


def _baselines(target: str, ds: Dataset, split: Split, settings: Settings) -> dict[str, dict[str, np.ndarray]]:
    """Each baseline's test predictions, in the same keys as the model's."""
    X = ds.frame[ds.feature_columns]
    Xtr, Xte = X.iloc[split.train], X.iloc[split.test]
    keys = reference_keys(X)
    if target != "delay":
        y = ds.frame[LABEL[target]].to_numpy()[split.train]
        return {
            "reference_class": {"probability": ReferenceClass(keys).fit(Xtr, y).predict(Xte)},
            "logistic_regression": {"probability": Linear(classifier=True).fit(Xtr, y).predict(Xte)},
        }
    slip, late = ds.frame["slip_days"].to_numpy()[split.train], ds.frame["late"].to_numpy()[split.train]
    alpha = (1 - settings.interval_coverage) / 2
    return {
        "reference_class": {
            "expected_slip_days": ReferenceClass(keys, stat="0.5").fit(Xtr, slip).predict(Xte),
            "lower_days": ReferenceClass(keys, stat=str(alpha)).fit(Xtr, slip).predict(Xte),
            "upper_days": ReferenceClass(keys, stat=str(1 - alpha)).fit(Xtr, slip).predict(Xte),
            "late_probability": ReferenceClass(keys).fit(Xtr, late).predict(Xte),
        },
        "linear_regression": {
            "expected_slip_days": Linear(classifier=False).fit(Xtr, slip).predict(Xte),
            "late_probability": Linear(classifier=True).fit(Xtr, late).predict(Xte),
        },
    }


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


def _oracle_predictions(target: str, oracle: pd.DataFrame, test: pd.DataFrame) -> dict[str, np.ndarray] | None:
    truth = oracle[oracle["target"] == target].drop_duplicates("row_id").set_index("row_id")
    found = truth.reindex(test[ID_COLUMN[target]].astype(str))
    if found["truth"].isna().any():
        return None  # the oracle does not cover these rows (another world, or rows it does not label)
    if target == "delay":
        return {"expected_slip_days": found["truth"].to_numpy(), "late_probability": found["p_late"].to_numpy()}
    return {"probability": found["truth"].to_numpy()}


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
    target: str,
    ds: Dataset,
    settings: Settings,
    oracle: pd.DataFrame | None = None,
    split: Split | None = None,
    backtest_splits: list[Split] | None = None,
) -> TrainResult:
    """Fit, calibrate and test one model on a time split; score the baselines and the oracle on its test rows;
    repeat the fit on rolling-origin folds to show how stable the metrics are.

    ``split`` and ``backtest_splits`` replace the default time split and rolling-origin folds (for example a split
    that also keeps each project's rows on one side, or leave-one-project-out folds).
    """
    split = split or time_split(ds.frame["as_of"], settings.train_share, settings.calibration_share)
    if min(len(split.train), len(split.calibration), len(split.test)) == 0:
        raise ValueError(f"{target}: too few rows ({len(ds.frame)}) for a train/calibration/test split")
    bundle, pred = _fit_and_score(target, ds, split, settings)
    results = {"model": _score(target, ds, split.test, pred)}
    predictions = {f"model_{k}": v for k, v in pred.items()}
    for name, base_pred in _baselines(target, ds, split, settings).items():
        results[name] = _score(target, ds, split.test, base_pred)
        predictions.update({f"{name}_{k}": v for k, v in base_pred.items()})
    test_rows = ds.frame.iloc[split.test].reset_index(drop=True)
    oracle_pred = _oracle_predictions(target, oracle, test_rows) if oracle is not None else None
    if oracle_pred is not None:
        results["oracle"] = _score(target, ds, split.test, oracle_pred)
    headline = HEADLINE[target]
    lifts = {f"{headline}_vs_{name}": metrics.lift(results["model"], results[name], headline) for name in results}
    lifts.pop(f"{headline}_vs_model")
    backtest = []
    folds = (
        backtest_splits if backtest_splits is not None else rolling_origin(ds.frame["as_of"], settings.backtest_folds)
    )
    for k, fold in enumerate(folds, start=1):
        _, fold_pred = _fit_and_score(target, ds, fold, settings)
        window = fold.windows(ds.frame["as_of"])["test"]
        backtest.append({"fold": k, "window": window, "test_rows": len(fold.test)})
        backtest[-1].update(_score(target, ds, fold.test, fold_pred))
    bundle.meta.update(
        {
            "dataset_fingerprint": ds.fingerprint,
            "windows": split.windows(ds.frame["as_of"]),
            "rows": {name: int(len(idx)) for name, idx in split.parts().items()},
            "test_metrics": results["model"],
            "feature_ranges": feature_ranges(ds.frame[ds.feature_columns].iloc[split.train]),
            "interval_coverage": settings.interval_coverage,
            "late_tolerance_days": settings.late_tolerance_days,
            "horizon_days": settings.horizon_days,
        }
    )
    return TrainResult(target, bundle, split, test_rows, results, lifts, backtest, predictions)
