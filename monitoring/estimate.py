"""Performance estimated before the outcomes arrive, from the predictions alone.

**Classifiers: confidence-based performance estimation** (CBPE, as NannyML describes it). If the model is calibrated
(of rows given p, a share p turn out positive) then each row's outcome is a coin with its own p, Y_i ~ Bernoulli(p_i)
independently, and any metric's expected value follows from the p's alone: the expected confusion matrix, Brier
score and ROC-AUC. The assumption is the whole method, and it holds under *covariate shift* (new kinds of projects,
P(y | x) unchanged: the calibrator still maps scores to rates) and fails under *concept drift* (the same features now
mean a different risk), which only outcomes can show. So these estimates say how the model does on this week's mix
of rows if it is still right about each kind of row; the drift checks (:mod:`monitoring.drift`) say how far the mix
moved, and the realised metrics, once outcomes arrive, test the assumption.

What cannot be estimated: calibration itself. The method assumes it, so the estimated calibration error would be
0 by construction (a week's measured ECE is above 0 by chance alone) and the expected positive rate is the mean
predicted probability: :func:`expected_positive_rate` is that mean, the rate the model *claims*, to hold against the
training rate (a move is a prior shift, if the model is right) and against the realised rate once outcomes arrive.
Whether the model is still calibrated needs labels: a reliability diagram, the realised ECE.

**Delay (slip in days): MAE by horizon-band mix** (:func:`estimated_mae`). No CBPE holds for the slip: its range is
a calibrated interval of nominal coverage (conformal, marginal per horizon band), not a predictive distribution for
each row, and slips are far from symmetric (many zeros, a long right tail), so reading an expected |error| off a
row's range width (as if normal: sd * sqrt(2 / pi)) assumes a shape the data do not have. What holds with a stated
assumption: the error's size depends on the horizon band far more than on anything else we can see (overdue rows
are already partly known, far-ahead ones are not), so if within each band the error distribution is as it was in
training (no concept drift, and no within-band shift that changes it), the expected MAE now is the training MAE of
each band weighted by this week's share of rows in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats


def probabilities(p: Iterable) -> np.ndarray:
    """``p`` as float64 in [0, 1]; a NaN or a value outside is an error (a model's output, not data to clean)."""
    p = np.asarray(p, dtype="float64").ravel()
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must be numbers in [0, 1] (no NaN)")
    return p


def expected_positive_rate(p: Iterable) -> float:
    """The positive rate a calibrated model expects: the mean of p (equal by construction, so not a calibration
    check; hold it against the training rate and, later, the realised one)."""
    return float(np.mean(probabilities(p)))


def expected_brier(p: Iterable) -> float:
    """Expected Brier score: E[(p - Y)^2] = p (1 - p) for Y ~ Bernoulli(p), averaged over the rows."""
    p = probabilities(p)
    return float(np.mean(p * (1 - p)))


def expected_confusion(p: Iterable, threshold: float) -> dict[str, float]:
    """Expected confusion matrix when rows with p >= ``threshold`` are called positive: E[TP] = sum of p over the
    rows called positive, E[FP] = sum of 1 - p over them, and FN, TN likewise below it; with precision and recall
    as ratios of these expectations (their expected value to O(1/n))."""
    p = probabilities(p)
    called = p >= threshold
    tp, fp = float(p[called].sum()), float((1 - p[called]).sum())
    fn, tn = float(p[~called].sum()), float((1 - p[~called]).sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }


def estimated_auc(p: Iterable) -> float:
    """Expected ROC-AUC of a calibrated model ranking rows by p, computed exactly in O(n log n).

    The realised AUC is A = sum over ordered pairs i != j of Y_i (1 - Y_j) h_ij / (P N), with h_ij = 1 when
    p_i > p_j, 1/2 when tied (as ``roc_auc_score`` counts ties), P and N the positives and negatives. With Y_i ~
    Bernoulli(p_i) independent, E[Y_i (1 - Y_j)] = p_i (1 - p_j) for i != j, and E[P N] = sum over i != j of
    p_i (1 - p_j). The estimate is the ratio of these expectations,

        AUC_hat = sum_{i != j} p_i (1 - p_j) h_ij / sum_{i != j} p_i (1 - p_j),

    which is E[A] to O(1/n) (delta method: A is a ratio of sums of n^2 weakly dependent terms). It differs from
    NannyML's integral of expected TPR over expected FPR only by leaving out the i = j pairs (a row is never its own
    negative), an O(1/n) bias there.

    Computed by grouping equal p's (g) after sorting: with S_g = sum of p and F_g = sum of 1 - p in group g, and
    D_g = sum of p (1 - p), the numerator is sum_g S_g * (F of all groups below g) + (S_g F_g - D_g) / 2 and the
    denominator (sum S)(sum F) - sum D. NaN when no two rows can be a positive and a negative (fewer than 2
    rows, every p 0, or every p 1).
    """
    p = probabilities(p)
    values, group = np.unique(p, return_inverse=True)
    s = np.bincount(group, weights=p, minlength=values.size)
    f = np.bincount(group, weights=1 - p, minlength=values.size)
    d = np.bincount(group, weights=p * (1 - p), minlength=values.size)
    below = np.cumsum(f) - f
    numerator = np.sum(s * below) + 0.5 * np.sum(s * f - d)
    denominator = s.sum() * f.sum() - d.sum()
    return float(numerator / denominator) if denominator > 0 else float("nan")


def auc_spread(p: Iterable, draws: int = 200, seed: int = 0) -> float:
    """Standard deviation of the realised AUC over outcomes drawn from p (Y ~ Bernoulli(p), ``draws`` times): how
    far a week's realised AUC may fall from :func:`estimated_auc` by chance alone, if the model is calibrated. A gap
    of several spreads, once outcomes arrive, says the assumption broke (concept drift), not bad luck."""
    p = probabilities(p)
    ranks = stats.rankdata(p)  # ties share their average rank, as roc_auc_score counts them
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(draws):
        y = rng.random(p.size) < p
        pos = np.count_nonzero(y)
        neg = p.size - pos
        if pos and neg:
            aucs.append((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))
    return float(np.std(aucs)) if len(aucs) > 1 else float("nan")


def estimate(p: Iterable, threshold: float, draws: int = 200, seed: int = 0) -> dict[str, float]:
    """Every estimate of a classifier's week at once (the monitor report's row, gauges on /metrics): rows, the
    expected positive rate, estimated AUC and its chance spread, expected Brier, and the expected confusion matrix
    with precision and recall at ``threshold`` (the cut the users act on: the high level of ``risk_levels``)."""
    p = probabilities(p)
    return {
        "rows": int(p.size),
        "expected_positive_rate": expected_positive_rate(p) if p.size else float("nan"),
        "estimated_auc": estimated_auc(p),
        "auc_spread": auc_spread(p, draws, seed),
        "expected_brier": expected_brier(p) if p.size else float("nan"),
        **expected_confusion(p, threshold),
    }


def estimated_mae(bands_current: pd.Series, mae_by_band: Mapping[str, float]) -> float:
    """The delay model's MAE expected on the current rows: the training (test-split) MAE of each horizon band
    (``features.targets.horizon_band``: ahead, near, overdue) weighted by the current rows' share in it. Holds if,
    within a band, errors are distributed as in training (see the module's docstring); a band with no training MAE
    cannot be estimated and is an error naming it. NaN for no rows."""
    shares = pd.Series(bands_current, copy=False).value_counts(normalize=True)
    unknown = sorted(set(shares.index) - set(mae_by_band), key=str)
    if unknown:
        raise ValueError(f"no training MAE for horizon band(s) {unknown}")
    return float(sum(share * mae_by_band[band] for band, share in shares.items())) if len(shares) else float("nan")
