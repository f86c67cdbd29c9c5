"""NYC School Construction Authority "Capital Project Schedules and Budgets" (NYC Open Data ``2xh6-psuq``).

One raw row is a phase of a school capital project. The mapping (``data_samples/IMPORTERS.md``):

- a **phase is a milestone**: ``kind`` the phase (``scope``, ``design``, ``construction``, ``cm_f_e``, ...),
  ``planned_date`` the phase's planned end (the baseline), ``actual_date`` its actual end, only for completed
  phases. ``sequence`` orders a project's phases by planned end. There is no acceptance in this export, so
  ``first_pass_accepted`` stays empty: it serves the delay model only.
- a **project** is a building + project type + description + DSF numbers (the key the open-data page uses);
  ``project_type`` and ``region`` (the geographic district) as written, ``contract_value`` the sum of its phase
  budgets, ``planned_end`` its latest planned phase end, ``actual_end`` its latest actual end once every phase is
  complete.
- in-progress phases stay **unlabelled** (no ``actual_date``). Those already past their planned end at the snapshot
  (the latest date in the export) are kept as such, flagged with ``overdue_at_snapshot_days``: a censored slip of at
  least that many days, never counted as on time.
- phases whose planned end holds a code instead of a date (``PNS`` not started; ``IEH``, ``DOES``, ``DOER``, ...
  managed by others) have no baseline and are not mapped; the report counts them by code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from features.importers import (
    Imported,
    ImportReport,
    date_text,
    number_text,
    numbers,
    parse_dates,
    read_raw,
    slug,
    unique_ids,
)
from features.io import SOURCE_FILE, SOURCE_ROW

DATE_FORMAT = "%m/%d/%Y"
COMPLETE = "Complete"
# Raw header (stripped of the spaces some names carry) -> working name.
RAW = {
    "Project Geographic District": "district",
    "Project Building Identifier": "building",
    "Project School Name": "school",
    "Project Type": "project_type",
    "Project Description": "description",
    "Project Phase Name": "phase",
    "Project Status Name": "status",
    "Project Phase Actual Start Date": "actual_start",
    "Project Phase Planned End Date": "planned_end",
    "Project Phase Actual End Date": "actual_end",
    "Project Budget Amount": "budget",
    "Final Estimate of Actual Costs Through End of Phase Amount": "final_estimate",
    "Total Phase Actual Spending Amount": "spent",
    "DSF Number(s)": "dsf",
}
SOURCE = (SOURCE_FILE, SOURCE_ROW)


def project_ids(raw: pd.DataFrame) -> pd.Series:
    """``SCA-`` and a short hash of building + project type + description + DSF numbers: stable and unique."""
    key = raw["building"] + "|" + raw["project_type"] + "|" + raw["description"] + "|" + raw["dsf"]
    return "SCA-" + key.map(lambda k: hashlib.sha1(k.encode()).hexdigest()[:10])


def phases(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw rows (renamed, stripped) with their dates, amounts and ids parsed; one row a phase."""
    frame = raw.rename(columns=RAW)
    frame[list(RAW.values())] = frame[list(RAW.values())].apply(lambda s: s.str.strip())
    frame["project_id"] = project_ids(frame)
    frame["kind"] = slug(frame["phase"])
    for col in ("actual_start", "planned_end", "actual_end"):
        frame[f"{col}_date"] = parse_dates(frame[col], DATE_FORMAT)
    frame["budget_amount"] = numbers(frame["budget"])
    frame["milestone_id"] = unique_ids(frame["project_id"] + "/" + frame["kind"])
    return frame


def snapshot_of(frame: pd.DataFrame) -> pd.Timestamp:
    """The moment the export describes: its latest actual date (the open-data page does not state it)."""
    return max(frame["actual_start_date"].max(), frame["actual_end_date"].max())


def milestones(frame: pd.DataFrame, snapshot: pd.Timestamp) -> pd.DataFrame:
    """Phases with a planned end date, as contract milestones; ``actual_date`` only for completed phases."""
    ms = frame[frame["planned_end_date"].notna()].copy()
    done = ms["status"].eq(COMPLETE) & ms["actual_end_date"].notna()
    overdue = (~done) & (ms["planned_end_date"] < snapshot)
    ms["sequence"] = ms.groupby("project_id")["planned_end_date"].rank(method="first").astype(int)
    return pd.DataFrame(
        {
            "milestone_id": ms["milestone_id"],
            "project_id": ms["project_id"],
            "kind": ms["kind"],
            "sequence": ms["sequence"].astype(str),
            "planned_date": date_text(ms["planned_end_date"]),
            "actual_date": date_text(ms["actual_end_date"].where(done)),
            "first_pass_accepted": "",
            # Not contract columns: kept for a custom feature or a survival model.
            "phase": ms["phase"],
            "status": ms["status"],
            "actual_start": date_text(ms["actual_start_date"]),
            "overdue_at_snapshot_days": number_text(((snapshot - ms["planned_end_date"]).dt.days).where(overdue)),
            "phase_budget": number_text(ms["budget_amount"]),
            SOURCE_FILE: ms[SOURCE_FILE],
            SOURCE_ROW: ms[SOURCE_ROW],
        }
    ).reset_index(drop=True)


def projects(frame: pd.DataFrame) -> pd.DataFrame:
    """One row a project: type, district, budget, planned end and (once every phase is complete) actual end."""
    g = frame.groupby("project_id", sort=False)
    first = g.head(1).set_index("project_id")
    all_done = g["status"].agg(lambda s: bool(s.eq(COMPLETE).all()))
    actual_end = g["actual_end_date"].max().where(all_done)
    budget = g["budget_amount"].sum(min_count=1)
    return pd.DataFrame(
        {
            "project_id": first.index,
            "client_id": "",
            "project_type": first["project_type"].to_numpy(),
            "region": first["district"].to_numpy(),
            "contract_value": number_text(budget.reindex(first.index)).to_numpy(),
            "awarded_on": "",
            "planned_start": "",
            "planned_end": date_text(g["planned_end_date"].max().reindex(first.index)).to_numpy(),
            "actual_end": date_text(actual_end.reindex(first.index)).to_numpy(),
            "building_id": first["building"].to_numpy(),
            "school_name": first["school"].to_numpy(),
            "description": first["description"].to_numpy(),
            "dsf_numbers": first["dsf"].to_numpy(),
            SOURCE_FILE: first[SOURCE_FILE].to_numpy(),
            SOURCE_ROW: first[SOURCE_ROW].to_numpy(),
        }
    )


def _report(path: Path, frame: pd.DataFrame, ms: pd.DataFrame, pr: pd.DataFrame, snapshot) -> ImportReport:
    report = ImportReport(source=str(path), snapshot=str(snapshot.date()))
    report.mapped = {"projects": len(pr), "milestones": len(ms)}
    labelled = ms["actual_date"].ne("")
    overdue = ms["overdue_at_snapshot_days"].ne("")
    report.notes.append(f"{int(labelled.sum()):,} completed phases carry an actual end date: the delay labels")
    report.notes.append(
        f"{int((~labelled).sum()):,} phases not complete at the snapshot are kept unlabelled (no actual_date); "
        f"{int(overdue.sum()):,} of them are already past their planned end (overdue_at_snapshot_days > 0): "
        "censored slips, not counted as on time"
    )
    repeats = ms["milestone_id"].str.contains("#", regex=False)
    report.notes.append(
        f"{int(repeats.sum())} phases repeat a phase of the same project (same key, a second round): kept, "
        "their id ends in #2"
    )
    report.notes.append("CM,F&E phases carry the Construction phase's dates; both are kept")
    no_plan = frame[frame["planned_end_date"].isna()]
    for code, n in no_plan["planned_end"].replace("", "(empty)").value_counts().items():
        state = "not started" if code == "PNS" else "not managed by SCA or no date"
        report.skip(f"phases whose planned end is {code!r}", n, f"no baseline date ({state}): not a milestone")
    done_no_actual = (ms["status"].eq(COMPLETE) & ~labelled).sum()
    report.skip("completed phases without an actual end date", done_no_actual, "kept unlabelled")
    report.column("Project Phase Actual Start Date", "the contract has no phase start; kept as milestones.actual_start")
    for name in ("Final Estimate of Actual Costs Through End of Phase Amount", "Total Phase Actual Spending Amount"):
        report.column(
            name,
            "an amount as of the export, with no date: the contract's resource table needs weekly values known "
            "when they happened, and as a feature it would leak the outcome (a finished phase has spent its budget)",
        )
    report.notes.append("Project Budget Amount: summed per project into contract_value, kept per phase as phase_budget")
    without = len(pr) - ms["project_id"].nunique()
    report.notes.append(f"{without:,} projects have no phase with a planned end date: written, with no milestone")
    report.notes.append("no client, award date or planned start in the export: churn cannot be labelled")
    return report


def import_nyc_sca(path: Path) -> Imported:
    """The SCA phase export at ``path`` as contract ``projects`` and ``milestones``, and what was (not) mapped."""
    raw = read_raw(Path(path), tuple(RAW), "NYC SCA capital project schedules")
    frame = phases(raw)
    snapshot = snapshot_of(frame)
    ms = milestones(frame, snapshot)
    pr = projects(frame)
    report = _report(Path(path), frame, ms, pr, snapshot)
    return Imported({"projects": pr, "milestones": ms}, report)
