"""monitoring.drift and monitoring.estimate (issue 13 §3): drift measures and their flags on synthetic samples, and
performance estimated from predicted probabilities against the realised metrics of outcomes drawn from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from eqsms.settings import MonitorSettings
from monitoring.drift import (
    bin_edges,
    binned,
    category_counts,
    category_psi,
    chi_square,
    drift_summary,
    feature_drift,
    js_distance,
    ks,
    missing_shift,
    new_categories,
    prediction_drift,
    psi,
)
from monitoring.estimate import (
    auc_spread,
    estimate,
    estimated_auc,
    estimated_mae,
    expected_brier,
    expected_confusion,
    expected_positive_rate,
)

DEFAULTS = MonitorSettings.model_construct()  # the defaults, whatever the environment says
SEEDS = (0, 1, 2, 3, 4)


# ------------------------------------------------------------------------------------------------- measures
def test_psi_is_zero_for_identical_samples_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=2000), rng.normal(size=2000)
    assert psi(a, a) == 0.0
    assert psi(a, b) < 0.02  # two samples of one distribution
    assert 0.7 < psi(a, b + 1.0) < 1.3  # ~ (shift in sd)^2
    assert psi(a, b + 0.3) < psi(a, b + 0.6) < psi(a, b + 1.0)
    result = ks(a, b + 1.0)
    assert result.statistic > 0.3 and result.pvalue < 1e-10
    assert ks(a, b).pvalue > 0.01


def test_psi_bins_follow_tied_values_and_constant_columns():
    counts = np.array([0.0] * 60 + [1.0] * 25 + [2.0] * 15)
    edges = bin_edges(counts)
    assert list(edges[:3]) == [0.0, 1.0, 2.0] and edges.size == 4  # {<0}, {0}, {1}, {2}, {>2}: no empty slivers
    assert list(binned(counts, edges)) == [0, 60, 25, 15, 0, 0]  # the last bin: missing
    constant = np.ones(100)
    assert psi(constant, constant) == 0.0
    above, below = np.r_[np.ones(50), np.full(50, 2.0)], np.r_[np.ones(50), np.zeros(50)]
    assert psi(constant, above) > 4 and psi(constant, below) > 4  # a value either side of the constant is seen


def test_psi_counts_missing_values_in_their_own_bin():
    nan = np.full(100, np.nan)
    assert psi(nan, nan) == 0.0  # all missing in both: nothing moved
    assert psi(nan, np.ones(100)) > 4  # a feature that starts arriving
    assert psi(np.ones(100), nan) > 4  # ... or stops
    values = np.r_[np.arange(90.0), np.full(10, np.nan)]
    darker = np.r_[np.arange(0.0, 90.0, 2), np.full(55, np.nan)]
    assert psi(values, darker) > 0.5
    as_text = pd.Series([*map(str, range(90)), *["n/a"] * 10])  # texts and infinities count as missing
    assert psi(values, as_text) == 0.0
    assert psi(values, np.r_[np.arange(90.0), np.full(10, np.inf)]) == 0.0
    assert np.isnan(psi(values, []))


def test_category_measures_count_missing_and_unseen_categories():
    ref = pd.Series(["a", "a", "b", None] * 100, dtype="category")
    same = pd.Series(["b", "a", None, "a"] * 100)  # plain texts, another order: the same shares
    assert category_psi(ref, same) == pytest.approx(0.0) and js_distance(ref, same) == pytest.approx(0.0)
    assert chi_square(ref, same).pvalue == pytest.approx(1.0)
    assert js_distance(["a"] * 10, ["b"] * 10) == pytest.approx(1.0)
    unseen = pd.Series(["a", "a", "c", "d"] * 100)
    r, c, is_new = category_counts(ref, unseen)
    assert list(r) == [200, 100, 0, 0, 100] and list(c) == [200, 0, 100, 100, 0]  # a, b, c, d, missing
    assert list(is_new) == [False, False, True, True, False]
    assert np.isfinite(category_psi(ref, unseen)) and category_psi(ref, unseen) > 1
    assert chi_square(ref, unseen).pvalue < 1e-10
    assert new_categories(ref, unseen).share == pytest.approx(0.5)
    assert new_categories(ref, same).share == 0.0
    assert category_psi(["x"] * 50, ["x"] * 50) == 0.0 and chi_square(["x"] * 50, ["x"] * 50).pvalue == 1.0


def test_missing_shift_and_the_expected_share_of_new_categories():
    shift = missing_shift([1.0, np.nan, 2.0, 3.0] * 100, [np.nan, np.nan, 2.0, 3.0] * 100)
    assert (shift.reference, shift.current) == (0.25, 0.5) and shift.pvalue < 1e-10
    assert missing_shift([1.0] * 50, [2.0] * 50).pvalue == 1.0
    rare = [f"c{i}" for i in range(20)] + ["common"] * 180  # 20 categories seen once in 200 rows
    assert new_categories(rare, ["common"] * 100).expected == pytest.approx(0.1)  # Good-Turing: 20 / 200


# ------------------------------------------------------------------------------------------------- the table
def _world(rng: np.random.Generator, rows: int, features: int = 70) -> tuple[pd.DataFrame, set[str]]:
    """``features`` columns of the kinds the registry has: normal, skewed, counts, mostly-zero counts, with missing
    values, and categories (a few common, some rare)."""
    cats = np.array(["house", "flat", "school", "office", "road", "bridge", "depot"])
    shares = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.04, 0.01])
    columns, categorical = {}, set()
    for i in range(features):
        kind = i % 7
        if kind == 0:
            x = rng.normal(size=rows)
        elif kind == 1:
            x = rng.lognormal(1.0, 1.0, size=rows)
        elif kind == 2:
            x = rng.poisson(1.5, size=rows).astype(float)
        elif kind == 3:
            x = np.where(rng.random(rows) < 0.8, 0.0, rng.exponential(5.0, size=rows))
        elif kind == 4:
            x = np.where(rng.random(rows) < 0.3, np.nan, rng.normal(10, 3, size=rows))
        elif kind == 5:
            x = rng.integers(0, 100, size=rows).astype(float)
        else:
            x = pd.Categorical(rng.choice(cats, size=rows, p=shares))
            categorical.add(f"f{i}")
        columns[f"f{i}"] = x
    return pd.DataFrame(columns), categorical


@pytest.mark.parametrize("seed", SEEDS)
def test_no_feature_is_flagged_on_two_samples_of_one_distribution(seed):
    rng = np.random.default_rng(seed)
    reference, categorical = _world(rng, 2000)
    current, _ = _world(rng, 2000)
    table = feature_drift(reference, current, list(reference.columns), categorical, DEFAULTS)
    assert len(table) == 70 and table["judged"].all()
    assert not table["drifted"].any(), table[table["drifted"]]
    assert table["psi"].max() < 0.1  # not even "moderate"
    summary = drift_summary(table, DEFAULTS, prediction_drift(reference["f0"], current["f0"], DEFAULTS))
    assert summary["flagged"] is False and summary["features_drifted"] == 0 and summary["reason"] == "no drift"


def test_shifted_features_are_flagged_and_named_and_flag_the_model():
    rng = np.random.default_rng(11)
    reference, categorical = _world(rng, 2000)
    current, _ = _world(rng, 2000)
    current["f0"] += 0.6  # normal, +0.6 sd
    current.loc[current.index[:300], "f4"] = np.nan  # missing 30% -> ~40%
    current["f6"] = pd.Categorical(np.where(rng.random(2000) < 0.1, "tunnel", current["f6"].astype(str)))
    table = feature_drift(reference, current, list(reference.columns), categorical, DEFAULTS).set_index("feature")
    assert set(table.index[table["drifted"]]) == {"f0", "f4", "f6"}
    assert "psi" in table.loc["f0", "reason"] and table.loc["f0", "test"] == "ks"
    assert "missing 30% -> 4" in table.loc["f4", "reason"]
    assert "new categories 10% of rows" in table.loc["f6", "reason"] and table.loc["f6", "test"] == "chi2"
    assert table.loc["f6", "js_distance"] > 0.1 and np.isnan(table.loc["f0", "js_distance"])
    summary = drift_summary(table.reset_index(), DEFAULTS)
    assert summary["flagged"] and summary["drifted"][0] == "f6"  # largest PSI first
    one_less = drift_summary(table.reset_index(), DEFAULTS.model_copy(update={"drift_features_flagged": 4}))
    assert not one_less["flagged"] and "3 feature(s) drifted" in one_less["reason"]


def test_an_effect_the_test_does_not_confirm_is_noted_not_flagged():
    few = DEFAULTS.model_copy(update={"drift_min_rows": 20})
    reference = pd.DataFrame({"x": np.arange(40.0)})  # deciles of 4 values each
    current = pd.DataFrame({"x": np.concatenate([np.arange(k * 4, k * 4 + 4.0) for k in (0, 2, 4, 6, 8)])})
    row = feature_drift(reference, current, ["x"], set(), few).iloc[0]
    assert row["psi"] > few.drift_psi_threshold and row["pvalue"] > few.drift_pvalue  # every other bin, same range
    assert not row["drifted"] and row["reason"].startswith("not confirmed: psi")


def test_few_rows_are_not_judged_and_an_absent_feature_is_all_missing():
    reference = pd.DataFrame({"x": np.arange(1000.0), "y": np.arange(1000.0)})
    table = feature_drift(reference, reference.iloc[:100], ["x"], set(), DEFAULTS)
    assert not table.loc[0, "judged"] and not table.loc[0, "drifted"]
    assert table.loc[0, "reason"] == "not judged: 100 rows < 300" and np.isnan(table.loc[0, "psi"])
    summary = drift_summary(table, DEFAULTS)
    assert not summary["flagged"] and "1 feature(s) not judged" in summary["reason"]
    gone = feature_drift(reference, reference[["x"]], ["x", "y"], set(), DEFAULTS).set_index("feature")
    assert gone.loc["y", "drifted"] and gone.loc["y", "missing_current"] == 1.0 and not gone.loc["x", "drifted"]


def test_prediction_drift_flags_the_model_on_its_own():
    rng = np.random.default_rng(3)
    reference = rng.beta(2, 8, size=5000)
    row = prediction_drift(reference, rng.beta(4, 6, size=1000), DEFAULTS)
    assert row["drifted"] and row["feature"] == "prediction"
    assert not prediction_drift(reference, rng.beta(2, 8, size=1000), DEFAULTS)["drifted"]
    table = feature_drift(pd.DataFrame({"x": reference}), pd.DataFrame({"x": reference[:1000]}), ["x"], set(), DEFAULTS)
    summary = drift_summary(table, DEFAULTS, row)
    assert summary["flagged"] and summary["prediction_drifted"] and summary["features_drifted"] == 0


def test_another_output_drifting_flags_the_model_on_its_own():
    """The slip model's P(late) moving while its expected slip does not (a prior shift in lateness) flags it."""
    rng = np.random.default_rng(4)
    slip = prediction_drift(rng.gamma(2, 5, 5000), rng.gamma(2, 5, 1000), DEFAULTS)
    late = prediction_drift(rng.beta(2, 8, 5000), rng.beta(4, 6, 1000), DEFAULTS)
    table = feature_drift(pd.DataFrame({"x": np.zeros(5000)}), pd.DataFrame({"x": np.zeros(1000)}), ["x"], [], DEFAULTS)
    summary = drift_summary(table, DEFAULTS, slip, {"late_probability": late})
    assert summary["flagged"] and not summary["prediction_drifted"]
    assert summary["outputs_psi"]["late_probability"] == pytest.approx(late["psi"])
    assert late["psi"] > DEFAULTS.drift_psi_threshold
    assert "late_probability: psi" in summary["reason"]
    steady = prediction_drift(rng.beta(2, 8, 5000), rng.beta(2, 8, 1000), DEFAULTS)
    assert not drift_summary(table, DEFAULTS, slip, {"late_probability": steady})["flagged"]


# ------------------------------------------------------------------------------------------------- estimates
def _brute_force_auc(p: np.ndarray) -> float:
    """sum over i != j of p_i (1 - p_j) [p_i > p_j, 1/2 tied] / sum over i != j of p_i (1 - p_j), in O(n^2)."""
    pi, pj = np.meshgrid(p, p, indexing="ij")
    weight = pi * (1 - pj)
    np.fill_diagonal(weight, 0.0)
    return float(np.sum(weight * ((pi > pj) + 0.5 * (pi == pj))) / np.sum(weight))


@pytest.mark.parametrize("seed", SEEDS)
def test_estimated_auc_equals_the_brute_force_sum_over_pairs(seed):
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 3, size=60)
    p[:20] = np.round(p[:20], 1)  # ties, as an isotonic calibrator makes
    assert estimated_auc(p) == pytest.approx(_brute_force_auc(p), abs=1e-12)
    assert estimated_auc([0.0, 1.0, 1.0]) == 1.0  # outcomes known: ranked perfectly
    assert np.isnan(estimated_auc([1.0, 1.0])) and np.isnan(estimated_auc([0.3]))  # no positive-negative pair


def _scores(seed: int, slope: float, n: int = 2000, intercept: float = -1.5) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities p = sigmoid(intercept + slope z) and outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(intercept + slope * rng.normal(size=n))))
    return p, rng.random(n) < p


def test_estimated_auc_and_brier_track_the_realised_ones():
    est, real, brier_gap = [], [], []
    for seed in range(20):
        p, y = _scores(seed, slope=1.2)
        est.append(estimated_auc(p))
        real.append(roc_auc_score(y, p))
        brier_gap.append(expected_brier(p) - brier_score_loss(y, p))
    gaps = np.array(est) - np.array(real)
    assert np.mean(np.abs(gaps)) <= 0.02 and abs(np.mean(gaps)) < 0.01  # no bias beyond chance
    assert np.mean(np.abs(brier_gap)) <= 0.01
    spread = auc_spread(p)  # the realised AUC's chance spread, from p alone
    assert 0.6 < np.std(real) / spread < 1.6


def test_estimated_auc_follows_scores_that_crowd_towards_a_half():
    sharp, vague = [], []
    for seed in range(10):
        for slope, out in ((2.0, sharp), (0.5, vague)):
            p, y = _scores(seed, slope, intercept=0.0)
            out.append((estimated_auc(p), roc_auc_score(y, p)))
    (sharp_est, sharp_real), (vague_est, vague_real) = np.mean(sharp, axis=0), np.mean(vague, axis=0)
    assert vague_est < sharp_est - 0.1 and vague_real < sharp_real - 0.1
    assert abs(sharp_est - sharp_real) < 0.02 and abs(vague_est - vague_real) < 0.02


def test_expected_confusion_and_the_summary():
    p = np.array([0.9, 0.6, 0.2, 0.1])
    c = expected_confusion(p, threshold=0.5)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == pytest.approx((1.5, 0.5, 0.3, 1.7))
    assert c["precision"] == pytest.approx(0.75) and c["recall"] == pytest.approx(1.5 / 1.8)
    assert expected_positive_rate(p) == pytest.approx(0.45)
    summary = estimate(p, threshold=0.5)
    assert summary["rows"] == 4 and summary["estimated_auc"] == pytest.approx(_brute_force_auc(p))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        estimated_auc([0.2, np.nan])


def test_estimated_mae_reweights_the_training_mae_by_band():
    mae = {"ahead": 20.0, "near": 10.0, "overdue": 4.0}
    assert estimated_mae(pd.Series(["ahead"] * 2 + ["near"] * 2), mae) == pytest.approx(15.0)
    assert estimated_mae(pd.Series(["overdue"] * 3 + ["ahead"]), mae) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="later"):
        estimated_mae(pd.Series(["ahead", "later"]), mae)
    assert np.isnan(estimated_mae(pd.Series([], dtype=object), mae))
