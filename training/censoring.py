"""Right-censored milestones in a slip backtest: the milestones still open when the export ends.

A time split judges the slip model on the milestones reached by the export's latest fact (the snapshot). Those
still open are missing from its test rows, and they are the slow ones. Each one's slip is right-censored: it will
be at least the days from its planned date to the snapshot (``censored_at_days``; negative when it is not yet
due). :func:`open_milestone_rows` builds their rows at the ``as_of`` the labelled rows get (one in each horizon band
on the weekly grid of ``features.targets.band_as_of``, or ``horizon_days`` before the plan when settings fix one),
the snapshot standing in for the day the milestone was reached; :class:`Judged` scores a model's range and estimate
on labelled and censored rows together, two ways:

- **Bounds**, free of assumptions. A censored row whose range ends below its censoring time is missed for certain;
  any other is undetermined (its slip may end inside the range or beyond it). Coverage over all rows lies between
  covered / all and (covered + undetermined) / all. The MAE is at least the labelled rows' errors plus, for each
  censored row, how far its estimate falls short of the censoring time, over all rows; it has no upper bound.
- **IPCW** (inverse probability of censoring weights). A labelled row stands for itself and for the rows like it
  still open: it is weighted by 1 / G(slip), G(t) = P(censoring time >= t), the Kaplan-Meier estimate of the
  censoring time in its horizon band (a censored row is an event of the censoring time, a labelled one censors it
  at its slip); the weighted mean is normalised by the weights' sum. Weights are capped at ``1 / G_FLOOR``. The
  weights sum to about the number of rows when the labelled rows can stand for all of them; far less means many
  rows are censored beyond any slip seen to end, and the estimate speaks for the rest only. It holds if, within a
  band, a milestone's slip does not depend on how long before the snapshot it was planned (the censoring time is
  the snapshot minus the planned date), an assumption a feed whose old labelled rows are survivors strains. Also
  given with delayed entry (a row is at risk from its slip at the test period's start: it is a test row because
  it was not reached by then).

The bounds need no assumption; the estimates need the one above. On six simulated worlds, whose open milestones'
true slips the simulator knows, the IPCW coverage of labelled and censored rows together came within 2.5 points of
the true one (the labelled rows alone: 1 to 5 points high), and its MAE within 2 days. (Imputing each censored
row's chance from the band's Kaplan-Meier estimate of the slip was tried and dropped: it ignores what the row's
range knows about it, and came out about 10 points low there.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.contract import latest_fact
from features.families import MILESTONE_FAMILIES, Context, compute
from features.targets import BANDS, band_as_of, horizon_band

G_FLOOR = 0.05  # P(uncensored) below this is taken as this: no labelled row weighs more than 20 rows
RANGE = ("lower_days", "upper_days")
ESTIMATE = "expected_slip_days"


def open_milestone_rows(
    tables: dict[str, pd.DataFrame], settings: Settings, at: pd.Timestamp | None = None
) -> pd.DataFrame:
    """The milestones not reached before ``at`` (default: the snapshot, the data's latest fact), at the ``as_of`` a
    reached milestone's rows get, ``at`` taking the place of the day it was reached (so every ``as_of`` is one at
    which it was open). ``censored_at_days``: the slip it had at least by then (``at`` - planned date);
    ``overdue_at_snapshot``: whether that is above 0. Rows are sorted by ``as_of`` and milestone id, as a dataset's
    are."""
    snapshot = latest_fact(tables) if at is None else at
    ms = tables["milestones"]
    still_open = ms["actual_date"].isna() if at is None else ~(ms["actual_date"] < at)
    opened = ms[still_open & ms["planned_date"].notna()]
    if snapshot is None or not len(opened):
        return opened.assign(as_of=pd.NaT, censored_at_days=np.nan, overdue_at_snapshot=False).iloc[:0]
    # The same scheme as features.targets._reached_milestones, the snapshot as the day reached.
    if settings.horizon_days is None:
        rows = band_as_of(opened.assign(actual_date=snapshot), tables["projects"], settings)
    else:
        rows = opened.assign(as_of=opened["planned_date"] - pd.Timedelta(days=settings.horizon_days))
        rows = rows[rows["as_of"] <= snapshot]
    censored_at = (snapshot - rows["planned_date"]).dt.days.astype("float64")
    rows = rows.assign(actual_date=pd.NaT, censored_at_days=censored_at, overdue_at_snapshot=censored_at > 0)
    return rows.sort_values(["as_of", "milestone_id"], kind="stable").reset_index(drop=True)


def censored_frame(ctx: Context, rows: pd.DataFrame, id_columns: list[str]) -> pd.DataFrame:
    """Ids, ``as_of``, the censoring columns and the features of :func:`open_milestone_rows`' rows."""
    features = compute(ctx, rows, MILESTONE_FAMILIES)
    keep = [*id_columns, "as_of", "planned_date", "censored_at_days", "overdue_at_snapshot"]
    return pd.concat([rows[keep], features], axis=1).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ Kaplan-Meier


def product_limit(
    time: np.ndarray, event: np.ndarray, entry: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan-Meier (product-limit) estimate of a time X from rows observed until ``time``, ``event`` where X
    ended there: the event times t_k and P(X > t_k) = prod_{j <= k} (1 - d_j / n_j), n_j the rows at risk at t_j:
    time >= t_j and, with ``entry`` (delayed entry, left truncation), entered before t_j."""
    time = np.asarray(time, dtype="float64")
    event = np.asarray(event, dtype=bool)
    events = np.unique(time[event])
    at_risk = len(time) - np.searchsorted(np.sort(time), events, side="left")
    if entry is not None:  # not yet entered at t: entry >= t (entry <= time, so those rows are counted above)
        entry = np.minimum(np.asarray(entry, dtype="float64"), time - 0.5)
        at_risk = at_risk - (len(entry) - np.searchsorted(np.sort(entry), events, side="left"))
    hits = np.bincount(np.searchsorted(events, time[event]), minlength=len(events))
    return events, np.cumprod(1.0 - hits / np.maximum(at_risk, hits))


def _from(events: np.ndarray, survival: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(X >= t) from :func:`product_limit`."""
    return np.r_[1.0, survival][np.searchsorted(events, t, side="left")]


def ipcw_weights(slip: np.ndarray, censored_at: np.ndarray) -> np.ndarray:
    """Each labelled row's weight 1 / P(C >= slip), from the Kaplan-Meier estimate of the censoring time C over the
    labelled rows (``slip``) and the censored ones (``censored_at``), capped at ``1 / G_FLOOR``."""
    time = np.r_[slip, censored_at]
    flag = np.r_[np.zeros(len(slip), bool), np.ones(len(censored_at), bool)]
    return 1.0 / np.maximum(_from(*product_limit(time, flag), slip), G_FLOOR)


def weighted_conformal_margin(scores: np.ndarray, weights: np.ndarray, coverage: float) -> float:
    """The conformal margin from weighted calibration scores (weighted conformal prediction): the smallest score
    whose weighted share reaches ``coverage``, the new row's own weight (unknown) taken as the largest one."""
    if not len(scores):
        return 0.0
    order = np.argsort(scores, kind="stable")
    share = np.cumsum(weights[order]) / (weights.sum() + weights.max())
    return float(scores[order][min(np.searchsorted(share, coverage, side="left"), len(scores) - 1)])


# ------------------------------------------------------------------------------------------------------ judging


@dataclass
class Judged:
    """Labelled and censored test rows of one slip model, with what the model and each baseline predicted.

    ``time`` is the slip of a labelled row and the censoring time of a censored one; ``entry``, the slip a
    milestone had when the test period began (it is a test row because it was not reached by then: left
    truncation); ``weight`` a labelled row's IPCW weight (0 for a censored row, whose slip is unknown), from the
    censoring time's Kaplan-Meier estimate over all rows; ``weight_entry`` the same with delayed entry."""

    time: np.ndarray
    censored: np.ndarray
    entry: np.ndarray | None
    band: np.ndarray
    as_of: np.ndarray
    weight: np.ndarray
    weight_entry: np.ndarray
    capped: np.ndarray  # labelled rows whose P(uncensored) was below G_FLOOR
    predictions: dict[str, dict[str, np.ndarray]]  # who -> output -> value per row

    @classmethod
    def of(
        cls,
        labelled: pd.DataFrame,
        censored: pd.DataFrame,
        label: str,
        time_to_plan: str,
        predictions: dict[str, dict[str, np.ndarray]],
        near_days: float,
        entry: np.ndarray | None = None,
    ) -> Judged:
        """``predictions``: who -> output -> values on the labelled rows, then the censored rows; ``entry``, the
        same order."""
        time = np.concatenate([labelled[label].to_numpy("float64"), censored["censored_at_days"].to_numpy("float64")])
        is_censored = np.r_[np.zeros(len(labelled), bool), np.ones(len(censored), bool)]
        days = np.concatenate([labelled[time_to_plan].to_numpy("float64"), censored[time_to_plan].to_numpy("float64")])
        band = horizon_band(days, near_days)
        weight, weight_entry, capped = np.zeros(len(time)), np.zeros(len(time)), np.zeros(len(time), bool)
        for b in BANDS:
            inside = band == b
            seen = inside & ~is_censored
            weight[seen] = ipcw_weights(time[seen], time[inside & is_censored])
            capped[seen] = weight[seen] >= 1.0 / G_FLOOR
            if entry is not None:
                g = _from(*product_limit(time[inside], is_censored[inside], entry[inside]), time[seen])
                weight_entry[seen] = 1.0 / np.maximum(g, G_FLOOR)
        as_of = np.concatenate(
            [labelled["as_of"].to_numpy("datetime64[s]"), censored["as_of"].to_numpy("datetime64[s]")]
        )
        return cls(time, is_censored, entry, band, as_of, weight, weight_entry, capped, predictions)

    def summary(self, who: str, mask: np.ndarray | None = None) -> dict[str, float]:
        """Coverage and MAE of ``who`` on the rows of ``mask`` (all by default): on the labelled rows alone, their
        bounds over labelled and censored rows, and the IPCW estimates."""
        mask = np.ones(len(self.time), bool) if mask is None else mask
        pred = self.predictions[who]
        lab, cen = mask & ~self.censored, mask & self.censored
        n, y, w, we = int(mask.sum()), self.time, self.weight, self.weight_entry
        nan = float("nan")

        def weighted(values: np.ndarray, weights: np.ndarray) -> float:
            return float(np.sum(weights[lab] * values[lab]) / np.sum(weights[lab])) if weights[lab].sum() else nan

        out: dict[str, float] = {"rows": n, "labelled": int(lab.sum()), "censored": int(cen.sum())}
        err = np.abs(pred[ESTIMATE] - y)
        out["mae_labelled"] = float(err[lab].mean()) if lab.any() else nan
        shortfall = np.maximum(y - pred[ESTIMATE], 0.0)  # a censored slip is at least y: the error at least this
        out["mae_at_least"] = float((err[lab].sum() + shortfall[cen].sum()) / n) if n else nan
        out["mae_ipcw"] = weighted(err, w)
        out["mae_ipcw_delayed_entry"] = weighted(err, we)
        if all(k in pred for k in RANGE):
            lo, hi = pred["lower_days"], pred["upper_days"]
            covered = (y >= lo) & (y <= hi)
            missed = cen & (hi < y)  # the range ends below what the slip already is
            out["coverage_labelled"] = float(covered[lab].mean()) if lab.any() else nan
            out["certainly_missed"] = int(missed.sum())
            out["undetermined"] = int((cen & ~missed).sum())
            out["coverage_min"] = float(covered[lab].sum() / n) if n else nan
            out["coverage_max"] = float((covered[lab].sum() + (cen & ~missed).sum()) / n) if n else nan
            out["coverage_ipcw"] = weighted(covered, w)
            out["coverage_ipcw_delayed_entry"] = weighted(covered, we)
            out["mean_width"] = float(np.mean((hi - lo)[mask])) if n else nan
        # The rows the labelled ones stand for: about all of them, unless many are censored beyond any slip seen.
        out["weight_sum"] = float(w[lab].sum())
        out["weight_sum_delayed_entry"] = float(we[lab].sum())
        out["effective_rows"] = float(w[lab].sum() ** 2 / np.sum(w[lab] ** 2)) if lab.any() else nan
        out["weights_capped"] = int(self.capped[lab].sum())
        return out
