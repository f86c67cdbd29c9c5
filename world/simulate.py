"""The hidden-trait simulator of the synthetic world: everything that happens, seen by no one yet.

The story a construction quality manager will recognise:

* **Clients** arrive over time from ``settings.generate_start``. Each has a hidden *temperament* (how demanding,
  how quick to complain) and *loyalty*. A client's projects form a chain: after a handover the client either
  awards a new project within the churn window (``settings.churn_window_days``, 365 days; probability
  ``1 - p_churn``) or walks away (rarely coming back more than a year later). ``p_churn`` is what the client lived
  through: the final slip, failed acceptances, complaints and how fast they were answered, escalations,
  satisfaction scores, and the client's own temperament and loyalty.
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

Times are day numbers since 1970-01-01 (float; fractions are the time of day), so the whole world is arrays.
Each step is a function of the columns it needs that returns new columns (a ``Cols`` dict); one generation
(:func:`simulate_generation`) chains them in a fixed order, because they all draw from one random generator and
the order of the draws is what makes a seed give the same world. :func:`simulate` follows every client chain and
returns the columns of everything that happened; ``world.observe`` turns them into what a firm would see at the
snapshot. A shift from a date (``world.shift``: worse workmanship, resource reports going dark, a new region)
changes values only, drawing from its own random generator, so a world without one is the same world as before
shifts existed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, ndtr
from scipy.special import logit as log_odds

from features.contract import MILESTONE_KINDS
from features.pit import EventStream, Probe
from world.shift import MISSING_RESOURCES, NEW_REGION, WORKMANSHIP, Shift

PROJECT_TYPES = ("school", "office", "residential", "hospital", "infrastructure")
REGIONS = ("north", "south", "east", "west", "central")  # a new-region shift adds a sixth (world.shift.NEW_REGION_NAME)
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
SLIP_SIGMA = 0.75  # log-sd of a milestone's slip increment: the heavy right tail
LABOUR_RATE = 60.0  # money per labour hour
LABOUR_SHARE = 0.35  # share of planned value spent on site labour
COST_BUDGET_SHARE = 0.9  # budget at completion (sum of planned value) as a share of the contract value

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
    """Cumulative sum within consecutive groups (rows sorted by owner).

    Not ``features.pit``'s per-group running sums: this is one running sum over all rows minus each group's
    offset, which rounds differently on fractional values (milestone shares, slip increments), and the world's
    numbers were drawn with this rounding.
    """
    total = np.cumsum(values)
    counts = np.bincount(owner, minlength=n_groups)
    before = np.concatenate([[0.0], total])[np.cumsum(counts) - counts]
    return total - before[owner]


def _day_key(group: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Projects and fractional days in one sorted float key (``project * SPAN + day``)."""
    return group * float(SPAN) + day


def _pit_clock(*keys: np.ndarray) -> list[np.ndarray]:
    """Day keys as an integer clock for ``features.pit``: each key's dense rank among all the keys given.

    ``features.pit`` counts time in whole units; the simulation's times are fractional days, compared as the float
    keys of :func:`_day_key` (their rounding included). Ranks order exactly as those keys do and keep their ties,
    so a count or sum of the events "known before t" on the ranks is the one on the days, bit for bit.
    """
    _, ranks = np.unique(np.concatenate(keys), return_inverse=True)
    return np.split(ranks.astype(np.float64), np.cumsum([len(k) for k in keys])[:-1])


def _weighted_choice(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category a row from row-wise (unnormalised) weights."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return (cum < u[:, None]).sum(axis=1)


def _working_time(rng: np.random.Generator, day: np.ndarray, first_hour: float, hours: float) -> np.ndarray:
    """A time in working hours (5-minute steps) on a weekday: a weekend day moves to a random day of its week."""
    return _at_working_time(day, _working_time_draws(rng, len(day), hours), first_hour)


def _working_time_draws(rng: np.random.Generator, n: int, hours: float) -> tuple[np.ndarray, np.ndarray]:
    """The draws of :func:`_working_time` for ``n`` days, apart from the days (so they can be placed again)."""
    return rng.integers(0, 5, n), rng.integers(0, int(hours * 12) + 1, n)


def _at_working_time(day: np.ndarray, draws: tuple[np.ndarray, np.ndarray], first_hour: float) -> np.ndarray:
    """:func:`_working_time` of ``day`` with the given draws (a weekday for a weekend day, the 5-minute step)."""
    weekday_draw, steps = draws
    day = np.floor(day)
    weekday = (day + 3) % 7  # 0 = Monday (day 0, 1970-01-01, was a Thursday)
    day = np.where(weekday >= 5, day - weekday + weekday_draw, day)
    return day + (first_hour + steps / 12.0) / 24.0


# ---------------------------------------------------------------------------------------------------------------
# Clients and projects
# ---------------------------------------------------------------------------------------------------------------


def draw_clients(rng: np.random.Generator, n: int, start_day: int) -> Cols:
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


def _client_traits(clients: Cols, client: np.ndarray) -> Cols:
    """The hidden temperament and loyalty of each project's client."""
    return {"demanding": clients["demanding"][client], "loyalty": clients["loyalty"][client]}


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


def _simulate_schedule(rng: np.random.Generator, p: Cols, m: Cols, late_tolerance: float) -> Cols:
    """Segment conditions and slips, accumulating along the sequence (new milestone columns).

    Each segment (the work up to a milestone) gets its own conditions: workmanship ``q`` (project workmanship and
    subcontractors plus segment noise), the share of late deliveries, equipment downtime and labour shortfall.
    The slip increment is ``L - recovery`` with ``L`` lognormal: its log-median grows with the segment's length,
    poor planning, weak subcontractors, late deliveries, downtime and shortfall; ``recovery`` (8% of the segment)
    is the slack a team can win back, and ``L`` is capped at 1.2 segment lengths (a segment at most doubles).
    The milestone's slip is the previous slip plus the increment, so ``expected_slip = previous slip +
    E[min(L, cap)] - recovery`` and ``p_late = P(slip >= late_tolerance + 0.5)`` (the slip is rounded to whole
    days).
    """
    pj = m["proj"]
    n_ms = len(pj)
    subs, plan = p["subcontractors"][pj], p["planning"][pj]
    q = 0.6 * p["workmanship"][pj] + 0.4 * subs + rng.normal(0.0, 0.5, n_ms)
    late_share = expit(-2.2 - 0.5 * subs - 0.2 * plan + rng.normal(0.0, 0.5, n_ms))
    downtime = 3.0 * np.exp(-0.35 * subs + rng.normal(0.0, 0.4, n_ms))
    shortfall = np.clip(0.04 - 0.05 * plan + rng.normal(0.0, 0.06, n_ms), -0.15, 0.5)
    mu = (
        np.log(m["gap"])
        - 2.4
        - 0.3 * plan
        - 0.2 * subs
        + 2.0 * (late_share - 0.12)
        + 0.05 * (downtime - 3.0)
        + 1.5 * (shortfall - 0.04)
        + KIND_SLIP[m["kind"]]
    )
    recovery = 0.08 * m["gap"]
    cap = 1.2 * m["gap"]
    increment = np.minimum(np.exp(mu + SLIP_SIGMA * rng.normal(0.0, 1.0, n_ms)), cap) - recovery
    slip = _group_cumsum(increment, pj, len(p["award"]))
    previous = slip - increment
    z_cap = (np.log(cap) - mu) / SLIP_SIGMA
    mean_capped = np.exp(mu + SLIP_SIGMA**2 / 2) * ndtr(z_cap - SLIP_SIGMA) + cap * (1 - ndtr(z_cap))
    threshold = late_tolerance + 0.5 + recovery - previous
    p_above = 1.0 - ndtr((np.log(np.maximum(threshold, 1e-9)) - mu) / SLIP_SIGMA)
    actual = m["planned"] + np.rint(slip)
    seg_start = np.where(m["seq"] == 1, p["planned_start"][pj], np.roll(actual, 1))
    return {
        "q": q,
        "late_share": late_share,
        "downtime": downtime,
        "shortfall": shortfall,
        "slip": slip,
        "prev_slip": previous,
        "expected_slip": previous + mean_capped - recovery,
        "p_late": np.where(threshold <= 0, 1.0, np.where(threshold > cap, 0.0, p_above)),
        "actual": actual,
        "seg_start": seg_start,
        "seg_len": np.maximum(actual - seg_start, 1.0),
        # Rework pressure: overtime share of the labour in the segment, higher when behind and on poor work.
        "overtime": expit(-2.8 + 0.01 * np.clip(previous, 0, 60) - 0.3 * q + rng.normal(0.0, 0.3, n_ms)),
    }


def _project_ends(m: Cols) -> Cols:
    """Each project's handover date and final slip (new project columns)."""
    return {"actual_end": m["actual"][m["last"]], "final_slip": m["slip"][m["last"]]}


def _inspection_draws(rng: np.random.Generator, p: Cols, m: Cols) -> Cols:
    """A few inspections a month through each segment: when, by which discipline, and every random draw of their
    findings (:func:`_inspection_findings`), kept apart from the segment's quality so that ``world.shift`` can find
    them again with a worse one from the same draws.

    The defect count is drawn here, Poisson with a mean (``mean_defects``) that rises as workmanship falls and on
    hard work.
    """
    pj = m["proj"]
    count = rng.poisson(p["inspections_per_day"][pj] * m["seg_len"])
    ms, _ = _expand(count)
    n = len(ms)
    day = m["seg_start"][ms] + np.floor(rng.random(n) * m["seg_len"][ms])
    t = _working_time(rng, day, 7.0, 10.0)
    proj = pj[ms]
    q, hard = m["q"][ms], KIND_DIFFICULTY[m["kind"][ms]]
    mean_defects = np.exp(-0.1 - 0.6 * q + 0.5 * hard + rng.normal(0.0, 0.3, n))
    defects = rng.poisson(mean_defects)
    severity_noise = rng.normal(0.0, 0.8, n)
    u = rng.random(n)
    closing_noise = rng.normal(0.0, 0.8, n)
    never = rng.random(n) < expit(-3.2 - 0.7 * p["responsiveness"][proj])
    closing_weekday, closing_step = _working_time_draws(rng, n, 9.0)
    discipline = np.where(rng.random(n) < 0.75, KIND_DISCIPLINE[m["kind"][ms]], rng.integers(0, 5, n))
    discipline = np.where(rng.random(n) < 0.1, DISCIPLINES.index("safety"), discipline)
    return {
        "proj": proj,
        "ms": ms,
        "t": t,
        "discipline": discipline,
        "mean_defects": mean_defects,
        "defects": defects,
        "severity_noise": severity_noise,
        "u": u,
        "closing_noise": closing_noise,
        "never": never,
        "closing_weekday": closing_weekday,
        "closing_step": closing_step,
    }


def _inspection_findings(p: Cols, m: Cols, d: Cols, q: np.ndarray, extra: np.ndarray | None = None) -> Cols:
    """The inspections of :func:`_inspection_draws` with the quality ``q`` of the work each saw (and ``extra``
    defects found beyond the drawn ones, ``world.shift``).

    The worst severity rises as quality falls, on hard work and with the number found. A critical finding fails
    the inspection, a major one fails it or makes it conditional. Defects are closed after a lognormal delay that
    unresponsive teams stretch; some stay open.
    """
    ms, t = d["ms"], d["t"]
    hard = KIND_DIFFICULTY[m["kind"][ms]]
    defects = d["defects"] if extra is None else d["defects"] + extra
    z = -0.5 * q + 0.4 * hard + 0.25 * np.log1p(defects) + d["severity_noise"]
    severity = np.where(defects > 0, 1 + (z > 0.9) + (z > 1.9), 0)
    u = d["u"]
    fail = (severity == 3) | ((severity == 2) & (u < 0.4))
    conditional = ~fail & ((severity == 2) | ((severity == 1) & (u < 0.3)))
    result = np.where(fail, 1, np.where(conditional, 2, 0))  # index into INSPECTION_RESULTS
    resp = p["responsiveness"][d["proj"]]
    delay = np.exp(np.log(5.0) - 0.45 * resp + 0.15 * np.log1p(defects) + 0.25 * (severity - 1))
    delay = delay * np.exp(d["closing_noise"])
    closing = (d["closing_weekday"], d["closing_step"])
    closed_in_hours = np.maximum(_at_working_time(t + delay, closing, 8.0), t + 1 / 24)  # in working hours
    closed = np.where(defects == 0, t, np.where(d["never"], NEVER, closed_in_hours))
    return {
        "proj": d["proj"],
        "ms": ms,
        "t": t,
        "discipline": d["discipline"],
        "result": result,
        "defects": defects,
        "severity": severity,
        "closed": closed,
    }


def _acceptance(rng: np.random.Generator, m: Cols, ins: Cols) -> Cols:
    """First-pass acceptance at each milestone's actual date (new milestone columns; ``accept_draw`` is the uniform
    each was decided by, for ``world.shift``): it fails with the chance of :func:`_failure_chance`."""
    chance = _failure_chance(m, ins, m["q"], m["overtime"])
    u = rng.random(len(m["actual"]))
    return {**chance, "failed": u < chance["p_fail"], "accept_draw": u}


def _failure_chance(m: Cols, ins: Cols, q: np.ndarray, overtime: np.ndarray) -> Cols:
    """``p_fail`` of each milestone's first-pass acceptance, and the defects open then (new milestone columns).

    ``p_fail`` rises as the segment's quality ``q`` falls, with the defects still open, the share of failed
    inspections and the severe findings of the last 30 days, the ``overtime`` share (rework pressure) and the kind.
    What was known at the milestone is counted with ``features.pit`` on the simulation's clock (:func:`_pit_clock`).
    """
    t = m["actual"]
    pj = m["proj"]
    found_at, closed_at, now, month_ago = _pit_clock(
        _day_key(ins["proj"], ins["t"]), _day_key(ins["proj"], ins["closed"]), _day_key(pj, t), _day_key(pj, t - 30)
    )
    found = EventStream.build(
        ins["proj"], found_at, defects=ins["defects"], failed=ins["result"] == 1, severe=ins["severity"] >= 2
    )
    closed = EventStream.build(ins["proj"], closed_at, defects=ins["defects"])
    known, known_30_days_ago = found.at(Probe.of(pj, now)), found.at(Probe.of(pj, month_ago))
    open_defects = known.total("defects") - closed.at(Probe.of(pj, now)).total("defects")
    n30 = known.count() - known_30_days_ago.count()
    fail_share = (known.total("failed") - known_30_days_ago.total("failed")) / np.maximum(n30, 1)
    severe30 = np.minimum(known.total("severe") - known_30_days_ago.total("severe"), 5)
    logit = (
        -3.05
        - 0.75 * q
        + 0.9 * KIND_DIFFICULTY[m["kind"]]
        + 0.35 * np.log1p(open_defects)
        + 1.0 * fail_share
        + 0.12 * severe30
        + 6.0 * (overtime - 0.07)
    )
    return {"open_defects": open_defects, "p_fail": expit(logit)}


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


def _simulate_resources(
    rng: np.random.Generator, p: Cols, m: Cols, shift: Shift | None = None, touched: np.ndarray | None = None
) -> Cols:
    """One row a project-week, from the week of the planned start to the week of the handover.

    Planned value follows the baseline dates, earned value the actual ones (weekly amounts, not cumulative, with
    week-to-week noise), so a slipping project earns less than planned each week. Hours follow the work done,
    below plan where labour is short; overtime is the segment's rework pressure; late deliveries and downtime are
    the segment's. A week's segment is looked up directly (the milestones reached *by* mid-week, that day
    included), not counted as a point-in-time aggregate. A ``shift`` lowering quality (:func:`_touched`) lowers the
    workmanship and the subcontractors' quality of the ``touched`` projects' weeks from its start (more hours, more
    overtime, a higher cost).
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
    ms_key = _day_key(m["proj"], m["actual"])
    starts = np.cumsum(np.bincount(m["proj"], minlength=n)) - np.bincount(m["proj"], minlength=n)
    seg = np.searchsorted(ms_key, proj * float(SPAN) + week + 3.5, side="right")
    seg = np.minimum(seg, starts[proj] + np.bincount(m["proj"], minlength=n)[proj] - 1)
    nw = len(proj)
    hours_per_value = LABOUR_SHARE / LABOUR_RATE
    planned_hours = pv * hours_per_value
    workmanship, subcontractors, overtime_share = p["workmanship"][proj], p["subcontractors"][proj], m["overtime"][seg]
    if shift is not None and touched is not None:
        drop = shift.drop(week) * touched[proj]
        workmanship, subcontractors = workmanship - drop, subcontractors - drop
        overtime_share = np.where(drop > 0, expit(log_odds(overtime_share) + 0.3 * drop), overtime_share)
    effort = np.exp(0.05 - 0.08 * workmanship + rng.normal(0.0, 0.1, nw))
    actual_hours = ev * hours_per_value * effort * (1 - 0.5 * m["shortfall"][seg])
    overtime = actual_hours * np.clip(overtime_share + rng.normal(0.0, 0.02, nw), 0.0, 0.5)
    working = ev > 0
    downtime = working * (rng.random(nw) < 0.55) * rng.gamma(2.0, m["downtime"][seg] / 1.1)
    deliveries = rng.poisson(working * (0.5 + ev / 50_000.0))
    late = rng.binomial(deliveries, m["late_share"][seg])
    cost_factor = np.exp(0.02 - 0.05 * subcontractors + 0.8 * overtime_share)
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


def _experience(p: Cols, m: Cols, comp: Cols, proj: np.ndarray, t: np.ndarray) -> Cols:
    """What the client has lived through on a project by time ``t``: delay seen, complaints, failed acceptances.

    The milestones reached and the complaints received before ``t`` are counted with ``features.pit`` on the
    simulation's clock (:func:`_pit_clock`). Milestones are in project then date order, so the next one due is the
    project's first plus the number reached.
    """
    n = len(p["award"])
    counts = np.bincount(m["proj"], minlength=n)
    starts = np.cumsum(counts) - counts
    reached_at, received_at, now = _pit_clock(
        _day_key(m["proj"], m["actual"]), _day_key(comp["proj"], comp["t"]), _day_key(proj, t)
    )
    probe = Probe.of(proj, now)
    reached = EventStream.build(m["proj"], reached_at, slip=m["slip"], failed=m["failed"]).at(probe)
    received = EventStream.build(comp["proj"], received_at, slow=comp["slow"]).at(probe)
    n_reached = reached.count().astype(np.int64)
    last_slip = np.where(n_reached > 0, reached.latest("slip"), 0.0)
    nxt = starts[proj] + np.minimum(n_reached, counts[proj] - 1)
    overrun = np.maximum(t - m["planned"][nxt], 0.0)  # the next milestone is overdue and not reached
    return {
        "delay": np.maximum(last_slip, overrun),
        "failed": reached.total("failed"),
        "complaints": received.count(),
        "slow": received.total("slow"),
    }


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


def _churn(rng: np.random.Generator, p: Cols, m: Cols, comp: Cols, surv: Cols, churn_window: int) -> Cols:
    """At handover the client decides whether to award another project within the churn window (new project
    columns: ``p_churn``, ``churned`` and the day of the next award, nan when there is none).

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
    p_churn = expit(logit)
    churned = rng.random(n) < p_churn
    # A loyal client awards again 1 to churn_window - 1 days (364 by default) after the handover.
    gap = 1 + np.minimum(np.floor(rng.gamma(1.3, 80.0, n)), max(churn_window - 2, 0))
    comeback = rng.random(n) < 0.1
    late_gap = churn_window + 35 + np.floor(rng.exponential(300.0, n))
    next_award = np.where(churned, np.where(comeback, p["actual_end"] + late_gap, np.nan), p["actual_end"] + gap)
    return {"p_churn": p_churn, "churned": churned, "next_award": next_award}


# ---------------------------------------------------------------------------------------------------------------
# Generations, chains, the whole simulation
# ---------------------------------------------------------------------------------------------------------------


def simulate_generation(
    rng: np.random.Generator,
    clients: Cols,
    client: np.ndarray,
    award: np.ndarray,
    prior: np.ndarray,
    *,
    churn_window: int,
    late_tolerance: float,
    shift: Shift | None = None,
    shift_rng: np.random.Generator | None = None,
) -> dict[str, Cols]:
    """One link of every client chain at once: projects, their milestones and events, and the churn decision.

    Returns ``p`` (projects), ``m`` (milestones), ``ins``, ``res``, ``comp`` and ``surv``. Each step adds new
    columns to copies; the order of the steps is the order of the random draws. A ``shift`` (``world.shift``)
    changes values, never the number or the order of those draws: what it draws comes from ``shift_rng``, after
    the generation's own, so every draw of the world is the one it would be without it. The clients' side
    (complaints, surveys, churn) is drawn from the world without the shift.
    """
    p = {**_draw_projects(rng, client, award, prior), **_client_traits(clients, client)}
    touched = None if shift is None else _touched(shift, shift_rng, p)
    if touched is not None and shift.kind == NEW_REGION:
        p = {**p, "region": np.where(touched, len(REGIONS), p["region"])}
    m = _plan_milestones(rng, p)
    m = {**m, **_simulate_schedule(rng, p, m, late_tolerance)}
    p = {**p, **_project_ends(m)}
    draws = _inspection_draws(rng, p, m)
    ins = _inspection_findings(p, m, draws, m["q"][draws["ms"]])
    m = {**m, **_acceptance(rng, m, ins)}
    res = _simulate_resources(rng, p, m, shift, touched)
    comp = _simulate_complaints(rng, p, m, ins)
    surv = _simulate_surveys(rng, p, m, comp)
    p = {**p, **_churn(rng, p, m, comp, surv, churn_window)}
    if touched is not None:
        ins, m = _worse_work(shift, shift_rng, p, m, draws, touched)
    elif shift is not None and shift.kind == MISSING_RESOURCES:
        res = _silenced(shift, shift_rng, len(p["award"]), res)
    return {"p": p, "m": m, "ins": ins, "res": res, "comp": comp, "surv": surv}


def _touched(shift: Shift, rng: np.random.Generator, p: Cols) -> np.ndarray | None:
    """The projects whose work from the shift's start is worse (``Shift.fall``), None when the shift lowers no
    quality: every project for ``workmanship``; for ``new-region``, a share (the size) of those awarded on or after
    the start, drawn from the shift's generator (one uniform a project), who are built in the new region."""
    if shift.kind == WORKMANSHIP:
        return np.ones(len(p["award"]), dtype=bool)
    if shift.kind == NEW_REGION:
        return (rng.random(len(p["award"])) < shift.amount) & (p["award"] >= shift.day)
    return None


def _worse_work(
    shift: Shift, rng: np.random.Generator, p: Cols, m: Cols, draws: Cols, touched: np.ndarray
) -> tuple[Cols, Cols]:
    """The inspections and first-pass acceptances as the worse work of the ``touched`` projects from the shift's
    start shows them.

    An inspection from the start sees quality lower by the shift's fall, and finds the defects drawn for it plus
    extra ones, Poisson with the difference of the means (the sum is Poisson with the mean of the worse quality:
    ``exp(0.6 fall)`` times the drawn one); its severity, result and closing follow from the same draws. A
    milestone's acceptance sees its segment's quality lower by the fall times the share of the segment after the
    start, the rework pressure that goes with it, and the inspections as they now are, and is decided by the same
    uniform as without the shift: a milestone before the start, or of a project not touched, is decided exactly as
    it was.
    """
    drop = shift.drop(draws["t"]) * touched[draws["proj"]]
    after = drop > 0
    extra = np.zeros(len(drop), dtype=np.int64)
    extra[after] = rng.poisson(draws["mean_defects"][after] * np.expm1(0.6 * drop[after]))
    ins = _inspection_findings(p, m, draws, m["q"][draws["ms"]] - drop, extra)
    share = shift.share_after(m["seg_start"], m["actual"]) * touched[m["proj"]]
    worse = share > 0
    q = m["q"] - shift.fall * share
    overtime = np.where(worse, expit(log_odds(m["overtime"]) + 0.3 * shift.fall * share), m["overtime"])
    chance = _failure_chance(m, ins, q, overtime)
    return ins, {**m, **chance, "failed": m["accept_draw"] < chance["p_fail"]}


def _silenced(shift: Shift, rng: np.random.Generator, n_projects: int, res: Cols) -> Cols:
    """The resource weeks without those a share of the projects (the shift's size) stop reporting from its start."""
    dark = rng.random(n_projects) < shift.amount
    keep = ~(dark[res["proj"]] & (res["week"] >= shift.day))
    return {col: values[keep] for col, values in res.items()}


def simulate_chains(
    rng: np.random.Generator,
    clients: Cols,
    first: int,
    end_day: float,
    *,
    churn_window: int,
    late_tolerance: float,
    shift: Shift | None = None,
    shift_rng: np.random.Generator | None = None,
) -> list[dict[str, Cols]]:
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
        gen = simulate_generation(
            rng,
            clients,
            client,
            award,
            prior,
            churn_window=churn_window,
            late_tolerance=late_tolerance,
            shift=shift,
            shift_rng=shift_rng,
        )
        out.append(gen)
        p = gen["p"]
        more = ~np.isnan(p["next_award"])
        client, award, prior = client[more], p["next_award"][more], prior[more] + 1
    return out


def concat_generations(gens: list[dict[str, Cols]]) -> dict[str, Cols]:
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


def simulate(
    n_projects: int,
    rng: np.random.Generator,
    start: str,
    *,
    churn_window: int,
    late_tolerance: float,
    shift: Shift | None = None,
    shift_rng: np.random.Generator | None = None,
) -> dict[str, Cols]:
    """Clients and their project chains until more than ``n_projects`` awards: every column of what happened.

    Clients arrive uniformly over ``HORIZON_DAYS`` from ``start`` (an ISO date); their chains are followed up to
    the horizon. If the first batch of clients awards too few projects, another batch is added. Returns the
    stacked generations (see :func:`simulate_generation`), nothing cut yet. A ``shift`` draws from ``shift_rng``.
    """
    if n_projects < 1:
        raise ValueError("n_projects must be at least 1")
    if shift is not None and shift_rng is None:
        raise ValueError("a shift needs its own random generator (world.shift.generator)")
    start_day = int(np.datetime64(start, "D").astype(np.int64))
    end_day = float(start_day + HORIZON_DAYS)
    clients: Cols = {"arrival": np.empty(0), "demanding": np.empty(0), "loyalty": np.empty(0)}
    gens: list[dict[str, Cols]] = []
    awarded = 0
    while awarded < n_projects:
        n_new = math.ceil(1.1 * (n_projects - awarded) / AWARDS_PER_CLIENT) + 5
        new = draw_clients(rng, n_new, start_day)
        first = len(clients["arrival"])
        clients = {k: np.concatenate([clients[k], new[k]]) for k in clients}
        gens += simulate_chains(
            rng,
            clients,
            first,
            end_day,
            churn_window=churn_window,
            late_tolerance=late_tolerance,
            shift=shift,
            shift_rng=shift_rng,
        )
        awarded = sum(len(g["p"]["award"]) for g in gens)
    return concat_generations(gens)
