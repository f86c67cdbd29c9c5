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
    cumsums: dict[str, np.ndarray]  # name -> running sum within each group, this event included
    values: dict[str, np.ndarray]  # name -> the values in key order (for latest-value queries)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # running maxima, group offsets

    @classmethod
    def build(cls, group: np.ndarray, known_at: np.ndarray, **values: np.ndarray) -> EventStream:
        """Events of ``group`` (int codes, -1 for none) known at ``known_at`` (seconds, NaN for never).

        Values that are NaN count as 0 in sums; an event never known (NaN time) or of no group is left out.
        """
        group = np.asarray(group, dtype="int64")
        known_at = np.asarray(known_at, dtype="float64")
        take = np.flatnonzero((group >= 0) & ~np.isnan(known_at))
        seconds = known_at[take].astype("int64")
        keys = group[take] * _SPAN + seconds
        if not _is_sorted(keys):  # exports usually come sorted by project and time: then nothing moves
            order = np.argsort(keys, kind="stable")
            take, keys, seconds = take[order], keys[order], seconds[order]
        everything = len(take) == len(group) and _is_sorted(take)
        sorted_values = {
            name: np.asarray(v, dtype="float64") if everything else np.asarray(v, dtype="float64")[take]
            for name, v in values.items()
        }
        cumsums = _group_cumsums(keys // _SPAN, sorted_values)
        return cls(keys=keys, times=seconds, cumsums=cumsums, values=sorted_values)

    def __len__(self) -> int:
        return len(self.keys)

    def at(self, probe: Probe) -> Cursor:
        """Where each query row (group code, ``as_of`` in seconds) stands in this stream."""
        return Cursor(self, probe)

    def cummax(self, name: str) -> np.ndarray:
        """Running maximum of ``name`` within each group, computed on first use."""
        key = f"cummax:{name}"
        if key not in self._cache:
            self._cache[key] = _group_cummax(self.keys // _SPAN, self.values[name])
        return self._cache[key]

    def bounds(self, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each group's events start and stop (an empty range for a group with none, or -1): the same as
        searching (group, 0) and (group + 1, 0), looked up in offsets computed on first use."""
        if "offsets" not in self._cache:
            groups = self.keys // _SPAN
            last = int(groups[-1]) if len(groups) else -1
            self._cache["offsets"] = np.searchsorted(groups, np.arange(last + 2), side="left")
        offsets = self._cache["offsets"]
        top = len(offsets) - 1
        return offsets[np.minimum(np.maximum(group, 0), top)], offsets[np.minimum(group + 1, top)]

    def search(self, group: np.ndarray, seconds: np.ndarray, order: np.ndarray) -> np.ndarray:
        """For each (group, time): how many events sort strictly before it.

        ``order`` sorts the probes (or nearly): searching sorted needles is about twice as fast. Any order is correct.
        """
        probe = (np.maximum(group, 0) * _SPAN + seconds)[order]
        out = np.empty(len(probe), dtype="int64")
        out[order] = np.searchsorted(self.keys, probe, side="left")
        return out


@dataclass(frozen=True)
class Probe:
    """Query rows as (group code, ``as_of`` seconds), with the order that sorts them, computed once."""

    group: np.ndarray
    t: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, group: np.ndarray, t: np.ndarray) -> Probe:
        group = np.asarray(group, dtype="int64")
        t = np.asarray(t, dtype="float64")
        return cls(group, t, np.lexsort((t, group)))


class Cursor:
    """One stream queried at many rows: the positions are searched once and reused by every aggregate.

    For row ``i`` the events known before ``t[i]`` are ``keys[start[i]:end[i]]``.
    """

    def __init__(self, stream: EventStream, probe: Probe) -> None:
        group, t, order = probe.group, probe.t, probe.order
        self.stream, self.probe = stream, probe
        self.valid = (group >= 0) & ~np.isnan(t)
        self.start, self.stop = stream.bounds(group)  # the group's segment of the stream
        self.end = np.where(self.valid, stream.search(group, _clip_seconds(t), order), self.start)
        self.group, self.t = group, t
        self._lower: dict[float, np.ndarray] = {}

    def lower(self, window_days: float | None) -> np.ndarray:
        """First event inside ``[t - window, t)``, or the group's first event without a window."""
        if window_days is None:
            return self.start
        if window_days not in self._lower:
            since_t = _clip_seconds(self.t - window_days * SECONDS_PER_DAY)
            since = self.stream.search(self.group, since_t, self.probe.order)
            self._lower[window_days] = np.where(self.valid, np.maximum(since, self.start), self.start)
        return self._lower[window_days]

    def count(self, window_days: float | None = None) -> np.ndarray:
        """Events known before ``t`` (within ``[t - window, t)`` when a window is given)."""
        return (self.end - self.lower(window_days)).astype("float64")

    def total(self, name: str, window_days: float | None = None) -> np.ndarray:
        """Sum of value ``name`` over the events known before ``t`` (or within the window)."""
        sums = self.stream.cumsums[name]
        if window_days is None:  # from the group's first event: nothing before it to take away
            return self._before(sums, self.end)
        return self._before(sums, self.end) - self._before(sums, self.lower(window_days))

    def group_size(self) -> np.ndarray:
        """All of the group's events, whenever known (for facts known from the start, such as the baseline plan)."""
        return np.where(self.group >= 0, self.stop - self.start, 0).astype("float64")

    def latest(self, name: str, back: int = 0) -> np.ndarray:
        """Value of the latest event known before ``t`` (``back=1``: the one before it); NaN if none."""
        return self._pick(self.stream.values.get(name), self.end - 1 - back)

    def latest_time(self) -> np.ndarray:
        """Known-at time (seconds) of the latest event before ``t``; NaN if none."""
        return self._pick(self.stream.times, self.end - 1)

    def first_time(self) -> np.ndarray:
        """Known-at time of the group's first event, if it was known before ``t``; NaN if none."""
        return self._pick(self.stream.times, np.where(self.end > self.start, self.start, -1))

    def running_max(self, name: str) -> np.ndarray:
        """Largest value of ``name`` among the events known before ``t``; NaN if none."""
        return self._pick(self.stream.cummax(name), self.end - 1)

    def _before(self, sums: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The group's running sum over its events before ``index`` (0 if there are none)."""
        if len(sums) == 0:
            return np.zeros(len(index))
        # index <= len(sums) always (a search result), so only the lower end needs a bound; np.clip costs 4x more
        # on the few rows of a request
        return np.where(index > self.start, sums[np.maximum(index - 1, 0)], 0.0)

    def _pick(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        ok = (index >= self.start) & (index < self.end)
        if len(self.stream) == 0:
            return np.full(len(index), np.nan)
        # index < end <= len(stream) always: only the lower end needs a bound
        return np.where(ok, np.asarray(values, dtype="float64")[np.maximum(index, 0)], np.nan)


def _group_cumsums(groups: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Running sums that restart at each group (NaN counted as 0), for events sorted by group.

    Each group is summed on its own, in order, exactly as a loop over that group's events would: a group's sums
    never mix in other groups' events, so sums before ``t`` are bit-for-bit the same whatever happens after ``t``
    (one running sum over the whole stream minus a group offset would not be). Vectorised over groups: step ``r``
    adds the ``r``-th event of every group that has one, so the loop runs as many times as the longest group.
    """
    sums = {name: np.nan_to_num(v, nan=0.0) for name, v in values.items()}  # copies: summed in place below
    if not sums or len(groups) == 0:
        return sums
    n = len(groups)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    small = rank.astype("int16") if rank.max() < np.iinfo("int16").max else rank  # int16: radix sort, O(n)
    by_rank = np.argsort(small, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(rank.max() + 2))
    steps = [by_rank[bounds[r] : bounds[r + 1]] for r in range(1, len(bounds) - 1)]
    for column in sums.values():
        for idx in steps:
            column[idx] += column[idx - 1]
    return sums


def _is_sorted(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


def _clip_seconds(t: np.ndarray) -> np.ndarray:
    """Seconds as int64 inside one group's span of the composite key (NaN becomes 0, handled by the caller)."""
    # fmax/fmin skip NaN (NaN becomes the bound 0); cheaper than clip + nan_to_num on a request's few rows
    return np.fmin(np.fmax(t, 0.0), float(_SPAN - 1)).astype("int64")


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
    # the inner where divides by 1 where the denominator is not positive (or NaN): no warning to silence
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)
