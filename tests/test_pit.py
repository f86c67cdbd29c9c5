"""The event-stream aggregates against a plain loop over the events, on random small streams and queries.

Every aggregate the feature families use (count and sum in a window or to date, latest value and time, the one
before it, running maximum, first time, group size) must equal what a reader would compute by hand: the events of
the row's group known strictly before its ``as_of``. Groups with no events, the last group, queries with no group
or no time and empty streams are all drawn.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.pit import SECONDS_PER_DAY, EventStream, Probe

GROUPS = 4
events = st.lists(
    st.tuples(
        st.integers(-1, GROUPS - 1),  # group (-1: none)
        st.one_of(st.none(), st.integers(0, 20 * SECONDS_PER_DAY)),  # known at (None: never)
        st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)),  # value (None: missing)
    ),
    max_size=25,
)
queries = st.lists(
    st.tuples(st.integers(-1, GROUPS), st.one_of(st.none(), st.integers(0, 21 * SECONDS_PER_DAY))),
    min_size=1,
    max_size=8,
)


def known(evs, group, t):
    """The events of ``group`` known strictly before ``t``, in time order (ties in input order)."""
    if group < 0 or t is None:
        return []
    return sorted((e for e in evs if e[0] == group and e[1] is not None and e[1] < t), key=lambda e: e[1])


def same(got: float, expected: float) -> bool:
    return (math.isnan(got) and math.isnan(expected)) or math.isclose(got, expected, abs_tol=1e-9)


@settings(max_examples=300, deadline=None)
@given(evs=events, rows=queries, window_days=st.integers(1, 10))
def test_cursor_aggregates_match_a_plain_loop(evs, rows, window_days):
    group = np.array([e[0] for e in evs], dtype="int64")
    time = np.array([np.nan if e[1] is None else e[1] for e in evs], dtype="float64")
    value = np.array([np.nan if e[2] is None else e[2] for e in evs], dtype="float64")
    stream = EventStream.build(group, time, v=value)
    q_group = np.array([r[0] for r in rows], dtype="int64")
    q_t = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype="float64")
    cursor = stream.at(Probe.of(q_group, q_t))

    count, count_w = cursor.count(), cursor.count(window_days)
    total, total_w = cursor.total("v"), cursor.total("v", window_days)
    latest, before_latest, latest_time = cursor.latest("v"), cursor.latest("v", back=1), cursor.latest_time()
    first_time, running_max, size = cursor.first_time(), cursor.running_max("v"), cursor.group_size()
    for i, (g, t) in enumerate(rows):
        seen = known(evs, g, t)
        recent = [e for e in seen if e[1] >= t - window_days * SECONDS_PER_DAY]
        values = [e[2] for e in seen if e[2] is not None]
        assert count[i] == len(seen) and count_w[i] == len(recent)
        assert same(total[i], sum(e[2] or 0.0 for e in seen))
        assert same(total_w[i], sum(e[2] or 0.0 for e in recent))
        last = [np.nan if e[2] is None else e[2] for e in seen]
        assert same(latest[i], last[-1] if last else np.nan)
        assert same(before_latest[i], last[-2] if len(last) > 1 else np.nan)
        assert same(latest_time[i], seen[-1][1] if seen else np.nan)
        assert same(first_time[i], seen[0][1] if seen else np.nan)
        assert same(running_max[i], max(values) if values else np.nan)
        in_group = [e for e in evs if g >= 0 and e[0] == g and e[1] is not None]
        assert size[i] == len(in_group)
