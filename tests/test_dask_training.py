"""``eqsms train --engine dask``: the boosters fitted by ``lightgbm.dask`` on a real 2-worker local cluster
(``training.dask_fit``) match the single-machine model's quality on a mid-size world; the rest of the pipeline
(calibration, intervals, evaluation, registry, gate) takes the model unchanged.

Distributed LightGBM is not bit-identical to the single-machine fit: each worker bins and bags its own rows,
distributed learning applies monotone constraints by the "basic" method, and which worker gets which partition
varies between runs. Measured on 600-project worlds (n_estimators 100, backtest_folds 2; 2 workers), dask minus
pandas on the test rows:

| world seed | defect_risk ROC-AUC pandas / dask | diff | delay MAE pandas / dask (days) | diff |
|---|---|---|---|---|
| 7 | 0.7296 / 0.7507 | +0.021 | 13.080 / 12.917 | -1.2% |
| 11 | 0.6664 / 0.6586 | -0.008 | 11.204 / 11.204 | 0.0% |
| 5 | 0.6955 / 0.7105 | +0.015 | 13.558 / 13.604 | +0.3% |

The single-machine model's own LightGBM seed (7..10) moves its ROC-AUC as much: 0.730-0.743, 0.665-0.677,
0.696-0.708. Tolerances, with margin over the largest difference: ROC-AUC within ``AUC_TOLERANCE`` (0.035,
absolute), MAE within ``MAE_TOLERANCE`` (5%, relative) of the single-machine model's.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings
from features.registry import monotone_constraints
from features.validate import load
from training import tracking
from training.dask_fit import early_stopping_round, metric_by_round, round_losses
from training.evaluate import train_target
from training.pipeline import datasets_from_data, run_target
from world import generate_world

AUC_TOLERANCE = 0.035  # defect_risk test ROC-AUC, dask vs pandas (absolute)
MAE_TOLERANCE = 0.05  # delay test MAE, dask vs pandas (relative: 5% of the pandas model's MAE)
PROJECTS, SEED = 600, 7


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_world(n_projects=PROJECTS, seed=SEED, out_dir=out, fmt="parquet")
    return out


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(work_dir=tmp_path_factory.mktemp("work"), n_estimators=100, backtest_folds=2)


@pytest.fixture(scope="module")
def datasets(world, settings):
    return datasets_from_data(load(world, settings), settings, ["defect_risk", "delay"])


def on(engine: str, settings: Settings) -> Settings:
    return settings.model_copy(update={"training_engine": engine})


@pytest.mark.parametrize(
    ("objective", "extra"), [("binary", {}), ("regression", {}), ("regression_l1", {}), ("quantile", {"alpha": 0.1})]
)
def test_the_driver_scores_rounds_as_lightgbm_does(objective, extra):
    """The early-stopping metric recomputed from the trees' leaves equals LightGBM's own, round by round, and the
    round kept is the one ``lgb.early_stopping`` keeps."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + rng.normal(size=600) > 0).astype(float) if objective == "binary" else X[:, 0] + rng.normal(size=600)
    params = {"objective": objective, "learning_rate": 0.3, "num_leaves": 7, "verbose": -1, "seed": 1, **extra}
    fit, valid, recorded = lgb.Dataset(X[:400], y[:400]), (X[400:], y[400:]), {}
    full = lgb.train(params, fit, 60, valid_sets=[lgb.Dataset(*valid)], callbacks=[lgb.record_evaluation(recorded)])
    (theirs,) = recorded["valid_0"].values()

    mine = round_losses(full, *valid, params)

    np.testing.assert_allclose(mine, theirs, rtol=1e-6)  # LightGBM sums in float32
    stopped = lgb.train(params, lgb.Dataset(X[:400], y[:400]), 60, valid_sets=[lgb.Dataset(*valid)],
                        callbacks=[lgb.early_stopping(5, verbose=False)])  # fmt: skip
    assert early_stopping_round(mine, 5) == stopped.best_iteration


def test_early_stopping_round_keeps_the_first_best():
    assert early_stopping_round(np.array([3.0, 2.0, 2.0, 1.0, 1.5, 1.5, 1.5]), 3) == 4
    assert early_stopping_round(np.array([3.0, 2.0, 2.5, 2.5, 1.0]), 2) == 2  # stopped before the late best
    assert metric_by_round(np.zeros((2, 1)), np.array([[1.0], [0.0]]), {"objective": "binary"})[0] == pytest.approx(
        np.log(2)
    )


def test_dask_defect_risk_matches_the_single_machine_model(dask_client, datasets, settings):
    ds = datasets["defect_risk"]
    local = train_target(ds, settings)
    distributed = train_target(ds, on("dask", settings))

    ours, theirs = distributed.metrics["model"]["roc_auc"], local.metrics["model"]["roc_auc"]
    assert abs(ours - theirs) <= AUC_TOLERANCE, (ours, theirs)
    assert distributed.metrics["model"]["ece"] < 0.1  # calibrated as usual, on the calibration rows
    booster = distributed.bundle.booster
    assert isinstance(booster, lgb.Booster) and booster.best_iteration == booster.current_iteration() <= 100
    assert "[tree_learner: data]" in booster.model_to_string()  # fitted by the workers, not in this process
    assert booster.pandas_categorical and booster.pandas_categorical == local.bundle.booster.pandas_categorical
    assert len(distributed.backtest) == len(local.backtest) == 2
    # Every monotone constraint holds ("basic" on a cluster): each constrained feature set to rising values on every
    # test row moves no row's risk against its declared direction.
    bundle, rows = distributed.bundle, distributed.test_rows
    signs = dict(zip(bundle.features, monotone_constraints(settings, "defect_risk", bundle.features), strict=True))
    constrained = {f: c for f, c in signs.items() if c}
    assert len(constrained) >= 4
    for feature, sign in constrained.items():
        grid = np.unique(np.nanquantile(ds.frame[feature].astype(float), [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1]))
        scores = np.array([bundle.score(rows.assign(**{feature: v})) for v in grid])
        assert np.all(sign * np.diff(scores, axis=0) >= -1e-12), feature


@pytest.mark.slow
def test_dask_delay_matches_the_single_machine_model(dask_client, datasets, settings):
    ds = datasets["delay"]
    local = train_target(ds, settings)
    distributed = train_target(ds, on("dask", settings))

    ours, theirs = distributed.metrics["model"], local.metrics["model"]
    assert abs(ours["mae"] - theirs["mae"]) <= MAE_TOLERANCE * theirs["mae"], (ours["mae"], theirs["mae"])
    assert abs(ours["coverage"] - settings.interval_coverage) <= 0.05  # the conformal range holds its coverage
    assert {"lower", "upper", "late"} <= set(distributed.bundle.extra_boosters())


@pytest.mark.slow
def test_a_dask_model_registers_and_meets_the_gate(dask_client, datasets, settings):
    """Refit on all rows, evidence, MLflow, registry and gate: the pipeline as on one machine. The baseline check is
    off (as for the loop's champions): a dask fit varies run to run, and on this world it once lost to the logistic
    regression (CI); quality is the two tests above."""
    dask_settings = on("dask", settings).model_copy(update={"baseline_tolerance": 1.0})
    store = tracking.configure(dask_settings)

    first = run_target(datasets["defect_risk"], dask_settings, None, "test", True, store)
    again = run_target(datasets["defect_risk"], dask_settings, None, "test", True, store)
    local = run_target(datasets["defect_risk"], settings, None, "test", True, store)

    assert first.registered.version == "1" and first.decision.promoted
    assert first.result.bundle.meta["refit"]["rows"] == len(datasets["defect_risk"].frame)
    params = store.get_run(first.registered.run_id).data.params
    assert params["training_engine"] == "dask"
    assert again.skipped and "unchanged" in again.skipped
    assert local.registered.version == "2" and local.decision is not None  # not the dask training's identity


@pytest.mark.slow
def test_train_on_dask_from_the_command_line(world, tmp_path, monkeypatch):
    """`eqsms train --engine dask`: a local cluster of its own, closed when the command ends."""
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("EQSMS_N_ESTIMATORS", "100")
    monkeypatch.setenv("EQSMS_BACKTEST_FOLDS", "2")
    monkeypatch.setenv("EQSMS_REFIT_ON_ALL_ROWS", "false")
    # The command is tested, not the model: on 600 projects a dask fit sometimes loses to the logistic regression by
    # a hair (once in session 8), and the gate rightly refuses it; quality is tested above, against the pandas fit.
    monkeypatch.setenv("EQSMS_BASELINE_TOLERANCE", "1")

    result = CliRunner().invoke(app, ["train", str(world), "--model", "defect_risk", "--engine", "dask", "--promote"])

    assert result.exit_code == 0, result.output
    assert "training on Dask:" in result.output and "2 workers" in result.output
    assert "boosters fitted by lightgbm.dask" in result.output and "v1 champion" in result.output, result.output
    assert "Finding random open ports" not in result.output  # LightGBM's network chatter stays in its logger


def test_an_unreachable_scheduler_is_one_line(world, tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    args = ["train", str(world), "--model", "defect_risk", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "cannot train on Dask: cannot reach the Dask scheduler at tcp://127.0.0.1:1 (Connection refused)"
    ]
    alone = CliRunner().invoke(app, ["train", str(world), "--scheduler", "tcp://127.0.0.1:1"])
    assert alone.exit_code == 2 and "it goes with --engine dask" in alone.output
