"""Metrics reported for every model, baseline and the oracle, on the same test rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

# Which way is better, for the promotion gate and the lift.
HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "precision_top10", "late_auc", "coverage", "r2"}


def binary_and_prob(y_true: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and prob differ in length: {y.shape[0]} != {p.shape[0]}")
    if y.size == 0:
        raise ValueError("y_true and prob are empty")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1 (no missing labels)")
    if not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("prob must hold finite probabilities in [0, 1]")
    return y, p


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins on [0, 1].

    Bin ``k`` holds the predictions in ``[k / n_bins, (k + 1) / n_bins)``, the last bin also holds 1.0. The ECE is
    the mean over bins of ``|observed positive rate - mean predicted probability|``, weighted by the share of
    predictions in the bin (empty bins weigh nothing). 0 is perfect, 1 the worst possible.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    y, p = binary_and_prob(y_true, prob)
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    sum_y = np.bincount(index, weights=y, minlength=n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    # sum over bins of (n_b / n) * |mean_y_b - mean_p_b| == sum over bins of |sum_y_b - sum_p_b| / n
    return float(np.abs(sum_y - sum_p).sum() / y.size)


def precision_at_top(y: np.ndarray, p: np.ndarray, share: float = 0.10) -> float:
    """Share of true positives among the ``share`` of rows ranked riskiest (what a planner with limited
    inspectors acts on)."""
    k = max(1, int(round(share * len(p))))
    top = np.argsort(-p, kind="stable")[:k]
    return float(np.mean(y[top]))


def classification(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype="float64"), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": float(expected_calibration_error(y, p)),
        "precision_top10": precision_at_top(y, p),
        "positive_rate": float(np.mean(y)),
    }


def regression(
    y: np.ndarray,
    expected: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    late_y: np.ndarray | None = None,
    late_p: np.ndarray | None = None,
) -> dict[str, float]:
    y = np.asarray(y, dtype="float64")
    err = np.asarray(expected, dtype="float64") - y
    out = {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}
    spread = float(np.sum((y - y.mean()) ** 2))
    out["r2"] = 1.0 - float(np.sum(err**2)) / spread if spread else float("nan")
    if lower is not None and upper is not None:
        out["coverage"] = float(np.mean((y >= lower) & (y <= upper)))
        out["mean_width"] = float(np.mean(upper - lower))
    if late_y is not None and late_p is not None:
        late = classification(late_y, late_p)
        out["late_auc"], out["late_brier"], out["late_ece"] = late["roc_auc"], late["brier"], late["ece"]
    return out


def lift(model: dict[str, float], baseline: dict[str, float], metric: str) -> float:
    """How much better the model is on ``metric``: a ratio above 1 is better, whichever way the metric points."""
    m, b = model.get(metric, np.nan), baseline.get(metric, np.nan)
    if metric in HIGHER_IS_BETTER:
        return float(m / b) if b else float("nan")
    return float(b / m) if m else float("nan")
