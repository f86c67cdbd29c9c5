"""The quality-service KPIs of an EQSMS against their targets (settings, ``ReportSettings``): pure functions,
validated tables in, small DataFrames out. ``serving.kpi_report`` draws them; ``eqsms report`` runs both.

Every KPI is read from *items*, one row a fact it counts (a milestone, an inspection, a survey answer, a complaint, a
resource week), each with its project, the time that puts it in a quarter, and ``num`` / ``den``:

- a *ratio* KPI is ``sum(num) / sum(den)``: a rate (``num`` 0 or 1, ``den`` 1), a mean (NPS: ``num`` +100, 0 or -100),
  SPI (earned over planned value) and CPI (earned value over actual cost). Its gap splits exactly over projects:
  project p contributes ``(target * den_p - num_p) / sum(den)`` (the sign flipped where lower is better), and the
  contributions add up to ``target - value``;
- a *quantile* KPI (complaint response and resolution times, median and 90th percentile) reads ``num`` as the time;
  a project's part in its gap is the number of its complaints slower than the target.

Only facts known at ``as_of`` count (DESIGN.md's point-in-time rule, read as "on or before"): a milestone reached on
or before it, a resource week over by then, a complaint's response only if given by then. A KPI whose table or
column is absent, or empty at ``as_of``, is :class:`NotMeasurable` with the reason, never zero.

The forecast (:func:`forecast`) reads the champions' predictions for the open milestones planned in the next
quarter: the expected first-pass rate is the mean of ``1 - P(defect)``, its range the quantiles of the exact
Poisson-binomial distribution of the number accepted (likewise on-time from ``1 - P(late)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eqsms.settings import Settings

RATIO, MEDIAN, P90 = "ratio", "median", "p90"
SHARE, SCORE, HOURS, DAYS, INDEX, COUNT = "share", "score", "hours", "days", "index", "count"
UNKNOWN = "(unknown)"  # a project whose type or region is not given
ITEM_COLUMNS = ("project_id", "at", "num", "den")
BREAKDOWNS = ("project_type", "region", "quarter")


NO_TABLE, NO_ROWS, EMPTY_COLUMN, NONE_KNOWN = "no_table", "no_rows", "empty_column", "none_known"


class NotMeasurable(Exception):
    """A KPI the data cannot give, and why: ``code`` (no table, no rows, a column all empty, nothing known by the
    as-of date), the ``table`` and the ``column`` at fault. The report says it in words, in its language."""

    def __init__(self, code: str, table: str, column: str | None = None) -> None:
        super().__init__(f"{code}: {table}{'.' + column if column else ''}")
        self.code, self.table, self.column = code, table, column


@dataclass(frozen=True)
class KpiSpec:
    """One KPI: how it is aggregated, its unit, its target and which way is better."""

    key: str
    table: str  # where its facts come from
    aggregate: str  # RATIO, MEDIAN or P90
    unit: str  # SHARE, SCORE, HOURS, DAYS, INDEX, COUNT
    target: float
    higher_is_better: bool
    scale: float | None = None  # what a gap is measured against (default: the target)

    def shortfall(self, value: float) -> float:
        """How far ``value`` is behind the target, in the KPI's unit (0 when the target is met)."""
        if pd.isna(value):
            return float("nan")
        behind = self.target - value if self.higher_is_better else value - self.target
        return max(0.0, float(behind))

    def gap(self, value: float) -> float:
        """The shortfall as a share of the target (of ``scale`` where the target is no yardstick, as for NPS):
        what ranks the worst gaps first."""
        return self.shortfall(value) / abs(self.scale or self.target)


def kpi_specs(settings: Settings) -> dict[str, KpiSpec]:
    """Every KPI of the report with its target from settings, in the order the report defines them."""
    s = settings
    specs = (
        KpiSpec("first_pass", "milestones", RATIO, SHARE, s.first_pass_target, True),
        KpiSpec("on_time", "milestones", RATIO, SHARE, s.on_time_target, True),
        KpiSpec("csat", "surveys", RATIO, SHARE, s.csat_target, True),
        KpiSpec("nps", "surveys", RATIO, SCORE, s.nps_target, True, scale=100.0),
        KpiSpec("response_median", "complaints", MEDIAN, HOURS, s.response_median_target_hours, False),
        KpiSpec("response_p90", "complaints", P90, HOURS, s.response_p90_target_hours, False),
        KpiSpec("resolution_median", "complaints", MEDIAN, DAYS, s.resolution_median_target_days, False),
        KpiSpec("resolution_p90", "complaints", P90, DAYS, s.resolution_p90_target_days, False),
        KpiSpec("defects_per_inspection", "inspections", RATIO, COUNT, s.defects_per_inspection_target, False),
        KpiSpec("failed_inspections", "inspections", RATIO, SHARE, s.failed_inspection_target, False),
        KpiSpec("rework", "inspections", RATIO, SHARE, s.rework_target, False),
        KpiSpec("spi", "resources", RATIO, INDEX, s.spi_target, True),
        KpiSpec("cpi", "resources", RATIO, INDEX, s.cpi_target, True),
    )
    return {spec.key: spec for spec in specs}


# ------------------------------------------------------------------------------------------------------- items


def _need(tables: dict[str, pd.DataFrame], table: str, *columns: str) -> pd.DataFrame:
    """The table, or :class:`NotMeasurable` naming what is missing: no table, no rows, or a column all empty."""
    frame = tables.get(table)
    if frame is None:
        raise NotMeasurable(NO_TABLE, table)
    if frame.empty:
        raise NotMeasurable(NO_ROWS, table)
    for col in columns:
        if col not in frame.columns or frame[col].isna().all():
            raise NotMeasurable(EMPTY_COLUMN, table, col)
    return frame


def _items(project_id: pd.Series, at: pd.Series, num, den=1.0) -> pd.DataFrame:
    out = pd.DataFrame({"project_id": project_id, "at": at, "num": num, "den": den})
    return out.astype({"num": "float64", "den": "float64"}).reset_index(drop=True)


def _known(items: pd.DataFrame, table: str, column: str) -> pd.DataFrame:
    if items.empty:
        raise NotMeasurable(NONE_KNOWN, table, column)
    return items


def first_pass_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """One row a milestone reached by ``as_of`` with an acceptance result: 1 if accepted on first pass; quarter of
    its actual date."""
    m = _need(tables, "milestones", "actual_date", "first_pass_accepted")
    m = m[(m["actual_date"] <= as_of) & m["first_pass_accepted"].notna()]
    items = _items(m["project_id"], m["actual_date"], m["first_pass_accepted"].astype("float64"))
    return _known(items, "milestones", "first_pass_accepted")


def on_time_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, tolerance_days: float) -> pd.DataFrame:
    """One row a milestone due by ``as_of`` (planned date + tolerance passed): 1 if reached within the tolerance of
    its plan; one still open past it counts as late. Quarter of its planned date (the quarter it was due in)."""
    m = _need(tables, "milestones", "planned_date")
    tolerance = pd.Timedelta(days=tolerance_days)
    due = m[m["planned_date"] + tolerance < as_of]
    reached = due["actual_date"].notna() & (due["actual_date"] <= as_of)
    on_time = reached & (due["actual_date"] - due["planned_date"] <= tolerance)
    return _known(
        _items(due["project_id"], due["planned_date"], on_time.astype("float64")), "milestones", "planned_date"
    )


def _inspections(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, *columns: str) -> pd.DataFrame:
    i = _need(tables, "inspections", "inspected_at", *columns)
    return i[i["inspected_at"] <= as_of]


def defect_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """One row an inspection by ``as_of`` that records its defects: their number."""
    i = _inspections(tables, as_of, "defects_found")
    i = i[i["defects_found"].notna()]
    return _known(_items(i["project_id"], i["inspected_at"], i["defects_found"]), "inspections", "defects_found")


def failed_inspection_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """One row an inspection by ``as_of``: 1 if it failed."""
    i = _inspections(tables, as_of, "result")
    i = i[i["result"].notna()]
    return _known(
        _items(i["project_id"], i["inspected_at"], (i["result"] == "fail").astype("float64")), "inspections", "result"
    )


def rework_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """One row an inspection by ``as_of``: 1 if its work must be redone (failed, or passed on conditions)."""
    i = _inspections(tables, as_of, "result")
    i = i[i["result"].notna()]
    rework = i["result"].isin(["fail", "conditional"]).astype("float64")
    return _known(_items(i["project_id"], i["inspected_at"], rework), "inspections", "result")


def _surveys(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, column: str) -> pd.DataFrame:
    s = _need(tables, "surveys", "surveyed_at", column)
    return s[(s["surveyed_at"] <= as_of) & s[column].notna()]


def csat_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, satisfied_min: float) -> pd.DataFrame:
    """One row a survey answer with a csat score: 1 if satisfied (``csat >= satisfied_min``)."""
    s = _surveys(tables, as_of, "csat")
    satisfied = (s["csat"] >= satisfied_min).astype("float64")
    return _known(_items(s["project_id"], s["surveyed_at"], satisfied), "surveys", "csat")


def nps_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """One row a survey answer with a likelihood to recommend (0 to 10): +100 a promoter (9, 10), -100 a detractor
    (0 to 6), 0 a passive; their mean is the NPS."""
    s = _surveys(tables, as_of, "nps")
    score = np.select([s["nps"] >= 9, s["nps"] <= 6], [100.0, -100.0], 0.0)
    return _known(_items(s["project_id"], s["surveyed_at"], score), "surveys", "nps")


def _complaint_times(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, column: str, unit: str) -> pd.DataFrame:
    c = _need(tables, "complaints", "received_at", column)
    c = c[c[column].notna() & (c[column] <= as_of)]
    took = (c[column] - c["received_at"]) / pd.Timedelta(1, unit=unit)
    return _known(_items(c["project_id"], c["received_at"], took), "complaints", column)


def response_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """One row a complaint answered by ``as_of``: hours from receipt to first response; quarter of receipt."""
    return _complaint_times(tables, as_of, "first_response_at", "h")


def resolution_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """One row a complaint resolved by ``as_of``: days from receipt to resolution; quarter of receipt."""
    return _complaint_times(tables, as_of, "resolved_at", "D")


def _weeks(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, num: str, den: str) -> pd.DataFrame:
    """Resource weeks over by ``as_of`` (``week_start + 7 days``) with both values: their sums make the index."""
    r = _need(tables, "resources", "week_start", num, den)
    r = r[(r["week_start"] + pd.Timedelta(days=7) <= as_of) & r[num].notna() & r[den].notna()]
    return _known(_items(r["project_id"], r["week_start"], r[num], r[den]), "resources", num)


def spi_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    return _weeks(tables, as_of, "earned_value", "planned_value")


def cpi_items(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    return _weeks(tables, as_of, "earned_value", "actual_cost")


def kpi_items(key: str, tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings) -> pd.DataFrame:
    """The items of KPI ``key`` (see the module's docstring), or :class:`NotMeasurable`."""
    if key == "first_pass":
        return first_pass_items(tables, as_of)
    if key == "on_time":
        return on_time_items(tables, as_of, settings.late_tolerance_days)
    if key == "csat":
        return csat_items(tables, as_of, settings.csat_satisfied_min)
    builders = {
        "nps": nps_items,
        "response_median": response_items,
        "response_p90": response_items,
        "resolution_median": resolution_items,
        "resolution_p90": resolution_items,
        "defects_per_inspection": defect_items,
        "failed_inspections": failed_inspection_items,
        "rework": rework_items,
        "spi": spi_items,
        "cpi": cpi_items,
    }
    return builders[key](tables, as_of)


# ----------------------------------------------------------------------------------------------- aggregation


def value_of(items: pd.DataFrame, spec: KpiSpec) -> float:
    """The KPI over ``items``: ``sum(num) / sum(den)``, or the median or 90th percentile (linear) of ``num``."""
    if items.empty:
        return float("nan")
    if spec.aggregate == RATIO:
        den = items["den"].sum()
        return float(items["num"].sum() / den) if den else float("nan")
    return float(items["num"].quantile(0.5 if spec.aggregate == MEDIAN else 0.9))


def with_segments(items: pd.DataFrame, projects: pd.DataFrame) -> pd.DataFrame:
    """Items with their project's type and region (``(unknown)`` where not given) and their quarter (``2023Q4``)."""
    info = projects.set_index("project_id").reindex(items["project_id"])
    out = items.copy()
    for col in ("project_type", "region"):
        values = info[col].to_numpy() if col in info.columns else np.full(len(items), None)
        out[col] = pd.Series(values, index=items.index, dtype="object").where(pd.notna(values), UNKNOWN).astype(str)
    out["quarter"] = items["at"].dt.to_period("Q").astype(str)
    return out


def summarise(items: pd.DataFrame, spec: KpiSpec, by: str | None = None) -> pd.DataFrame:
    """The KPI overall (``by=None``: one row) or per segment (project type, region or quarter): ``segment``, ``n``
    (facts counted), ``value``, ``target``, ``shortfall`` (in the KPI's unit) and ``gap`` (relative); per segment
    the worst gap first (quarters in time order)."""
    groups = [("all", items)] if by is None else list(items.groupby(by, sort=True))
    rows = []
    for segment, part in groups:
        value = value_of(part, spec)
        rows.append(
            {
                "segment": str(segment),
                "n": len(part),
                "value": value,
                "target": spec.target,
                "shortfall": spec.shortfall(value),
                "gap": spec.gap(value),
            }
        )
    out = pd.DataFrame(rows, columns=["segment", "n", "value", "target", "shortfall", "gap"])
    if by not in (None, "quarter"):
        out = out.sort_values(["gap", "n"], ascending=[False, False], kind="stable").reset_index(drop=True)
    return out


def contributions(items: pd.DataFrame, spec: KpiSpec, top: int) -> pd.DataFrame:
    """The projects behind the gap, the largest part first: ``project_id``, ``n``, ``value`` (the project's own
    figure) and ``contribution``: for a ratio KPI the share of the overall gap, in the KPI's unit, that the project
    accounts for (they add up to the overall ``target - value``); for a time KPI the project's complaints slower
    than the target. Only projects that widen the gap are listed."""
    if spec.aggregate == RATIO:
        per = items.groupby("project_id", sort=True).agg(n=("num", "size"), num=("num", "sum"), den=("den", "sum"))
        per["value"] = per["num"] / per["den"].where(per["den"] != 0)
        part = (spec.target * per["den"] - per["num"]) / items["den"].sum()
        per["contribution"] = part if spec.higher_is_better else -part
    else:
        late = items["num"] > spec.target
        per = (
            items.assign(late=late)
            .groupby("project_id", sort=True)
            .agg(n=("num", "size"), contribution=("late", "sum"))
        )
        per["value"] = [value_of(group, spec) for _, group in items.groupby("project_id", sort=True)]
        per["contribution"] = per["contribution"].astype("float64")
    per = per[per["contribution"] > 0].sort_values("contribution", ascending=False, kind="stable")
    columns = ["project_id", "n", "value", "contribution"]
    segments = [col for col in ("project_type", "region") if col in items.columns]
    if segments:  # the project's type and region, as the items carry them
        per = per.join(items.groupby("project_id", sort=True)[segments].first())
    return per.reset_index()[columns[:1] + segments + columns[1:]].head(top)


# ------------------------------------------------------------------------------------------------------ report


@dataclass
class KpiResult:
    """One KPI as the report shows it: overall, per segment, the projects behind its gap; or why not measurable."""

    spec: KpiSpec
    overall: pd.DataFrame | None = None  # summarise(..., None): one row
    segments: dict[str, pd.DataFrame | None] = field(default_factory=dict)  # by -> summarise; None: not given
    projects: pd.DataFrame | None = None  # contributions
    not_measurable: NotMeasurable | None = None

    @property
    def measurable(self) -> bool:
        return self.not_measurable is None

    @property
    def value(self) -> float:
        return float(self.overall["value"].iloc[0]) if self.measurable else float("nan")

    @property
    def gap(self) -> float:
        return float(self.overall["gap"].iloc[0]) if self.measurable else float("nan")

    @property
    def n(self) -> int:
        return int(self.overall["n"].iloc[0]) if self.measurable else 0


def measure(key: str, tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings) -> KpiResult:
    """One KPI over the tables at ``as_of``: overall, by project type, region and quarter, and its projects."""
    spec = kpi_specs(settings)[key]
    try:
        items = kpi_items(key, tables, as_of, settings)
    except NotMeasurable as why:
        return KpiResult(spec, not_measurable=why)
    items = with_segments(items, tables["projects"])
    segments: dict[str, pd.DataFrame | None] = {}
    for by in BREAKDOWNS:
        given = by == "quarter" or (by in tables["projects"].columns and tables["projects"][by].notna().any())
        segments[by] = summarise(items, spec, by) if given else None
    return KpiResult(
        spec,
        overall=summarise(items, spec),
        segments=segments,
        projects=contributions(items, spec, settings.report_top_projects),
    )


def measure_all(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings) -> list[KpiResult]:
    """Every KPI, the worst gap first; KPIs that meet their target next, then those not measurable."""
    results = [measure(key, tables, as_of, settings) for key in kpi_specs(settings)]
    measurable = sorted((r for r in results if r.measurable), key=lambda r: -r.gap)
    return measurable + [r for r in results if not r.measurable]


# ---------------------------------------------------------------------------------------------------- forecast


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    """The exact distribution of the number of successes of independent trials with probabilities ``p``:
    ``out[k] = P(k successes)``, k = 0..len(p) (dynamic programming, one convolution step a trial)."""
    dist = np.zeros(len(p) + 1)
    dist[0] = 1.0
    for i, q in enumerate(np.asarray(p, dtype="float64"), start=1):
        dist[1 : i + 1] = dist[1 : i + 1] * (1 - q) + dist[:i] * q
        dist[0] *= 1 - q
    return dist


def rate_range(p: np.ndarray, coverage: float) -> tuple[float, float, float]:
    """The expected share of successes (``mean(p)``) and the central ``coverage`` range of the share, from the
    Poisson-binomial quantiles (the lower one the smallest k with ``P(S <= k) >= (1 - coverage) / 2``)."""
    n = len(p)
    cdf = np.cumsum(poisson_binomial(p))
    tail = (1 - coverage) / 2
    low = int(np.searchsorted(cdf, tail - 1e-12))
    high = int(np.searchsorted(cdf, 1 - tail - 1e-12))
    return float(np.mean(p)), low / n, min(high, n) / n


def predicted_vs_happened(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, logged: pd.DataFrame, coverage: float
) -> pd.DataFrame:
    """The first-pass KPI as the logged predictions said it would be, beside what happened, per quarter: each
    milestone reached by ``as_of`` with a recorded acceptance and a logged defect-risk prediction made before it was
    reached (the latest such one) counts; ``predicted`` is the mean of 1 - P(failure), with the central ``coverage``
    range of the share (:func:`rate_range`), ``happened`` the share accepted first pass. Empty when nothing was
    logged."""
    columns = ["quarter", "milestones", "predicted", "low", "high", "happened"]
    m = tables["milestones"]
    m = m[(m["actual_date"] <= as_of) & m["first_pass_accepted"].notna()][
        ["milestone_id", "actual_date", "first_pass_accepted"]
    ]
    ours = logged[(logged["model"] == "defect_risk") & logged["probability"].notna()]
    both = ours[["milestone_id", "as_of", "probability"]].merge(m, on="milestone_id")
    both = both[both["as_of"] < both["actual_date"]].sort_values("as_of").drop_duplicates("milestone_id", keep="last")
    rows = []
    for quarter, group in both.groupby(both["actual_date"].dt.to_period("Q")):
        expected, low, high = rate_range(1 - group["probability"].to_numpy(dtype="float64"), coverage)
        happened = float(group["first_pass_accepted"].astype(bool).mean())
        rows.append([str(quarter), len(group), expected, low, high, happened])
    return pd.DataFrame(rows, columns=columns)


def next_quarter(as_of: pd.Timestamp) -> pd.Period:
    """The calendar quarter after the one ``as_of`` lies in."""
    return pd.Timestamp(as_of).to_period("Q") + 1


def forecast_candidates(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """The milestones open at ``as_of`` and planned in the next quarter, of projects begun by then (the engine
    scores no project before its planned start); and how many such milestones were left out for that."""
    quarter = next_quarter(as_of)
    m = tables["milestones"]
    still_open = m["actual_date"].isna() | (m["actual_date"] > as_of)
    planned = m["planned_date"].dt.to_period("Q") == quarter
    m = m[still_open & planned]
    starts = tables["projects"].set_index("project_id")["planned_start"].reindex(m["project_id"]).to_numpy()
    begun = ~(pd.Series(starts, index=m.index) > as_of)  # no planned start: taken as begun
    return m[begun].reset_index(drop=True), int((~begun).sum())


NO_CHAMPIONS, SCORING_FAILED = "no_champions", "scoring_failed"


@dataclass(frozen=True)
class NoForecast:
    """Why the report has no forecast: no champion models in the store (``detail``: its URI), or the engine could
    not score (``detail``: its message)."""

    code: str
    detail: str


@dataclass
class Forecast:
    """The next quarter's expected first-pass and on-time rates from the champions' predictions, with ranges."""

    quarter: str
    milestones: int
    first_pass: tuple[float, float, float]  # expected, low, high
    on_time: tuple[float, float, float]
    coverage: float
    not_begun: int = 0  # milestones of projects not begun at as_of, left out
    riskiest: pd.DataFrame | None = None  # milestone_id, project_id, kind, planned_date, p_defect, p_late
    models: dict[str, str] = field(default_factory=dict)  # model name -> champion version


def forecast(predictions: pd.DataFrame, quarter: str, coverage: float, top: int, not_begun: int = 0) -> Forecast:
    """The forecast from one row a milestone with ``p_defect`` (P first pass fails) and ``p_late`` (P slip beyond
    the tolerance): first-pass success is ``1 - p_defect``, on time ``1 - p_late``. No milestone: no figures."""
    if predictions.empty:
        nothing = (float("nan"),) * 3
        return Forecast(quarter, 0, nothing, nothing, coverage, not_begun, predictions)
    accepted = 1 - predictions["p_defect"].to_numpy(dtype="float64")
    on_time = 1 - predictions["p_late"].to_numpy(dtype="float64")
    riskiest = predictions.sort_values("p_defect", ascending=False, kind="stable").head(top).reset_index(drop=True)
    return Forecast(
        quarter=quarter,
        milestones=len(predictions),
        first_pass=rate_range(accepted, coverage),
        on_time=rate_range(on_time, coverage),
        coverage=coverage,
        not_begun=not_begun,
        riskiest=riskiest,
    )
