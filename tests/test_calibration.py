"""Calibration keeps the booster's order (issue 10 §4) and still calibrates; older bundles' calibrators still load.

The synthetic score is over-confident and bent (a logit-linear fix such as Platt's cannot calibrate it fully), and
continuous, as a booster's probabilities on thousands of rows are.
"""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from training import calibration
from training.bundle import Calibrator, ModelBundle
from training.metrics import expected_calibration_error
from training.models import fit_calibrator


def miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw scores, the true probabilities behind them and labels drawn from those."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.5, 1.6, n)  # the raw score's logit
    truth = 1 / (1 + np.exp(-(-2.0 + 0.35 * z + 0.9 * np.maximum(z + 0.5, 0.0))))
    return 1 / (1 + np.exp(-z)), truth, (rng.random(n) < truth).astype(int)


@pytest.fixture(scope="module")
def fitted():
    raw_cal, _, y_cal = miscalibrated(20_000, seed=1)
    raw_test, truth, y_test = miscalibrated(50_000, seed=2)
    return fit_calibrator(raw_cal, y_cal), raw_test, truth, y_test


# ---------------------------------------------------------------------------------------------------- keeps order
def test_calibrated_scores_keep_every_raw_score_apart(fitted):
    cal, raw, _, _ = fitted
    assert len(np.unique(cal(raw))) == len(np.unique(raw)) == len(raw)
    assert cal.method == "logit_spline"


def test_calibrated_scores_rise_strictly_with_the_raw_score(fitted):
    cal, raw, _, _ = fitted
    out = cal(np.sort(raw))
    assert np.all(np.diff(out) > 0)


def test_ranking_metrics_are_the_raw_scores(fitted):
    cal, raw, _, y = fitted
    out = cal(raw)
    assert roc_auc_score(y, out) == pytest.approx(roc_auc_score(y, raw), abs=1e-9)
    assert average_precision_score(y, out) == pytest.approx(average_precision_score(y, raw), abs=1e-9)


def test_strictly_increasing_beyond_the_knots(fitted):
    cal, _, _, _ = fitted
    lo, hi = Calibrator.expit([cal.x[0], cal.x[-1]])  # the knots as raw probabilities
    below, inside, above = np.geomspace(1e-9, lo, 200), np.linspace(lo, hi, 200), 1 - np.geomspace(1 - hi, 1e-9, 200)
    grid = np.concatenate([below[:-1], inside, above[1:]])
    out = cal(grid)
    assert np.all(np.diff(out) > 0)
    assert np.all((out > 0) & (out < 1))
    assert np.all(np.isfinite(cal(np.array([0.0, 1.0]))))
    assert cal.slope_below >= calibration.MIN_SLOPE and cal.slope_above >= calibration.MIN_SLOPE


def test_ties_in_the_raw_score_stay_ties():
    raw = np.repeat(np.linspace(0.05, 0.6, 50), 40)  # a booster with few leaves: many rows share a score
    y = (np.random.default_rng(3).random(len(raw)) < raw).astype(int)
    cal = fit_calibrator(raw, y)
    out = cal(raw)
    assert len(np.unique(out)) == 50
    assert np.all(np.diff(cal(np.unique(raw))) > 0)


# --------------------------------------------------------------------------------------------------- calibrates
def test_held_out_ece_within_target(fitted):
    cal, raw, truth, y = fitted
    assert expected_calibration_error(y, raw) > 0.1  # the raw score is badly calibrated
    assert expected_calibration_error(y, cal(raw)) <= 0.03
    assert np.sqrt(np.mean((cal(raw) - truth) ** 2)) < 0.02  # and close to the true probability, not just on bins


def test_closer_to_the_truth_than_isotonic(fitted):
    cal, raw, truth, _ = fitted
    raw_cal, _, y_cal = miscalibrated(20_000, seed=1)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw_cal, y_cal)
    assert np.mean((cal(raw) - truth) ** 2) < np.mean((iso.predict(raw) - truth) ** 2)


def test_bent_score_gets_several_pieces_and_small_slice_gets_platt():
    raw, _, y = miscalibrated(20_000, seed=1)
    assert len(fit_calibrator(raw, y).x) > 2  # more than one piece
    raw, _, y = miscalibrated(200, seed=4)
    assert min(y.sum(), len(y) - y.sum()) < 2 * calibration.EVENTS_PER_PIECE  # too few positives for two pieces
    cal = fit_calibrator(raw, y)
    assert len(cal.x) == 2
    logit = np.log(raw / (1 - raw)).reshape(-1, 1)
    platt = LogisticRegression(C=1e6, tol=1e-10).fit(logit, y)  # the old sigmoid, fitted to convergence
    grid = np.linspace(0.01, 0.99, 99)
    old = Calibrator("sigmoid", a=float(platt.coef_[0, 0]), b=float(platt.intercept_[0]))
    np.testing.assert_allclose(cal(grid), old(grid), rtol=0, atol=1e-6)


def test_one_class_is_identity():
    raw = np.linspace(0.1, 0.9, 50)
    cal = fit_calibrator(raw, np.zeros(50))
    assert cal.method == "identity"
    np.testing.assert_array_equal(cal(raw), raw)


def test_no_skill_is_still_strictly_increasing():
    rng = np.random.default_rng(5)
    raw = rng.uniform(0.2, 0.8, 2000)
    y = (rng.random(2000) < 0.3).astype(int)  # labels unrelated to the score
    cal = fit_calibrator(raw, y)
    out = cal(np.sort(raw))
    assert np.all(np.diff(out) > 0)
    assert abs(out.mean() - y.mean()) < 0.03


def test_degenerate_slices_still_give_a_sound_map():
    one_score = fit_calibrator(np.full(100, 0.3), np.r_[np.ones(30), np.zeros(70)])
    assert one_score(np.array([0.3])) == pytest.approx([0.3])
    assert np.all(np.diff(one_score(np.linspace(0.01, 0.99, 99))) > 0)
    raw = np.linspace(0.01, 0.99, 200)
    separable = fit_calibrator(raw, (raw > 0.5).astype(int))  # a knot's probability underflows to 0: kept as logit
    out = separable(raw)
    assert np.all(out[raw < 0.49] < 0.01) and np.all(out[raw > 0.51] > 0.99)
    assert out.mean() == pytest.approx(0.5, abs=0.01)


# ------------------------------------------------------------------------------------------------ persistence
def test_round_trip_through_json(fitted):
    cal, raw, _, _ = fitted
    back = Calibrator(**json.loads(json.dumps(cal.to_dict())))
    assert back == cal
    np.testing.assert_array_equal(back(raw), cal(raw))


def test_old_isotonic_dict_loads_and_predicts_as_before():
    raw_cal, _, y_cal = miscalibrated(5000, seed=6)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw_cal, y_cal)
    written = {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    written.update(a=1.0, b=0.0)  # as bundle.json held it before issue 10 §4
    cal = Calibrator(**json.loads(json.dumps(written)))
    raw = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_allclose(cal(raw), iso.predict(raw), rtol=0, atol=1e-15)
    assert cal.to_dict() == written


def test_old_sigmoid_dict_loads_and_predicts_as_before():
    written = {"method": "sigmoid", "x": [], "y": [], "a": 0.8, "b": -0.3}
    cal = Calibrator(**written)
    raw = np.array([1e-13, 0.1, 0.5, 0.9])
    logit = np.log(np.clip(raw, 1e-12, 1 - 1e-12) / (1 - raw))
    np.testing.assert_allclose(cal(raw), 1 / (1 + np.exp(-(0.8 * logit - 0.3))), rtol=1e-15)
    assert cal.to_dict() == written


def test_bundle_json_keeps_the_calibrator(tmp_path, fitted):
    cal, raw, _, _ = fitted
    X = pd.DataFrame({"f": np.arange(200.0)})
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, np.arange(200) % 2), 2)
    bundle = ModelBundle("t", "classifier", ["f"], [], booster, calibrator=cal)
    booster.save_model(str(tmp_path / "model.lgb"))
    bundle.write_extras(tmp_path / "extra_files")
    back = ModelBundle.from_model_dir(tmp_path)
    np.testing.assert_array_equal(back.calibrator(raw), cal(raw))
