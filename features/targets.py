"""The targets, each declared once: what a row is, its label, ids, kind, headline metric, families and wording.

Training, backtests, serving, the response models and the command line iterate over :data:`TARGETS`; a fourth
target (a safety-incident model, say) is one more :class:`TargetSpec` here, with a row builder, and nothing else
needs to know its name. What differs between a classifier and the slip model lives in one strategy each
(``training.kinds`` for fitting and judging; ``serving.runtime.ANSWERS`` and the response models of
``serving.schemas`` for the answer), chosen by ``kind``.

- ``defect_risk``: a milestone at up to three ``as_of`` before it was reached, one in each horizon band (more than
  ``near_days`` ahead of its plan, 0 .. ``near_days`` ahead, overdue), so one model serves any ``as_of``; label
  ``first_pass_failed``.
- ``delay``: the same rows; labels ``slip_days`` and ``late`` (slip above the tolerance). Its ``time_to_plan``
  feature (days to the planned date, negative once overdue) says how much slip has already happened.
- ``churn``: a client at a project's handover (``as_of = actual_end``); label ``churned``: no new award within
  ``churn_window_days``. Handovers whose window is not over at the data's latest fact are not labelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the specs are read by every command's --help: pandas and the families load when rows are built
    import numpy as np
    import pandas as pd

    from eqsms.settings import Settings
    from features.families import Context, Family

CLASSIFIER, SLIP = "classifier", "slip"  # kinds: a calibrated probability; a slip in days with a range and P(late)
MILESTONE, CLIENT = "milestone", "client"  # scopes: answered per open milestone, or once per project for its client
MILESTONE_IDS = ("milestone_id", "project_id")

RowBuilder = Callable[["Context"], "tuple[pd.DataFrame, pd.DataFrame]"]  # rows (ids, as_of, labels), features


class TargetUnavailable(Exception):
    """The data cannot label this target (for example churn without client ids); the message says what is missing."""


@dataclass(frozen=True)
class TargetSpec:
    """One target. ``label`` is what the model learns; ``label_columns`` are every label the rows carry."""

    name: str
    kind: str  # CLASSIFIER or SLIP: the strategy that fits, judges and answers it
    scope: str  # MILESTONE or CLIENT
    label: str
    label_columns: tuple[str, ...]
    id_columns: tuple[str, ...]  # the first one identifies a row (and the oracle's row_id)
    build_rows: RowBuilder
    labelled_by: tuple[str, ...]  # "table.column"s the data needs to label any row
    headline: str  # the metric the promotion gate and the backtest targets judge by
    purpose: str  # the model card's "Target"
    outcome: str  # what a driver pushes: "pushed {outcome} up"
    unit: str  # of a driver's contribution: the booster's raw output
    reference_class: str  # the named baseline, in words

    @property
    def row_id(self) -> str:
        return self.id_columns[0]

    @property
    def families(self) -> tuple[Family, ...]:
        """The feature families of its rows: a milestone's, or a project's (its client's) alone."""
        from features.families import MILESTONE_FAMILIES, PROJECT_FAMILIES

        return MILESTONE_FAMILIES if self.scope == MILESTONE else PROJECT_FAMILIES

    def gaps(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        """The columns this target needs that the data lacks entirely."""
        out = []
        for needed in self.labelled_by:
            table, col = needed.split(".")
            if table not in tables or col not in tables[table] or tables[table][col].isna().all():
                out.append(needed)
        return out

    def rows(self, ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The labelled rows (sorted by as_of) and their features, or :class:`TargetUnavailable`."""
        if gaps := self.gaps(ctx.tables):
            raise TargetUnavailable(f"{self.name} needs {', '.join(gaps)}, which the data does not have")
        return self.build_rows(ctx)

    derive_labels: Callable[[pd.DataFrame, Settings], pd.DataFrame] = lambda frame, _settings: frame
    """A prepared table's rows (``eqsms train --dataset``) with the labels derived from ``label`` added."""
    time_to_plan: str | None = None
    """The feature holding the days from ``as_of`` to the planned date (negative once overdue): the test metrics
    are also given per horizon band, and a slip model predicts the slip still to come on top of the delay already
    incurred, never less than that delay."""


# ------------------------------------------------------------------------------------------------ horizon bands
BANDS = {
    "ahead": "> {near} days ahead",
    "near": "0-{near} days ahead",
    "overdue": "overdue",  # past the planned date, not reached
}


def horizon_band(days_to_plan: np.ndarray, near_days: float) -> np.ndarray:
    """Each row's band (a key of :data:`BANDS`) from its days to the planned date; missing days are "ahead"."""
    import numpy as np

    d = np.asarray(days_to_plan, dtype="float64")
    return np.where(d < 0, "overdue", np.where(d <= near_days, "near", "ahead"))


def band_texts(near_days: float) -> dict[str, str]:
    return {band: text.format(near=f"{near_days:g}") for band, text in BANDS.items()}


# ------------------------------------------------------------------------------------------------- row builders
def _reached_milestones(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reached milestones at their training ``as_of`` (:func:`band_as_of`, or ``horizon_days`` before the plan when
    settings fix one), and their features; the milestone targets share these rows, computed once per context."""
    import pandas as pd

    from features.families import MILESTONE_FAMILIES

    if "reached" not in ctx.memo:
        milestones = ctx.tables["milestones"]
        reached = milestones[milestones["actual_date"].notna()]
        if ctx.settings.horizon_days is None:
            rows = band_as_of(reached, ctx.tables["projects"], ctx.settings)
        else:
            rows = reached.assign(as_of=reached["planned_date"] - pd.Timedelta(days=ctx.settings.horizon_days))
            # A milestone reached before its own as_of is no prediction to make: serving would not score it either.
            rows = rows[rows["actual_date"] >= rows["as_of"]]
        rows = rows.sort_values(["as_of", "milestone_id"], kind="stable")
        ctx.memo["reached"] = (rows, features_of(ctx, rows, MILESTONE_FAMILIES))
    return ctx.memo["reached"]


def band_as_of(reached: pd.DataFrame, projects: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Up to three rows a reached milestone, one in each horizon band it went through, each at an ``as_of`` drawn
    at random (seeded) from a grid every ``as_of_step_days`` anchored on the planned date: from ``as_of_lead_days``
    before the plan (and not before the project's planned start) until the day it was reached. One row a band
    keeps a milestone that slipped for a year from outweighing one that was on time."""
    import numpy as np
    import pandas as pd

    step, near = settings.as_of_step_days, settings.near_days
    day = np.timedelta64(1, "D")
    planned = reached["planned_date"].to_numpy("datetime64[D]")
    actual = reached["actual_date"].to_numpy("datetime64[D]")
    start = reached["project_id"].map(projects.set_index("project_id")["planned_start"]).to_numpy("datetime64[D]")
    earliest = planned - settings.as_of_lead_days * day
    earliest = np.where(~np.isnat(start) & (start > earliest), start, earliest)
    # Grid points planned + step * j, for j between these (both included).
    first = np.ceil((earliest - planned) / day / step).astype("int64")
    last = np.floor((actual - planned) / day / step).astype("int64")
    band_j = {  # each band's j range: d = -step * j days to the plan
        "ahead": (np.iinfo("int64").min // 2, -(near // step) - 1),
        "near": (-(near // step), 0),
        "overdue": (1, np.iinfo("int64").max // 2),
    }
    rng = np.random.default_rng(settings.seed)
    draws = rng.random((len(reached), len(band_j)))
    picked = []
    for k, (band_lo, band_hi) in enumerate(band_j.values()):
        lo, hi = np.maximum(first, band_lo), np.minimum(last, band_hi)
        has = hi >= lo
        j = lo[has] + np.floor(draws[has, k] * (hi[has] - lo[has] + 1)).astype("int64")
        picked.append(reached[has].assign(as_of=pd.to_datetime(planned[has] + step * j * day)))
    return pd.concat(picked, ignore_index=True)


def first_pass_rows(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Milestones whose first-pass acceptance is known; label ``first_pass_failed``."""
    reached, features = _reached_milestones(ctx)
    judged = reached["first_pass_accepted"].notna().to_numpy()
    rows = reached[judged].copy()
    rows["first_pass_failed"] = (~rows["first_pass_accepted"].astype(bool)).astype("int8")
    return rows, features[judged]


def _late(slip: pd.Series, settings: Settings) -> pd.Series:
    return (slip > settings.late_tolerance_days).astype("int8")


def with_late(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """``late``: the slip above the tolerance in settings."""
    return frame.assign(late=_late(frame["slip_days"], settings))


def slip_rows(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reached milestones; labels ``slip_days`` (actual - planned) and ``late`` (slip above the tolerance)."""
    rows, features = _reached_milestones(ctx)
    rows = rows.copy()
    rows["slip_days"] = (rows["actual_date"] - rows["planned_date"]).dt.days.astype("float64")
    rows["late"] = _late(rows["slip_days"], ctx.settings)
    return rows, features


def handover_rows(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clients at each labelled handover; label ``churned``: no new award in the window after ``actual_end``."""
    import pandas as pd

    from features.contract import latest_fact
    from features.families import PROJECT_FAMILIES

    projects = ctx.tables["projects"]
    window = pd.Timedelta(days=ctx.settings.churn_window_days)
    snapshot = latest_fact(ctx.tables)
    rows = projects[projects["actual_end"].notna() & projects["client_id"].notna()].copy()
    rows["as_of"] = rows["actual_end"]
    rows = rows[rows["as_of"] + window <= snapshot]
    rows["churned"] = (~_awarded_within(projects, rows, window)).astype("int8")
    rows = rows.sort_values(["as_of", "project_id"], kind="stable")
    return rows, features_of(ctx, rows, PROJECT_FAMILIES)


def features_of(ctx: Context, rows: pd.DataFrame, families: tuple[Family, ...]) -> pd.DataFrame:
    """The features of a target's rows: ``features.families.compute``, or the engine the context names in
    ``memo["compute"]`` (``features.dask_engine`` computes the same families partition by partition)."""
    from features.families import compute

    return ctx.memo.get("compute", compute)(ctx, rows, families)


def _awarded_within(projects: pd.DataFrame, rows: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    """Whether each row's client was awarded a project in ``(as_of, as_of + window]``."""
    import numpy as np
    import pandas as pd

    awards = projects.loc[projects["client_id"].notna() & projects["awarded_on"].notna(), ["client_id", "awarded_on"]]
    awards = awards.sort_values(["client_id", "awarded_on"])
    clients = pd.Index(awards["client_id"].unique())
    a_code = clients.get_indexer(awards["client_id"])
    a_days = (awards["awarded_on"].to_numpy("datetime64[D]")).astype("int64")
    keys = a_code * (1 << 32) + a_days  # sorted by (client, day)
    r_code = clients.get_indexer(rows["client_id"])
    r_days = rows["as_of"].to_numpy("datetime64[D]").astype("int64")
    base = np.where(r_code >= 0, r_code, 0) * (1 << 32)
    after = np.searchsorted(keys, base + r_days, side="right")
    until = np.searchsorted(keys, base + r_days + window.days, side="right")
    return (r_code >= 0) & (until > after)


# ---------------------------------------------------------------------------------------------------- the specs
_SPECS = (
    TargetSpec(
        name="defect_risk",
        kind=CLASSIFIER,
        scope=MILESTONE,
        label="first_pass_failed",
        label_columns=("first_pass_failed",),
        id_columns=MILESTONE_IDS,
        build_rows=first_pass_rows,
        labelled_by=("milestones.first_pass_accepted",),
        headline="roc_auc",
        purpose="probability that a milestone's acceptance fails on first pass, scored before the milestone",
        outcome="first-pass failure risk",
        unit="log-odds",
        reference_class="the first-pass failure rate per milestone kind and project type in the training rows",
        time_to_plan="days_to_milestone",
    ),
    TargetSpec(
        name="delay",
        kind=SLIP,
        scope=MILESTONE,
        label="slip_days",
        label_columns=("slip_days", "late"),
        id_columns=MILESTONE_IDS,
        build_rows=slip_rows,
        labelled_by=("milestones.actual_date",),
        headline="mae",
        purpose="expected slip of a milestone in days, a range with stated coverage, and the probability of being late",
        # Its SHAP values explain the slip still to come beyond the delay already incurred (told apart as
        # delay_incurred_days): "pushed the expected slip down" on a milestone 152 days overdue read wrong.
        outcome="the slip still to come",
        unit="days",
        reference_class="the median slip (and its quantiles) per milestone kind and project type in the training rows",
        derive_labels=with_late,
        time_to_plan="days_to_milestone",
    ),
    TargetSpec(
        name="churn",
        kind=CLASSIFIER,
        scope=CLIENT,
        label="churned",
        label_columns=("churned",),
        id_columns=("project_id", "client_id"),
        build_rows=handover_rows,
        labelled_by=("projects.client_id", "projects.awarded_on", "projects.actual_end"),
        headline="roc_auc",
        purpose="probability that a client awards no new project within the churn window after a handover",
        outcome="the risk of losing the client",
        unit="log-odds",
        reference_class="the churn rate in the training rows",
    ),
)
TARGETS: dict[str, TargetSpec] = {spec.name: spec for spec in _SPECS}


def target(name: str) -> TargetSpec:
    """The spec of ``name``, or a ``KeyError`` naming the targets there are."""
    if name not in TARGETS:
        raise KeyError(f"'{name}' is not one of {', '.join(TARGETS)}")
    return TARGETS[name]


def of_scope(scope: str) -> list[TargetSpec]:
    return [spec for spec in TARGETS.values() if spec.scope == scope]
