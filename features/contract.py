"""The raw data contract, v1 (DESIGN.md), as data.

One table a source. Each column has a kind that says how it is parsed, whether it is required, and the range or
the values it may take. ``features.validate`` enforces this spec; ``world`` (the synthetic world) writes data that
meets it; ``data_samples/README.md`` documents it for a firm mapping its own exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class Kind(StrEnum):
    ID = "id"  # a string identifier
    TEXT = "text"  # free text or an open category (milestone kind, region, ...)
    DATE = "date"  # YYYY-MM-DD
    TIMESTAMP = "timestamp"  # ISO 8601; an offset is converted to UTC, then dropped
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"  # true/false, 1/0, yes/no, t/f (any case)


class Error(StrEnum):
    """Why a row was quarantined or a cell set missing; each code is named in the quarantine files and the summary."""

    MISSING_VALUE = "missing_value"  # a required column is empty
    UNPARSEABLE_DATE = "unparseable_date"
    UNPARSEABLE_NUMBER = "unparseable_number"
    UNPARSEABLE_BOOL = "unparseable_bool"
    NEGATIVE_VALUE = "negative_value"  # a count, hours or money below zero
    OUT_OF_RANGE = "out_of_range"  # a score or severity outside its scale
    NOT_ALLOWED = "not_allowed"  # a value outside a closed set (inspection result, complaint category)
    DUPLICATE_ID = "duplicate_id"  # the id (or key) of an earlier row again; the first one is kept
    UNKNOWN_PROJECT = "unknown_project"  # project_id names no accepted project
    INCONSISTENT_DATES = "inconsistent_dates"  # e.g. a defect closed before it was found
    IMPLAUSIBLE_DATE = "implausible_date"  # outside the plausible window (settings: earliest_date, latest_date)
    FUTURE_FACT = "future_fact"  # something that happened, dated after the export was validated


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    doc: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # unique per row
    references_project: bool = True
    # (earlier, later): where both are present, later must not be before earlier.
    ordered: tuple[tuple[str, str], ...] = ()
    doc: str = ""
    required: bool = False

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


COMPLAINT_CATEGORIES = ("quality", "schedule", "communication", "billing", "safety", "other")
INSPECTION_RESULTS = ("pass", "fail", "conditional")
MILESTONE_KINDS = ("foundation", "structure", "envelope", "mep", "fit_out", "handover")  # open set: others allowed

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "projects",
            required=True,
            references_project=False,
            key=("project_id",),
            ordered=(("planned_start", "planned_end"), ("awarded_on", "actual_end")),
            doc="One row a project (a contract with a client).",
            columns=(
                Column("project_id", Kind.ID, required=True, doc="the project's id"),
                Column("client_id", Kind.ID, doc="the client; needed for the churn target"),
                Column("project_type", Kind.TEXT, doc="school, office, residential, ... (open set)"),
                Column("region", Kind.TEXT, doc="where it is built (open set)"),
                Column("contract_value", Kind.FLOAT, min=0, doc="contract value, any one currency"),
                Column("awarded_on", Kind.DATE, doc="date the client awarded the contract; needed for churn"),
                Column("planned_start", Kind.DATE, doc="baseline start"),
                Column("planned_end", Kind.DATE, doc="baseline end"),
                Column("actual_end", Kind.DATE, doc="handover date; empty while the project runs"),
            ),
        ),
        Table(
            "milestones",
            required=True,
            key=("milestone_id",),
            doc="One row a milestone: a stage whose work is inspected and accepted by the client.",
            columns=(
                Column("milestone_id", Kind.ID, required=True),
                Column("project_id", Kind.ID, required=True),
                Column("kind", Kind.TEXT, required=True, doc="foundation, structure, envelope, mep, ... (open)"),
                Column("sequence", Kind.INT, min=0, doc="order within the project, 1 first"),
                Column("planned_date", Kind.DATE, required=True, doc="baseline date (not a re-plan)"),
                Column("actual_date", Kind.DATE, doc="date reached; empty while open"),
                Column("first_pass_accepted", Kind.BOOL, doc="accepted at its first acceptance inspection"),
            ),
        ),
        Table(
            "inspections",
            key=("inspection_id",),
            ordered=(("inspected_at", "closed_at"),),
            doc="One row an inspection or test, with the defects it found.",
            columns=(
                Column("inspection_id", Kind.ID, required=True),
                Column("project_id", Kind.ID, required=True),
                Column("inspected_at", Kind.TIMESTAMP, required=True),
                Column("discipline", Kind.TEXT, doc="civil, structural, mep, finishes, safety, ... (open)"),
                Column("result", Kind.TEXT, required=True, allowed=INSPECTION_RESULTS),
                Column("defects_found", Kind.INT, min=0),
                Column("max_severity", Kind.INT, min=0, max=3, doc="0 none, 1 minor, 2 major, 3 critical"),
                Column("closed_at", Kind.TIMESTAMP, doc="when all its defects were closed; empty while open"),
            ),
        ),
        Table(
            "resources",
            key=("project_id", "week_start"),
            doc="One row a project-week: labour, equipment, deliveries and earned value of that week.",
            columns=(
                Column("project_id", Kind.ID, required=True),
                Column("week_start", Kind.DATE, required=True, doc="Monday of the week"),
                Column("labour_planned_hours", Kind.FLOAT, min=0),
                Column("labour_actual_hours", Kind.FLOAT, min=0),
                Column("overtime_hours", Kind.FLOAT, min=0, doc="part of labour_actual_hours"),
                Column("equipment_downtime_hours", Kind.FLOAT, min=0),
                Column("deliveries_planned", Kind.INT, min=0),
                Column("deliveries_late", Kind.INT, min=0),
                Column("planned_value", Kind.FLOAT, min=0, doc="planned value of this week's work (not cumulative)"),
                Column("earned_value", Kind.FLOAT, min=0, doc="earned value of this week's work (not cumulative)"),
                Column("actual_cost", Kind.FLOAT, min=0, doc="actual cost of this week (not cumulative)"),
            ),
        ),
        Table(
            "complaints",
            key=("complaint_id",),
            ordered=(("received_at", "first_response_at"), ("received_at", "resolved_at")),
            doc="One row a client complaint.",
            columns=(
                Column("complaint_id", Kind.ID, required=True),
                Column("project_id", Kind.ID, required=True),
                Column("received_at", Kind.TIMESTAMP, required=True),
                Column("category", Kind.TEXT, allowed=COMPLAINT_CATEGORIES),
                Column("severity", Kind.INT, min=1, max=3, doc="1 low, 2 medium, 3 high"),
                Column("first_response_at", Kind.TIMESTAMP),
                Column("resolved_at", Kind.TIMESTAMP),
                Column("escalated", Kind.BOOL, doc="escalated above the project team"),
            ),
        ),
        Table(
            "surveys",
            key=("survey_id",),
            doc="One row a client satisfaction survey answer.",
            columns=(
                Column("survey_id", Kind.ID, required=True),
                Column("project_id", Kind.ID, required=True),
                Column("surveyed_at", Kind.TIMESTAMP, required=True),
                Column("csat", Kind.FLOAT, min=1, max=5, doc="customer satisfaction, 1 to 5"),
                Column("nps", Kind.FLOAT, min=0, max=10, doc="likelihood to recommend, 0 to 10"),
            ),
        ),
    )
}

TABLE_ORDER: tuple[str, ...] = tuple(TABLES)
FILE_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".csv.gz")


# Columns that record something that happened (plans such as planned_end may lie in the future).
FACT_COLUMNS = {
    "projects": ("awarded_on", "actual_end"),
    "milestones": ("actual_date",),
    "inspections": ("inspected_at", "closed_at"),
    "resources": ("week_start",),
    "complaints": ("received_at", "first_response_at", "resolved_at"),
    "surveys": ("surveyed_at",),
}


def latest_fact(tables: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The latest recorded event in the data: how fresh it is, and where churn's labelling window must end."""
    latest = [
        tables[table][col].max()
        for table, cols in FACT_COLUMNS.items()
        for col in cols
        if table in tables and tables[table][col].notna().any()
    ]
    return max(latest) if latest else None


def fact_times(tables: dict[str, pd.DataFrame]) -> np.ndarray:
    """Every recorded event's time, sorted (the tables' microseconds): the newest fact known before any time is one
    search, and the last one is :func:`latest_fact`."""
    import numpy as np

    times = [
        tables[table][col].dropna().to_numpy("datetime64[us]")
        for table, cols in FACT_COLUMNS.items()
        for col in cols
        if table in tables
    ]
    return np.unique(np.concatenate(times)) if times else np.empty(0, "datetime64[us]")
