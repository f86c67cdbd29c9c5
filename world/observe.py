"""The snapshot: the simulated world as a firm would see it on one day, in the raw data contract, with its oracle.

The world is seen at a **snapshot**: the award date of the ``n_projects``-th project. Nothing after it appears:
later events are dropped and later completion times are left empty. The ``oracle`` holds the exact parameters
each label was drawn from, for the rows that can be labelled at the snapshot. :func:`simulate_world` (simulate,
then observe) is pure: the same ``(n_projects, seed, settings)`` gives the same :class:`World`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from eqsms.settings import Settings, get_settings
from features.contract import COMPLAINT_CATEGORIES, INSPECTION_RESULTS, MILESTONE_KINDS, TABLES, Kind
from world.shift import NEW_REGION_NAME, Shift, generator
from world.simulate import DISCIPLINES, PROJECT_TYPES, REGIONS, Cols, simulate


def _auc(label: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of ``score`` for a boolean ``label``; nan when only one class is present (or no row)."""
    label = np.asarray(label, dtype=bool)
    if label.all() or not label.any():
        return float("nan")
    return float(roc_auc_score(label, score))


@dataclass
class World:
    """A simulated world as seen at ``snapshot``: the six contract tables (typed) and the oracle.

    ``late_tolerance`` is the one the world was simulated with: a delay label above it is a late milestone.
    """

    tables: dict[str, pd.DataFrame]
    oracle: pd.DataFrame
    snapshot: pd.Timestamp
    n_projects: int
    seed: int
    late_tolerance: float

    def rates(self) -> dict[str, float]:
        """Observed label rates and the oracle's ROC-AUC on its own labels."""
        o = self.oracle
        out: dict[str, float] = {}
        for target in ("defect_risk", "churn"):
            rows = o[o["target"] == target]
            out[f"{target}_rate"] = float(rows["label"].mean()) if len(rows) else float("nan")
            out[f"{target}_auc"] = _auc(rows["label"].to_numpy() > 0.5, rows["truth"].to_numpy())
        d = o[o["target"] == "delay"]
        late = d["label"].to_numpy() > self.late_tolerance
        out["late_rate"] = float(late.mean()) if len(d) else float("nan")
        out["late_auc"] = _auc(late, d["p_late"].to_numpy())
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


def _observe(sim: dict[str, Cols], n_projects: int, seed: int, *, churn_window: int, late_tolerance: float) -> World:
    """Cut the simulated world at the snapshot and lay it out as the six contract tables and the oracle.

    Projects are sorted by award date (ties broken at random) and the first ``n_projects`` kept; the snapshot is
    the last one's award date. Events after it are dropped, later completion times are left empty. A handover is
    in the churn oracle once its ``churn_window`` is over.
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
            "region": np.array((*REGIONS, NEW_REGION_NAME))[p["region"][order]],  # the last: a new-region shift's
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
    labelled = np.flatnonzero(p["actual_end"][order] + churn_window <= snapshot)
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
    snapshot_date = pd.Timestamp(_days_to_dates(np.array([snapshot]))[0])
    return World(tables, oracle, snapshot_date, n_projects, seed, late_tolerance)


def simulate_world(
    n_projects: int,
    seed: int,
    start: str | None = None,
    settings: Settings | None = None,
    shift: Shift | None = None,
) -> World:
    """Simulate clients and their project chains until more than ``n_projects`` awards, then cut the snapshot.

    The start date (unless ``start`` is given), the churn window and the late tolerance come from ``settings``
    (read when called if none is given): ``generate_start``, ``churn_window_days`` and ``late_tolerance_days``.
    The same ``(n_projects, seed, start)`` and settings give the same world; with a ``shift`` (``world.shift``),
    the same world changed from the shift's start on, the oracle holding the changed truth.
    """
    s = settings or get_settings()
    simulated = simulate(
        n_projects,
        np.random.default_rng(seed),
        start or s.generate_start,
        churn_window=s.churn_window_days,
        late_tolerance=s.late_tolerance_days,
        shift=shift,
        shift_rng=generator(seed) if shift is not None else None,
    )
    return _observe(simulated, n_projects, seed, churn_window=s.churn_window_days, late_tolerance=s.late_tolerance_days)
