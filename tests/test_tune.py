"""`eqsms train --tune`: a parameter search judged on the rolling-origin folds, never on the test rows.

The searches run on the sample's defect-risk rows with weak defaults (32 leaves at a learning rate of 0.9:
over-fitted, 40 trees at most), so three trials take about a second and one of them beats the defaults on every
fold. (At 0.3 they stopped being weak when the safety features came: no trial of eight beat them on every fold.)
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings, get_settings
from features.validate import load
from training.pipeline import datasets_from_data, training_identity
from training.splits import split_time_of, time_split
from training.tune import TuneError, current_params, tune, tuned_settings, with_params

SAMPLE = get_settings().data_dir
WEAK = {"learning_rate": 0.9, "n_estimators": 40, "num_leaves": 32}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    settings = Settings(work_dir=tmp_path_factory.mktemp("tune"), data_dir=SAMPLE, **WEAK)
    return settings, datasets_from_data(load(SAMPLE), settings, ["defect_risk", "churn"])


@pytest.fixture(scope="module")
def searched(datasets):
    settings, built = datasets
    return tune(built["defect_risk"], settings, n_trials=3)


def test_the_search_never_reads_the_test_rows(datasets, searched):
    settings, built = datasets
    ds = built["defect_risk"]
    test = time_split(split_time_of(ds), settings.train_share, settings.calibration_share).test
    judged = np.concatenate([np.concatenate([f.train, f.calibration, f.test]) for f in searched.folds])
    assert len(judged) and not np.isin(judged, test).any()
    # Garbage in the test rows (labels flipped, every feature shuffled among them) changes nothing in the search.
    frame = ds.frame.copy()
    rng = np.random.default_rng(0)
    for col in [*ds.feature_columns, ds.spec.label]:
        frame.iloc[test, frame.columns.get_loc(col)] = frame[col].iloc[rng.permutation(test)].to_numpy()
    frame.iloc[test, frame.columns.get_loc(ds.spec.label)] = 1 - frame[ds.spec.label].iloc[test].to_numpy()
    again = tune(replace(ds, frame=frame), settings, n_trials=3)
    assert again.history == searched.history and again.chosen == searched.chosen


def test_the_defaults_are_the_first_trial_and_a_chosen_trial_beats_them(datasets, searched):
    settings, _ = datasets
    assert searched.trials == 3 and len(searched.history) == 3
    assert searched.history[0]["params"] == searched.defaults == current_params(settings, "defect_risk")
    assert searched.defaults["learning_rate"] == WEAK["learning_rate"] and searched.defaults["num_leaves"] == 32
    assert searched.default_score == searched.history[0]["score"] == pytest.approx(np.mean(searched.default_folds))
    assert searched.improved and searched.chosen_score > searched.default_score and searched.gain > 0
    winner = next(t for t in searched.history if t["params"] == searched.chosen)
    assert all(c > d for c, d in zip(winner["folds"], searched.default_folds, strict=True))  # on every fold
    better = [t for t in searched.history if all(np.greater(t["folds"], searched.default_folds))]
    assert winner["score"] == max(t["score"] for t in better)
    assert all(p["params"]["max_depth"] <= settings.max_depth for p in searched.history)  # explanation cost
    assert searched.overrides() == searched.chosen
    tuned = tuned_settings(settings, searched)
    assert tuned.tuned_params == {"defect_risk": searched.chosen} and settings.tuned_params == {}
    # With the defaults kept, nothing changes: the settings, the identity, the params.
    kept = replace(searched, chosen=searched.defaults, chosen_score=searched.default_score)
    assert not kept.improved and kept.overrides() == {} and tuned_settings(settings, kept) is settings


def test_tuned_parameters_reach_lightgbm_and_change_only_their_targets_identity(datasets):
    from training.models import lgb_params

    settings, built = datasets
    tuned = with_params(settings, "defect_risk", {"learning_rate": 0.03, "num_leaves": 9})
    params = lgb_params(tuned, "quantile", "defect_risk", [], alpha=0.1)
    assert params["learning_rate"] == 0.03 and params["num_leaves"] == 9 and params["alpha"] == 0.1
    assert lgb_params(tuned, "binary", "delay", [])["learning_rate"] == WEAK["learning_rate"]
    defect, churn = built["defect_risk"], built["churn"]
    assert training_identity(defect, tuned, "c") != training_identity(defect, settings, "c")
    assert training_identity(churn, tuned, "c") == training_identity(churn, settings, "c")
    # Given in the environment as `eqsms train --tune` prints them: the same parameters, ints kept ints.
    env = Settings(tuned_params=json.loads('{"defect_risk":{"learning_rate":0.03,"num_leaves":9}}'))
    assert env.tuned_params == tuned.tuned_params and isinstance(env.tuned_params["defect_risk"]["num_leaves"], int)


def test_folds_too_small_to_judge_say_why(datasets):
    settings, built = datasets
    with pytest.raises(TuneError, match="no rolling-origin fold .* can judge parameters .* failures in"):
        tune(built["churn"], settings, n_trials=2)  # 19-row folds with under 10 churned clients


def test_train_tune_cli_logs_the_chosen_parameters_and_the_search(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path))
    for name, value in WEAK.items():
        monkeypatch.setenv(f"EQSMS_{name.upper()}", str(value))
    result = CliRunner().invoke(app, ["train", "--model", "defect_risk", "--tune", "--trials", "3"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "defect_risk: 3 trials in" in out and "with the defaults" in out and "(logged as tuned.*)" in out
    again = out.split("EQSMS_TUNED_PARAMS='")[1].split("'")[0]
    chosen = json.loads(again)["defect_risk"]
    assert chosen["num_leaves"] >= 4 and (chosen["learning_rate"], chosen["num_leaves"]) != (WEAK["learning_rate"], 32)

    settings = get_settings()
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version("defect_risk", "1")
    run = client.get_run(version.run_id)
    assert {k: run.data.params[f"tuned.{k}"] for k in chosen} == {k: str(v) for k, v in chosen.items()}
    assert run.data.metrics["tune.trials"] == 3
    assert run.data.metrics["tune.chosen_fold_roc_auc"] > run.data.metrics["tune.default_fold_roc_auc"]
    ds = datasets_from_data(load(SAMPLE), settings, ["defect_risk"])["defect_risk"]
    commit = run.data.tags["git_commit"]
    commit = None if commit == "unknown" else commit
    identity = run.data.tags["training.identity"]
    assert identity == training_identity(ds, with_params(settings, "defect_risk", chosen), commit)
    assert identity != training_identity(ds, settings, commit)

    for args, said in (
        (["--tune", "--budget-minutes", "0"], "cannot tune: --budget-minutes must be above 0, not 0"),
        (["--tune", "--trials", "0"], "cannot tune: --trials must be at least 1, not 0"),
        (["--budget-minutes", "5"], "--budget-minutes and --trials: they go with --tune"),
    ):
        wrong = CliRunner().invoke(app, ["train", "--model", "defect_risk", *args])
        assert wrong.exit_code == 2 and wrong.output.strip() == said, wrong.output


def test_the_budget_stops_the_search_and_is_shared_by_the_models_in_turn(datasets):
    from training.tune import Budget

    settings, built = datasets
    hurried = tune(built["defect_risk"], settings, budget_minutes=1e-4, n_trials=50)
    assert 1 <= hurried.trials < 50 and hurried.history[0]["params"] == hurried.defaults
    budget = Budget(600, ["defect_risk", "delay", "churn"])
    assert budget.share("defect_risk") == 200
    budget.spend(30)  # what a model leaves goes to the ones after it
    assert budget.share("delay") == 285
    budget.spend(600)
    assert budget.share("churn") == 0  # then each still judges the defaults: one trial
