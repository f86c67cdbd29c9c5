"""Point-in-time aggregates at speed: counts, sums, latest values of events known before a time.

An event stream holds one kind of fact (an inspection found, a defect closed, a resource week reported) with the
group it belongs to (a project or a client), the time it became known, and its values. It is sorted once by
(group, time) and keeps cumulative sums, so a query for many rows at once is two ``np.searchsorted`` calls and a
difference: no per-row Python loop and no cross join of rows and events (DESIGN.md, "Point-in-time features at
speed").

The rule of DESIGN.md is strict: a fact counts for a row at ``as_of = t`` only if it was known *before* ``t``.
A fact that becomes known at the end of a period (a resource week is known once ``week_start + 7 days <= t``) is
given a known-at time one second before that, so the same strict test applies to every stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
_EPOCH = np.datetime64("1900-01-01T00:00:00", "s")
_SPAN = np.int64(1) << np.int64(35)  # seconds of time per group in the composite key: about 1,000 years


def to_seconds(times: pd.Series | np.ndarray) -> np.ndarray:
    """Seconds since 1900 as float64, NaN where the time is missing."""
    values = np.asarray(times, dtype="datetime64[s]")
    out = (values - _EPOCH).astype("int64").astype("float64")
    out[np.isnat(values)] = np.nan
    return out


@dataclass(frozen=True)
class EventStream:
    """Events sorted by (group, known-at time), with cumulative sums of their values."""

    keys: np.ndarray  # int64 composite keys: group * _SPAN + seconds, sorted
    times: np.ndarray  # int64 seconds of each event, in key order
    cumsums: dict[str, np.ndarray]  # name -> cumulative sum with a leading 0 (length n + 1)
    values: dict[str, np.ndarray]  # name -> the values in key order (for latest-value queries)
    _cummax: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # filled on first use

    @classmethod
    def build(cls, group: np.ndarray, known_at: np.ndarray, **values: np.ndarray) -> EventStream:
        """Events of ``group`` (int codes, -1 for none) known at ``known_at`` (seconds, NaN for never).

        Values that are NaN count as 0 in sums; an event never known (NaN time) or of no group is left out.
        """
        group = np.asarray(group, dtype="int64")
        known_at = np.asarray(known_at, dtype="float64")
        keep = (group >= 0) & ~np.isnan(known_at)
        seconds = known_at[keep].astype("int64")
        keys = group[keep] * _SPAN + seconds
        order = np.argsort(keys, kind="stable")
        sorted_values = {name: np.asarray(v, dtype="float64")[keep][order] for name, v in values.items()}
        cumsums = {
            name: np.concatenate(([0.0], np.cumsum(np.nan_to_num(v, nan=0.0)))) for name, v in sorted_values.items()
        }
        return cls(keys=keys[order], times=seconds[order], cumsums=cumsums, values=sorted_values)

    def __len__(self) -> int:
        return len(self.keys)

    def position(self, group: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Index just past the group's last event known strictly before ``t`` (seconds; NaN gives the start)."""
        group = np.asarray(group, dtype="int64")
        t = np.asarray(t, dtype="float64")
        start = self.start(group)
        inside = (group >= 0) & ~np.isnan(t)
        probe = np.where(inside, group * _SPAN + np.nan_to_num(t, nan=0.0).astype("int64"), 0)
        pos = np.searchsorted(self.keys, probe, side="left")
        return np.where(inside, np.maximum(pos, start), start)

    def start(self, group: np.ndarray) -> np.ndarray:
        group = np.asarray(group, dtype="int64")
        return np.searchsorted(self.keys, np.maximum(group, 0) * _SPAN, side="left")

    def count(self, group: np.ndarray, t: np.ndarray, window_days: float | None = None) -> np.ndarray:
        """Events known before ``t``, or within ``[t - window, t)`` when a window is given."""
        end = self.position(group, t)
        return (end - self._lower(group, t, window_days)).astype("float64")

    def total(self, name: str, group: np.ndarray, t: np.ndarray, window_days: float | None = None) -> np.ndarray:
        """Sum of value ``name`` over the events known before ``t`` (or within the window)."""
        cs = self.cumsums[name]
        return cs[self.position(group, t)] - cs[self._lower(group, t, window_days)]

    def latest(self, name: str, group: np.ndarray, t: np.ndarray, back: int = 0) -> np.ndarray:
        """Value of the latest event known before ``t`` (``back=1``: the one before it); NaN if none."""
        end = self.position(group, t) - 1 - back
        ok = end >= self.start(group)
        if len(self.keys) == 0:
            return np.full(len(end), np.nan)
        return np.where(ok, self.values[name][np.clip(end, 0, None)], np.nan)

    def latest_time(self, group: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Known-at time (seconds) of the latest event before ``t``; NaN if none."""
        end = self.position(group, t) - 1
        ok = end >= self.start(group)
        if len(self.keys) == 0:
            return np.full(len(end), np.nan)
        return np.where(ok, self.times[np.clip(end, 0, None)].astype("float64"), np.nan)

    def running_max(self, name: str, group: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Largest value of ``name`` among the group's events known before ``t``; NaN if none."""
        if name not in self._cummax:
            self._cummax[name] = _group_cummax(self.keys // _SPAN, self.values[name])
        cummax = self._cummax[name]
        end = self.position(group, t) - 1
        ok = end >= self.start(group)
        if len(self.keys) == 0:
            return np.full(len(end), np.nan)
        return np.where(ok, cummax[np.clip(end, 0, None)], np.nan)

    def _lower(self, group: np.ndarray, t: np.ndarray, window_days: float | None) -> np.ndarray:
        if window_days is None:
            return self.start(group)
        return self.position(group, np.asarray(t, dtype="float64") - window_days * SECONDS_PER_DAY)


def _group_cummax(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running maximum of ``values`` that restarts at each new group (groups sorted); NaN values are skipped."""
    if len(values) == 0:
        return values
    frame = pd.DataFrame({"g": groups, "v": np.nan_to_num(values, nan=-np.inf)})
    out = frame.groupby("g", sort=False)["v"].cummax().to_numpy(dtype="float64", copy=True)
    out[np.isneginf(out)] = np.nan
    return out


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (no evidence yet, not a zero rate)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)
