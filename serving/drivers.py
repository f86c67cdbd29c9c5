"""Drivers in a planner's words: each feature's SHAP contribution, told with its value and the department that owns it.

Departments follow how an EQSMS divides responsibility (DESIGN.md): quality for inspections and defects, technical
for design and milestone history, cost for resources and earned value, customer service for complaints and surveys,
and the project office for the plan itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

QUALITY, TECHNICAL, COST, CUSTOMER, PLANNING = "quality", "technical", "cost", "customer service", "project office"

# feature -> (words with {v} for the value, department)
TEXT: dict[str, tuple[str, str]] = {
    "project_type": ("project type: {v}", PLANNING),
    "region": ("region: {v}", PLANNING),
    "contract_value": ("contract value {v:,.0f}", PLANNING),
    "planned_duration_days": ("planned duration {v:.0f} days", PLANNING),
    "days_since_start": ("{v:.0f} days since the planned start", PLANNING),
    "elapsed_share": ("{v:.0%} of the planned duration elapsed", PLANNING),
    "days_past_planned_end": ("{v:.0f} days past the planned end (negative: still ahead)", PLANNING),
    "days_since_award": ("{v:.0f} days since the award", PLANNING),
    "milestone_kind": ("milestone kind: {v}", TECHNICAL),
    "milestone_sequence": ("milestone number {v:.0f} in the plan", TECHNICAL),
    "milestones_in_plan": ("{v:.0f} milestones in the plan", TECHNICAL),
    "milestone_share": ("{v:.0%} of the way through the milestone plan", TECHNICAL),
    "days_to_milestone": ("{v:.0f} days to the planned milestone date", PLANNING),
    "firm_kind_first_pass_fail_rate": (
        "{v:.0%} of this kind of milestone failed first-pass acceptance firm-wide",
        QUALITY,
    ),
    "inspections_30d": ("{v:.0f} inspections in the last 30 days", QUALITY),
    "inspections_failed_30d": ("{v:.0f} failed inspections in the last 30 days", QUALITY),
    "inspection_fail_rate_30d": ("{v:.0%} of inspections failed in the last 30 days", QUALITY),
    "inspections_90d": ("{v:.0f} inspections in the last 90 days", QUALITY),
    "inspections_failed_90d": ("{v:.0f} failed inspections in the last 90 days", QUALITY),
    "inspection_fail_rate_90d": ("{v:.0%} of inspections failed in the last 90 days", QUALITY),
    "inspections_to_date": ("{v:.0f} inspections to date", QUALITY),
    "inspections_failed_to_date": ("{v:.0f} failed inspections to date", QUALITY),
    "inspection_fail_rate_to_date": ("{v:.0%} of inspections failed to date", QUALITY),
    "inspection_conditional_rate_90d": ("{v:.0%} of inspections passed with conditions in 90 days", QUALITY),
    "defects_found_30d": ("{v:.0f} defects found in the last 30 days", QUALITY),
    "defects_found_90d": ("{v:.0f} defects found in the last 90 days", QUALITY),
    "severe_findings_30d": ("{v:.0f} major or critical findings in the last 30 days", QUALITY),
    "defects_open": ("open defects: {v:.0f}", QUALITY),
    "inspections_open": ("{v:.0f} inspections with findings not closed", QUALITY),
    "severe_findings_90d": ("{v:.0f} major or critical findings in the last 90 days", QUALITY),
    "max_severity_to_date": ("worst finding severity so far: {v:.0f} of 3", QUALITY),
    "days_to_close_mean": ("defects take {v:.1f} days to close on average", QUALITY),
    "days_since_failed_inspection": ("{v:.0f} days since the last failed inspection", QUALITY),
    "resource_weeks_reported": ("{v:.0f} weeks of resource reports", COST),
    "labour_hours_ratio_to_date": ("labour hours at {v:.0%} of plan to date", COST),
    "labour_hours_ratio_recent": ("labour hours at {v:.0%} of plan in recent weeks", COST),
    "overtime_share_to_date": ("overtime {v:.0%} of hours to date", COST),
    "overtime_share_recent": ("overtime {v:.0%} of hours in recent weeks", COST),
    "late_delivery_share_to_date": ("{v:.0%} of deliveries late to date", COST),
    "late_delivery_share_recent": ("{v:.0%} of deliveries late in recent weeks", COST),
    "spi_to_date": ("schedule performance index (SPI) {v:.2f} to date", COST),
    "spi_recent": ("schedule performance index (SPI) {v:.2f} in recent weeks", COST),
    "cpi_to_date": ("cost performance index (CPI) {v:.2f} to date", COST),
    "cpi_recent": ("cost performance index (CPI) {v:.2f} in recent weeks", COST),
    "downtime_hours_to_date": ("{v:.0f} hours of equipment downtime to date", COST),
    "downtime_hours_recent": ("{v:.0f} hours of equipment downtime in recent weeks", COST),
    "complaints_30d": ("{v:.0f} client complaints in the last 30 days", CUSTOMER),
    "complaints_90d": ("{v:.0f} client complaints in the last 90 days", CUSTOMER),
    "complaints_to_date": ("{v:.0f} client complaints to date", CUSTOMER),
    "complaints_open": ("{v:.0f} complaints not resolved", CUSTOMER),
    "complaints_unanswered": ("{v:.0f} complaints without a first response", CUSTOMER),
    "complaint_severity_mean": ("mean complaint severity {v:.1f} of 3", CUSTOMER),
    "complaint_response_hours_mean": ("complaints answered in {v:.0f} hours on average", CUSTOMER),
    "complaints_escalated": ("{v:.0f} complaints escalated", CUSTOMER),
    "surveys_to_date": ("{v:.0f} satisfaction surveys", CUSTOMER),
    "csat_latest": ("latest CSAT {v:.1f} of 5", CUSTOMER),
    "csat_trend": ("CSAT changed by {v:+.1f} since the survey before", CUSTOMER),
    "csat_mean": ("mean CSAT {v:.1f} of 5 so far", CUSTOMER),
    "nps_latest": ("latest likelihood to recommend {v:.0f} of 10", CUSTOMER),
    "nps_mean": ("mean likelihood to recommend {v:.1f} of 10 so far", CUSTOMER),
    "nps_trend": ("likelihood to recommend changed by {v:+.0f} since the survey before", CUSTOMER),
    "milestones_done": ("{v:.0f} milestones reached", TECHNICAL),
    "milestones_behind_plan": ("{v:.0f} milestones behind plan", TECHNICAL),
    "prior_slip_mean_days": ("earlier milestones slipped {v:.0f} days on average", TECHNICAL),
    "prior_slip_last_days": ("the last milestone slipped {v:.0f} days", TECHNICAL),
    "prior_first_pass_failures": ("{v:.0f} earlier milestones failed first-pass acceptance", QUALITY),
    "prior_first_pass_fail_rate": ("{v:.0%} of earlier milestones failed first-pass acceptance", QUALITY),
    "client_projects_awarded": ("the client has awarded {v:.0f} projects", CUSTOMER),
    "client_projects_completed": ("{v:.0f} of the client's projects handed over", CUSTOMER),
    "client_delay_mean_days": ("the client's earlier projects finished {v:.0f} days late on average", CUSTOMER),
    "client_complaints_to_date": ("{v:.0f} complaints from this client across projects", CUSTOMER),
    "client_tenure_days": ("client for {v:.0f} days", CUSTOMER),
}
OUTCOME = {
    "defect_risk": "first-pass failure risk",
    "delay": "the expected slip",
    "churn": "the risk of losing the client",
    "late": "the probability of being late",
}
UNIT = {"defect_risk": "log-odds", "churn": "log-odds", "delay": "days", "late": "log-odds"}


def describe(feature: str, value) -> tuple[str, str]:
    """The feature and its value in words, and the department that owns it."""
    template, department = TEXT.get(feature, (feature.replace("_", " ") + ": {v}", TECHNICAL))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{template.split('{')[0].strip() or feature.replace('_', ' ')} unknown (no data yet)", department
    try:
        return template.format(v=value), department
    except (ValueError, TypeError):
        return template.replace(":,.0f", "").replace(":.0%", "").format(v=value), department


def plain(value):
    """A feature value as JSON-friendly Python: numbers as float, text as str, missing as None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(number) else number


def top_drivers(
    contributions: np.ndarray, features: list[str], columns: Mapping[str, np.ndarray], model: str, top_k: int
) -> list[list[dict]]:
    """For each row, its ``top_k`` features by absolute contribution (the last column, the bias, is left out)."""
    contrib = contributions[:, : len(features)]
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top_k]
    out = []
    for i, cols in enumerate(order):
        drivers = []
        for j in cols:
            size = float(contrib[i, j])
            if size == 0.0:
                continue
            column = columns.get(features[j])
            value = plain(column[i]) if column is not None else None
            text, department = describe(features[j], value)
            direction = "up" if size > 0 else "down"
            drivers.append(
                {
                    "feature": features[j],
                    "value": value,
                    "text": f"{text} ({department}) pushed {OUTCOME[model]} {direction}",
                    "department": department,
                    "direction": direction,
                    "contribution": round(size, 4),
                    "unit": UNIT[model],
                }
            )
        out.append(drivers)
    return out
