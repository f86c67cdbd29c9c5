"""Drift of the features and the predictions between a reference window (the training rows) and the latest weeks.

The functions take two samples and return numbers; :func:`feature_drift` makes the table the monitor reports (a row
a feature), :func:`prediction_drift` the same row for a model's outputs, and :func:`drift_summary` the few figures a
model gets in the report and on /metrics. Nothing here reads a file, a model or the environment: the thresholds come
in as a :class:`~eqsms.settings.MonitorSettings` (the one :class:`~eqsms.settings.Settings` object is one).

How a feature is judged, and why an effect size *and* a test:

- The flag is the population stability index (PSI, :func:`psi`): an effect size, which does not grow with the
  number of rows, so a shift too small to matter stays unflagged however many rows a week brings. Alone it is noisy
  on few rows: two samples of one distribution give PSI ~ chi2(bins - 1) * (1/n_ref + 1/n_cur).
- A two-sample test confirms it (Kolmogorov-Smirnov for numbers, chi-square for categories and missing shares).
  Alone a test is the wrong flag: on thousands of rows it calls any trivial difference significant, and with ~70
  features a 1% test flags 0.7 features a comparison of two samples of the same distribution (multiple testing).
  A test that must only *confirm* an effect already past its threshold is asked far fewer questions.
- Below ``drift_min_rows`` rows in either window a feature is not judged, and its row says so.

Missing values are data here, not noise to drop: a numeric feature's NaN (and +-inf, which no feature means) and a
category's NaN count in their own bin, so a field going dark moves PSI, and its missing share is judged on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from eqsms.settings import MonitorSettings

# PSI's smoothing: a bin's share is floored at EPSILON before the log, so a bin one sample never fills adds
# share * ln(share / EPSILON) (at most ~9.2 for a whole sample in it) instead of infinity. 1e-4 is below one row in
# 10,000, so it changes no bin that holds a row of a sample smaller than that, and it adds nothing for a bin empty
# in both samples ((EPSILON - EPSILON) * ln 1 = 0).
EPSILON = 1e-4

COLUMNS = (
    "feature",
    "kind",  # numeric or categorical
    "rows_reference",
    "rows_current",
    "psi",
    "test",  # ks (numbers) or chi2 (categories)
    "statistic",
    "pvalue",
    "js_distance",  # categories only: Jensen-Shannon distance (base 2, 0..1) of their shares
    "missing_reference",
    "missing_current",
    "missing_pvalue",
    "new_category_share",  # categories only: current rows in categories the reference never had
    "new_category_expected",  # ... and the share new ones would have without drift (Good-Turing)
    "judged",
    "drifted",
    "reason",
)


class TwoSample(NamedTuple):
    """A two-sample test: its statistic and p-value (NaN when a sample is empty)."""

    statistic: float
    pvalue: float


class MissingShift(NamedTuple):
    """Missing shares of the two samples and the chi-square p-value of their difference."""

    reference: float
    current: float
    pvalue: float


class NewCategories(NamedTuple):
    """Share of current rows in categories the reference never had, and the share expected with no drift."""

    share: float
    expected: float


# ------------------------------------------------------------------------------------------------- numbers
def numbers(values: Iterable) -> np.ndarray:
    """``values`` as float64, missing as NaN: NaN, None, pd.NA, +-inf and anything that is not a number (a text in a
    number column is a broken export, which should show as missing rather than fail the monitor)."""
    x = pd.to_numeric(pd.Series(values, copy=False), errors="coerce").to_numpy("float64", na_value=np.nan)
    return np.where(np.isfinite(x), x, np.nan)


def bin_edges(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """Edges of PSI's bins from the reference's finite values: its quantiles at 1/bins, ..., (bins-1)/bins taken as
    values of the sample (``inverted_cdf``, so a count's 0 and 1 are edges, not slivers between them), each value
    once (a value holding several quantiles, like a count that is mostly 0, makes one bin, not empty ones).

    With ``np.searchsorted(edges, x, side="right")`` the bins are ``(-inf, e_1)``, ``[e_k, e_k+1)``, ``[e_last,
    inf)``: ``bins`` bins of a tenth each for a continuous feature. When the top bin holds a single value of the
    reference (a constant column, a count's largest value) an edge just above it splits off a bin above the
    reference's range, so a constant column has three bins (below, at and above its value) and a count beyond any
    the reference had is seen. Only then: for a continuous feature the bins beyond the reference's range would be
    near-empty in both samples and add smoothing noise, not signal. No edges when the reference has no finite
    value: every current value then falls in one bin."""
    x = reference[np.isfinite(reference)]
    if x.size == 0:
        return np.empty(0)
    edges = np.unique(np.quantile(x, np.arange(1, bins) / bins, method="inverted_cdf"))
    top = x.max()
    if edges.size == 0 or edges[-1] == top:
        edges = np.append(edges, np.nextafter(top, np.inf))
    return edges


def binned(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (float64, NaN missing) in each bin of :func:`bin_edges`, the missing ones last."""
    finite = np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[finite], side="right"), minlength=edges.size + 1)
    return np.append(counts, np.count_nonzero(~finite))


def psi_of_counts(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """PSI = sum over bins of (q - p) ln(q / p), p and q each sample's shares floored at :data:`EPSILON`: the
    symmetric Kullback-Leibler divergence (Jeffreys) of the binned distributions. NaN when a sample is empty."""
    n, m = reference_counts.sum(), current_counts.sum()
    if n == 0 or m == 0:
        return float("nan")
    p = np.maximum(reference_counts / n, EPSILON)
    q = np.maximum(current_counts / m, EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def psi(reference: Iterable, current: Iterable, bins: int = 10) -> float:
    """Population stability index of a numeric feature: ``bins`` quantile bins of the reference (:func:`bin_edges`),
    a bin below and above its range, missing values in a bin of their own (:func:`numbers`), shares smoothed by
    :data:`EPSILON`. 0 for identical samples; ~ (mean shift in sd)^2 for a shifted normal; usual reading: below 0.1
    stable, 0.1-0.2 moderate, 0.2 and above significant."""
    ref, cur = numbers(reference), numbers(current)
    edges = bin_edges(ref, bins)
    return psi_of_counts(binned(ref, edges), binned(cur, edges))


def ks(reference: Iterable, current: Iterable) -> TwoSample:
    """Two-sample Kolmogorov-Smirnov test of the finite values (missing ones are judged by :func:`missing_shift`).
    On counts (ties) its p-value is conservative, which suits a confirmation. NaN when a sample has no value."""
    ref, cur = numbers(reference), numbers(current)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return TwoSample(float("nan"), float("nan"))
    result = stats.ks_2samp(ref, cur)
    return TwoSample(float(result.statistic), float(result.pvalue))


# ------------------------------------------------------------------------------------------------- categories
def category_counts(reference: Iterable, current: Iterable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of each category in the two samples, aligned: the reference's categories, then those only the current
    sample has (each its own, so several new ones are not merged into one), then missing; and which are new. Values
    are compared as they are (a pandas category column and a plain one of the same texts agree)."""
    ref, cur = _objects(reference), _objects(current)
    ref_counts, cur_counts = ref.value_counts(dropna=True), cur.value_counts(dropna=True)
    new = cur_counts.index[~cur_counts.index.isin(ref_counts.index)]
    categories = ref_counts.index.append(new)
    is_new = np.r_[np.zeros(len(ref_counts), bool), np.ones(len(new), bool), False]
    return (
        np.append(ref_counts.reindex(categories, fill_value=0).to_numpy(), ref.isna().sum()),
        np.append(cur_counts.reindex(categories, fill_value=0).to_numpy(), cur.isna().sum()),
        is_new,
    )


def category_psi(reference: Iterable, current: Iterable) -> float:
    """PSI over the categories' shares (:func:`category_counts`: missing and each unseen category a bin of its
    own), smoothed as :func:`psi` is; a category only the current sample has adds share * ln(share / EPSILON)."""
    ref, cur, _ = category_counts(reference, current)
    return psi_of_counts(ref, cur)


def js_distance(reference: Iterable, current: Iterable) -> float:
    """Jensen-Shannon distance (base 2: 0 identical, 1 disjoint) of the categories' shares, missing and unseen
    categories included. Bounded and finite without smoothing, so an unseen category needs no epsilon; reported
    beside PSI as the readable size of a category shift. NaN when a sample is empty."""
    ref, cur, _ = category_counts(reference, current)
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    return float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))


def chi_square(reference: Iterable, current: Iterable) -> TwoSample:
    """Chi-square test that the two samples share the categories' shares (missing and unseen ones included): the
    categories' confirmation, as KS is the numbers'. Approximate when categories have few rows, which is why it only
    confirms an effect. NaN when a sample is empty."""
    ref, cur, _ = category_counts(reference, current)
    return _homogeneity(np.vstack([ref, cur]))


def missing_shift(reference: Iterable, current: Iterable) -> MissingShift:
    """Shares of missing values (``pd.isna``; pass a numeric feature through :func:`numbers` first so +-inf and
    texts count too) and the chi-square p-value of their difference. NaN shares for an empty sample."""
    ref, cur = pd.isna(_objects(reference)), pd.isna(_objects(current))
    n, m = len(ref), len(cur)
    if n == 0 or m == 0:
        return MissingShift(float("nan"), float("nan"), float("nan"))
    a, b = int(ref.sum()), int(cur.sum())
    return MissingShift(a / n, b / m, _homogeneity(np.array([[a, n - a], [b, m - b]])).pvalue)


def new_categories(reference: Iterable, current: Iterable) -> NewCategories:
    """Share of current rows (all of them, missing included) in categories the reference never had, and the share
    to expect with no drift: the Good-Turing estimate of the mass of unseen categories, the reference's categories
    seen once over its rows (a reference with rare categories expects new ones now and then)."""
    ref, cur, is_new = category_counts(reference, current)
    if ref.sum() == 0 or cur.sum() == 0:
        return NewCategories(float("nan"), float("nan"))
    return NewCategories(float(cur[is_new].sum() / cur.sum()), float(np.count_nonzero(ref[:-1] == 1) / ref.sum()))


# ------------------------------------------------------------------------------------------------- the table
def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Iterable[str],
    categorical: Collection[str],
    thresholds: MonitorSettings,
) -> pd.DataFrame:
    """A row a feature (:data:`COLUMNS`, in the order of ``features``): PSI, the test (KS, or chi-square and the
    JS distance for ``categorical`` ones), missing shares, new categories, whether it was judged, whether it drifted
    and why. A feature absent from a frame counts as all missing there: a feature that stops arriving is drift."""
    return pd.DataFrame(
        [
            (categorical_row if name in categorical else numeric_row)(
                name, _column(reference, name), _column(current, name), thresholds
            )
            for name in features
        ],
        columns=list(COLUMNS),
    )


def prediction_drift(reference_scores: Iterable, current_scores: Iterable, thresholds: MonitorSettings) -> dict:
    """Drift of a model's outputs (probabilities, or slips in days), judged as a numeric feature is (PSI confirmed
    by KS): the row of :func:`feature_drift` for a feature called "prediction". Predictions that move flag the
    model on their own (:func:`drift_summary`): they are what the users see."""
    return numeric_row("prediction", reference_scores, current_scores, thresholds)


def numeric_row(name: str, reference: Iterable, current: Iterable, thresholds: MonitorSettings) -> dict:
    """One numeric feature's row of :func:`feature_drift`."""
    ref, cur = numbers(reference), numbers(current)
    row = _row(name, "numeric", ref, cur, thresholds)
    if row["judged"]:
        edges = bin_edges(ref, thresholds.drift_bins)
        test = ks(ref, cur)
        row.update(psi=psi_of_counts(binned(ref, edges), binned(cur, edges)), test="ks", **test._asdict())
    return _judge(row, thresholds)


def categorical_row(name: str, reference: Iterable, current: Iterable, thresholds: MonitorSettings) -> dict:
    """One category feature's row of :func:`feature_drift`."""
    ref, cur = _objects(reference), _objects(current)
    row = _row(name, "categorical", ref, cur, thresholds)
    if row["judged"]:
        new = new_categories(ref, cur)
        row.update(
            psi=category_psi(ref, cur),
            test="chi2",
            **chi_square(ref, cur)._asdict(),
            js_distance=js_distance(ref, cur),
            new_category_share=new.share,
            new_category_expected=new.expected,
        )
    return _judge(row, thresholds)


def drift_summary(
    table: pd.DataFrame,
    thresholds: MonitorSettings,
    prediction: dict | None = None,
    outputs: Mapping[str, dict] | None = None,
) -> dict:
    """A model's drift in a few figures (the monitor report's headline, gauges on /metrics): features judged and
    drifted (named, largest PSI first), the largest PSI, the predictions' PSI (and each other output's in
    ``outputs``, by name, as :func:`prediction_drift` gives them: the slip model's P(late) beside its slip), and
    ``flagged``: at least ``drift_features_flagged`` features drifted, or the predictions or another output did;
    ``reason`` says which, in words."""
    judged = table[table["judged"].astype(bool)]
    drifted = judged[judged["drifted"].astype(bool)].sort_values("psi", ascending=False)
    outputs = dict(outputs or {})
    by_features = len(drifted) >= thresholds.drift_features_flagged
    by_prediction = bool(prediction and prediction["drifted"])
    by_output = any(row["drifted"] for row in outputs.values())
    reasons = []
    if len(drifted):
        named = ", ".join(drifted["feature"])
        reasons.append(f"{len(drifted)} feature(s) drifted (flag at {thresholds.drift_features_flagged}): {named}")
    if prediction and prediction["reason"]:
        reasons.append(f"predictions: {prediction['reason']}")
    reasons += [f"{name}: {row['reason']}" for name, row in outputs.items() if row["reason"]]
    if len(judged) < len(table):
        reasons.append(
            f"{len(table) - len(judged)} feature(s) not judged (fewer than {thresholds.drift_min_rows} rows)"
        )
    return {
        "features": len(table),
        "features_judged": len(judged),
        "features_drifted": len(drifted),
        "drifted": list(drifted["feature"]),
        "max_psi": float(judged["psi"].max()) if len(judged) else float("nan"),
        "prediction_psi": float(prediction["psi"]) if prediction else float("nan"),
        "prediction_drifted": by_prediction,
        "outputs_psi": {name: float(row["psi"]) for name, row in outputs.items()},
        "flagged": by_features or by_prediction or by_output,
        "reason": "; ".join(reasons) or "no drift",
    }


# ------------------------------------------------------------------------------------------------- helpers
def _objects(values: Iterable) -> pd.Series:
    """Values as an object Series (a category column's unused categories and its dtype dropped)."""
    return pd.Series(values, copy=False).reset_index(drop=True).astype(object)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index, dtype="float64")


def _homogeneity(table: np.ndarray) -> TwoSample:
    """Chi-square test of a 2 x k table of counts (categories empty in both rows dropped); p = 1 when at most one
    category holds rows (nothing can differ), NaN when a row is empty."""
    if (table.sum(axis=1) == 0).any():
        return TwoSample(float("nan"), float("nan"))
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return TwoSample(0.0, 1.0)
    result = stats.chi2_contingency(table)
    return TwoSample(float(result.statistic), float(result.pvalue))


def _row(name: str, kind: str, ref, cur, thresholds: MonitorSettings) -> dict:
    """The columns every feature has: rows, missing shares, whether judged; the rest NaN until measured."""
    missing = missing_shift(ref, cur)
    return {
        **dict.fromkeys(COLUMNS, float("nan")),
        "feature": name,
        "kind": kind,
        "rows_reference": len(ref),
        "rows_current": len(cur),
        "test": "",
        "missing_reference": missing.reference,
        "missing_current": missing.current,
        "missing_pvalue": missing.pvalue,
        "judged": min(len(ref), len(cur)) >= thresholds.drift_min_rows,
    }


def _judge(row: dict, t: MonitorSettings) -> dict:
    """``drifted`` and ``reason`` of a measured row: PSI confirmed by its test, the missing share's move confirmed by
    its test, or an excess of new categories (already net of the ones expected by chance)."""
    if not row["judged"]:
        fewest = min(row["rows_reference"], row["rows_current"])
        return {**row, "drifted": False, "reason": f"not judged: {fewest} rows < {t.drift_min_rows}"}
    flags, notes = [], []
    if row["psi"] >= t.drift_psi_threshold:
        text = f"psi {row['psi']:.3g} >= {t.drift_psi_threshold:g} ({row['test']} p {row['pvalue']:.2g})"
        (flags if row["pvalue"] < t.drift_pvalue else notes).append(text)
    shift = row["missing_current"] - row["missing_reference"]
    if abs(shift) >= t.drift_missing_shift:
        text = f"missing {row['missing_reference']:.0%} -> {row['missing_current']:.0%} (p {row['missing_pvalue']:.2g})"
        (flags if row["missing_pvalue"] < t.drift_pvalue else notes).append(text)
    excess = row["new_category_share"] - row["new_category_expected"]
    if excess >= t.drift_new_category_share:
        flags.append(f"new categories {row['new_category_share']:.0%} of rows")
    reason = "; ".join(flags + [f"not confirmed: {n}" for n in notes])
    return {**row, "drifted": bool(flags), "reason": reason}
