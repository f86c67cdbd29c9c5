"""Planners' stated outcomes as training labels, where the export has none (issue 13 §1).

A planner's feedback (``POST /v1/feedback``, kept in the prediction log) may state a target's outcome: 1/0 for
``defect_risk`` (the acceptance failed first pass) and ``churn``, the actual slip in days for ``delay``. Such an
outcome labels the milestone (or the handover) in training when the export has no outcome for it: reached but its
acceptance not exported, or not reached yet in the export. It is known at the feedback's recorded time, so the rows
built for it only have an ``as_of`` before that time, as an export's label is known when the milestone is reached.

- The export wins: a stated outcome for a target the export labels is not used; one that disagrees is counted as a
  conflict (a slip within half a day agrees).
- The newest outcome-stating feedback per (model, project, milestone) counts; a later note or corrected level does
  not withdraw it. Feedback naming ids the export does not have is ignored and counted.
- A corrected level without an outcome is not a feature: historical rows have no feedback, so such a feature would
  be missing on every training row and learn nothing; it stays beside the prediction and is shown on the board.
- The features are the export's alone (``features`` never reads the log): a feedback changes which rows are labelled,
  never a feature value.

:func:`stated_outcomes` and :func:`merge_outcomes` are pure; :func:`with_outcomes` builds the rows through the feature
families; :func:`read_stated` is the edge that reads the log.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from eqsms.settings import Settings
from features.datasets import Dataset
from features.families import MILESTONE_FAMILIES, PROJECT_FAMILIES, Context, compute
from features.targets import MILESTONE, TARGETS, TargetSpec, band_as_of

SLIP_AGREES_DAYS = 0.5  # a stated slip this close to the export's agrees with it
KEYS = ("model", "project_id", "milestone_id")  # what a feedback is about


@dataclass(frozen=True)
class Counts:
    """What the feedback did to one target's labels."""

    stated: int = 0  # targets with an outcome stated (the newest feedback each)
    labels: int = 0  # milestones or handovers labelled from feedback
    rows: int = 0  # training rows those labels added
    agreed: int = 0  # the export has the same outcome: not needed
    conflicts: int = 0  # the export has another outcome: the export's kept
    unknown: int = 0  # ids the export does not have: ignored
    no_rows: int = 0  # labelled, but no row has an as_of before the feedback (or no handover to label)

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.__dict__.items()}

    def said(self) -> str:
        """In words, for the terminal."""
        if not self.stated:
            return "no outcome stated"
        out = f"{self.labels:,} planner-stated outcomes used as labels ({self.rows:,} rows)"
        extra = [
            f"{self.conflicts:,} conflicting with the export (export kept)" if self.conflicts else "",
            f"{self.agreed:,} agreeing with the export" if self.agreed else "",
            f"{self.unknown:,} for unknown ids (ignored)" if self.unknown else "",
            f"{self.no_rows:,} with no row before the feedback" if self.no_rows else "",
        ]
        return "; ".join([out, *filter(None, extra)])


@dataclass(frozen=True)
class Merged:
    labels: pd.DataFrame  # the target's match keys, ``outcome`` and ``known_at``: one row a target to label
    counts: Counts = field(default_factory=Counts)


# ------------------------------------------------------------------------------------------------------ pure steps
def stated_outcomes(feedback: pd.DataFrame) -> pd.DataFrame:
    """The newest outcome-stating feedback per (model, project, milestone): ``model``, ``project_id``,
    ``milestone_id`` (missing for churn), ``outcome`` and ``known_at`` (the feedback's time, naive UTC)."""
    columns = [*KEYS, "outcome", "known_at"]
    if feedback.empty:
        return pd.DataFrame(columns=columns)
    said = feedback[feedback["outcome_label"].notna() & feedback["model"].isin(list(TARGETS))]
    said = said.sort_values(["at", "id"], kind="stable")
    keys = said[list(KEYS)].astype(object).where(said[list(KEYS)].notna(), None)  # NaN never equals NaN in a group
    newest = said[~keys.duplicated(keep="last")]
    out = newest[list(KEYS)].assign(outcome=newest["outcome_label"].astype("float64"), known_at=newest["at"])
    return out[columns].reset_index(drop=True)


def match_keys(spec: TargetSpec) -> list[str]:
    """The columns a feedback and a target's rows are matched on."""
    return ["project_id", "milestone_id"] if spec.scope == MILESTONE else ["project_id"]


def merge_outcomes(spec: TargetSpec, known: pd.DataFrame, stated: pd.DataFrame) -> Merged:
    """The targets the feedback labels, and what it did. ``known``: every target the export has (its match keys) and
    ``export``, the export's outcome or NaN when it has none; ``stated``: :func:`stated_outcomes`."""
    keys = match_keys(spec)
    mine = stated[stated["model"] == spec.name]
    joined = mine.merge(known[[*keys, "export"]], on=keys, how="left", indicator=True)
    unknown = joined["_merge"] == "left_only"
    has_export = joined["export"].notna() & ~unknown
    if spec.kind == "slip":
        agrees = (joined["outcome"] - joined["export"]).abs() < SLIP_AGREES_DAYS
    else:
        agrees = joined["outcome"] == joined["export"]
    used = ~unknown & ~has_export
    counts = Counts(
        stated=len(mine),
        labels=int(used.sum()),
        agreed=int((has_export & agrees).sum()),
        conflicts=int((has_export & ~agrees).sum()),
        unknown=int(unknown.sum()),
    )
    return Merged(joined.loc[used, [*keys, "outcome", "known_at"]].reset_index(drop=True), counts)


def export_known(spec: TargetSpec, tables: dict[str, pd.DataFrame], ds: Dataset) -> pd.DataFrame:
    """Every target the export has, with its outcome there (``export``, NaN where it has none): a milestone's first-pass
    failure once reached and judged, its slip once reached; a handover's churn where its rows are labelled."""
    if spec.scope == MILESTONE:
        ms = tables["milestones"]
        reached = ms["actual_date"].notna()
        if spec.kind == "slip":
            export = (ms["actual_date"] - ms["planned_date"]).dt.days.where(reached)
        else:
            judged = reached & ms["first_pass_accepted"].notna()
            export = (ms["first_pass_accepted"] == False).astype("float64").where(judged)  # noqa: E712
        return pd.DataFrame({"project_id": ms["project_id"], "milestone_id": ms["milestone_id"], "export": export})
    labelled = ds.frame.drop_duplicates("project_id").set_index("project_id")[spec.label]
    projects = tables["projects"]
    return pd.DataFrame(
        {"project_id": projects["project_id"], "export": projects["project_id"].map(labelled).astype("float64")}
    )


# ------------------------------------------------------------------------------------------------------ the rows
def _milestone_rows(spec: TargetSpec, ctx: Context, labels: pd.DataFrame) -> pd.DataFrame:
    """The labelled milestones' rows as the export's are built (:func:`features.targets.band_as_of`), up to the day
    the outcome happened (the stated slip's day, the export's reached day, else the feedback's) and before the
    feedback's time: as_of on the grid up to the earlier of the two."""
    settings = ctx.settings
    ms = ctx.tables["milestones"].merge(labels, on=["project_id", "milestone_id"])
    last_day = ms["known_at"].dt.ceil("D") - pd.Timedelta(days=1)  # the last as_of (a day) before the feedback
    if spec.kind == "slip":
        until = ms["planned_date"] + pd.to_timedelta(ms["outcome"], unit="D")
    else:
        until = ms["actual_date"].fillna(last_day)
    until = until.where(until < last_day, last_day)  # drawn before the feedback, so each band keeps its row
    bounded = ms.assign(exported_date=ms["actual_date"], actual_date=until)
    if settings.horizon_days is None:
        rows = band_as_of(bounded, ctx.tables["projects"], settings)
    else:
        rows = bounded.assign(as_of=bounded["planned_date"] - pd.Timedelta(days=settings.horizon_days))
        rows = rows[rows["actual_date"] >= rows["as_of"]]
    rows = rows[rows["as_of"] < rows["known_at"]]
    rows = rows.assign(actual_date=rows["exported_date"])  # the stated day only bounded the as_of
    return rows.sort_values(["as_of", "milestone_id"], kind="stable")


def _handover_rows(ctx: Context, labels: pd.DataFrame) -> pd.DataFrame:
    """The labelled handovers at ``as_of = actual_end``, before the feedback's time."""
    projects = ctx.tables["projects"]
    rows = projects[projects["actual_end"].notna() & projects["client_id"].notna()].merge(labels, on="project_id")
    rows = rows.assign(as_of=rows["actual_end"])
    return rows[rows["as_of"] < rows["known_at"]].sort_values(["as_of", "project_id"], kind="stable")


def feedback_rows(spec: TargetSpec, ctx: Context, labels: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (ids, ``as_of``, labels, ``known_at``) for the targets in ``labels`` and their features."""
    if spec.scope == MILESTONE:
        rows, families = _milestone_rows(spec, ctx, labels), MILESTONE_FAMILIES
    else:
        rows, families = _handover_rows(ctx, labels), PROJECT_FAMILIES
    rows = rows.reset_index(drop=True)
    if rows.empty:
        return rows, pd.DataFrame(index=rows.index)
    outcome = rows["outcome"]
    rows[spec.label] = outcome.astype("int8") if spec.kind != "slip" else outcome.astype("float64")
    rows = spec.derive_labels(rows, ctx.settings)
    return rows, compute(ctx, rows, families)


def _concat(base: pd.DataFrame, more: pd.DataFrame) -> pd.DataFrame:
    """``base`` and ``more`` stacked, categoricals kept categorical (over both sides' categories)."""
    more = more.astype({c: base[c].dtype for c in base.columns if not isinstance(base[c].dtype, pd.CategoricalDtype)})
    frame = pd.concat([base, more], ignore_index=True)
    for col in base.columns:
        if isinstance(base[col].dtype, pd.CategoricalDtype):
            both = [base[col], more[col].astype("category")]
            frame[col] = pd.Categorical(union_categoricals(both, ignore_order=True))
    return frame


def with_outcomes(ds: Dataset, ctx: Context, stated: pd.DataFrame) -> Dataset:
    """``ds`` with the rows of the targets the planners' stated outcomes label (:func:`merge_outcomes`), sorted by
    ``as_of``; ``meta["feedback"]`` holds the counts. A dataset with rows added has a fingerprint of its own."""
    spec = ds.spec
    merged = merge_outcomes(spec, export_known(spec, ctx.tables, ds), stated)
    counts, added = merged.counts, None
    if len(merged.labels):
        rows, features = feedback_rows(spec, ctx, merged.labels)
        keys = match_keys(spec)
        with_rows = merged.labels.merge(rows[keys].drop_duplicates(), on=keys, how="inner")
        counts = Counts(**{**counts.as_dict(), "rows": len(rows), "no_rows": len(merged.labels) - len(with_rows)})
        if len(rows):
            added = pd.concat([rows[[*ds.id_columns, "as_of", *ds.label_columns]], features], axis=1)
    meta = {**ds.meta, "feedback": counts.as_dict()}
    if added is None:
        return replace(ds, meta=meta)
    frame = _concat(ds.frame, added[ds.frame.columns])
    order = np.argsort(frame["as_of"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    used = added[[*ds.id_columns, "as_of", *ds.label_columns]].astype(str).to_dict("split")["data"]
    meta["rows"] = len(frame)
    meta["as_of_window"] = [str(frame["as_of"].min().date()), str(frame["as_of"].max().date())]
    meta["fingerprint"] = hashlib.sha256(
        json.dumps({"dataset": ds.fingerprint, "feedback": used}, sort_keys=True).encode()
    ).hexdigest()
    # The rows are no longer the Parquet file's: the run logs the dataset as in memory.
    return replace(ds, frame=frame, meta=meta, source=None)


# ------------------------------------------------------------------------------------------------------ the edge
def feedback_used(settings: Settings) -> bool:
    """Whether training reads the planners' outcomes: the setting, and the prediction log on."""
    from eqsms.predlog import log_url

    return settings.training_uses_feedback and log_url(settings) is not None


class FeedbackUnreadable(RuntimeError):
    """The prediction log is on and training uses its feedback, but it cannot be read: training stops rather than
    learn from other labels than asked (the commands say it in one line, with what to set)."""


def read_stated(settings: Settings) -> pd.DataFrame | None:
    """The stated outcomes in the prediction log (:func:`stated_outcomes`), or None when training does not use them.
    Raises :class:`FeedbackUnreadable` when the log cannot be read."""
    import sqlalchemy.exc

    from eqsms.predlog import log_url, read_feedback, safe_url

    if not feedback_used(settings):
        return None
    url = log_url(settings)
    try:
        feedback = read_feedback(url)
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as err:
        raise FeedbackUnreadable(
            f"the prediction log {safe_url(url)} cannot be read for the planners' outcomes "
            f"({type(err).__name__}: {str(err).splitlines()[0]}); fix it, or set EQSMS_TRAINING_USES_FEEDBACK=false "
            "to train on the export's labels alone"
        ) from err
    return stated_outcomes(feedback)


def apply_outcomes(
    datasets: dict[str, Dataset | str], ctx: Context | None, stated: pd.DataFrame
) -> dict[str, Dataset | str]:
    """Each dataset with the planners' outcomes merged in (:func:`with_outcomes`); a reason stays a reason. ``ctx``
    (the export's) is needed only when some outcome is stated."""
    out: dict[str, Dataset | str] = {}
    for name, ds in datasets.items():
        if isinstance(ds, str):
            out[name] = ds
        elif not len(stated):
            meta = {**ds.meta, "feedback": Counts().as_dict()}
            out[name] = replace(ds, meta=meta)
        else:
            out[name] = with_outcomes(ds, ctx, stated)
    return out
