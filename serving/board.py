"""The risk board's views, computed by the engine: the portfolio, the department worklists, a project's trend and
the facts behind its risks.

Pure functions of an :class:`serving.runtime.Engine` and its scored :class:`serving.runtime.Block`s; the service
(``serving/service.py``) answers them over HTTP and precomputes today's (``serving/snapshot.py``). Everything here
is point-in-time like the answers themselves: a view at ``as_of`` uses only facts known before it.

Worklists: a department's drivers are the features the registry says it owns (``features.registry``). For each open
milestone (and each project's client) the worklist says

- ``added``: what the department's upward drivers add to the prediction, in the answer's unit: for a probability,
  the prediction minus the prediction with those contributions taken out of its log-odds (the calibrator is treated
  as the identity there: a first-order figure); for a slip, their days;
- ``share``: their share of everything that pushes the prediction up;
- ``whatif_gain``: how much the prediction falls when the department acts: its actionable upward features (declared
  ``actionable`` in the registry) set to the median of the rows scored together (the firm's typical state today),
  the rows scored again by the model. Not a causal estimate: what the model says if those facts were typical.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.datasets import today
from features.registry import DEPARTMENTS
from features.targets import CLASSIFIER, CLIENT, MILESTONE, of_scope, target
from serving.drivers import top_drivers
from serving.runtime import Block, Engine, RequestError
from serving.runtime import levels as runtime_levels

TREND_WEEKS = 12
WORKLIST_DRIVERS = 5  # a worklist item tells at most this many of its department's drivers
FACT_ROWS = 10  # latest inspections and complaints a project's facts list


# --------------------------------------------------------------------------------------------------------- as_of
def snapshot_as_of(engine: Engine, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The board's default ``as_of``: today, or the day after the data's newest fact when the data ends before
    today (a sample world, an old export): the portfolio as the export knows it."""
    now = today() if now is None else now
    newest = engine.latest_fact  # found once, when the engine loaded the data
    if newest is None:
        return now
    return min(now, newest.ceil("D"))


# ----------------------------------------------------------------------------------------------------- portfolio
_RANK = {"low": 0, "medium": 1, "high": 2}


def portfolio(engine: Engine, projects: Iterable) -> list[dict]:
    """One line a project (``schemas.ProjectRisk``s): its next open milestone's defect risk and slip, its client's
    churn risk, its worst level, its open milestones, and its strongest upward driver."""
    levels = engine.settings.risk_levels
    facts = engine.projects
    out = []
    for project in projects:
        milestones = sorted(project.milestones, key=lambda m: (m.planned_date is None, m.planned_date))
        line = {
            "project_id": project.project_id,
            "client_id": project.client_id,
            "project_type": _text(facts.at[project.project_id, "project_type"]),
            "region": _text(facts.at[project.project_id, "region"]),
            "open_milestones": len(milestones),
            "next": None,
            "churn": None,
        }
        found = []
        if milestones:
            m = milestones[0]
            delay = m.delay
            delay_level = runtime_levels(np.array([delay.late_probability]), levels["delay"])[0]
            line["next"] = {  # rounded: a line a project, 10,000 lines and more, read by a browser
                "milestone_id": m.milestone_id,
                "kind": m.kind,
                "planned_date": m.planned_date.isoformat() if m.planned_date else None,
                "defect_risk": {"probability": round(m.defect_risk.probability, 4), "level": m.defect_risk.level},
                "delay": {
                    "expected_slip_days": round(delay.expected_slip_days, 1),
                    "range_days": [round(d, 1) for d in delay.range_days],
                    "late_probability": round(delay.late_probability, 4),
                    "delay_incurred_days": delay.delay_incurred_days,
                    "level": delay_level,
                },
            }
            found += [
                (m.defect_risk.level, "defect_risk", m.defect_risk.drivers),
                (delay_level, "delay", delay.drivers),
            ]
        churn = getattr(project, "churn", None)
        if churn is not None:
            line["churn"] = {"probability": round(churn.probability, 4), "level": churn.level}
            found.append((churn.level, "churn", churn.drivers))
        line["level"] = max((level for level, _, _ in found), key=_RANK.get, default="low")
        line["top_driver"] = _top_driver(found)
        out.append(line)
    return out


def _top_driver(found: list[tuple[str, str, list]]) -> dict | None:
    """The first upward driver of the answer with the worst level (defect risk first among equals)."""
    for _, name, drivers in sorted(found, key=lambda f: -_RANK[f[0]]):
        for d in drivers:
            if d.direction == "up":
                return {
                    "text": d.text,
                    "department": d.department,
                    "target": name,
                    "feature": d.feature,
                    "value": d.value,
                    "direction": d.direction,
                }
    return None


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


# ----------------------------------------------------------------------------------------------------- worklists
SORTS = ("risk", "added", "share", "whatif_gain")


def worklist(
    engine: Engine,
    block: Block,
    department: str,
    limit: int | None = None,
    sort: str = "risk",
    targets: Iterable[str] | None = None,
) -> tuple[list[dict], int]:
    """The milestones and clients where ``department``'s drivers push risk up, each with the department's upward
    drivers in words, ranked by ``sort``: ``risk`` (the prediction's level, then the department's share of its
    upward push), ``added``, ``share`` or ``whatif_gain``; the first ``limit`` and how many there are in all.
    ``block`` must be scored with ``keep=True``."""
    wanted = check_worklist(department, sort, targets)
    return told_items(engine, block, department, ranked(worklist_table(engine, block, department), sort, wanted), limit)


def check_worklist(department: str, sort: str, targets: Iterable[str] | None) -> list[str]:
    """The targets a worklist request covers, or a :class:`RequestError` naming what is wrong with it."""
    if department not in DEPARTMENTS:
        raise RequestError("department", f"'{department}' is not one of {', '.join(DEPARTMENTS)}")
    if sort not in SORTS:
        raise RequestError("sort", f"'{sort}' is not one of {', '.join(SORTS)}")
    wanted = [spec.name for spec in [*of_scope(MILESTONE), *of_scope(CLIENT)]]
    unknown = sorted(set(targets or ()) - set(wanted))
    if unknown:
        raise RequestError("target", f"'{unknown[0]}' is not one of {', '.join(wanted)}")
    return [name for name in wanted if targets is None or name in targets]


def worklist_table(engine: Engine, block: Block, department: str) -> pd.DataFrame:
    """Every item of the department's worklist, one row each, without its drivers' words (told only for the items
    a request returns, :func:`told_items`): target, row of the block, project, prediction, level, added, share,
    what-if gain."""
    parts = [_table(engine, block, spec.name, department) for spec in [*of_scope(MILESTONE), *of_scope(CLIENT)]]
    return pd.concat([p for p in parts if p is not None and len(p)] or [_EMPTY], ignore_index=True)


_EMPTY = pd.DataFrame(
    {c: pd.Series(dtype=t) for c, t in (("target", object), ("row", int), ("project_id", object), ("level", object))}
    | {c: pd.Series(dtype=float) for c in ("prediction", "added", "share", "whatif_gain")}
)


def ranked(table: pd.DataFrame, sort: str, targets: list[str]) -> pd.DataFrame:
    """The items of ``targets`` ordered by ``sort`` (see :func:`worklist`), largest first, ties by project id."""
    table = table[table["target"].isin(targets)]
    if sort == "risk":
        keys = pd.DataFrame({"level": -table["level"].map(_RANK), "share": -table["share"], "id": table["project_id"]})
    else:
        keys = pd.DataFrame({"by": -table[sort].fillna(0.0), "id": table["project_id"]})
    return table.iloc[np.lexsort([keys[c].to_numpy() for c in reversed(keys.columns)])]


def told_items(
    engine: Engine, block: Block, department: str, table: pd.DataFrame, limit: int | None
) -> tuple[list[dict], int]:
    """The first ``limit`` rows of a ranked worklist table as items (``schemas.WorklistItem``), each with the
    department's upward drivers in words (at most ``WORKLIST_DRIVERS``), and the number of rows in all."""
    chosen = table.head(limit) if limit else table
    drivers: dict[tuple[str, int], list[dict]] = {}
    for name, rows in chosen.groupby("target", sort=False)["row"]:
        told = _department_drivers(engine, block, name, department, rows.to_numpy())
        drivers.update({(name, int(r)): d for r, d in zip(rows, told, strict=True)})
    items = []
    for item in chosen.to_dict("records"):
        row, name = int(item.pop("row")), item["target"]
        milestone = target(name).scope == MILESTONE
        where = block.rows.iloc[row] if milestone else None
        gain = item["whatif_gain"]
        items.append(
            {
                "project_id": item["project_id"],
                "client_id": engine.client_of(item["project_id"]),
                "target": name,
                "milestone_id": str(where["milestone_id"]) if milestone else None,
                "kind": _text(where["kind"]) if milestone else None,
                "planned_date": where["planned_date"].date().isoformat() if milestone else None,
                "prediction": float(item["prediction"]),
                "level": item["level"],
                "added": float(item["added"]),
                "share": float(item["share"]),
                "whatif_gain": None if pd.isna(gain) else float(gain),
                "drivers": drivers[(name, row)],
            }
        )
    return items, len(table)


def told_item(item: dict, lang: str, specs) -> dict:
    """A worklist item with its drivers' texts in ``lang`` (English: as it is)."""
    if lang == "en":
        return item
    from serving import i18n

    drivers = [{**d, "text": i18n.driver_text(d, item["target"], lang, specs)} for d in item["drivers"]]
    return {**item, "drivers": drivers}


def _owned(engine: Engine, name: str, department: str) -> np.ndarray:
    """Which of the model's features the department owns (the registry's declaration)."""
    return np.array(
        [getattr(engine.feature_specs.get(f), "department", None) == department for f in engine.bundles[name].features]
    )


def _upward(block: Block, name: str, n_features: int) -> np.ndarray:
    scored = block.scored[name]
    if scored.contributions is None:
        raise ValueError("worklist: the block was scored without its contributions (keep=True)")
    contrib = scored.contributions[:, :n_features]
    return np.where(contrib > 0, contrib, 0.0)


def _table(engine: Engine, block: Block, name: str, department: str) -> pd.DataFrame | None:
    """The rows of one target where the department's drivers push the prediction up."""
    if name not in block.scored:
        return None  # no open milestones: no milestone target scored
    spec, scored = target(name), block.scored[name]
    owned = _owned(engine, name, department)
    up = _upward(block, name, len(owned))
    added_raw = (up * owned).sum(axis=1)
    total_up = up.sum(axis=1)
    share = np.divide(added_raw, total_up, out=np.zeros_like(added_raw), where=total_up > 0)
    prediction, added = _prediction_and_added(spec.kind, scored.outputs, added_raw)
    gain = _whatif_gain(engine, block, name, owned & (up > 0))
    chosen = np.flatnonzero(added_raw > 0)
    ids = block.rows["project_id"].to_numpy() if spec.scope == MILESTONE else block.columns[CLIENT]["project_id"]
    return pd.DataFrame(
        {
            "target": name,
            "row": chosen,
            "project_id": np.asarray(ids, dtype=object)[chosen],
            "prediction": prediction[chosen],
            "level": np.asarray(_levels(engine, name, scored.outputs), dtype=object)[chosen],
            "added": added[chosen],
            "share": share[chosen],
            "whatif_gain": np.full(len(chosen), np.nan) if gain is None else gain[chosen],
        }
    )


def _department_drivers(engine: Engine, block: Block, name: str, department: str, rows: np.ndarray) -> list:
    """The department's upward drivers of ``rows`` of the block, in words, largest first."""
    spec, features = target(name), engine.bundles[name].features
    owned = _owned(engine, name, department)
    mine = (_upward(block, name, len(features)) * owned)[rows]
    columns = block.columns[spec.scope]
    values = {f: np.asarray(columns[f])[rows] for f in features if f in columns}
    return top_drivers(mine, features, values, spec, WORKLIST_DRIVERS, engine.feature_specs)


def _levels(engine: Engine, name: str, outputs: dict[str, np.ndarray]) -> list[str]:
    """Each row's level: its probability's, or for a slip its P(late)'s, against the settings' cut-offs."""
    p = outputs["probability"] if "probability" in outputs else outputs["late_probability"]
    return runtime_levels(p, engine.settings.risk_levels[name])


def _prediction_and_added(kind: str, outputs: dict[str, np.ndarray], added_raw: np.ndarray):
    if kind == CLASSIFIER:
        p = np.clip(outputs["probability"], 1e-6, 1 - 1e-6)
        without = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) - added_raw)))
        return p, p - without
    return outputs["expected_slip_days"], added_raw


def _whatif_gain(engine: Engine, block: Block, name: str, act: np.ndarray) -> np.ndarray | None:
    """The fall of each row's prediction when its ``act`` features (rows x features, bool) that the registry
    declares actionable are set to the median of the rows; None when the department has no actionable feature."""
    spec, bundle = target(name), engine.bundles[name]
    actionable = np.array([getattr(engine.feature_specs.get(f), "actionable", False) for f in bundle.features])
    act = act & actionable
    if not act.any():
        return None
    columns = block.columns[spec.scope]
    changed = dict(columns)
    for j in np.flatnonzero(act.any(axis=0)):
        f = bundle.features[j]
        values = np.asarray(columns[f], dtype="float64")
        typical = np.nanmedian(values) if np.isfinite(values).any() else np.nan
        changed[f] = np.where(act[:, j], typical, values)
    key = "probability" if spec.kind == CLASSIFIER else "expected_slip_days"
    before = block.scored[name].outputs[key]
    after = engine._score(name, changed, 0).outputs[key]
    return before - after


# ---------------------------------------------------------------------------------------------- project views
def trend(engine: Engine, project_id: str, as_of=None, weeks: int = TREND_WEEKS) -> list[dict]:
    """The project's risks scored as of each of the last ``weeks`` weeks up to ``as_of`` (point-in-time: each
    week sees only its facts): the highest defect risk, slip and P(late) over its open milestones, and churn."""
    t = engine.resolve_as_of(as_of, [project_id])
    start = engine.projects.at[project_id, "planned_start"]
    points = []
    for w in range(weeks - 1, -1, -1):
        when = t - pd.Timedelta(weeks=w)
        if when < start:
            continue
        block = engine.block([project_id], when, top_k=0)
        points.append({"as_of": when.isoformat(), **_highest(block)})
    return points


def _highest(block: Block) -> dict:
    out: dict[str, float | None] = {"defect_risk": None, "expected_slip_days": None, "late_probability": None}
    if len(block.rows):
        out["defect_risk"] = float(np.max(block.scored["defect_risk"].outputs["probability"]))
        delay = block.scored["delay"].outputs
        out["expected_slip_days"] = float(np.max(delay["expected_slip_days"]))
        out["late_probability"] = float(np.max(delay["late_probability"]))
    churn = block.scored.get("churn")
    out["churn"] = float(churn.outputs["probability"][0]) if churn is not None else None
    return out


FACT_FEATURES = ("defects_open", "inspections_open", "complaints_open", "spi_to_date", "cpi_to_date", "cpi_recent")


def facts(engine: Engine, project_id: str, as_of=None) -> dict:
    """What the project's risks rest on at ``as_of``: its plan, its latest inspections and complaints as known
    then (a closing or a response after ``as_of`` is not yet known), its open defects and its SPI and CPI."""
    t = engine.resolve_as_of(as_of, [project_id])
    project = engine.projects.loc[project_id]
    block = engine.block([project_id], t, top_k=0)
    values = block.columns[CLIENT]
    known = {f: _number(values[f][0]) for f in FACT_FEATURES if f in values}
    return {
        "project_id": project_id,
        "as_of": t.isoformat(),
        "project": {
            "project_type": _text(project.get("project_type")),
            "region": _text(project.get("region")),
            "client_id": _text(project.get("client_id")),
            "planned_start": _date(project.get("planned_start")),
            "planned_end": _date(project.get("planned_end")),
            "contract_value": _number(project.get("contract_value")),
        },
        "inspections": _latest(
            engine.tables.get("inspections"),
            project_id,
            t,
            "inspected_at",
            ("inspected_at", "discipline", "result", "defects_found", "max_severity", "closed_at"),
        ),
        "complaints": _latest(
            engine.tables.get("complaints"),
            project_id,
            t,
            "received_at",
            ("received_at", "category", "severity", "first_response_at", "resolved_at"),
        ),
        "open_defects": known.get("defects_open"),
        "open_inspections": known.get("inspections_open"),
        "open_complaints": known.get("complaints_open"),
        "spi": known.get("spi_to_date"),
        "cpi": known.get("cpi_to_date"),
        "cpi_recent": known.get("cpi_recent"),
    }


def _latest(table: pd.DataFrame | None, project_id: str, t: pd.Timestamp, when: str, columns) -> list[dict]:
    """The project's latest ``FACT_ROWS`` rows of ``table`` known before ``t``, newest first; a later time in a row
    (a closing, a response) is not known yet and shows as null."""
    if table is None or when not in table:
        return []
    rows = table[(table["project_id"] == project_id) & (table[when] < t)].nlargest(FACT_ROWS, when)
    out = []
    for _, row in rows.iterrows():
        item = {}
        for c in columns:
            value = row.get(c)
            if isinstance(value, pd.Timestamp):
                item[c] = value.isoformat() if value < t else None
            else:
                item[c] = _number(value) if not isinstance(value, str) else value
        out.append(item)
    return out


def _number(value):
    if value is None or isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def _date(value) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()
