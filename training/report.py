"""The evidence a reviewer looks at in an MLflow run: calibration, range coverage, SHAP, importance, a model card.

Pure functions: each plot function draws one small PNG at the ``path`` it is given and returns that path; nothing
here talks to MLflow (the caller logs the files). Figures are closed after saving, so calling these in a loop does
not leak memory. Importing it switches matplotlib to its headless backend unless pyplot was already imported, so
only the code that draws imports it (the metrics live in ``training.metrics``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # headless by default; never switch a backend someone already chose
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from training.metrics import binary_and_prob, expected_calibration_error  # noqa: E402

if TYPE_CHECKING:
    import lightgbm

FIGSIZE = (6.0, 4.5)
DPI = 110
MODEL_COLOUR = "#1f77b4"
BASELINE_COLOUR = "#ff7f0e"


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def _quantile_bins(x: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each value in (at most) ``n_bins`` equal-count bins, and the bin edges.

    Tied quantiles are merged (like ``pd.qcut(..., duplicates="drop")``), so a constant ``x`` gives one bin.
    Returns ``(index, edges)`` with ``index`` in ``0 .. len(edges) - 2``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size == 1:
        return np.zeros(x.shape[0], dtype=np.int64), np.array([edges[0], edges[0]])
    index = np.searchsorted(edges[1:-1], x, side="right")
    return index.astype(np.int64), edges


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# calibration


def _reliability_points(y: np.ndarray, p: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index, edges = _quantile_bins(p, n_bins)
    k = edges.size - 1
    count = np.bincount(index, minlength=k).astype(np.float64)
    keep = count > 0
    mean_p = np.bincount(index, weights=p, minlength=k)[keep] / count[keep]
    rate = np.bincount(index, weights=y, minlength=k)[keep] / count[keep]
    return mean_p, rate, count[keep]


def reliability_plot(
    y_true: np.ndarray,
    prob: np.ndarray,
    path: Path,
    title: str,
    n_bins: int = 10,
    baseline_prob: np.ndarray | None = None,
    baseline_label: str = "baseline",
) -> Path:
    """Reliability curve: per quantile bin of the predictions, mean predicted probability against observed rate.

    The model's points carry a 95% binomial interval; the diagonal is perfect calibration. An optional baseline
    (e.g. the reference-class rate or a logistic regression on the same rows) is drawn as a second curve. The legend
    gives each curve's ECE (equal-width bins, :func:`expected_calibration_error`); the panel below is a histogram
    of the model's predictions. The axes are zoomed to the range the predictions actually cover.
    """
    y, p = binary_and_prob(y_true, prob)
    curves = [("model", y, p, MODEL_COLOUR)]
    if baseline_prob is not None:
        _, b = binary_and_prob(y, baseline_prob)
        curves.append((baseline_label, y, b, BASELINE_COLOUR))

    fig = plt.figure(figsize=FIGSIZE)
    try:
        grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
        ax = fig.add_subplot(grid[0])
        ax_hist = fig.add_subplot(grid[1], sharex=ax)

        top = 0.0
        for i, (label, yy, pp, colour) in enumerate(curves):
            mean_p, rate, count = _reliability_points(yy, pp, n_bins)
            ece = expected_calibration_error(yy, pp, n_bins=n_bins)
            text = f"{label} (ECE {ece:.3f})"
            if i == 0:
                half = 1.96 * np.sqrt(rate * (1.0 - rate) / count)
                ax.errorbar(
                    mean_p, rate, yerr=half, fmt="o-", color=colour, ms=4, lw=1.5, capsize=2, elinewidth=0.8, label=text
                )
                top = max(top, float(np.max(rate + half)))
            else:
                ax.plot(mean_p, rate, "s--", color=colour, ms=4, lw=1.2, label=text)
            top = max(top, float(np.max(mean_p)), float(np.max(rate)), float(np.quantile(pp, 0.99)))
        limit = min(1.0, max(0.05, top * 1.08))

        ax.plot([0.0, 1.0], [0.0, 1.0], ls=":", color="grey", lw=1, label="perfect calibration", zorder=0)
        ax.set_xlim(0.0, limit)
        ax.set_ylim(0.0, limit)
        ax.set_ylabel("observed positive rate")
        ax.set_title(f"{title}\n{y.size:,} rows, base rate {y.mean():.3f}, {n_bins} quantile bins", fontsize=10)
        handles, texts = ax.get_legend_handles_labels()
        rank = {label: i for i, (label, *_) in enumerate(curves)}  # model, baseline, then the diagonal
        order = sorted(range(len(texts)), key=lambda i: rank.get(texts[i].split(" (ECE")[0], len(rank)))
        ax.legend([handles[i] for i in order], [texts[i] for i in order], loc="upper left", fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=False)

        ax_hist.hist(np.clip(p, 0.0, limit), bins=np.linspace(0.0, limit, 41), color=MODEL_COLOUR, alpha=0.6)
        ax_hist.set_xlabel("mean predicted probability")
        ax_hist.set_ylabel("rows (model)")
        ax_hist.grid(alpha=0.3)
        return _save(fig, path)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------------
# delay range


def coverage_plot(
    y_true: np.ndarray,
    pred: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    nominal: float,
    path: Path,
    title: str,
) -> Path:
    """Coverage of the delay range per decile of predicted slip, against the nominal level.

    Each bar is the share of rows whose observed slip lies in ``[lower, upper]`` (bounds included) among the rows in
    one decile of ``pred``; the number in a bar is the mean range width there. The title gives the overall coverage
    and mean width, so an adaptive range (wider where the slip is larger) and a miscalibrated one both show.
    """
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in (y_true, pred, lower, upper)]
    y, yhat, lo, hi = arrays
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"y_true, pred, lower and upper differ in length: {[a.size for a in arrays]}")
    if y.size == 0:
        raise ValueError("no rows to plot")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("y_true, pred, lower and upper must be finite (no missing values)")
    if not 0.0 < nominal < 1.0:
        raise ValueError(f"nominal must be a coverage level in (0, 1), not {nominal}")

    inside = (y >= lo) & (y <= hi)
    width = hi - lo
    index, edges = _quantile_bins(yhat, 10)
    k = edges.size - 1
    count = np.bincount(index, minlength=k).astype(np.float64)
    keep = np.flatnonzero(count > 0)
    cover = np.bincount(index, weights=inside.astype(np.float64), minlength=k)[keep] / count[keep]
    mean_width = np.bincount(index, weights=width, minlength=k)[keep] / count[keep]
    labels = [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in keep]

    fig = plt.figure(figsize=FIGSIZE)
    try:
        ax = fig.add_subplot()
        x = np.arange(keep.size)
        bars = ax.bar(x, cover, color=MODEL_COLOUR, alpha=0.75, label="coverage in decile")
        for bar, w in zip(bars, mean_width, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                0.03,
                f"width {w:.3g}",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
                color="white",
            )
        ax.axhline(nominal, color="#d62728", ls="--", lw=1.5, label=f"nominal {nominal:.0%}")
        ax.axhline(inside.mean(), color="black", ls=":", lw=1.2, label=f"overall {inside.mean():.1%}")
        ax.set_xticks(x, labels, rotation=40, ha="right", fontsize=7)
        ax.set_ylim(0.0, 1.18)
        ax.set_yticks(np.linspace(0.0, 1.0, 6))
        ax.set_xlabel("predicted slip (days), decile bins")
        ax.set_ylabel("share of rows inside the range")
        ax.set_title(
            f"{title}\ncoverage {inside.mean():.1%} (nominal {nominal:.0%}), mean width {width.mean():.3g} days, "
            f"{y.size:,} rows",
            fontsize=10,
        )
        ax.legend(loc="upper center", ncols=3, fontsize=8, frameon=False)
        ax.grid(axis="y", alpha=0.3)
        return _save(fig, path)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------------
# explanations


def _numeric_for_colour(X: pd.DataFrame) -> pd.DataFrame:
    """Every column as float64 for SHAP's colouring: categories become their integer codes, missing becomes NaN."""
    out: dict[str, np.ndarray] = {}
    for name in X.columns:
        col = X[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy(dtype=np.float64)
            codes[codes < 0] = np.nan
            out[name] = codes
        elif pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
            out[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_datetime64_any_dtype(col.dtype):
            days = (col - pd.Timestamp("1970-01-01", tz=getattr(col.dtype, "tz", None))) / pd.Timedelta(days=1)
            out[name] = days.to_numpy(dtype=np.float64, na_value=np.nan)
        else:  # strings and objects: order of first sorted appearance, as pandas would make a category
            codes = col.astype("category").cat.codes.to_numpy(dtype=np.float64)
            codes[codes < 0] = np.nan
            out[name] = codes
    return pd.DataFrame(out, index=X.index, columns=X.columns)


def shap_summary_plot(
    contributions: np.ndarray, X: pd.DataFrame, path: Path, title: str, max_display: int = 15
) -> Path:
    """SHAP beeswarm of LightGBM contributions (``booster.predict(X, pred_contrib=True)``).

    ``contributions`` has one column per feature of ``X`` plus the bias as the last column, which is dropped. The
    dots are coloured by feature value; categorical columns by their category code, missing values in grey.
    """
    import shap  # slow to import: only when a SHAP plot is asked for

    values = np.asarray(contributions, dtype=np.float64)
    if values.ndim != 2 or values.shape != (len(X), X.shape[1] + 1):
        raise ValueError(
            f"contributions must have shape (rows, features + 1) = ({len(X)}, {X.shape[1] + 1}) with the bias last, "
            f"not {values.shape}; a multiclass model's contributions must be split per class first"
        )
    features = _numeric_for_colour(X)
    shown = min(max_display, X.shape[1])

    fig = plt.figure()
    try:
        shap.summary_plot(
            values[:, :-1],
            features,
            show=False,
            max_display=max_display,
            plot_type="dot",
            plot_size=(6.5, 0.32 * shown + 1.8),
            rng=np.random.default_rng(0),
        )
        fig.axes[0].set_title(f"{title}\n{len(X):,} rows, top {shown} of {X.shape[1]} features", fontsize=10)
        return _save(fig, path)
    finally:
        plt.close(fig)


def importance_plot(booster: lightgbm.Booster, path: Path, title: str, top: int = 20) -> Path:
    """Horizontal bars of the ``top`` features by total split gain, largest at the top, with each one's share."""
    gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    names = np.asarray(booster.feature_name(), dtype=object)
    total = gain.sum()
    order = np.argsort(-gain, kind="stable")[:top][::-1]

    fig = plt.figure(figsize=(FIGSIZE[0], max(2.5, 0.25 * order.size + 1.3)))
    try:
        ax = fig.add_subplot()
        y = np.arange(order.size)
        ax.barh(y, gain[order], color=MODEL_COLOUR, alpha=0.8)
        ax.set_yticks(y, [str(n) for n in names[order]], fontsize=8)
        if total > 0:
            for yi, g in zip(y, gain[order], strict=True):
                ax.text(g, yi, f" {g / total:.1%}", va="center", fontsize=7)
            ax.set_xlim(0.0, gain[order].max() * 1.15)
        ax.set_xlabel("total gain (share of all gain at the bar's end)")
        ax.set_title(f"{title}\ntop {order.size} of {gain.size} features by gain", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        return _save(fig, path)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------------
# model card


@dataclass(kw_only=True)
class ModelCard:
    """What a reviewer needs to judge one trained model; :func:`model_card` renders it as Markdown.

    ``rows`` and ``as_of_windows`` are keyed by split name (e.g. ``train``, ``calibration``, ``test``); a window is
    ``(first as_of, last as_of)``. ``metrics`` maps a predictor (``model``, ``logistic_regression``,
    ``reference_class``, ``oracle``, ...) to its metrics; it is rendered as one table with a column per metric.
    ``backtest`` holds one dict per fold with ``fold``, ``window`` and either a ``metrics`` dict or the metrics as
    further keys. Optional pieces left as ``None`` or empty are left out of the card.
    """

    name: str
    target: str
    intended_use: str
    not_intended_for: str | Sequence[str]
    dataset_fingerprint: str
    rows: Mapping[str, int]
    as_of_windows: Mapping[str, tuple[Any, Any]]
    n_features: int
    metrics: Mapping[str, Mapping[str, float]]
    version: str | None = None
    lifts: Mapping[str, float] | None = None
    backtest: Sequence[Mapping[str, Any]] | None = None
    known_limits: Sequence[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    git_commit: str | None = None


MISSING = "—"


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _fmt(value: Any) -> str:
    """A number to 4 significant digits (integers and large values in full), anything else as text."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    if isinstance(value, pd.Timestamp | datetime | date):
        ts = pd.Timestamp(value)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
    return str(value)


def _fmt_window(window: Any) -> str:
    if isinstance(window, tuple | list) and len(window) == 2:
        return f"{_fmt(window[0])} → {_fmt(window[1])}"
    return _fmt(window)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _columns(dicts: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        seen.update(dict.fromkeys(d))
    return list(seen)


def _backtest_metrics(fold: Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(fold.get("metrics"), Mapping):
        return fold["metrics"]
    return {k: v for k, v in fold.items() if k not in ("fold", "window")}


def model_card(card: ModelCard) -> str:
    """The model card as Markdown: header facts, target, use, data, metrics, lifts, backtest, known limits."""
    out = [f"# Model card: {card.name}", ""]
    facts = [("Version", card.version), ("Created", card.created), ("Git commit", card.git_commit)]
    out += [f"- **{k}:** `{v}`" if k == "Git commit" else f"- **{k}:** {v}" for k, v in facts if not _is_missing(v)]
    out.append("")

    out += ["## Target", "", card.target, "", "## Intended use", "", card.intended_use, ""]
    if isinstance(card.not_intended_for, str):
        not_for = [card.not_intended_for] if card.not_intended_for.strip() else []
    else:
        not_for = [s for s in card.not_intended_for if s]
    if not_for:
        out += ["## Not intended for", "", *(f"- {s}" for s in not_for), ""]

    out += ["## Data", "", f"- **Dataset fingerprint:** `{card.dataset_fingerprint}`"]
    out += [f"- **Features:** {_fmt(card.n_features)}", ""]
    splits = list(dict.fromkeys([*card.rows, *card.as_of_windows]))
    if splits:
        data_rows = []
        for split in splits:
            window = card.as_of_windows.get(split)
            first, last = (window[0], window[1]) if window is not None else (None, None)
            data_rows.append([split, _fmt(card.rows.get(split)), _fmt(first), _fmt(last)])
        out += [*_table(["split", "rows", "first as_of", "last as_of"], data_rows), ""]

    if card.metrics:
        names = _columns(list(card.metrics.values()))
        rows = [[predictor, *(_fmt(m.get(n)) for n in names)] for predictor, m in card.metrics.items()]
        out += ["## Metrics", "", *_table(["predictor", *names], rows), ""]

    if card.lifts:
        out += ["## Lift", "", *_table(["lift", "value"], [[k, _fmt(v)] for k, v in card.lifts.items()]), ""]

    if card.backtest:
        per_fold = [_backtest_metrics(f) for f in card.backtest]
        names = _columns(per_fold)
        rows = [
            [_fmt(f.get("fold")), _fmt_window(f.get("window")), *(_fmt(m.get(n)) for n in names)]
            for f, m in zip(card.backtest, per_fold, strict=True)
        ]
        out += ["## Backtest", "", *_table(["fold", "window", *names], rows), ""]

    limits = [s for s in card.known_limits if s]
    if limits:
        out += ["## Known limits", "", *(f"- {s}" for s in limits), ""]

    return "\n".join(out).rstrip() + "\n"
