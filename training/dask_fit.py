"""One LightGBM booster fitted on a Dask cluster (``lightgbm.dask``): ``eqsms train --engine dask``.

Only the fit moves. The rows arrive as the pandas frame the single-machine fit gets (time-ordered, categoricals
with their levels); they go to the cluster as a dask DataFrame of one partition a worker and are fitted with the
same parameters (``training.models.lgb_params`` and ``for_rows``) by LightGBM's data-parallel learner; the fitted
model comes back as a plain ``lightgbm.Booster`` (``.to_local()``), so calibration, intervals, evaluation, SHAP,
the bundle, the registry and the gate use it unchanged. It is not bit-identical to the single-machine booster:
each worker bins and bags its own rows, and LightGBM's distributed learners apply monotone constraints by its
"basic" method (which holds them exactly, as "intermediate" does on one machine); which worker gets which
partition varies from run to run, so two dask fits can differ too. ``tests/test_dask_training.py`` states by how
much the test metrics may differ from the single-machine model's.

Early stopping: ``lightgbm.dask`` does not support it (each worker would judge its own share of the validation
rows, and workers that stop at different rounds hang the others: LightGBM issues #3712, #7009). The cluster grows
``n_estimators`` trees on the earlier rows; the driver then scores every round on the held-out latest rows with
the objective's own metric and keeps the trees up to the round early stopping would have chosen (the same rule:
the best round, with no better one in the next ``early_stopping_rounds``).
"""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd

from eqsms.settings import Settings

LABEL = "__label__"  # the label's column in the frame sent to the cluster


class NoCluster(RuntimeError):
    """``training_engine`` is dask but no ``distributed.Client`` is open in this process."""


def fit_on_cluster(X: pd.DataFrame, y: np.ndarray, params: dict, n_rounds: int, client=None) -> lgb.Booster:
    """``n_rounds`` trees of ``params`` on rows ``X`` with labels ``y``, fitted by the workers of ``client``
    (default: the process's current ``distributed`` client)."""
    import dask.dataframe as dd
    from lightgbm.dask import DaskLGBMRegressor

    client = client or current_client()
    workers = max(len(client.scheduler_info()["workers"]), 1)
    frame = X.reset_index(drop=True).assign(**{LABEL: np.asarray(y, dtype="float64")})
    parts = dd.from_pandas(frame, npartitions=min(workers, len(frame)), sort=False)
    # num_threads is the worker's own (lightgbm.dask sets it from the worker's cores); the rest as given.
    kwargs = {k: v for k, v in params.items() if k not in ("num_threads", "n_jobs")}
    # The regressor class for every objective (binary included): the booster is all the pipeline keeps, and a
    # classifier would re-encode the labels (and refuse a fold whose labels are all one class).
    model = DaskLGBMRegressor(client=client, n_estimators=int(n_rounds), **kwargs)
    with warnings.catch_warnings():  # the estimator's own n_jobs (None) is dropped for the workers' cores: as meant
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(parts[list(X.columns)], parts[LABEL])
    return model.to_local().booster_


def quiet_lightgbm() -> None:
    """``lightgbm.dask``'s messages in the driver (a line a fit on finding the workers' ports) to the ``lightgbm``
    logger, where its warnings still show and its info lines do not. (The workers' own LightGBM network lines go
    to their output, which a local cluster shares with the driver's terminal.)"""
    import logging

    lgb.register_logger(logging.getLogger("lightgbm"))


def current_client():
    """The ``distributed.Client`` this process opened last (``eqsms train --engine dask`` opens one)."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError as err:
        raise NoCluster(
            "training_engine is dask but no Dask client is open (eqsms train --engine dask opens one)"
        ) from err


def fit_booster_dask(
    X: pd.DataFrame, y: np.ndarray, params: dict, settings: Settings, rounds: int | None = None
) -> lgb.Booster:
    """``training.models.fit_booster`` on the cluster: the earlier ``1 - EARLY_STOPPING_SHARE`` of the rows (in
    time order) fitted there, the latest choosing the number of trees in the driver; with ``rounds`` (the refit on
    every labelled row), exactly that many trees on every row. ``params`` are already fitted to the rows
    (``for_rows``)."""
    from training.models import EARLY_STOPPING_SHARE

    if rounds is not None:
        return fit_on_cluster(X, y, params, max(int(rounds), 1))
    n_fit = max(int(len(X) * (1 - EARLY_STOPPING_SHARE)), 1)
    booster = fit_on_cluster(X.iloc[:n_fit], y[:n_fit], params, settings.n_estimators)
    if len(X) == n_fit:
        return booster
    losses = round_losses(booster, X.iloc[n_fit:], np.asarray(y[n_fit:], dtype="float64"), params)
    best = early_stopping_round(losses, settings.early_stopping_rounds)
    kept = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    kept.best_iteration = best
    return kept


def round_losses(booster: lgb.Booster, X: pd.DataFrame, y: np.ndarray, params: dict) -> np.ndarray:
    """The objective's default metric (what ``lgb.train`` stops early on) on rows ``X`` after each round: the
    raw score of round ``k`` is the sum of the first ``k`` trees' leaf values (the first holds the initial score)."""
    leaves = booster.predict(X, pred_leaf=True).reshape(len(X), -1)
    trees = leaves.shape[1]
    values = np.zeros((trees, int(leaves.max()) + 1 if leaves.size else 1))
    for t in range(trees):
        for leaf in np.unique(leaves[:, t]):
            values[t, leaf] = booster.get_leaf_output(t, int(leaf))
    raw = np.cumsum(values[np.arange(trees), leaves], axis=1)  # rows x rounds
    return metric_by_round(raw, y[:, None], params)


def metric_by_round(raw: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    """LightGBM's default metric of ``params["objective"]`` for each column of raw scores ``raw``."""
    objective = params["objective"]
    if objective == "binary":
        p = np.clip(1 / (1 + np.exp(-raw)), 1e-15, 1 - 1e-15)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=0)
    if objective == "quantile":
        alpha, diff = params.get("alpha", 0.9), y - raw
        return np.where(diff >= 0, alpha * diff, (alpha - 1) * diff).mean(axis=0)
    if objective == "regression_l1":
        return np.abs(y - raw).mean(axis=0)
    if objective == "regression":
        return ((y - raw) ** 2).mean(axis=0)
    raise ValueError(f"training_engine dask: no early-stopping metric for objective {objective!r}")


def early_stopping_round(losses: np.ndarray, patience: int) -> int:
    """The round (1-based) ``lgb.early_stopping`` keeps: the first strictly best loss, training stopped once
    ``patience`` rounds pass without a better one."""
    best = 0
    for k in range(1, len(losses)):
        if losses[k] < losses[best]:
            best = k
        elif k - best >= patience:
            break
    return best + 1
