"""What happened, and when it became known: each target's outcomes in an export, for judging logged predictions.

A prediction is judged only by an outcome known at the time of judging (``known_at`` no later than the export's
newest fact, or the time given), never by one the export could not have held yet: the point-in-time rule of
DESIGN.md, applied to labels. Each target's outcome is read the way :mod:`features.targets` labels its training
rows, so a model is judged on what it learned to predict:

- ``defect_risk``: a reached milestone's first-pass acceptance (``first_pass_failed``), known when it was reached;
- ``delay``: a reached milestone's slip in days (``slip_days``, and ``late`` above the tolerance), known then too;
- ``churn``: a handed-over project's client given no new award within ``churn_window_days`` (``churned``): known
  at the first new award in the window (not churned) or when the window closes (churned).

Every outcome carries the classes the reference class forecasts by (milestone kind, project type), so the monitor
can score that named baseline on the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.targets import CLIENT, TARGETS

CLASSES = ("milestone_kind", "project_type")  # what the reference class forecasts by (training.baselines)


def milestone_outcomes(tables: dict[str, pd.DataFrame], settings: Settings) -> pd.DataFrame:
    """Reached milestones: ``first_pass_failed`` (missing when the acceptance is not recorded), ``slip_days``,
    ``late``, ``known_at`` (the day it was reached) and the reference classes."""
    milestones, projects = tables["milestones"], tables["projects"].set_index("project_id")
    reached = milestones[milestones["actual_date"].notna()]
    accepted = reached["first_pass_accepted"]
    slip = (reached["actual_date"] - reached["planned_date"]).dt.days.astype("float64")
    return pd.DataFrame(
        {
            "project_id": reached["project_id"].astype("str").to_numpy(),
            "milestone_id": reached["milestone_id"].astype("str").to_numpy(),
            "first_pass_failed": np.where(accepted.isna(), np.nan, (~accepted.fillna(True).astype(bool)).astype(float)),
            "slip_days": slip.to_numpy(),
            "late": (slip > settings.late_tolerance_days).astype("float64").to_numpy(),
            "known_at": reached["actual_date"].to_numpy(),
            "milestone_kind": reached["kind"].astype("object").to_numpy(),
            "project_type": reached["project_id"].map(projects["project_type"]).astype("object").to_numpy(),
        }
    )


def churn_outcomes(tables: dict[str, pd.DataFrame], settings: Settings) -> pd.DataFrame:
    """Handed-over projects of known clients: ``churned`` and when it became known, for every handover whose
    answer is known by the export's end (a new award seen, or the window over)."""
    from features.contract import latest_fact

    projects = tables["projects"]
    window = pd.Timedelta(days=settings.churn_window_days)
    end = latest_fact(tables)
    handed = projects[projects["actual_end"].notna() & projects["client_id"].notna()]
    awards = projects.loc[projects["client_id"].notna() & projects["awarded_on"].notna(), ["client_id", "awarded_on"]]
    next_award = _next_award(handed, awards)
    awarded = next_award.notna() & (next_award <= handed["actual_end"] + window)
    known_at = pd.Series(np.where(awarded, next_award, handed["actual_end"] + window), index=handed.index)
    out = pd.DataFrame(
        {
            "project_id": handed["project_id"].astype("str"),
            "client_id": handed["client_id"].astype("str"),
            "churned": (~awarded).astype("float64"),
            "known_at": pd.to_datetime(known_at),
            "milestone_kind": None,
            "project_type": handed["project_type"].astype("object"),
        }
    )
    return out[out["known_at"] <= end].reset_index(drop=True) if end is not None else out.iloc[:0]


def _next_award(handed: pd.DataFrame, awards: pd.DataFrame) -> pd.Series:
    """Each handed-over project's client's first award after its handover (NaT when none)."""
    left = handed[["client_id", "actual_end"]].reset_index().sort_values("actual_end")
    right = awards.rename(columns={"awarded_on": "next_award"}).sort_values("next_award")
    merged = pd.merge_asof(
        left,
        right,
        left_on="actual_end",
        right_on="next_award",
        by="client_id",
        direction="forward",
        allow_exact_matches=False,
    )
    return merged.set_index("index")["next_award"].reindex(handed.index)


def outcomes(tables: dict[str, pd.DataFrame], settings: Settings) -> dict[str, pd.DataFrame]:
    """Each target's outcomes: model name -> the rows its predictions are judged by (ids, label columns of
    ``TARGETS[name]``, ``known_at``, reference classes)."""
    milestones = milestone_outcomes(tables, settings)
    churn = churn_outcomes(tables, settings) if "client_id" in tables["projects"] else None
    out = {}
    for name, spec in TARGETS.items():
        frame = churn if spec.scope == CLIENT else milestones
        if frame is None:
            continue
        labelled = frame[frame[spec.label].notna()] if spec.label in frame else frame
        out[name] = labelled.reset_index(drop=True)
    return out
