"""A synthetic construction world with a known truth, written in the raw data contract (v1).

The story a construction quality manager will recognise:

* **Clients** arrive over time from ``settings.generate_start``. Each has a hidden *temperament* (how demanding,
  how quick to complain) and *loyalty*. A client's projects form a chain: after a handover the client either
  awards a new project within 365 days (probability ``1 - p_churn``) or walks away (rarely coming back more than
  a year later). ``p_churn`` is what the client lived through: the final slip, failed acceptances, complaints
  and how fast they were answered, escalations, satisfaction scores, and the client's own temperament and loyalty.
* **Projects** have hidden traits: workmanship, subcontractor quality, planning realism and site-team
  responsiveness, nudged by project type and region. Bigger contracts run longer (6 to 30 months).
* **Milestones** (4 to 8, ending with the handover) slip by increments with a heavy right tail. Increments are
  driven by unrealistic planning, weak subcontractors, late deliveries, equipment downtime and labour shortfall,
  and they accumulate: a late structure pushes every later milestone.
* **Inspections** (a few a month) find more and worse defects where workmanship and subcontractors are weak and
  on harder work (MEP, fit-out); defects are closed slowly by unresponsive teams, some never.
* **First-pass acceptance** of a milestone fails with a probability driven by the segment's workmanship, the
  open defects and the recent inspection failures and severe findings at that time, rework pressure (overtime)
  and the milestone kind.
* **Resources** (one row a project-week) carry the plan (planned value, planned hours) and the actuals; earned
  value reaches each segment's budget on its actual milestone date, at the expected pace until late in the
  segment, so SPI = sum(EV) / sum(PV) drops below 1 on projects that slip without telling the luck to come.
* **Complaints** come more often from demanding clients, after failed inspections and acceptances, and when the
  project runs late; slow teams answer late (or never), and slow answers get escalated.
* **Surveys** (about quarterly) score CSAT and NPS from temperament, delay and complaint handling so far.

The world is seen at a **snapshot**: the award date of the ``n_projects``-th project. Nothing after it appears.
The ``oracle`` holds the exact parameters each label was drawn from. ``simulate_world`` and ``inject_faults`` are
pure; ``write_world`` is the only function that touches the file system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr
from scipy.stats import rankdata

from features.contract import COMPLAINT_CATEGORIES, INSPECTION_RESULTS, MILESTONE_KINDS, TABLES, Error, Kind
from features.settings import get_settings

PROJECT_TYPES = ("school", "office", "residential", "hospital", "infrastructure")
REGIONS = ("north", "south", "east", "west", "central")
DISCIPLINES = ("civil", "structural", "mep", "finishes", "safety")

# Mild type and region effects on the hidden traits (index = position in PROJECT_TYPES / REGIONS).
TYPE_LOG_VALUE = np.array([0.0, 0.2, -0.3, 0.6, 0.5])
TYPE_WORKMANSHIP = np.array([0.15, 0.1, -0.15, -0.2, 0.0])
TYPE_PLANNING = np.array([0.1, 0.05, 0.1, -0.3, -0.25])
REGION_SUBCONTRACTORS = np.array([0.15, -0.1, 0.0, 0.1, -0.2])
REGION_RESPONSIVENESS = np.array([0.0, 0.1, -0.1, 0.05, -0.05])

# Per milestone kind (index = position in MILESTONE_KINDS): how hard its work is to get right, extra slip
# (log scale), and the discipline that mostly inspects it.
KIND_DIFFICULTY = np.array([0.0, 0.15, 0.2, 0.6, 0.5, 0.3])
KIND_SLIP = np.array([0.0, 0.1, 0.05, 0.15, 0.1, 0.0])
KIND_DISCIPLINE = np.array([0, 1, 3, 2, 3, 2])
HANDOVER = MILESTONE_KINDS.index("handover")

HORIZON_DAYS = 2374  # clients arrive over about 6.5 years; the snapshot falls near the end
AWARDS_PER_CLIENT = 1.7  # awards per client within the horizon (measured), to size the first batch of clients
SPAN = 2**20  # days: separates projects in one sorted key (project * SPAN + day)
NEVER = 1.0e6  # the day of an event that never happens (a defect never closed)
CHURN_WINDOW = 365
LATE_TOLERANCE = 7.0
SLIP_SIGMA = 0.75  # log-sd of a milestone's slip increment: the heavy right tail
LABOUR_RATE = 60.0  # money per labour hour
LABOUR_SHARE = 0.35  # share of planned value spent on site labour
COST_BUDGET_SHARE = 0.9  # budget at completion (sum of planned value) as a share of the contract value
PROJECT_FAULT_SHARE = 0.2  # projects get faults at this share of the dirty rate (each rejects its children)

Cols = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------------------------


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: the group of each flat row and the row's rank within its group."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(counts.sum()) - starts[owner]


def _group_cumsum(values: np.ndarray, owner: np.ndarray, n_groups: int) -> np.ndarray:
    """Cumulative sum within consecutive groups (rows sorted by owner)."""
    total = np.cumsum(values)
    counts = np.bincount(owner, minlength=n_groups)
    before = np.concatenate([[0.0], total])[np.cumsum(counts) - counts]
    return total - before[owner]


class _Stream:
    """Events of many projects in one sorted key, for point-in-time sums: weight of events with time < t."""

    def __init__(self, group: np.ndarray, time: np.ndarray, weight: np.ndarray | None = None):
        key = group * float(SPAN) + time
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        w = np.ones(len(key)) if weight is None else np.asarray(weight, dtype=float)[order]
        self.cum = np.concatenate([[0.0], np.cumsum(w)])

    def before(self, group: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Weight of the group's events with time < ``time`` (times are day numbers, all >= 0)."""
        base = group * float(SPAN)
        return self.cum[np.searchsorted(self.key, base + time)] - self.cum[np.searchsorted(self.key, base)]

    def between(self, group: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Weight of the group's events with lo <= time < hi."""
        return self.before(group, hi) - self.before(group, lo)


def _weighted_choice(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category a row from row-wise (unnormalised) weights."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return (cum < u[:, None]).sum(axis=1)


def _working_time(rng: np.random.Generator, day: np.ndarray, first_hour: float, hours: float) -> np.ndarray:
    """A time in working hours (5-minute steps) on a weekday: a weekend day moves to a random day of its week."""
    day = np.floor(day)
    weekday = (day + 3) % 7  # 0 = Monday (day 0, 1970-01-01, was a Thursday)
    day = np.where(weekday >= 5, day - weekday + rng.integers(0, 5, len(day)), day)
    steps = rng.integers(0, int(hours * 12) + 1, len(day))
    return day + (first_hour + steps / 12.0) / 24.0


def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula; nan when only one class is present."""
    label = np.asarray(label, dtype=bool)
    n_pos, n_neg = label.sum(), (~label).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------------------------------------------------------
# Clients and projects
# ---------------------------------------------------------------------------------------------------------------


def _draw_clients(rng: np.random.Generator, n: int, start_day: int) -> Cols:
    """Clients arriving uniformly over the horizon; temperament and loyalty are hidden for good."""
    return {
        "arrival": start_day + np.floor(rng.random(n) * HORIZON_DAYS),
        "demanding": rng.normal(0.0, 1.0, n),
        "loyalty": rng.normal(0.0, 1.0, n),
    }


def _draw_projects(rng: np.random.Generator, client: np.ndarray, award: np.ndarray, prior: np.ndarray) -> Cols:
    """A project's hidden traits, size and baseline.

    Workmanship, subcontractor quality, planning realism and team responsiveness are standard normal, shifted a
    little by project type and region. Value is lognormal; bigger contracts are planned longer (6 to 30 months).
    """
    n = len(client)
    ptype = rng.integers(0, len(PROJECT_TYPES), n)
    region = rng.integers(0, len(REGIONS), n)
    log_value = np.log(12e6) + TYPE_LOG_VALUE[ptype] + rng.normal(0.0, 0.9, n)
    value = np.maximum(np.round(np.exp(log_value), -3), 1e5)
    months = 6.0 + 24.0 * expit(0.9 * (log_value - np.log(12e6)) + rng.normal(0.0, 0.6, n))
    duration = np.rint(months * 30.44)
    planned_start = award + 14 + np.floor(rng.gamma(2.0, 12.0, n))
    return {
        "client": client,
        "award": award,
        "prior": prior,
        "tie": rng.random(n),
        "ptype": ptype,
        "region": region,
        "value": value,
        "months": months,
        "planned_start": planned_start,
        "planned_end": planned_start + duration,
        "duration": duration,
        "workmanship": TYPE_WORKMANSHIP[ptype] + rng.normal(0.0, 1.0, n),
        "subcontractors": REGION_SUBCONTRACTORS[region] + rng.normal(0.0, 1.0, n),
        "planning": TYPE_PLANNING[ptype] + rng.normal(0.0, 1.0, n),
        "responsiveness": REGION_RESPONSIVENESS[region] + rng.normal(0.0, 1.0, n),
        "inspections_per_day": (1.5 + 2.5 * rng.random(n)) / 30.44,
    }


def _plan_milestones(rng: np.random.Generator, p: Cols) -> Cols:
    """4 to 8 milestones a project (more on longer projects), kinds in construction order, the last a handover.

    Up to five of foundation, structure, envelope, MEP and fit-out are picked (foundation and structure most
    often); long projects repeat structure, MEP or fit-out stages. Planned dates split the planned duration into
    segments of uneven length (each at least half an equal share), the handover on the planned end.
    """
    n = len(p["award"])
    k = np.clip(np.rint(4 + 3 * (p["months"] - 6) / 24 + rng.normal(0.0, 0.8, n)), 4, 8).astype(np.int64)
    m = k - 1
    preference = np.array([3.0, 3.0, 1.5, 2.0, 2.0])
    keys = rng.random((n, 5)) ** (1.0 / preference)
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    counts = np.zeros((n, len(MILESTONE_KINDS)), dtype=np.int64)
    counts[:, :5] = rank < np.minimum(m, 5)[:, None]
    extra_rank = np.argsort(np.argsort(rng.random((n, 3)), axis=1), axis=1)
    counts[:, [1, 3, 4]] += extra_rank < np.maximum(m - 5, 0)[:, None]
    counts[:, HANDOVER] = 1
    kind = np.repeat(np.tile(np.arange(len(MILESTONE_KINDS)), n), counts.ravel())
    proj, rank_in = _expand(k)
    share = rng.gamma(3.0, 1.0, len(proj))
    share = share / np.bincount(proj, weights=share)[proj]
    frac = _group_cumsum(0.5 / k[proj] + 0.5 * share, proj, n)
    last = rank_in == k[proj] - 1
    frac[last] = 1.0
    planned = p["planned_start"][proj] + np.rint(p["duration"][proj] * frac)
    prev_planned = np.where(rank_in == 0, p["planned_start"][proj], np.roll(planned, 1))
    return {
        "proj": proj,
        "seq": rank_in + 1,
        "kind": kind,
        "last": last,
        "planned": planned,
        "gap": planned - prev_planned,
    }


# ---------------------------------------------------------------------------------------------------------------
# Schedule, inspections, acceptance
# ---------------------------------------------------------------------------------------------------------------


def _simulate_schedule(rng: np.random.Generator, p: Cols, m: Cols) -> None:
    """Segment conditions and slips, accumulating along the sequence.

    Each segment (the work up to a milestone) gets its own conditions: workmanship ``q`` (project workmanship and
    subcontractors plus segment noise), the share of late deliveries, equipment downtime and labour shortfall.
    The slip increment is ``L - recovery`` with ``L`` lognormal: its log-median grows with the segment's length,
    poor planning, weak subcontractors, late deliveries, downtime and shortfall; ``recovery`` (8% of the segment)
    is the slack a team can win back, and ``L`` is capped at 1.2 segment lengths (a segment at most doubles).
    The milestone's slip is the previous slip plus the increment, so ``expected_slip = previous slip +
    E[min(L, cap)] - recovery`` and ``p_late = P(slip >= 7.5)`` (the slip is rounded to whole days).
    """
    pj = m["proj"]
    n_ms = len(pj)
    subs, plan = p["subcontractors"][pj], p["planning"][pj]
    m["q"] = 0.6 * p["workmanship"][pj] + 0.4 * subs + rng.normal(0.0, 0.5, n_ms)
    m["late_share"] = expit(-2.2 - 0.5 * subs - 0.2 * plan + rng.normal(0.0, 0.5, n_ms))
    m["downtime"] = 3.0 * np.exp(-0.35 * subs + rng.normal(0.0, 0.4, n_ms))
    m["shortfall"] = np.clip(0.04 - 0.05 * plan + rng.normal(0.0, 0.06, n_ms), -0.15, 0.5)
    mu = (
        np.log(m["gap"])
        - 2.4
        - 0.3 * plan
        - 0.2 * subs
        + 2.0 * (m["late_share"] - 0.12)
        + 0.05 * (m["downtime"] - 3.0)
        + 1.5 * (m["shortfall"] - 0.04)
        + KIND_SLIP[m["kind"]]
    )
    recovery = 0.08 * m["gap"]
    cap = 1.2 * m["gap"]
    increment = np.minimum(np.exp(mu + SLIP_SIGMA * rng.normal(0.0, 1.0, n_ms)), cap) - recovery
    slip = _group_cumsum(increment, pj, len(p["award"]))
    previous = slip - increment
    z_cap = (np.log(cap) - mu) / SLIP_SIGMA
    mean_capped = np.exp(mu + SLIP_SIGMA**2 / 2) * ndtr(z_cap - SLIP_SIGMA) + cap * (1 - ndtr(z_cap))
    threshold = LATE_TOLERANCE + 0.5 + recovery - previous
    p_above = 1.0 - ndtr((np.log(np.maximum(threshold, 1e-9)) - mu) / SLIP_SIGMA)
    m["slip"] = slip
    m["prev_slip"] = previous
    m["expected_slip"] = previous + mean_capped - recovery
    m["p_late"] = np.where(threshold <= 0, 1.0, np.where(threshold > cap, 0.0, p_above))
    m["actual"] = m["planned"] + np.rint(slip)
    m["seg_start"] = np.where(m["seq"] == 1, p["planned_start"][pj], np.roll(m["actual"], 1))
    m["seg_len"] = np.maximum(m["actual"] - m["seg_start"], 1.0)
    # Rework pressure: overtime share of the labour in the segment, higher when behind and on poor work.
    m["overtime"] = expit(-2.8 + 0.01 * np.clip(previous, 0, 60) - 0.3 * m["q"] + rng.normal(0.0, 0.3, n_ms))
    p["actual_end"] = m["actual"][m["last"]]
    p["final_slip"] = slip[m["last"]]


def _simulate_inspections(rng: np.random.Generator, p: Cols, m: Cols) -> Cols:
    """A few inspections a month through each segment; findings follow the segment's workmanship and kind.

    Defects are Poisson with a mean that rises as workmanship falls and on hard work; the worst severity rises
    with both and with the number found. A critical finding fails the inspection, a major one fails it or makes it
    conditional. Defects are closed after a lognormal delay that unresponsive teams stretch; some stay open.
    """
    pj = m["proj"]
    count = rng.poisson(p["inspections_per_day"][pj] * m["seg_len"])
    ms, _ = _expand(count)
    n = len(ms)
    day = m["seg_start"][ms] + np.floor(rng.random(n) * m["seg_len"][ms])
    t = _working_time(rng, day, 7.0, 10.0)
    proj = pj[ms]
    q, hard = m["q"][ms], KIND_DIFFICULTY[m["kind"][ms]]
    defects = rng.poisson(np.exp(-0.1 - 0.6 * q + 0.5 * hard + rng.normal(0.0, 0.3, n)))
    z = -0.5 * q + 0.4 * hard + 0.25 * np.log1p(defects) + rng.normal(0.0, 0.8, n)
    severity = np.where(defects > 0, 1 + (z > 0.9) + (z > 1.9), 0)
    u = rng.random(n)
    fail = (severity == 3) | ((severity == 2) & (u < 0.4))
    conditional = ~fail & ((severity == 2) | ((severity == 1) & (u < 0.3)))
    result = np.where(fail, 1, np.where(conditional, 2, 0))  # index into INSPECTION_RESULTS
    resp = p["responsiveness"][proj]
    delay = np.exp(np.log(5.0) - 0.45 * resp + 0.15 * np.log1p(defects) + 0.25 * (severity - 1))
    delay = delay * np.exp(rng.normal(0.0, 0.8, n))
    never = rng.random(n) < expit(-3.2 - 0.7 * resp)
    closed_in_hours = np.maximum(_working_time(rng, t + delay, 8.0, 9.0), t + 1 / 24)  # in working hours
    closed = np.where(defects == 0, t, np.where(never, NEVER, closed_in_hours))
    discipline = np.where(rng.random(n) < 0.75, KIND_DISCIPLINE[m["kind"][ms]], rng.integers(0, 5, n))
    discipline = np.where(rng.random(n) < 0.1, DISCIPLINES.index("safety"), discipline)
    return {
        "proj": proj,
        "ms": ms,
        "t": t,
        "discipline": discipline,
        "result": result,
        "defects": defects,
        "severity": severity,
        "closed": closed,
    }


def _acceptance(rng: np.random.Generator, m: Cols, ins: Cols) -> None:
    """First-pass acceptance at each milestone's actual date.

    ``p_fail`` rises as the segment's workmanship falls, with the defects still open, the share of failed
    inspections and the severe findings of the last 30 days, the overtime share (rework pressure) and the kind.
    """
    t = m["actual"]
    pj = m["proj"]
    opened = _Stream(ins["proj"], ins["t"], ins["defects"])
    closed = _Stream(ins["proj"], ins["closed"], ins["defects"])
    open_defects = opened.before(pj, t) - closed.before(pj, t)
    done = _Stream(ins["proj"], ins["t"])
    failed = _Stream(ins["proj"], ins["t"], ins["result"] == 1)
    severe = _Stream(ins["proj"], ins["t"], ins["severity"] >= 2)
    n30 = done.between(pj, t - 30, t)
    fail_share = failed.between(pj, t - 30, t) / np.maximum(n30, 1)
    severe30 = np.minimum(severe.between(pj, t - 30, t), 5)
    logit = (
        -3.05
        - 0.75 * m["q"]
        + 0.9 * KIND_DIFFICULTY[m["kind"]]
        + 0.35 * np.log1p(open_defects)
        + 1.0 * fail_share
        + 0.12 * severe30
        + 6.0 * (m["overtime"] - 0.07)
    )
    m["open_defects"] = open_defects
    m["p_fail"] = expit(logit)
    m["failed"] = rng.random(len(t)) < m["p_fail"]


# ---------------------------------------------------------------------------------------------------------------
# Resources, complaints, surveys
# ---------------------------------------------------------------------------------------------------------------


def _value_curve(p: Cols, m: Cols, proj: np.ndarray, query: np.ndarray, *, actual: bool) -> np.ndarray:
    """Cumulative value at ``query`` days, all projects at once (one key: project * SPAN + day).

    Each segment's budget is proportional to its planned length. The planned curve is linear from the planned
    start through the planned milestone dates. The earned curve reaches each segment's budget on the actual date:
    the segment first runs at its *expected* pace (its planned length plus the expected slip increment), and only
    after 85% of its expected (or actual, if shorter) length does the pace change to meet the actual date. So the
    earned value seen early in a segment tells the expected slip, not the luck still to come.
    """
    n = len(p["award"])
    pj = m["proj"]
    budget = COST_BUDGET_SHARE * p["value"]
    cum = budget[pj] * (m["planned"] - p["planned_start"][pj]) / p["duration"][pj]
    xs = [np.arange(n) * SPAN, np.arange(n) * SPAN + p["planned_start"], np.arange(n) * SPAN + SPAN - 1]
    ys = [np.zeros(n), np.zeros(n), budget]
    if actual:
        cum_before = np.where(m["seq"] == 1, 0.0, np.roll(cum, 1))
        expected_len = m["gap"] + m["expected_slip"] - m["prev_slip"]
        turn = 0.85 * np.minimum(m["seg_len"], expected_len)
        xs += [pj * SPAN + m["seg_start"] + turn, pj * SPAN + m["actual"]]
        ys += [cum_before + (cum - cum_before) * turn / expected_len, cum]
    else:
        xs.append(pj * SPAN + m["planned"])
        ys.append(cum)
    x, y = np.concatenate(xs).astype(float), np.concatenate(ys)
    order = np.argsort(x, kind="stable")
    return np.interp(proj * float(SPAN) + query, x[order], y[order])


def _simulate_resources(rng: np.random.Generator, p: Cols, m: Cols) -> Cols:
    """One row a project-week, from the week of the planned start to the week of the handover.

    Planned value follows the baseline dates, earned value the actual ones (weekly amounts, not cumulative, with
    week-to-week noise), so a slipping project earns less than planned each week. Hours follow the work done,
    below plan where labour is short; overtime is the segment's rework pressure; late deliveries and downtime are
    the segment's.
    """
    n = len(p["award"])
    first = p["planned_start"] - ((p["planned_start"] + 3) % 7)  # Monday of the week (day 0 was a Thursday)
    last = p["actual_end"] - ((p["actual_end"] + 3) % 7)
    weeks = ((last - first) / 7 + 1).astype(np.int64)
    proj, rank = _expand(weeks)
    week = first[proj] + 7 * rank
    pv = _value_curve(p, m, proj, week + 7, actual=False) - _value_curve(p, m, proj, week, actual=False)
    ev = _value_curve(p, m, proj, week + 7, actual=True) - _value_curve(p, m, proj, week, actual=True)
    ev = ev * np.exp(rng.normal(0.0, 0.15, len(ev)))
    ev = ev * (COST_BUDGET_SHARE * p["value"] / np.maximum(np.bincount(proj, weights=ev, minlength=n), 1e-9))[proj]
    # The segment a week belongs to: milestones of the project reached by mid-week.
    ms_key = m["proj"] * float(SPAN) + m["actual"]
    starts = np.cumsum(np.bincount(m["proj"], minlength=n)) - np.bincount(m["proj"], minlength=n)
    seg = np.searchsorted(ms_key, proj * float(SPAN) + week + 3.5, side="right")
    seg = np.minimum(seg, starts[proj] + np.bincount(m["proj"], minlength=n)[proj] - 1)
    nw = len(proj)
    hours_per_value = LABOUR_SHARE / LABOUR_RATE
    planned_hours = pv * hours_per_value
    effort = np.exp(0.05 - 0.08 * p["workmanship"][proj] + rng.normal(0.0, 0.1, nw))
    actual_hours = ev * hours_per_value * effort * (1 - 0.5 * m["shortfall"][seg])
    overtime = actual_hours * np.clip(m["overtime"][seg] + rng.normal(0.0, 0.02, nw), 0.0, 0.5)
    working = ev > 0
    downtime = working * (rng.random(nw) < 0.55) * rng.gamma(2.0, m["downtime"][seg] / 1.1)
    deliveries = rng.poisson(working * (0.5 + ev / 50_000.0))
    late = rng.binomial(deliveries, m["late_share"][seg])
    cost_factor = np.exp(0.02 - 0.05 * p["subcontractors"][proj] + 0.8 * m["overtime"][seg])
    cost = ev * cost_factor * np.exp(rng.normal(0.0, 0.04, nw))
    return {
        "proj": proj,
        "week": week,
        "labour_planned_hours": np.round(planned_hours, 1),
        "labour_actual_hours": np.round(actual_hours, 1),
        "overtime_hours": np.round(overtime, 1),
        "equipment_downtime_hours": np.round(downtime, 1),
        "deliveries_planned": deliveries,
        "deliveries_late": late,
        "planned_value": np.round(pv, 2),
        "earned_value": np.round(ev, 2),
        "actual_cost": np.round(cost, 2),
    }


def _simulate_complaints(rng: np.random.Generator, p: Cols, m: Cols, ins: Cols) -> Cols:
    """Complaints through each segment, more from demanding clients, after failures and when running late.

    The rate rises with temperament, the slip so far, the share of failed inspections in the segment and a failed
    acceptance of the previous milestone. The category follows the cause. Responsive teams answer within hours,
    others within days or never; resolution takes days to weeks; slow answers get escalated.
    """
    pj = m["proj"]
    n_ms = len(pj)
    demanding = p["demanding"][pj]
    prev_failed = np.where(m["seq"] == 1, False, np.roll(m["failed"], 1))
    seg_insp = np.bincount(ins["ms"], minlength=n_ms)
    seg_fail = np.bincount(ins["ms"], weights=ins["result"] == 1, minlength=n_ms) / np.maximum(seg_insp, 1)
    late_so_far = np.clip(m["prev_slip"], 0, 120)
    rate = np.exp(np.log(1 / 400) + 0.5 * demanding + 0.006 * late_so_far + 1.5 * seg_fail + 0.7 * prev_failed)
    count = rng.poisson(rate * m["seg_len"])
    ms, _ = _expand(count)
    n = len(ms)
    proj = pj[ms]
    day = m["seg_start"][ms] + np.floor(rng.random(n) * m["seg_len"][ms])
    t = _working_time(rng, day, 8.0, 10.0)
    weights = np.stack(
        [
            1.0 + 2.0 * prev_failed[ms] + 4.0 * seg_fail[ms],  # quality
            0.8 + 0.04 * late_so_far[ms],  # schedule
            1.0 + 0.4 * np.maximum(-p["responsiveness"][proj], 0),  # communication
            0.6 * np.ones(n),  # billing
            0.3 * np.ones(n),  # safety
            0.4 * np.ones(n),  # other
        ],
        axis=1,
    )
    category = _weighted_choice(rng, weights)
    z = 0.4 * demanding[ms] + 0.5 * prev_failed[ms] + 0.01 * late_so_far[ms] + rng.normal(0.0, 0.8, n)
    severity = 1 + (z > 0.2) + (z > 1.2)
    resp = p["responsiveness"][proj]
    response_hours = np.exp(np.log(20.0) - 0.6 * resp + 0.2 * (severity - 2) + rng.normal(0.0, 0.9, n))
    unanswered = rng.random(n) < expit(-3.0 - 0.9 * resp)
    response = np.where(unanswered, NEVER, t + response_hours / 24)
    resolve_days = np.exp(np.log(6.0) + 0.3 * (severity - 1) - 0.3 * resp + rng.normal(0.0, 0.8, n))
    unresolved = unanswered | (rng.random(n) < expit(-2.5 - 0.5 * resp))
    resolved = np.where(unresolved, NEVER, response + resolve_days)
    wait_hours = np.where(unanswered, 24 * 14.0, response_hours)
    escalated = rng.random(n) < expit(-2.5 + 0.8 * np.log(wait_hours / 24) + 0.5 * (severity - 2) + 0.5 * demanding[ms])
    escalated_at = t + np.minimum(wait_hours / 24, 3.0)
    return {
        "proj": proj,
        "t": t,
        "category": category,
        "severity": severity,
        "response": response,
        "resolved": resolved,
        "slow": unanswered | (response_hours > 72),
        "escalated": escalated,
        "escalated_at": escalated_at,
    }


def _experience(p: Cols, m: Cols, comp: Cols, proj: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """What the client has lived through on a project by time ``t``: delay seen, complaints, failed acceptances."""
    n = len(p["award"])
    counts = np.bincount(m["proj"], minlength=n)
    starts = np.cumsum(counts) - counts
    reached = np.searchsorted(m["proj"] * float(SPAN) + m["actual"], proj * float(SPAN) + t, side="left")
    n_reached = reached - starts[proj]
    last_slip = np.where(n_reached > 0, m["slip"][np.maximum(reached - 1, 0)], 0.0)
    nxt = np.minimum(reached, starts[proj] + counts[proj] - 1)
    overrun = np.maximum(t - m["planned"][nxt], 0.0)  # the next milestone is overdue and not reached
    delay = np.maximum(last_slip, overrun)
    fails = _Stream(m["proj"], m["actual"], m["failed"]).before(proj, t)
    complaints = _Stream(comp["proj"], comp["t"]).before(proj, t)
    slow = _Stream(comp["proj"], comp["t"], comp["slow"]).before(proj, t)
    return {"delay": delay, "failed": fails, "complaints": complaints, "slow": slow}


def _simulate_surveys(rng: np.random.Generator, p: Cols, m: Cols, comp: Cols) -> Cols:
    """About quarterly surveys while a project runs (85% answered); scores fall with temperament, delay,
    complaints (especially slowly answered ones) and failed acceptances, and rise with a responsive team."""
    life = p["actual_end"] - p["planned_start"]
    count = np.maximum(np.floor(life / 91.0).astype(np.int64), 0)
    proj, rank = _expand(count)
    day = p["planned_start"][proj] + 91.0 * (rank + 1) - np.floor(rng.random(len(proj)) * 20)
    t = _working_time(rng, day, 9.0, 8.0)
    keep = (rng.random(len(proj)) < 0.85) & (t < p["actual_end"][proj])
    proj, t = proj[keep], t[keep]
    x = _experience(p, m, comp, proj, t)
    k = len(proj)
    sat = (
        0.35
        - 0.55 * p["demanding"][proj]
        + 0.2 * p["responsiveness"][proj]
        - 0.008 * np.minimum(x["delay"], 120)
        - 0.15 * x["complaints"]
        - 0.3 * x["slow"]
        - 0.45 * x["failed"]
        + rng.normal(0.0, 0.7, k)
    )
    csat = np.clip(np.rint(3.7 + 0.8 * sat), 1, 5)
    nps = np.clip(np.rint(7.2 + 1.8 * sat + rng.normal(0.0, 0.8, k)), 0, 10)
    return {"proj": proj, "t": t, "csat": csat, "nps": nps}


def _churn(rng: np.random.Generator, p: Cols, m: Cols, comp: Cols, surv: Cols) -> None:
    """At handover the client decides whether to award another project within 365 days.

    ``p_churn`` rises with the final slip, failed acceptances, complaints, slow answers and escalations, low
    satisfaction, a demanding temperament; it falls with loyalty and the number of earlier projects together.
    """
    n = len(p["award"])
    n_failed = np.bincount(m["proj"], weights=m["failed"], minlength=n)
    n_comp = np.bincount(comp["proj"], minlength=n)
    n_slow = np.bincount(comp["proj"], weights=comp["slow"], minlength=n)
    n_esc = np.bincount(comp["proj"], weights=comp["escalated"], minlength=n)
    n_surv = np.bincount(surv["proj"], minlength=n)
    csat = np.bincount(surv["proj"], weights=surv["csat"], minlength=n) / np.maximum(n_surv, 1)
    csat = np.where(n_surv > 0, csat, 3.7)
    logit = (
        -2.25
        + 0.45 * p["demanding"]
        - 0.6 * p["loyalty"]
        + 0.012 * np.clip(p["final_slip"], 0, 150)
        + 0.3 * n_failed
        + 0.1 * np.minimum(n_comp, 10)
        + 0.3 * np.minimum(n_slow, 5)
        + 0.35 * np.minimum(n_esc, 5)
        - 0.6 * (csat - 3.7)
        - 0.25 * np.minimum(p["prior"], 4)
    )
    p["p_churn"] = expit(logit)
    p["churned"] = rng.random(n) < p["p_churn"]
    gap = 1 + np.minimum(np.floor(rng.gamma(1.3, 80.0, n)), 363)  # 1..364 days after the handover
    comeback = rng.random(n) < 0.1
    late_gap = CHURN_WINDOW + 35 + np.floor(rng.exponential(300.0, n))
    p["next_award"] = np.where(
        p["churned"], np.where(comeback, p["actual_end"] + late_gap, np.nan), p["actual_end"] + gap
    )


# ---------------------------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------------------------


def _simulate_generation(
    rng: np.random.Generator, clients: Cols, client: np.ndarray, award: np.ndarray, prior: np.ndarray
) -> dict:
    """One link of every client chain at once: projects, their milestones and events, and the churn decision."""
    p = _draw_projects(rng, client, award, prior)
    p["demanding"] = clients["demanding"][client]
    p["loyalty"] = clients["loyalty"][client]
    m = _plan_milestones(rng, p)
    _simulate_schedule(rng, p, m)
    ins = _simulate_inspections(rng, p, m)
    _acceptance(rng, m, ins)
    res = _simulate_resources(rng, p, m)
    comp = _simulate_complaints(rng, p, m, ins)
    surv = _simulate_surveys(rng, p, m, comp)
    _churn(rng, p, m, comp, surv)
    return {"p": p, "m": m, "ins": ins, "res": res, "comp": comp, "surv": surv}


def _simulate_chains(rng: np.random.Generator, clients: Cols, first: int, end_day: float) -> list[dict]:
    """Every project of clients ``first..`` awarded up to ``end_day``, generation by generation."""
    client = np.arange(first, len(clients["arrival"]))
    award = clients["arrival"][client]
    prior = np.zeros(len(client), dtype=np.int64)
    out = []
    while len(client):
        keep = award <= end_day
        client, award, prior = client[keep], award[keep], prior[keep]
        if not len(client):
            break
        gen = _simulate_generation(rng, clients, client, award, prior)
        out.append(gen)
        p = gen["p"]
        more = ~np.isnan(p["next_award"])
        client, award, prior = client[more], p["next_award"][more], prior[more] + 1
    return out


def _concat(gens: list[dict]) -> dict[str, Cols]:
    """Stack generations; project and milestone indices become global."""
    out: dict[str, dict[str, list]] = {}
    p_off = m_off = 0
    for gen in gens:
        n_p, n_m = len(gen["p"]["award"]), len(gen["m"]["proj"])
        for name, cols in gen.items():
            part = out.setdefault(name, {})
            for col, arr in cols.items():
                offset = p_off if col == "proj" else m_off if (name == "ins" and col == "ms") else 0
                part.setdefault(col, []).append(arr + offset if offset else arr)
        p_off += n_p
        m_off += n_m
    return {name: {col: np.concatenate(arrs) for col, arrs in cols.items()} for name, cols in out.items()}


@dataclass
class World:
    """A simulated world as seen at ``snapshot``: the six contract tables (typed) and the oracle."""

    tables: dict[str, pd.DataFrame]
    oracle: pd.DataFrame
    snapshot: pd.Timestamp
    n_projects: int
    seed: int

    def rates(self) -> dict[str, float]:
        """Observed label rates and the oracle's ROC-AUC on its own labels."""
        o = self.oracle
        out: dict[str, float] = {}
        for target, label in (("defect_risk", "label"), ("churn", "label")):
            rows = o[o["target"] == target]
            out[f"{target}_rate"] = float(rows[label].mean()) if len(rows) else float("nan")
            out[f"{target}_auc"] = roc_auc(rows["truth"].to_numpy(), rows[label].to_numpy() > 0.5)
        d = o[o["target"] == "delay"]
        late = d["label"].to_numpy() > LATE_TOLERANCE
        out["late_rate"] = float(late.mean()) if len(d) else float("nan")
        out["late_auc"] = roc_auc(d["p_late"].to_numpy(), late)
        out["slip_median"] = float(d["label"].median()) if len(d) else float("nan")
        out["slip_p90"] = float(d["label"].quantile(0.9)) if len(d) else float("nan")
        return out


def _days_to_dates(days: np.ndarray) -> np.ndarray:
    """Day numbers (nan = missing) to datetime64[ms] at midnight."""
    days = np.asarray(days, dtype=float)
    out = np.where(np.isnan(days), 0, days).astype(np.int64).astype("datetime64[D]").astype("datetime64[ms]")
    out[np.isnan(days)] = np.datetime64("NaT")
    return out


def _days_to_times(days: np.ndarray) -> np.ndarray:
    """Fractional day numbers (nan = missing) to datetime64[ms], rounded to the minute."""
    days = np.asarray(days, dtype=float)
    minutes = np.rint(np.where(np.isnan(days), 0, days) * 1440).astype(np.int64)
    out = (minutes * 60).astype("datetime64[s]").astype("datetime64[ms]")
    out[np.isnan(days)] = np.datetime64("NaT")
    return out


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """``n`` ids like P00001, numbered from 1, of one width (wider when ``n`` needs it)."""
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object).astype(str)


def _seen(t: np.ndarray, snapshot: float) -> np.ndarray:
    """Times on or before the snapshot day (timestamps before the next midnight); later ones become nan."""
    return np.where(t < snapshot + 1, t, np.nan)


def _observe(sim: dict[str, Cols], n_projects: int, seed: int) -> World:
    """Cut the simulated world at the snapshot and lay it out as the six contract tables and the oracle.

    Projects are sorted by award date (ties broken at random) and the first ``n_projects`` kept; the snapshot is
    the last one's award date. Events after it are dropped, later completion times are left empty.
    """
    p, m, ins, res, comp, surv = (sim[k] for k in ("p", "m", "ins", "res", "comp", "surv"))
    order = np.lexsort((p["tie"], p["award"]))[:n_projects]
    snapshot = float(p["award"][order[-1]])
    new_rank = np.full(len(p["award"]), -1, dtype=np.int64)
    new_rank[order] = np.arange(n_projects)
    width = max(5, len(str(n_projects)) + 1)
    project_ids = _ids("P", n_projects, width)
    client_codes, _ = pd.factorize(p["client"][order])  # numbered by first award
    client_ids = _ids("C", client_codes.max() + 1, width)[client_codes]

    end = _seen(p["actual_end"][order], snapshot)
    projects = pd.DataFrame(
        {
            "project_id": project_ids,
            "client_id": client_ids,
            "project_type": np.array(PROJECT_TYPES)[p["ptype"][order]],
            "region": np.array(REGIONS)[p["region"][order]],
            "contract_value": p["value"][order],
            "awarded_on": _days_to_dates(p["award"][order]),
            "planned_start": _days_to_dates(p["planned_start"][order]),
            "planned_end": _days_to_dates(p["planned_end"][order]),
            "actual_end": _days_to_dates(end),
        }
    )

    # Milestones of kept projects, in project then sequence order.
    mk = np.flatnonzero(new_rank[m["proj"]] >= 0)
    mk = mk[np.lexsort((m["seq"][mk], new_rank[m["proj"][mk]]))]
    reached = m["actual"][mk] < snapshot + 1
    milestone_ids = _ids("M", len(mk), width + 1)
    accepted = pd.array(np.where(reached, ~m["failed"][mk], False), dtype="boolean")
    accepted[~reached] = pd.NA
    milestones = pd.DataFrame(
        {
            "milestone_id": milestone_ids,
            "project_id": project_ids[new_rank[m["proj"][mk]]],
            "kind": np.array(MILESTONE_KINDS)[m["kind"][mk]],
            "sequence": m["seq"][mk].astype(np.int64),
            "planned_date": _days_to_dates(m["planned"][mk]),
            "actual_date": _days_to_dates(np.where(reached, m["actual"][mk], np.nan)),
            "first_pass_accepted": accepted,
        }
    )

    def events(cols: Cols, time: str) -> np.ndarray:
        """Rows of kept projects seen by the snapshot, in time then project order."""
        idx = np.flatnonzero((new_rank[cols["proj"]] >= 0) & (cols[time] < snapshot + 1))
        return idx[np.lexsort((new_rank[cols["proj"][idx]], cols[time][idx]))]

    ii = events(ins, "t")
    inspections = pd.DataFrame(
        {
            "inspection_id": _ids("INS", len(ii), width + 2),
            "project_id": project_ids[new_rank[ins["proj"][ii]]],
            "inspected_at": _days_to_times(ins["t"][ii]),
            "discipline": np.array(DISCIPLINES)[ins["discipline"][ii]],
            "result": np.array(INSPECTION_RESULTS)[ins["result"][ii]],
            "defects_found": ins["defects"][ii].astype(np.int64),
            "max_severity": ins["severity"][ii].astype(np.int64),
            "closed_at": _days_to_times(_seen(ins["closed"][ii], snapshot)),
        }
    )

    ri = np.flatnonzero((new_rank[res["proj"]] >= 0) & (res["week"] + 7 <= snapshot + 1))
    ri = ri[np.lexsort((res["week"][ri], new_rank[res["proj"][ri]]))]
    resources = pd.DataFrame(
        {"project_id": project_ids[new_rank[res["proj"][ri]]], "week_start": _days_to_dates(res["week"][ri])}
    )
    for col in TABLES["resources"].columns[2:]:
        resources[col.name] = res[col.name][ri].astype(np.int64 if col.kind == Kind.INT else float)

    ci = events(comp, "t")
    complaints = pd.DataFrame(
        {
            "complaint_id": _ids("CMP", len(ci), width),
            "project_id": project_ids[new_rank[comp["proj"][ci]]],
            "received_at": _days_to_times(comp["t"][ci]),
            "category": np.array(COMPLAINT_CATEGORIES)[comp["category"][ci]],
            "severity": comp["severity"][ci].astype(np.int64),
            "first_response_at": _days_to_times(_seen(comp["response"][ci], snapshot)),
            "resolved_at": _days_to_times(_seen(comp["resolved"][ci], snapshot)),
            "escalated": comp["escalated"][ci] & (comp["escalated_at"][ci] < snapshot + 1),
        }
    )

    si = events(surv, "t")
    surveys = pd.DataFrame(
        {
            "survey_id": _ids("SRV", len(si), width),
            "project_id": project_ids[new_rank[surv["proj"][si]]],
            "surveyed_at": _days_to_times(surv["t"][si]),
            "csat": surv["csat"][si].astype(float),
            "nps": surv["nps"][si].astype(float),
        }
    )

    # The oracle: the exact parameters each label was drawn from, for the rows that can be labelled.
    rm = mk[reached]
    ids_reached = milestone_ids[reached]
    labelled = np.flatnonzero(p["actual_end"][order] + CHURN_WINDOW <= snapshot)
    po = order[labelled]
    oracle = pd.concat(
        [
            pd.DataFrame(
                {
                    "target": "defect_risk",
                    "row_id": ids_reached,
                    "truth": m["p_fail"][rm],
                    "p_late": np.nan,
                    "label": m["failed"][rm].astype(float),
                }
            ),
            pd.DataFrame(
                {
                    "target": "delay",
                    "row_id": ids_reached,
                    "truth": m["expected_slip"][rm],
                    "p_late": m["p_late"][rm],
                    "label": m["actual"][rm] - m["planned"][rm],
                }
            ),
            pd.DataFrame(
                {
                    "target": "churn",
                    "row_id": project_ids[labelled],
                    "truth": p["p_churn"][po],
                    "p_late": np.nan,
                    "label": p["churned"][po].astype(float),
                }
            ),
        ],
        ignore_index=True,
    )
    tables = {
        "projects": projects,
        "milestones": milestones,
        "inspections": inspections,
        "resources": resources,
        "complaints": complaints,
        "surveys": surveys,
    }
    return World(tables, oracle, pd.Timestamp(_days_to_dates(np.array([snapshot]))[0]), n_projects, seed)


def simulate_world(n_projects: int, seed: int, start: str | None = None) -> World:
    """Simulate clients and their project chains until more than ``n_projects`` awards, then cut the snapshot.

    Clients arrive uniformly over ``HORIZON_DAYS`` from ``start`` (``settings.generate_start``); their chains are
    followed up to the horizon. If the first batch of clients awards too few projects, another batch is added.
    The same ``(n_projects, seed, start)`` gives the same world.
    """
    if n_projects < 1:
        raise ValueError("n_projects must be at least 1")
    rng = np.random.default_rng(seed)
    start_day = int(np.datetime64(start or get_settings().generate_start, "D").astype(np.int64))
    end_day = float(start_day + HORIZON_DAYS)
    clients: Cols = {"arrival": np.empty(0), "demanding": np.empty(0), "loyalty": np.empty(0)}
    gens: list[dict] = []
    awarded = 0
    while awarded < n_projects:
        n_new = math.ceil(1.1 * (n_projects - awarded) / AWARDS_PER_CLIENT) + 5
        new = _draw_clients(rng, n_new, start_day)
        first = len(clients["arrival"])
        clients = {k: np.concatenate([clients[k], new[k]]) for k in clients}
        gens += _simulate_chains(rng, clients, first, end_day)
        awarded = sum(len(g["p"]["award"]) for g in gens)
    return _observe(_concat(gens), n_projects, seed)


# ---------------------------------------------------------------------------------------------------------------
# Faults (a dirty export)
# ---------------------------------------------------------------------------------------------------------------

BAD_DATES = ("2021-13-45", "31/02/2021", "n/a")
BAD_TIMES = ("2021-13-45T10:00:00", "31/02/2021 10:00", "n/a")
# Which faults each table gets (the projects table gets none on project_id: see inject_faults).
FAULTS: dict[str, tuple[Error, ...]] = {
    "projects": (Error.UNPARSEABLE_DATE, Error.NEGATIVE_VALUE),
    "milestones": (Error.UNPARSEABLE_DATE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
    "inspections": (
        Error.UNPARSEABLE_DATE,
        Error.NEGATIVE_VALUE,
        Error.OUT_OF_RANGE,
        Error.UNKNOWN_PROJECT,
        Error.DUPLICATE_ID,
    ),
    "resources": (Error.UNPARSEABLE_DATE, Error.NEGATIVE_VALUE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
    "complaints": (Error.UNPARSEABLE_DATE, Error.OUT_OF_RANGE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
    "surveys": (Error.UNPARSEABLE_DATE, Error.OUT_OF_RANGE, Error.UNKNOWN_PROJECT, Error.DUPLICATE_ID),
}
OUT_OF_RANGE = {"inspections": (("max_severity", "5"),), "complaints": (("severity", "0"),)}
OUT_OF_RANGE["surveys"] = (("csat", "7"), ("nps", "12"))
# A copied row may come with one value changed (a re-export after an edit); the key stays the same.
DUPLICATE_CHANGE = {
    "inspections": ("defects_found", lambda v: (v + 1).astype(np.int64).astype(str)),
    "resources": ("labour_actual_hours", lambda v: np.round(v * 1.1, 1).astype(str)),
    "surveys": ("nps", lambda v: np.minimum(v + 1, 10).astype(str)),
}


def to_csv_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A typed table as the strings a CSV export holds: ISO dates and timestamps, true/false, '' when missing."""
    out = {}
    for col in TABLES[table].columns:
        s = frame[col.name]
        if col.kind == Kind.DATE:
            v = s.to_numpy().astype("datetime64[D]").astype(str)
        elif col.kind == Kind.TIMESTAMP:
            v = s.to_numpy().astype("datetime64[s]").astype(str)
        elif col.kind == Kind.BOOL:
            v = np.where(s.isna().to_numpy(), "", np.where(s.fillna(False).to_numpy(bool), "true", "false"))
        else:
            v = s.to_numpy().astype(str)
        v = np.where(v == "NaT", "", v).astype(object)
        out[col.name] = v
    return pd.DataFrame(out)


def _unknown_ids(rng: np.random.Generator, known: pd.Series, n: int) -> np.ndarray:
    """Project ids that look right but name no project in the file."""
    width = len(known.iloc[0]) - 1 if len(known) else 5
    lo = len(known) + 1
    num = rng.integers(lo, 10**width, n) if lo < 10**width else np.arange(n) + lo
    ids = np.array([f"P{k:0{width}d}" for k in num], dtype=object)
    return np.where(np.isin(ids, known.to_numpy()), ids + "X", ids)


def _columns_of(table: str, kinds: tuple[Kind, ...], nonnegative: bool = False) -> list[str]:
    cols = [c for c in TABLES[table].columns if c.kind in kinds and c.name != "sequence"]
    if nonnegative:
        cols = [c for c in cols if c.min == 0 and c.max is None]
    return [c.name for c in cols]


def _pick_filled(rng: np.random.Generator, filled: np.ndarray) -> np.ndarray:
    """For each row of a boolean matrix, a random column among its True ones (column 0 when none is)."""
    return np.argmax(filled * (1.0 + rng.random(filled.shape)), axis=1)


def _inject_table(
    rng: np.random.Generator, table: str, frame: pd.DataFrame, *, rate: float, exclude: np.ndarray, known: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Faults in one table at ``rate`` of its rows (never the ``exclude`` rows); at most one fault a row.

    Returns the dirty frame and its manifest rows (1-based row numbers in the dirty file). A duplicate is a copy
    of a clean row, placed later in the file (sometimes with one value changed); the copy is the faulty row.
    """
    cols = {c: frame[c].to_numpy(dtype=object).copy() for c in frame.columns}
    spec = TABLES[table]
    n = len(frame)
    chosen = np.flatnonzero((rng.random(n) < rate) & ~exclude)
    codes = np.array([str(k) for k in FAULTS[table]], dtype=object)
    fault = codes[rng.integers(0, len(codes), len(chosen))]
    column = np.empty(len(chosen), dtype=object)

    sel = fault == Error.UNPARSEABLE_DATE
    date_cols = _columns_of(table, (Kind.DATE, Kind.TIMESTAMP))
    pick = _pick_filled(rng, np.stack([cols[c][chosen[sel]] != "" for c in date_cols], axis=1))
    for j, c in enumerate(date_cols):
        rows = chosen[sel][pick == j]
        bad = np.array(BAD_TIMES if spec.column(c).kind == Kind.TIMESTAMP else BAD_DATES, dtype=object)
        cols[c][rows] = bad[rng.integers(0, len(bad), len(rows))]
    column[sel] = np.array(date_cols, dtype=object)[pick]

    sel = fault == Error.NEGATIVE_VALUE
    number_cols = _columns_of(table, (Kind.FLOAT, Kind.INT), nonnegative=True)
    pick = rng.integers(0, max(len(number_cols), 1), sel.sum())
    for j, c in enumerate(number_cols):
        rows = chosen[sel][pick == j]
        value = np.maximum(np.abs(cols[c][rows].astype(float)), 1.0)
        text = value.astype(np.int64).astype(str) if spec.column(c).kind == Kind.INT else value.astype(str)
        cols[c][rows] = np.char.add("-", text).astype(object)
    if number_cols:
        column[sel] = np.array(number_cols, dtype=object)[pick]

    sel = fault == Error.OUT_OF_RANGE
    options = OUT_OF_RANGE.get(table, ())
    pick = rng.integers(0, max(len(options), 1), sel.sum())
    for j, (c, bad) in enumerate(options):
        cols[c][chosen[sel][pick == j]] = bad
    if options:
        column[sel] = np.array([c for c, _ in options], dtype=object)[pick]

    sel = fault == Error.UNKNOWN_PROJECT
    cols["project_id"][chosen[sel]] = _unknown_ids(rng, known, int(sel.sum()))
    column[sel] = "project_id"

    sel = fault == Error.DUPLICATE_ID
    column[sel] = "+".join(spec.key)
    dup = chosen[sel]
    copies = {c: v[dup].copy() for c, v in cols.items()}
    if table in DUPLICATE_CHANGE:
        c, change = DUPLICATE_CHANGE[table]
        copies[c] = change(copies[c].astype(float)).astype(object)
    position = dup + 0.5 + np.floor(rng.random(len(dup)) * (n - dup))
    final = np.argsort(np.concatenate([np.arange(n, dtype=float), position]), kind="stable")
    dirty = pd.DataFrame({c: np.concatenate([cols[c], copies[c]])[final] for c in frame.columns})
    row_of = np.empty(len(final), dtype=np.int64)
    row_of[final] = np.arange(1, len(final) + 1)

    not_dup = ~sel
    manifest = pd.DataFrame(
        {
            "table": table,
            "row": np.concatenate([row_of[chosen[not_dup]], row_of[n + np.arange(len(dup))]]),
            "column": np.concatenate([column[not_dup], column[sel]]),
            "error": np.concatenate([fault[not_dup], fault[sel]]),
            "cause": "injected",
        }
    )
    cascade = pd.DataFrame(
        {
            "table": table,
            "row": row_of[np.flatnonzero(exclude)],
            "column": "project_id",
            "error": str(Error.UNKNOWN_PROJECT),
            "cause": "cascade",
        }
    )
    return dirty, pd.concat([manifest, cascade], ignore_index=True)


def inject_faults(
    frames: dict[str, pd.DataFrame], rate: float, rng: np.random.Generator
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Realistic faults in about ``rate`` of the rows of each table (CSV string frames), and their manifest.

    The manifest has one row a faulty data record: ``table, row`` (1-based, header excluded, in the dirty file),
    ``column``, ``error`` (a ``features.contract.Error`` code) and ``cause``: ``injected`` for a fault put there,
    ``cascade`` for a child row whose project row was given a fault (the validator rejects the project, and then
    the child as ``unknown_project``). Projects get faults at a fifth of the rate and never on project_id; rows of
    their children get no injected fault of their own and are never copied as duplicates.
    """
    if not 0 <= rate < 1:
        raise ValueError("dirty must be in [0, 1)")
    out: dict[str, pd.DataFrame] = {}
    parts = []
    projects = frames["projects"]
    no_rows = np.zeros(len(projects), bool)
    known = projects["project_id"]
    dirty, manifest = _inject_table(
        rng, "projects", projects, rate=rate * PROJECT_FAULT_SHARE, exclude=no_rows, known=known
    )
    out["projects"] = dirty
    parts.append(manifest)
    rejected = dirty["project_id"].iloc[manifest["row"].to_numpy() - 1].to_numpy()
    for table in TABLES:
        if table == "projects" or table not in frames:
            continue
        frame = frames[table]
        exclude = frame["project_id"].isin(rejected).to_numpy()
        out[table], manifest = _inject_table(rng, table, frame, rate=rate, exclude=exclude, known=known)
        parts.append(manifest)
    faults = pd.concat(parts, ignore_index=True)
    faults["order"] = faults["table"].map({t: i for i, t in enumerate(TABLES)})
    faults = faults.sort_values(["order", "row"], kind="stable").drop(columns="order").reset_index(drop=True)
    return out, faults


# ---------------------------------------------------------------------------------------------------------------
# Writing and reporting
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class WorldReport:
    """What was written: rows per table, the snapshot, the observed label rates and the oracle's AUCs."""

    out_dir: Path
    fmt: str
    snapshot: pd.Timestamp
    rows: dict[str, int]
    rates: dict[str, float]
    faults: int = 0
    files: list[Path] = field(default_factory=list)

    def summary(self):
        from rich.table import Table as RichTable

        t = RichTable(title=f"synthetic world in {self.out_dir} ({self.fmt}), snapshot {self.snapshot.date()}")
        t.add_column("table")
        t.add_column("rows", justify="right")
        for name, n in self.rows.items():
            t.add_row(name, f"{n:,}")
        r = self.rates
        t.add_section()
        t.add_row("first-pass failures", f"{r['defect_risk_rate']:.1%} (oracle AUC {r['defect_risk_auc']:.2f})")
        t.add_row("late milestones (> 7 d)", f"{r['late_rate']:.1%} (oracle AUC {r['late_auc']:.2f})")
        t.add_row("slip median / p90 (days)", f"{r['slip_median']:.0f} / {r['slip_p90']:.0f}")
        t.add_row("churn (complete windows)", f"{r['churn_rate']:.1%} (oracle AUC {r['churn_auc']:.2f})")
        if self.faults:
            t.add_row("faults (faults.csv)", f"{self.faults:,}")
        return t


def write_world(world: World, out_dir: Path, fmt: str = "csv", dirty: float = 0.0) -> WorldReport:
    """Write the six tables, ``oracle.<fmt>`` and (when dirty) ``faults.csv`` into ``out_dir``.

    Old table, oracle and fault files in ``out_dir`` are removed first so a folder never mixes two worlds. Faults
    are drawn from their own generator (seeded from the world's seed), so a dirty world is a corrupted copy of the
    clean world of the same seed. Dirty output is CSV only: a Parquet column cannot hold '31/02/2021' as a date.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"format must be csv or parquet, not {fmt!r}")
    if dirty and fmt != "csv":
        raise ValueError("dirty output is CSV only (faulty values cannot be stored in typed Parquet columns)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in [*TABLES, "oracle", "faults"]:
        for suffix in (".csv", ".parquet", ".csv.gz"):
            (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
    files = []
    n_faults = 0
    if fmt == "parquet":
        for name, frame in world.tables.items():
            path = out_dir / f"{name}.parquet"
            frame.to_parquet(path, index=False)
            files.append(path)
        world.oracle.to_parquet(out_dir / "oracle.parquet", index=False)
    else:
        frames = {name: to_csv_frame(name, frame) for name, frame in world.tables.items()}
        if dirty:
            frames, faults = inject_faults(frames, dirty, np.random.default_rng([world.seed, 1]))
            faults.to_csv(out_dir / "faults.csv", index=False, lineterminator="\n")
            n_faults = int((faults["cause"] == "injected").sum())
            files.append(out_dir / "faults.csv")
        for name, frame in frames.items():
            path = out_dir / f"{name}.csv"
            frame.to_csv(path, index=False, lineterminator="\n")
            files.append(path)
        world.oracle.to_csv(out_dir / "oracle.csv", index=False, lineterminator="\n")
    files.append(out_dir / f"oracle.{fmt}")
    rows = {name: len(frame) for name, frame in world.tables.items()}
    return WorldReport(out_dir, fmt, world.snapshot, rows, world.rates(), n_faults, files)


def generate_world(n_projects: int, seed: int, out_dir: Path, fmt: str = "csv", dirty: float = 0.0) -> WorldReport:
    """Simulate a world of ``n_projects`` projects with ``seed`` and write it to ``out_dir`` (the CLI's entry)."""
    if dirty and fmt != "csv":
        raise ValueError("dirty output is CSV only (faulty values cannot be stored in typed Parquet columns)")
    return write_world(simulate_world(n_projects, seed), Path(out_dir), fmt, dirty)
