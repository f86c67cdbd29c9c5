"""What differs between a classifier and the slip model, in one strategy each.

A target's ``kind`` (``features.targets``) picks its strategy: how it is fitted, what it outputs, how it is
scored, which baselines it meets, which plots show it, how a backtest judges it. Everything else in training and
serving is the same for every target and reads the target's spec; nothing branches on a target's name.

- :class:`Classifier`: a calibrated probability of the label (defect risk, churn).
- :class:`SlipModel`: the expected slip in days, a conformal range with stated coverage, and the calibrated
  probability of slipping past the tolerance (delay).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from eqsms.settings import Settings
from features.targets import CLASSIFIER, SLIP, TargetSpec, horizon_band
from training import metrics
from training.baselines import Linear, ReferenceClass, reference_keys
from training.bundle import ONE_THREAD
from training.splits import Split, split_time_of

if TYPE_CHECKING:
    from features.datasets import Dataset
    from training.bundle import ModelBundle


MIN_TEST_FAILURES = 10  # a ROC-AUC on fewer failures says little
# Issue 5's backtest targets.
MAE_REDUCTION = 0.15  # delay: MAE at least 15% below the reference class
COVERAGE_POINTS = 0.05  # delay: range coverage within 5 points of nominal
AUC_MARGIN = 0.05  # defect risk: ROC-AUC at least 0.05 above the reference class


class Kind:
    """What every kind does the same way; each fits in three steps (``boosters``, ``evidence``, ``calibrate``), which
    the refit on every row (``training.evaluate.refit_on_all_rows``) reuses with out-of-fold evidence."""

    def fit(self, spec: TargetSpec, ds: Dataset, split: Split, settings: Settings) -> ModelBundle:
        """Boosters on the training rows, calibrated on the calibration rows."""
        bundle = self.boosters(spec, ds, split.train, settings)
        return self.calibrate(bundle, self.evidence(spec, bundle, ds, split.calibration), settings)


class Classifier(Kind):
    """A binary label; the model's output is a calibrated probability."""

    name = CLASSIFIER
    main_output = "probability"  # the one number the gate and the directional checks compare
    linear = "logistic_regression"
    simplest = ("base_rate",)  # the training rows' rate of the label, for every row
    reports_censoring = False  # backtests: whether the test rows' labels can be cut short by the export's date
    summary_metrics = ("roc_auc", "pr_auc", "brier", "ece", "precision_top10")
    band_metrics = ("roc_auc", "ece")  # per horizon band, in `eqsms train`'s table

    # ------------------------------------------------------------------------------------------------- fitting
    def boosters(self, spec, ds, rows: np.ndarray, settings: Settings, rounds: dict | None = None) -> ModelBundle:
        from training.models import classifier_boosters

        rows = in_split_order(ds, rows)
        X, y = ds.frame[ds.feature_columns].iloc[rows], ds.frame[spec.label].to_numpy()[rows]
        return classifier_boosters(spec.name, X, y, settings, rounds)

    def evidence(self, spec: TargetSpec, bundle: ModelBundle, ds: Dataset, rows: np.ndarray) -> dict[str, np.ndarray]:
        """What calibration needs from ``rows``, which ``bundle``'s boosters did not learn from."""
        from training.models import classifier_evidence

        frame = ds.frame.iloc[rows]
        return classifier_evidence(bundle, frame[ds.feature_columns], frame[spec.label].to_numpy())

    def calibrate(self, bundle: ModelBundle, evidence: dict[str, np.ndarray], settings: Settings) -> ModelBundle:
        from training.models import calibrate_classifier

        return calibrate_classifier(bundle, evidence)

    def outputs(self, bundle: ModelBundle, X) -> dict[str, np.ndarray]:
        return {"probability": bundle.calibrator(bundle.booster.predict(X, **ONE_THREAD))}

    # ------------------------------------------------------------------------------------------------- judging
    def score(self, spec: TargetSpec, rows: pd.DataFrame, pred: dict[str, np.ndarray]) -> dict[str, float]:
        return metrics.classification(rows[spec.label].to_numpy(), pred["probability"])

    def baselines(self, spec: TargetSpec, ds: Dataset, split: Split, settings: Settings) -> dict[str, dict]:
        X = ds.frame[ds.feature_columns]
        Xtr, Xte = X.iloc[split.train], X.iloc[split.test]
        y = ds.frame[spec.label].to_numpy()[split.train]
        return {
            "reference_class": {"probability": ReferenceClass(reference_keys(X)).fit(Xtr, y).predict(Xte)},
            self.linear: {"probability": Linear(classifier=True).fit(Xtr, y).predict(Xte)},
            "base_rate": {"probability": np.full(len(Xte), float(np.mean(y)))},
        }

    def oracle(self, found: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"probability": found["truth"].to_numpy()}

    def plots(self, spec: TargetSpec, bundle: ModelBundle, rows: pd.DataFrame, pred: dict, folder: Path) -> list[Path]:
        from training import report

        return [
            report.reliability_plot(
                rows[spec.label].to_numpy(),
                pred["model_probability"],
                folder / "calibration.png",
                f"{spec.name}: reliability on the test rows",
                baseline_prob=pred.get(f"{self.linear}_probability"),
                baseline_label="logistic regression",
            )
        ]

    def too_few_to_judge(self, spec: TargetSpec, test_rows: pd.DataFrame) -> list[str]:
        positives = int(test_rows[spec.label].sum())
        if positives < MIN_TEST_FAILURES:
            return [f"only {positives} positive test rows: too few to judge a ranking by"]
        return []

    # ----------------------------------------------------------------------------------------------- backtests
    def unusable(self, spec: TargetSpec, ds: Dataset, split: Split) -> str | None:
        failures = int(ds.frame[spec.label].to_numpy()[split.test].sum())
        if failures < MIN_TEST_FAILURES or failures == len(split.test):
            return f"the test part has {failures} failures in {len(split.test)} rows"
        return None

    def bootstrap_gain(self, spec: TargetSpec, rows: pd.DataFrame, pred: dict, rng, n: int) -> np.ndarray:
        """ROC-AUC of the model minus the reference class's, on resamples of the test rows."""
        y = rows[spec.label].to_numpy()
        p_m, p_r = pred["model_probability"], pred["reference_class_probability"]
        gains = []
        for _ in range(n):
            i = rng.integers(0, len(y), size=len(y))
            if 0 < y[i].sum() < len(i):
                gains.append(roc_auc_score(y[i], p_m[i]) - roc_auc_score(y[i], p_r[i]))
        return np.asarray(gains)

    def target_check(self, ours: dict, ref: dict, settings: Settings) -> dict:
        gain = ours["roc_auc"] - ref["roc_auc"]
        return {
            "metric": "roc_auc",
            "model": ours["roc_auc"],
            "reference_class": ref["roc_auc"],
            "auc_gain": gain,
            "required": f"ROC-AUC at least {AUC_MARGIN} above the reference class",
            "met": bool(gain >= AUC_MARGIN),
        }


class SlipModel(Kind):
    """A slip in days: the expected slip, a conformal range and the calibrated probability of being late."""

    name = SLIP
    main_output = "expected_slip_days"
    linear = "linear_regression"
    simplest = ("on_time", "training_median")  # no (further) slip; the training rows' median slip, for every row
    outputs_of_a_row = ("expected_slip_days", "lower_days", "upper_days", "late_probability")
    reports_censoring = True
    summary_metrics = ("mae", "rmse", "coverage", "mean_width", "late_auc")
    band_metrics = ("mae", "coverage", "late_ece")

    # ------------------------------------------------------------------------------------------------- fitting
    def boosters(self, spec, ds, rows: np.ndarray, settings: Settings, rounds: dict | None = None) -> ModelBundle:
        from training.models import slip_boosters

        frame = ds.frame.iloc[in_split_order(ds, rows)]
        clock = spec.time_to_plan if spec.time_to_plan in ds.feature_columns else None
        slip, late = frame[spec.label].to_numpy(), frame["late"].to_numpy()
        return slip_boosters(spec.name, frame[ds.feature_columns], slip, late, settings, clock, rounds)

    def evidence(self, spec: TargetSpec, bundle: ModelBundle, ds: Dataset, rows: np.ndarray) -> dict[str, np.ndarray]:
        """What calibration needs from ``rows``, which ``bundle``'s boosters did not learn from."""
        from training.models import slip_evidence

        frame = ds.frame.iloc[rows]
        return slip_evidence(bundle, frame[ds.feature_columns], frame[spec.label].to_numpy(), frame["late"].to_numpy())

    def calibrate(self, bundle: ModelBundle, evidence: dict[str, np.ndarray], settings: Settings) -> ModelBundle:
        from training.models import calibrate_slip

        return calibrate_slip(bundle, evidence, settings)

    def outputs(self, bundle: ModelBundle, X) -> dict[str, np.ndarray]:
        return self.with_margin(bundle, X, None)

    def with_margin(self, bundle: ModelBundle, X, margin: float | None) -> dict[str, np.ndarray]:
        """The slip still to come (the boosters) on top of the delay already incurred, never below what the
        ``as_of`` already tells: a milestone not reached by ``as_of`` slips at least ``as_of - planned``, and once
        that is past the tolerance it is late for certain. The range is widened by ``margin`` days each side, or by
        the bundle's conformal margin (its horizon band's) when None."""
        from training.models import incurred_delay, time_to_plan_days

        days = time_to_plan_days(bundle.meta, X, bundle.features)
        incurred = incurred_delay(days, len(X))
        further = bundle.booster.predict(X, **ONE_THREAD)
        margin = self._margins(bundle, days) if margin is None else margin
        late = bundle.late.predict(X, **ONE_THREAD)
        pred = {
            "expected_slip_days": incurred + further,
            "lower_days": incurred + np.minimum(bundle.lower.predict(X, **ONE_THREAD), further) - margin,
            "upper_days": incurred + np.maximum(bundle.upper.predict(X, **ONE_THREAD), further) + margin,
            "late_probability": bundle.calibrator(late) if bundle.calibrator else late,  # raw until calibrated
        }
        if days is None:
            return pred
        return {
            **at_least_incurred(pred, days, bundle.meta.get("late_tolerance_days", np.inf)),
            "delay_incurred_days": incurred,
        }

    @staticmethod
    def _margins(bundle: ModelBundle, days: np.ndarray | None) -> np.ndarray | float:
        """Each row's conformal margin: its horizon band's when the bundle has them."""
        by_band = bundle.meta.get("conformal_by_band")
        if not by_band or days is None:
            return bundle.conformal
        bands = horizon_band(days, bundle.meta["near_days"])
        return np.select([bands == band for band in by_band], list(by_band.values()), bundle.conformal)

    # ------------------------------------------------------------------------------------------------- judging
    def score(self, spec: TargetSpec, rows: pd.DataFrame, pred: dict[str, np.ndarray]) -> dict[str, float]:
        return metrics.regression(
            rows[spec.label].to_numpy(),
            pred["expected_slip_days"],
            pred.get("lower_days"),
            pred.get("upper_days"),
            rows["late"].to_numpy(),
            pred.get("late_probability"),
        )

    def baselines(self, spec: TargetSpec, ds: Dataset, split: Split, settings: Settings) -> dict[str, dict]:
        X = ds.frame[ds.feature_columns]
        Xtr, Xte = X.iloc[split.train], X.iloc[split.test]
        keys = reference_keys(X)
        slip, late = ds.frame[spec.label].to_numpy()[split.train], ds.frame["late"].to_numpy()[split.train]
        alpha = (1 - settings.interval_coverage) / 2
        baselines = {
            "reference_class": {
                "expected_slip_days": ReferenceClass(keys, stat="0.5").fit(Xtr, slip).predict(Xte),
                "lower_days": ReferenceClass(keys, stat=str(alpha)).fit(Xtr, slip).predict(Xte),
                "upper_days": ReferenceClass(keys, stat=str(1 - alpha)).fit(Xtr, slip).predict(Xte),
                "late_probability": ReferenceClass(keys).fit(Xtr, late).predict(Xte),
            },
            self.linear: {
                "expected_slip_days": Linear(classifier=False).fit(Xtr, slip).predict(Xte),
                "late_probability": Linear(classifier=True).fit(Xtr, late).predict(Xte),
            },
            # "It will be on time": a slip of 0 days, a range of [0, 0] and no chance of being late (with the
            # milestone's time to plan known: no further slip than the delay already incurred).
            "on_time": {
                k: np.zeros(len(Xte)) for k in ("expected_slip_days", "lower_days", "upper_days", "late_probability")
            },
            "training_median": {
                "expected_slip_days": np.full(len(Xte), float(np.median(slip))),
                "late_probability": np.full(len(Xte), float(np.mean(late))),
            },
        }
        if spec.time_to_plan not in ds.feature_columns:
            return baselines
        # Every baseline is told what the as_of already tells, as the model is: judged on the rest.
        days = Xte[spec.time_to_plan].to_numpy(dtype="float64")
        return {name: at_least_incurred(pred, days, settings.late_tolerance_days) for name, pred in baselines.items()}

    def oracle(self, found: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"expected_slip_days": found["truth"].to_numpy(), "late_probability": found["p_late"].to_numpy()}

    def plots(self, spec: TargetSpec, bundle: ModelBundle, rows: pd.DataFrame, pred: dict, folder: Path) -> list[Path]:
        from training import report

        return [
            report.coverage_plot(
                rows[spec.label].to_numpy(),
                pred["model_expected_slip_days"],
                pred["model_lower_days"],
                pred["model_upper_days"],
                bundle.meta["interval_coverage"],
                folder / "delay_range_coverage.png",
                f"{spec.name}: range coverage by predicted slip",
            ),
            report.reliability_plot(
                rows["late"].to_numpy(),
                pred["model_late_probability"],
                folder / "calibration.png",
                f"{spec.name}: reliability of the late probability",
            ),
        ]

    def too_few_to_judge(self, spec: TargetSpec, test_rows: pd.DataFrame) -> list[str]:
        return []

    # ----------------------------------------------------------------------------------------------- backtests
    def unusable(self, spec: TargetSpec, ds: Dataset, split: Split) -> str | None:
        return None

    def bootstrap_gain(self, spec: TargetSpec, rows: pd.DataFrame, pred: dict, rng, n: int) -> np.ndarray:
        """The MAE reduction against the reference class, on resamples of the test rows."""
        y = rows[spec.label].to_numpy()
        err_m = np.abs(pred["model_expected_slip_days"] - y)
        err_r = np.abs(pred["reference_class_expected_slip_days"] - y)
        idx = rng.integers(0, len(y), size=(n, len(y)))
        return 1 - err_m[idx].mean(axis=1) / err_r[idx].mean(axis=1)

    def target_check(self, ours: dict, ref: dict, settings: Settings) -> dict:
        reduction = 1 - ours["mae"] / ref["mae"] if ref["mae"] else float("nan")
        off = abs(ours["coverage"] - settings.interval_coverage)
        return {
            "metric": "mae",
            "model": ours["mae"],
            "reference_class": ref["mae"],
            "mae_reduction": reduction,
            "required": f"MAE at least {MAE_REDUCTION:.0%} below the reference class; coverage within "
            f"{COVERAGE_POINTS * 100:.0f} points of {settings.interval_coverage:.0%}",
            "coverage": ours["coverage"],
            "nominal_coverage": settings.interval_coverage,
            "mae_met": bool(reduction >= MAE_REDUCTION),
            "coverage_met": bool(off <= COVERAGE_POINTS),
            "met": bool(reduction >= MAE_REDUCTION and off <= COVERAGE_POINTS),
        }


def in_split_order(ds: Dataset, rows: np.ndarray) -> np.ndarray:
    """``rows`` ordered by their split time (``training.splits.split_time``): the latest part that early stopping
    holds out then takes whole milestones, never a later as_of of a milestone the boosters learn from."""
    when = split_time_of(ds).to_numpy()[rows]
    return rows[np.argsort(when, kind="stable")]


def at_least_incurred(pred: dict[str, np.ndarray], days_to_plan: np.ndarray, tolerance: float) -> dict:
    """Slip predictions floored at what is already known at ``as_of``: a milestone still open ``d`` days before its
    plan (``d`` < 0 once overdue) slips at least ``-d`` days, and is late for certain once ``-d`` passes the
    tolerance. Rows whose days to the plan are unknown are left as they are."""
    floor = np.where(np.isnan(days_to_plan), -np.inf, -days_to_plan)
    out = {k: np.maximum(v, floor) if k != "late_probability" else v for k, v in pred.items()}
    if "late_probability" in out:
        out["late_probability"] = np.where(floor > tolerance, 1.0, out["late_probability"])
    return out


KINDS: dict[str, Classifier | SlipModel] = {CLASSIFIER: Classifier(), SLIP: SlipModel()}
LEGACY_KINDS = {"delay": SLIP}  # bundles logged before the target specs named the slip kind after its target


def strategy(kind: str) -> Classifier | SlipModel:
    return KINDS[LEGACY_KINDS.get(kind, kind)]
