"""Fitting the three models: LightGBM with native categoricals and early stopping, then calibration.

- classifiers (defect risk, churn): a binary booster; its probability is calibrated by a strictly increasing map
  (``training.calibration``: a logit spline, Platt on a small slice), so calibration never costs ranking.
- the slip model (delay): boosters for the slip still to come beyond the delay already incurred (the expected slip:
  squared error, the mean, as the oracle's truth; two quantile boosters for the range, widened by conformalized
  quantile regression per horizon band so the stated coverage holds) and a calibrated booster for the probability
  of slipping past the tolerance.
- each kind is fitted in three steps: boosters on some rows, evidence (raw outputs on rows those boosters did not
  learn from), calibration on that evidence; ``training.evaluate.refit_on_all_rows`` reuses them to refit the
  registered model on every row with cross-fitted calibration.

Monotone constraints encode what a quality manager knows and the directional tests check: more failed inspections
or open defects never lower defect risk; a lower SPI never lowers the expected slip; slower or missing complaint
answers never lower churn risk.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.registry import monotone_constraints
from features.targets import BANDS, CLASSIFIER, SLIP, horizon_band
from training.bundle import Calibrator, ModelBundle

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
        **settings.tuned_params.get(target, {}),  # what `eqsms train --tune` chose (training/tune.py)
        **extra,
    }
    if objective not in ("quantile", "regression_l1"):  # LightGBM refuses monotone constraints for these
        # Declared beside each feature (features/registry.py), resolved with these settings' windows; 0 if undeclared.
        params["monotone_constraints"] = monotone_constraints(settings, target, features)
        params["monotone_constraints_method"] = "intermediate"  # "advanced" let a few predictions fall (LightGBM 4.7)
    return params


def for_rows(params: dict, n: int) -> dict:
    """LightGBM's capacity fitted to ``n`` training rows. With a few hundred rows the defaults (20 rows a leaf, 100 a
    categorical level) leave a near-constant model that loses to "predict 0": a leaf needs n/100 rows (at least 3,
    at most the setting), a categorical level n/20 (5 .. 100), with smoothing to match. From 2,000 rows on, the
    settings hold unchanged."""
    return {
        **params,
        "min_child_samples": int(np.clip(n // 100, 3, params["min_child_samples"])),
        "min_data_per_group": int(np.clip(n // 20, 5, 100)),
        "cat_smooth": float(np.clip(n // 200, 1, 10)),
    }


def fit_booster(X: pd.DataFrame, y: np.ndarray, params: dict, settings: Settings, rounds: int | None = None):
    """Fit on the earlier training rows; the latest ``EARLY_STOPPING_SHARE`` (rows are in time order) choose when
    to stop. With ``rounds`` (the refit on every labelled row) exactly that many trees, on every row. The
    parameters adapt to the number of rows (:func:`for_rows`). With ``training_engine`` dask, the workers of the
    open Dask client fit it (``training.dask_fit``)."""
    params = for_rows(params, len(X))
    if settings.training_engine == "dask":  # the same fit on a Dask cluster (eqsms train --engine dask)
        from training.dask_fit import fit_booster_dask

        return fit_booster_dask(X, y, params, settings, rounds)
    if rounds is not None:
        return lgb.train(params, lgb.Dataset(X, y), num_boost_round=max(int(rounds), 1))
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


def rounds_of(bundle: ModelBundle) -> dict[str, int]:
    """The trees each booster of a bundle uses (early stopping's choice): what a refit on every row grows."""
    boosters = {"main": bundle.booster, **bundle.extra_boosters()}
    return {name: int(b.best_iteration or b.current_iteration()) for name, b in boosters.items()}


def fit_calibrator(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """A strictly increasing calibrator (keeps the booster's order); identity if ``y`` has one class only."""
    from training.calibration import fit_calibrator as fit_order_keeping

    return fit_order_keeping(raw, y)


def categorical_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]


def classifier_boosters(
    target: str, X: pd.DataFrame, y: np.ndarray, settings: Settings, rounds: dict[str, int] | None = None
) -> ModelBundle:
    """A classifier's booster, not yet calibrated (``rounds``: the refit's tree count, see :func:`fit_booster`)."""
    params = lgb_params(settings, "binary", target, list(X.columns))
    booster = fit_booster(X, y, params, settings, rounds and rounds["main"])
    return ModelBundle(target, CLASSIFIER, list(X.columns), categorical_columns(X), booster)


def classifier_evidence(bundle: ModelBundle, X: pd.DataFrame, y: np.ndarray) -> dict[str, np.ndarray]:
    """What calibrating a classifier needs from rows its booster did not learn from: raw scores and labels."""
    return {"raw": bundle.booster.predict(bundle.frame(X)), "y": np.asarray(y)}


def calibrate_classifier(bundle: ModelBundle, evidence: dict[str, np.ndarray]) -> ModelBundle:
    bundle.calibrator = fit_calibrator(evidence["raw"], evidence["y"])
    return bundle


def slip_boosters(
    target: str,
    X: pd.DataFrame,
    slip: np.ndarray,
    late: np.ndarray,
    settings: Settings,
    time_to_plan: str | None = None,
    rounds: dict[str, int] | None = None,
) -> ModelBundle:
    """The slip model's boosters, before the late calibrator and the range's conformal margin. With
    ``time_to_plan`` (a feature: days to the planned date, negative once overdue) they learn the slip still to
    come on top of the delay already incurred, and the late booster learns from the rows whose lateness is not yet
    certain; ``SlipModel.outputs`` adds the incurred delay back."""
    features = list(X.columns)
    alpha = (1 - settings.interval_coverage) / 2
    meta = {"time_to_plan": time_to_plan, "near_days": settings.near_days} if time_to_plan else {}
    incurred = incurred_delay(time_to_plan_days(meta, X), len(X))
    still_open = np.flatnonzero(incurred <= settings.late_tolerance_days)  # past the tolerance, late for certain

    def booster(name: str, objective: str, y: np.ndarray, rows=slice(None), **extra) -> lgb.Booster:
        params = lgb_params(settings, objective, target, features, **extra)
        return fit_booster(X.iloc[rows], y[rows], params, settings, rounds and rounds[name])

    further = slip - incurred
    return ModelBundle(
        target,
        SLIP,
        features,
        categorical_columns(X),
        booster("main", settings.delay_objective, further),
        lower=booster("lower", "quantile", further, alpha=alpha),
        upper=booster("upper", "quantile", further, alpha=1 - alpha),
        late=booster("late", "binary", late, still_open),
        meta=dict(meta),
    )


def slip_evidence(bundle: ModelBundle, X: pd.DataFrame, slip: np.ndarray, late: np.ndarray) -> dict[str, np.ndarray]:
    """What calibrating a slip model needs from rows its boosters did not learn from: the range before any margin,
    the late booster's raw score, the labels and the days to the plan."""
    Xf = bundle.frame(X)
    pred = bundle.strategy.with_margin(bundle, Xf, 0.0)
    days = time_to_plan_days(bundle.meta, Xf)
    return {
        "lower": pred["lower_days"],
        "upper": pred["upper_days"],
        "late_raw": bundle.late.predict(Xf),
        "slip": np.asarray(slip, dtype="float64"),
        "late": np.asarray(late),
        "days": np.full(len(X), np.nan) if days is None else days,
    }


def calibrate_slip(bundle: ModelBundle, evidence: dict[str, np.ndarray], settings: Settings) -> ModelBundle:
    """The late calibrator (on rows whose lateness was not yet certain) and the range's conformal margins."""
    still_open = incurred_delay(evidence["days"], len(evidence["days"])) <= settings.late_tolerance_days
    bundle.calibrator = fit_calibrator(evidence["late_raw"][still_open], evidence["late"][still_open])
    margins = conformal_margins(evidence, settings.interval_coverage, bundle.meta.get("near_days"))
    bundle.conformal = margins.pop("all")
    if bundle.meta.get("time_to_plan"):
        bundle.meta["conformal_by_band"] = margins
    return bundle


def concat_evidence(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


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


def conformal_margins(evidence: dict[str, np.ndarray], coverage: float, near_days: float | None) -> dict:
    """Conformalized quantile regression: the margin that makes [lower - m, upper + m] cover ``coverage`` of the
    calibration rows (with the finite-sample correction), so it holds on new rows from the same process: over all
    rows ("all"), and per horizon band when the rows' days to the plan are known (Mondrian conformal: a band with
    fewer than ``MIN_BAND_ROWS`` calibration rows takes the overall margin)."""
    y = evidence["slip"]
    scores = np.maximum(evidence["lower"] - y, y - evidence["upper"])
    margins = {"all": conformal_quantile(scores, coverage)}
    if near_days is not None:
        bands = horizon_band(evidence["days"], near_days)
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
