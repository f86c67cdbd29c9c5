"""Fitting the three models: LightGBM with native categoricals and early stopping, then calibration.

- classifiers (defect risk, churn): a binary booster; its probability is calibrated on the calibration slice
  (isotonic when that slice is large enough, sigmoid otherwise).
- the slip model (delay): a booster for the expected slip (squared error: the mean, as the oracle's truth), two
  quantile boosters for the range, widened by conformalized quantile regression on the calibration slice so the
  stated coverage holds, and a calibrated booster for the probability of slipping past the tolerance.

Monotone constraints encode what a quality manager knows and the directional tests check: more failed inspections
or open defects never lower defect risk; a lower SPI never lowers the expected slip; slower or missing complaint
answers never lower churn risk.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from eqsms.settings import Settings
from features.registry import monotone_constraints
from features.targets import BANDS, CLASSIFIER, SLIP, horizon_band
from training.bundle import Calibrator, ModelBundle

ISOTONIC_MIN_ROWS = 1000  # below this, a two-parameter sigmoid over-fits less than isotonic steps
EARLY_STOPPING_SHARE = 0.15  # the latest part of the training rows, held out to choose the number of trees
MIN_BAND_ROWS = 50  # a horizon band's own conformal margin needs at least this many calibration rows


def lgb_params(settings: Settings, objective: str, target: str, features: list[str], **extra) -> dict:
    params = {
        "objective": objective,
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves_by_model.get(target, settings.num_leaves),
        "max_depth": settings.max_depth,
        "min_child_samples": settings.min_child_samples,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": settings.seed,
        "deterministic": True,
        "num_threads": settings.lgb_threads,
        "verbose": -1,
        **extra,
    }
    if objective not in ("quantile", "regression_l1"):  # LightGBM refuses monotone constraints for these
        # Declared beside each feature (features/registry.py), resolved with these settings' windows; 0 if undeclared.
        params["monotone_constraints"] = monotone_constraints(settings, target, features)
        params["monotone_constraints_method"] = "intermediate"  # "advanced" let a few predictions fall (LightGBM 4.7)
    return params


def fit_booster(X: pd.DataFrame, y: np.ndarray, params: dict, settings: Settings) -> lgb.Booster:
    """Fit on the earlier training rows; the latest ``EARLY_STOPPING_SHARE`` (rows are in time order) choose when
    to stop."""
    n_fit = max(int(len(X) * (1 - EARLY_STOPPING_SHARE)), 1)
    fit = lgb.Dataset(X.iloc[:n_fit], y[:n_fit], free_raw_data=False)
    valid = lgb.Dataset(X.iloc[n_fit:], y[n_fit:], reference=fit)
    callbacks = [lgb.early_stopping(settings.early_stopping_rounds, verbose=False)] if len(X) > n_fit else []
    return lgb.train(
        params,
        fit,
        num_boost_round=settings.n_estimators,
        valid_sets=[valid] if callbacks else None,
        callbacks=callbacks,
    )


def fit_calibrator(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """A strictly increasing calibrator (keeps the booster's order); identity if ``y`` has one class only."""
    from training.calibration import fit_calibrator as fit_order_keeping

    return fit_order_keeping(raw, y)


def categorical_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]


def fit_classifier(
    target: str, X_train: pd.DataFrame, y_train: np.ndarray, X_cal: pd.DataFrame, y_cal: np.ndarray, settings: Settings
) -> ModelBundle:
    features = list(X_train.columns)
    booster = fit_booster(X_train, y_train, lgb_params(settings, "binary", target, features), settings)
    bundle = ModelBundle(target, CLASSIFIER, features, categorical_columns(X_train), booster)
    bundle.calibrator = fit_calibrator(booster.predict(bundle.frame(X_cal)), y_cal)
    return bundle


def fit_slip(
    target: str,
    X_train: pd.DataFrame,
    slip_train: np.ndarray,
    late_train: np.ndarray,
    X_cal: pd.DataFrame,
    slip_cal: np.ndarray,
    late_cal: np.ndarray,
    settings: Settings,
    time_to_plan: str | None = None,
) -> ModelBundle:
    """The slip model. With ``time_to_plan`` (a feature: days to the planned date, negative once overdue) its
    boosters learn the slip still to come on top of the delay already incurred, the late booster and its calibrator
    learn from the rows whose lateness is not yet certain, and the range's conformal margin is fitted per horizon
    band; ``SlipModel.outputs`` adds the incurred delay back."""
    features = list(X_train.columns)
    alpha = (1 - settings.interval_coverage) / 2
    meta = {"time_to_plan": time_to_plan, "near_days": settings.near_days} if time_to_plan else {}
    incurred_tr, incurred_cal = (incurred_delay(time_to_plan_days(meta, X), len(X)) for X in (X_train, X_cal))
    open_tr = incurred_tr <= settings.late_tolerance_days  # past the tolerance, lateness is certain

    def booster(objective: str, y: np.ndarray, rows=slice(None), **extra) -> lgb.Booster:
        params = lgb_params(settings, objective, target, features, **extra)
        return fit_booster(X_train.iloc[rows], y[rows], params, settings)

    further = slip_train - incurred_tr
    bundle = ModelBundle(
        target,
        SLIP,
        features,
        categorical_columns(X_train),
        booster(settings.delay_objective, further),
        lower=booster("quantile", further, alpha=alpha),
        upper=booster("quantile", further, alpha=1 - alpha),
        late=booster("binary", late_train, np.flatnonzero(open_tr)),
        meta=dict(meta),
    )
    Xc = bundle.frame(X_cal)
    open_cal = incurred_cal <= settings.late_tolerance_days
    bundle.calibrator = fit_calibrator(bundle.late.predict(Xc.iloc[np.flatnonzero(open_cal)]), late_cal[open_cal])
    margins = conformal_margins(bundle, Xc, slip_cal, settings.interval_coverage)
    bundle.conformal = margins.pop("all")
    if meta:
        bundle.meta["conformal_by_band"] = margins
    return bundle


def incurred_delay(days_to_plan: np.ndarray | None, n: int) -> np.ndarray:
    """Days already past the planned date at each of ``n`` rows' as_of (0 when not overdue or not known)."""
    return np.zeros(n) if days_to_plan is None else np.maximum(np.nan_to_num(-days_to_plan, nan=0.0), 0.0)


def time_to_plan_days(meta: dict, X: pd.DataFrame | np.ndarray, features: list[str] | None = None) -> np.ndarray | None:
    """The rows' days to the planned date (the feature ``meta["time_to_plan"]`` names), or None."""
    name = meta.get("time_to_plan")
    if not name:
        return None
    if isinstance(X, pd.DataFrame):
        return X[name].to_numpy(dtype="float64")
    return np.asarray(X[:, features.index(name)], dtype="float64")


def conformal_margins(bundle: ModelBundle, X_cal: pd.DataFrame, y_cal: np.ndarray, coverage: float) -> dict:
    """Conformalized quantile regression: the margin that makes [lower - m, upper + m] cover ``coverage`` of the
    calibration rows (with the finite-sample correction), so it holds on new rows from the same process: over all
    rows ("all"), and per horizon band when the bundle knows each row's days to the plan (Mondrian conformal: a
    band with fewer than ``MIN_BAND_ROWS`` calibration rows takes the overall margin)."""
    bundle.conformal, bundle.meta["conformal_by_band"] = 0.0, {}
    pred = bundle.predict(X_cal)
    scores = np.maximum(pred["lower_days"] - y_cal, y_cal - pred["upper_days"])
    margins = {"all": conformal_quantile(scores, coverage)}
    days = time_to_plan_days(bundle.meta, X_cal)
    if days is not None:
        bands = horizon_band(days, bundle.meta["near_days"])
        for band in BANDS:
            inside = bands == band
            enough = inside.sum() >= MIN_BAND_ROWS
            margins[band] = conformal_quantile(scores[inside], coverage) if enough else margins["all"]
    return margins


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    n = len(scores)
    if n == 0:
        return 0.0
    level = min(1.0, np.ceil((n + 1) * coverage) / n)
    return float(np.quantile(scores, level, method="higher"))
