"""Metrics reported for every model, baseline and the oracle, on the same test rows."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from training.report import expected_calibration_error

# Which way is better, for the promotion gate and the lift.
HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "precision_top10", "late_auc", "coverage"}


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
    if lower is not None and upper is not None:
        out["coverage"] = float(np.mean((y >= lower) & (y <= upper)))
        out["mean_width"] = float(np.mean(upper - lower))
    if late_y is not None and late_p is not None:
        late = classification(late_y, late_p)
        out["late_auc"], out["late_brier"] = late["roc_auc"], late["brier"]
    return out


def lift(model: dict[str, float], baseline: dict[str, float], metric: str) -> float:
    """How much better the model is on ``metric``: a ratio above 1 is better, whichever way the metric points."""
    m, b = model.get(metric, np.nan), baseline.get(metric, np.nan)
    if metric in HIGHER_IS_BETTER:
        return float(m / b) if b else float("nan")
    return float(b / m) if m else float("nan")
