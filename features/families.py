"""Feature families: one function each, ``(context, rows) -> DataFrame`` aligned with ``rows``.

``rows`` has one line a prediction: ``project_id`` and ``as_of`` (and, for milestone targets, the milestone's
``kind``, ``sequence`` and ``planned_date``). The context holds the validated tables turned into event streams once,
so that training (thousands of historical rows) and serving (a project's open milestones now) call the very same
functions. Every fact enters through an :class:`~features.pit.EventStream` at the time it became known, which is
what keeps each family inside the point-in-time rule of DESIGN.md.

Each family declares the features it computes (``@declares``, :mod:`features.registry`): name, unit, driver text,
department, monotone direction per target, categorical and plan flags. :func:`compute_columns` checks that a family
computes exactly the columns it declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eqsms.settings import Settings
from features.pit import SECONDS_PER_DAY, Cursor, EventStream, Probe, ratio, to_seconds
from features.registry import (
    COST,
    CUSTOMER,
    PLANNING,
    QUALITY,
    SAFETY,
    TECHNICAL,
    Feature,
    categorical_features,
    declared_names,
    declares,
)

Columns = dict[str, np.ndarray]  # feature name -> one value per row
_WEEK = 7 * SECONDS_PER_DAY


@dataclass(frozen=True)
class Context:
    """The validated tables as event streams, built once and queried for any rows at any ``as_of``."""

    settings: Settings
    tables: dict[str, pd.DataFrame]  # the validated tables it was built from
    projects: pd.DataFrame  # indexed by project_id
    project_code: pd.Index  # project_id -> int code
    client_of_project: np.ndarray  # client code per project code (-1 without a client)
    kind_code: pd.Index  # milestone kind -> int code (kinds of the milestones table)
    streams: dict[str, EventStream]
    memo: dict = field(default_factory=dict, repr=False)  # results shared by several datasets

    @classmethod
    def build(cls, tables: dict[str, pd.DataFrame], settings: Settings) -> Context:
        projects = tables["projects"].set_index("project_id", drop=False)
        project_code = pd.Index(projects.index)
        client_code = _codes(projects["client_id"])
        kind_code = pd.Index(tables["milestones"]["kind"].dropna().unique())
        ctx = cls(settings, tables, projects, project_code, client_code, kind_code, {}, {})
        ctx.streams.update(_build_streams(ctx, tables))
        return ctx

    @property
    def project_arrays(self) -> dict[str, np.ndarray]:
        """The projects' columns as arrays by project code (times in seconds): indexing them is cheap per request."""
        if "project_arrays" not in self.memo:
            p = self.projects
            arrays = {c: to_seconds(p[c]) for c in ("planned_start", "planned_end", "awarded_on")}
            arrays.update({c: p[c].to_numpy(dtype=object) for c in ("project_type", "region")})
            arrays["contract_value"] = p["contract_value"].to_numpy(dtype="float64")
            self.memo["project_arrays"] = arrays
        return self.memo["project_arrays"]

    def code(self, project_ids: pd.Series) -> np.ndarray:
        """Integer code of each project id (-1 if unknown)."""
        return self._index_in(project_ids, "project", self.project_code)

    def kind(self, kinds: pd.Series) -> np.ndarray:
        """Integer code of each milestone kind (-1 for a kind no milestone of the tables has)."""
        return self._index_in(kinds, "kind", self.kind_code)

    def _index_in(self, values: pd.Series, name: str, index: pd.Index) -> np.ndarray:
        """Position of each value in ``index`` (-1 if absent): Arrow's hash lookup, 3x pandas' here and cheap
        enough per request once the value set is built (memoised)."""
        key = f"{name}_values"
        if key not in self.memo:
            self.memo[key] = pa.array(index, type=pa.string())
        found = pc.index_in(pa.array(values, type=pa.string()), value_set=self.memo[key])
        return found.fill_null(-1).to_numpy().astype("int64")

    def client(self, project_codes: np.ndarray) -> np.ndarray:
        return np.where(project_codes >= 0, self.client_of_project[np.maximum(project_codes, 0)], -1)


def _codes(values: pd.Series) -> np.ndarray:
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return codes.astype("int64")


def _build_streams(ctx: Context, t: dict[str, pd.DataFrame]) -> dict[str, EventStream]:
    """Each fact at the time it became known (DESIGN.md, point-in-time rule)."""
    insp, res, comp, surv, ms = (t[n] for n in ("inspections", "resources", "complaints", "surveys", "milestones"))
    p = ctx.projects
    ip, cp, sp, mp = (ctx.code(df["project_id"]) for df in (insp, comp, surv, ms))
    opened, closed = to_seconds(insp["inspected_at"]), to_seconds(insp["closed_at"])
    defects = insp["defects_found"].to_numpy(dtype="float64")
    safety = insp["discipline"].eq("safety").fillna(False) if "discipline" in insp else pd.Series(False, insp.index)
    received = to_seconds(comp["received_at"])
    responded, resolved = to_seconds(comp["first_response_at"]), to_seconds(comp["resolved_at"])
    done = to_seconds(ms["actual_date"])
    slip = (done - to_seconds(ms["planned_date"])) / SECONDS_PER_DAY
    accepted = ms["first_pass_accepted"]
    outcome = {
        "slip": slip,
        "failed": (accepted == False).to_numpy(dtype="float64", na_value=0.0),  # noqa: E712
        "judged": accepted.notna().to_numpy(dtype="float64"),
    }
    pcode = np.arange(len(p))
    awarded, ended = to_seconds(p["awarded_on"]), to_seconds(p["actual_end"])
    return {
        "inspection": EventStream.build(
            ip,
            opened,
            fail=(insp["result"] == "fail").to_numpy(dtype="float64", na_value=0.0),
            conditional=(insp["result"] == "conditional").to_numpy(dtype="float64", na_value=0.0),
            defects=defects,
            severe=(insp["max_severity"] >= 2).to_numpy(dtype="float64", na_value=0.0),
            severity=insp["max_severity"].to_numpy(dtype="float64"),
            safety_fail=(safety & (insp["result"] == "fail")).to_numpy(dtype="float64", na_value=0.0),
            safety_defects=np.where(safety, defects, 0.0),
        ),
        # A defect closed later is still open at as_of: closures are a stream of their own.
        "inspection_closed": EventStream.build(
            ip,
            closed,
            defects=defects,
            days_to_close=(closed - opened) / SECONDS_PER_DAY,
            safety_defects=np.where(safety, defects, 0.0),
        ),
        "inspection_fail": EventStream.build(ip, np.where(insp["result"] == "fail", opened, np.nan)),
        # A resource week is known once it is over: week_start + 7 days <= as_of.
        "resource": EventStream.build(
            ctx.code(res["project_id"]),
            to_seconds(res["week_start"]) + _WEEK - 1,
            **{c: res[c].to_numpy(dtype="float64") for c in _RESOURCE_COLUMNS},
        ),
        "complaint": EventStream.build(cp, received, severity=comp["severity"].to_numpy(dtype="float64")),
        "complaint_response": EventStream.build(cp, responded, hours=(responded - received) / 3600),
        # Whether a complaint was escalated carries no time of its own: it is taken as known once it is resolved.
        "complaint_resolved": EventStream.build(
            cp, resolved, escalated=comp["escalated"].to_numpy(dtype="float64", na_value=np.nan)
        ),
        "survey": EventStream.build(
            sp,
            to_seconds(surv["surveyed_at"]),
            csat=surv["csat"].to_numpy(dtype="float64"),
            nps=surv["nps"].to_numpy(dtype="float64"),
            csat_answered=surv["csat"].notna().to_numpy(dtype="float64"),
            nps_answered=surv["nps"].notna().to_numpy(dtype="float64"),
        ),
        # A milestone's actual date and acceptance are known once it is reached.
        "milestone_done": EventStream.build(mp, done, **outcome),
        # The same facts grouped by milestone kind across the firm: how this kind of milestone has gone so far.
        "kind_done": EventStream.build(ctx.kind(ms["kind"]), done, failed=outcome["failed"], judged=outcome["judged"]),
        # The baseline plan is known from the start.
        "milestone_planned": EventStream.build(mp, to_seconds(ms["planned_date"])),
        "client_award": EventStream.build(ctx.client(pcode), awarded),
        "client_handover": EventStream.build(
            ctx.client(pcode), ended, delay=(ended - to_seconds(p["planned_end"])) / SECONDS_PER_DAY
        ),
        "client_complaint": EventStream.build(ctx.client(cp), received),
    }


_RESOURCE_COLUMNS = (
    "labour_planned_hours",
    "labour_actual_hours",
    "overtime_hours",
    "equipment_downtime_hours",
    "deliveries_planned",
    "deliveries_late",
    "planned_value",
    "earned_value",
    "actual_cost",
)


class Query:
    """The rows a family is asked about, and a cursor into each stream, searched once and shared by families."""

    def __init__(self, ctx: Context, rows: pd.DataFrame) -> None:
        # Serving passes the codes it looked up once per request (``project_code``); anyone else passes ids.
        project = rows["project_code"].to_numpy() if "project_code" in rows else ctx.code(rows["project_id"])
        if (project < 0).any():
            unknown = rows["project_id"][project < 0].unique()[:5].tolist()
            raise KeyError(f"unknown project_id: {unknown}")
        self.ctx = ctx
        self.project = project
        self.client = ctx.client(project)  # -1 where the project has no client
        self.t = to_seconds(rows["as_of"])  # as_of in seconds
        self.rows = rows
        self._probes = {"project": Probe.of(self.project, self.t), "client": Probe.of(self.client, self.t)}
        self._cursors: dict[str, Cursor] = {}

    def at(self, stream: str) -> Cursor:
        """The rows' cursor into a stream; ``client_*`` streams are grouped by client, ``kind_*`` streams by
        milestone kind (milestone rows only), the others by project."""
        if stream not in self._cursors:
            group = stream.split("_", 1)[0] if stream.startswith(("client_", "kind_")) else "project"
            if group not in self._probes:  # kind: only milestone rows have one
                self._probes[group] = Probe.of(self.ctx.kind(self.rows["kind"]), self.t)
            self._cursors[stream] = self.ctx.streams[stream].at(self._probes[group])
        return self._cursors[stream]


@declares(
    Feature("project_type", "category", "project type: {v}", PLANNING, categorical=True),
    Feature("region", "category", "region: {v}", PLANNING, categorical=True),
    Feature("contract_value", "money", "contract value {v:,.0f}", PLANNING),
    Feature("planned_duration_days", "days", "planned duration {v:.0f} days", PLANNING),
    Feature("days_since_start", "days", "{v:.0f} days since the planned start", PLANNING),
    Feature("elapsed_share", "share", "{v:.0%} of the planned duration elapsed", PLANNING),
    Feature(
        "days_past_planned_end",
        "days",
        "{v:.0f} days past the planned end",
        PLANNING,
        negative_text="{v:.0f} days left to the planned end",
    ),
    Feature("days_since_award", "days", "{v:.0f} days since the award", PLANNING),
)
def project_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """Project facts and progress: type, region, size, how far through its planned duration it is."""
    p = {name: values[q.project] for name, values in ctx.project_arrays.items()}
    start, end, awarded = p["planned_start"], p["planned_end"], p["awarded_on"]
    duration = (end - start) / SECONDS_PER_DAY
    since_start = (q.t - start) / SECONDS_PER_DAY
    return {
        "project_type": p["project_type"],
        "region": p["region"],
        "contract_value": p["contract_value"],
        "planned_duration_days": duration,
        "days_since_start": since_start,
        "elapsed_share": ratio(since_start, duration),
        "days_past_planned_end": (q.t - end) / SECONDS_PER_DAY,  # < 0 while the plan still has time
        "days_since_award": np.where(awarded < q.t, (q.t - awarded) / SECONDS_PER_DAY, np.nan),
    }


@declares(
    Feature("milestone_kind", "category", "milestone kind: {v}", TECHNICAL, categorical=True),
    Feature("milestone_sequence", "ordinal", "milestone number {v:.0f} in the plan", TECHNICAL),
    Feature("milestones_in_plan", "count", "{v:.0f} milestones in the plan", TECHNICAL, plan=True),
    Feature("milestone_share", "share", "{v:.0%} of the way through the milestone plan", TECHNICAL, plan=True),
    Feature(
        "days_to_milestone",
        "days",
        "{v:.0f} days to the planned milestone date",
        PLANNING,
        negative_text="{v:.0f} days overdue",
    ),
)
def milestone_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """The milestone itself: its kind, its place in the plan and how far ahead of it we are."""
    total = q.at("milestone_planned").group_size()
    sequence = rows["sequence"].to_numpy(dtype="float64")
    return {
        "milestone_kind": rows["kind"].to_numpy(dtype=object),
        "milestone_sequence": sequence,
        "milestones_in_plan": total,
        "milestone_share": ratio(sequence, total),
        "days_to_milestone": (to_seconds(rows["planned_date"]) - q.t) / SECONDS_PER_DAY,
    }


_DEFECT_UP = {"defect_risk": +1}  # more of it never lowers first-pass failure risk


@declares(
    Feature("inspections_{short}d", "count", "{v:.0f} inspections in the last {short} days", QUALITY),
    Feature(
        "inspections_failed_{short}d",
        "count",
        "{v:.0f} failed inspections in the last {short} days",
        QUALITY,
        monotone=_DEFECT_UP,
    ),
    Feature(
        "inspection_fail_rate_{short}d", "share", "{v:.0%} of inspections failed in the last {short} days", QUALITY
    ),
    Feature("inspections_{long}d", "count", "{v:.0f} inspections in the last {long} days", QUALITY),
    Feature(
        "inspections_failed_{long}d",
        "count",
        "{v:.0f} failed inspections in the last {long} days",
        QUALITY,
        monotone=_DEFECT_UP,
    ),
    Feature("inspection_fail_rate_{long}d", "share", "{v:.0%} of inspections failed in the last {long} days", QUALITY),
    Feature("inspections_to_date", "count", "{v:.0f} inspections to date", QUALITY),
    Feature("inspections_failed_to_date", "count", "{v:.0f} failed inspections to date", QUALITY, monotone=_DEFECT_UP),
    Feature("inspection_fail_rate_to_date", "share", "{v:.0%} of inspections failed to date", QUALITY),
    Feature(
        "inspection_conditional_rate_{long}d",
        "share",
        "{v:.0%} of inspections passed with conditions in {long} days",
        QUALITY,
    ),
    Feature("defects_found_{short}d", "count", "{v:.0f} defects found in the last {short} days", QUALITY),
    Feature(
        "severe_findings_{short}d",
        "count",
        "{v:.0f} major or critical findings in the last {short} days",
        QUALITY,
        monotone=_DEFECT_UP,
    ),
    Feature("defects_found_{long}d", "count", "{v:.0f} defects found in the last {long} days", QUALITY),
    Feature(
        "severe_findings_{long}d",
        "count",
        "{v:.0f} major or critical findings in the last {long} days",
        QUALITY,
        monotone=_DEFECT_UP,
    ),
    Feature("defects_open", "count", "open defects: {v:.0f}", QUALITY, monotone=_DEFECT_UP, actionable=True),
    Feature("inspections_open", "count", "{v:.0f} inspections with findings not closed", QUALITY, actionable=True),
    Feature("max_severity_to_date", "score", "worst finding severity so far: {v:.0f} of 3", QUALITY),
    Feature("days_to_close_mean", "days", "defects take {v:.1f} days to close on average", QUALITY, actionable=True),
    Feature("days_since_failed_inspection", "days", "{v:.0f} days since the last failed inspection", QUALITY),
    Feature(
        "safety_inspections_failed_{long}d",
        "count",
        "{v:.0f} failed safety inspections in the last {long} days",
        SAFETY,
    ),
    Feature("safety_findings_open", "count", "{v:.0f} safety findings not closed", SAFETY, actionable=True),
)
def inspection_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """Inspections: counts and fail rates over 30 and 90 days and to date, open defects, severity, closing speed;
    the safety inspections' failures and open findings (the safety department's)."""
    found, closed = q.at("inspection"), q.at("inspection_closed")
    short, long = ctx.settings.short_window_days, ctx.settings.long_window_days
    out: dict[str, np.ndarray] = {}
    for label, days in ((f"{short}d", short), (f"{long}d", long), ("to_date", None)):
        n, fails = found.count(days), found.total("fail", days)
        out[f"inspections_{label}"] = n
        out[f"inspections_failed_{label}"] = fails
        out[f"inspection_fail_rate_{label}"] = ratio(fails, n)
    out[f"inspection_conditional_rate_{long}d"] = ratio(found.total("conditional", long), out[f"inspections_{long}d"])
    for days in (short, long):
        out[f"defects_found_{days}d"] = found.total("defects", days)
        out[f"severe_findings_{days}d"] = found.total("severe", days)
    out["defects_open"] = found.total("defects") - closed.total("defects")
    out["inspections_open"] = found.count() - closed.count()
    out["max_severity_to_date"] = found.running_max("severity")
    out["days_to_close_mean"] = ratio(closed.total("days_to_close"), closed.count())
    out["days_since_failed_inspection"] = (q.t - q.at("inspection_fail").latest_time()) / SECONDS_PER_DAY
    out[f"safety_inspections_failed_{long}d"] = found.total("safety_fail", long)
    out["safety_findings_open"] = found.total("safety_defects") - closed.total("safety_defects")
    return out


_SLIP_DOWN = {"delay": -1}  # a lower SPI never lowers the expected slip


@declares(
    Feature("resource_weeks_reported", "count", "{v:.0f} weeks of resource reports", COST),
    Feature("labour_hours_ratio_to_date", "ratio", "labour hours at {v:.0%} of plan to date", COST),
    Feature("overtime_share_to_date", "share", "overtime {v:.0%} of hours to date", COST),
    Feature("late_delivery_share_to_date", "share", "{v:.0%} of deliveries late to date", COST),
    Feature("spi_to_date", "index", "schedule performance index (SPI) {v:.2f} to date", COST, monotone=_SLIP_DOWN),
    Feature("cpi_to_date", "index", "cost performance index (CPI) {v:.2f} to date", COST),
    Feature("downtime_hours_to_date", "hours", "{v:.0f} hours of equipment downtime to date", COST),
    Feature(
        "labour_hours_ratio_recent", "ratio", "labour hours at {v:.0%} of plan in recent weeks", COST, actionable=True
    ),
    Feature("overtime_share_recent", "share", "overtime {v:.0%} of hours in recent weeks", COST, actionable=True),
    Feature("late_delivery_share_recent", "share", "{v:.0%} of deliveries late in recent weeks", COST, actionable=True),
    Feature(
        "spi_recent", "index", "schedule performance index (SPI) {v:.2f} in recent weeks", COST, monotone=_SLIP_DOWN
    ),
    Feature("cpi_recent", "index", "cost performance index (CPI) {v:.2f} in recent weeks", COST),
    Feature(
        "downtime_hours_recent", "hours", "{v:.0f} hours of equipment downtime in recent weeks", COST, actionable=True
    ),
)
def resource_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """Resources and earned value: productivity, overtime, late deliveries, SPI and CPI, downtime."""
    weeks = q.at("resource")
    out: dict[str, np.ndarray] = {"resource_weeks_reported": weeks.count()}
    for label, days in (("to_date", None), ("recent", ctx.settings.recent_weeks * 7)):

        def tot(name: str, days: float | None = days) -> np.ndarray:
            return weeks.total(name, days)

        out[f"labour_hours_ratio_{label}"] = ratio(tot("labour_actual_hours"), tot("labour_planned_hours"))
        out[f"overtime_share_{label}"] = ratio(tot("overtime_hours"), tot("labour_actual_hours"))
        out[f"late_delivery_share_{label}"] = ratio(tot("deliveries_late"), tot("deliveries_planned"))
        out[f"spi_{label}"] = ratio(tot("earned_value"), tot("planned_value"))
        out[f"cpi_{label}"] = ratio(tot("earned_value"), tot("actual_cost"))
        out[f"downtime_hours_{label}"] = tot("equipment_downtime_hours")
    return out


_CHURN_UP = {"churn": +1}  # slower or missing answers never lower churn risk


@declares(
    Feature("complaints_{short}d", "count", "{v:.0f} client complaints in the last {short} days", CUSTOMER),
    Feature("complaints_{long}d", "count", "{v:.0f} client complaints in the last {long} days", CUSTOMER),
    Feature("complaints_to_date", "count", "{v:.0f} client complaints to date", CUSTOMER),
    Feature("complaints_open", "count", "{v:.0f} complaints not resolved", CUSTOMER, actionable=True),
    Feature(
        "complaints_unanswered",
        "count",
        "{v:.0f} complaints without a first response",
        CUSTOMER,
        monotone=_CHURN_UP,
        actionable=True,
    ),
    Feature("complaint_severity_mean", "score", "mean complaint severity {v:.1f} of 3", CUSTOMER),
    Feature(
        "complaint_response_hours_mean",
        "hours",
        "complaints answered in {v:.0f} hours on average",
        CUSTOMER,
        monotone=_CHURN_UP,
        actionable=True,
    ),
    Feature("complaints_escalated", "count", "{v:.0f} complaints escalated", CUSTOMER),
)
def complaint_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """Complaints: how many, how many still open or unanswered, how fast they are answered, escalations."""
    received, answered, resolved = q.at("complaint"), q.at("complaint_response"), q.at("complaint_resolved")
    short, long = ctx.settings.short_window_days, ctx.settings.long_window_days
    n = received.count()
    return {
        f"complaints_{short}d": received.count(short),
        f"complaints_{long}d": received.count(long),
        "complaints_to_date": n,
        "complaints_open": n - resolved.count(),
        "complaints_unanswered": n - answered.count(),
        "complaint_severity_mean": ratio(received.total("severity"), n),
        "complaint_response_hours_mean": ratio(answered.total("hours"), answered.count()),
        "complaints_escalated": resolved.total("escalated"),
    }


@declares(
    Feature("surveys_to_date", "count", "{v:.0f} satisfaction surveys", CUSTOMER),
    Feature("csat_latest", "score", "latest CSAT {v:.1f} of 5", CUSTOMER),
    Feature("csat_trend", "score", "CSAT changed by {v:+.1f} since the survey before", CUSTOMER),
    Feature("csat_mean", "score", "mean CSAT {v:.1f} of 5 so far", CUSTOMER),
    Feature("nps_latest", "score", "latest likelihood to recommend {v:.0f} of 10", CUSTOMER),
    Feature("nps_trend", "score", "likelihood to recommend changed by {v:+.0f} since the survey before", CUSTOMER),
    Feature("nps_mean", "score", "mean likelihood to recommend {v:.1f} of 10 so far", CUSTOMER),
)
def survey_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """Client surveys: latest CSAT and NPS, their trend since the survey before, and their mean so far."""
    surveys = q.at("survey")
    out: dict[str, np.ndarray] = {"surveys_to_date": surveys.count()}
    for score in ("csat", "nps"):
        latest = surveys.latest(score)
        out[f"{score}_latest"] = latest
        out[f"{score}_trend"] = latest - surveys.latest(score, back=1)
        out[f"{score}_mean"] = ratio(surveys.total(score), surveys.total(f"{score}_answered"))
    return out


@declares(
    Feature("milestones_done", "count", "{v:.0f} milestones reached", TECHNICAL),
    Feature("milestones_behind_plan", "count", "{v:.0f} milestones behind plan", TECHNICAL),
    Feature("prior_slip_mean_days", "days", "earlier milestones slipped {v:.0f} days on average", TECHNICAL),
    Feature("prior_slip_last_days", "days", "the last milestone slipped {v:.0f} days", TECHNICAL),
    Feature("prior_first_pass_failures", "count", "{v:.0f} earlier milestones failed first-pass acceptance", QUALITY),
    Feature(
        "prior_first_pass_fail_rate", "share", "{v:.0%} of earlier milestones failed first-pass acceptance", QUALITY
    ),
)
def milestone_history_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """This project's earlier milestones known at as_of: their slips and first-pass results."""
    done = q.at("milestone_done")
    n_done, failed = done.count(), done.total("failed")
    return {
        "milestones_done": n_done,
        "milestones_behind_plan": q.at("milestone_planned").count() - n_done,
        "prior_slip_mean_days": ratio(done.total("slip"), n_done),
        "prior_slip_last_days": done.latest("slip"),
        "prior_first_pass_failures": failed,
        "prior_first_pass_fail_rate": ratio(failed, done.total("judged")),
    }


@declares(
    Feature(
        "firm_kind_first_pass_fail_rate",
        "share",
        "{v:.0%} of this kind of milestone failed first-pass acceptance firm-wide",
        QUALITY,
    ),
)
def kind_history_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """How this kind of milestone has fared across the firm so far (every project's milestones of the kind whose
    acceptance was known before as_of): what carries to a project with little history of its own.

    Only the first-pass failure rate: the firm's mean slip per kind added nothing on the generated world and made
    the NYC backtest worse (its old labelled phases are the long-running survivors), and the count of milestones
    of the kind is mostly a clock (NOTES.md, issue 5).
    """
    done = q.at("kind_done")
    return {"firm_kind_first_pass_fail_rate": ratio(done.total("failed"), done.total("judged"))}


@declares(
    Feature("client_projects_awarded", "count", "the client has awarded {v:.0f} projects", CUSTOMER),
    Feature("client_projects_completed", "count", "{v:.0f} of the client's projects handed over", CUSTOMER),
    Feature(
        "client_delay_mean_days",
        "days",
        "the client's earlier projects finished {v:.0f} days late on average",
        CUSTOMER,
    ),
    Feature("client_complaints_to_date", "count", "{v:.0f} complaints from this client across projects", CUSTOMER),
    Feature("client_tenure_days", "days", "client for {v:.0f} days", CUSTOMER),
)
def client_features(ctx: Context, rows: pd.DataFrame, q: Query) -> Columns:
    """The client's history with the firm: projects awarded and handed over, their delays, complaints."""
    award, handover = q.at("client_award"), q.at("client_handover")
    has_client = q.client >= 0
    completed = handover.count()
    return {
        "client_projects_awarded": np.where(has_client, award.count(), np.nan),
        "client_projects_completed": np.where(has_client, completed, np.nan),
        "client_delay_mean_days": ratio(handover.total("delay"), completed),
        "client_complaints_to_date": np.where(has_client, q.at("client_complaint").count(), np.nan),
        "client_tenure_days": (q.t - award.first_time()) / SECONDS_PER_DAY,
    }


Family = Callable[[Context, pd.DataFrame, Query], Columns]
PROJECT_FAMILIES: tuple[Family, ...] = (
    project_features,
    inspection_features,
    resource_features,
    complaint_features,
    survey_features,
    milestone_history_features,
    client_features,
)
# The families of a milestone row that depend on more than its project and as_of (serving shares the rest).
MILESTONE_OWN_FAMILIES: tuple[Family, ...] = (milestone_features, kind_history_features)
MILESTONE_FAMILIES: tuple[Family, ...] = (*MILESTONE_OWN_FAMILIES, *PROJECT_FAMILIES)


def compute_columns(ctx: Context, rows: pd.DataFrame, families: tuple[Family, ...]) -> Columns:
    """All features of ``rows`` (which need project_id and as_of) as arrays: what serving scores directly.

    Each family must compute exactly the features it declares, in the declared order (an error otherwise).
    """
    q = Query(ctx, rows)
    out: Columns = {}
    for family in families:
        columns = family(ctx, rows, q)
        declared = declared_names(family, ctx.settings)
        if tuple(columns) != declared:
            undeclared = [c for c in columns if c not in declared]
            missing = [c for c in declared if c not in columns]
            raise RuntimeError(
                f"{family.__name__} computes what it does not declare (@declares, features.registry): "
                f"undeclared {undeclared}, declared but not computed {missing}"
                + ("" if undeclared or missing else ", or in another order")
            )
        out.update(columns)
    return out


def compute(ctx: Context, rows: pd.DataFrame, families: tuple[Family, ...]) -> pd.DataFrame:
    """All features of ``rows`` as a frame aligned with them, categoricals as pandas categories."""
    frame = pd.DataFrame(compute_columns(ctx, rows, families), index=rows.index)
    for col in categorical_features(ctx.settings, families):
        if col in frame:
            frame[col] = frame[col].astype("category")
    return frame
