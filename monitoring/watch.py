"""The monitor's watch (issue 13 §3): every model judged before its outcomes arrive, by drift and estimates.

For each target the engine serves (``features.targets.TARGETS``), the export's latest :data:`RECENT_WEEKS` weeks
are scored by the champion as the service logs them (``monitoring.loop.rows_of``: a milestone target's open
milestones in its domain, a client target's open projects) and compared with the same rows over the quarter before
the export that champion was trained on ended (:func:`reference_end`: the population it was trained amid; churn's
labelled window ends a year earlier, and a reference there flagged client tenure on a world with no shift), or
over the quarter before the export of the challenger it was last kept against, when it held its quality on that
challenger's newer test rows (the gate moves the reference then: ``training.tracking.REFERENCE_UNTIL``). Each
week is scored once for every model (one engine block a week), and each model is judged by
``monitoring.loop.judge_week``: feature drift on its own features, drift of each output it answers with (the
probability; the expected slip and P(late)), the performance estimated from those outputs alone (CBPE for a
calibrated probability; the delay model's MAE by horizon-band mix) and, where outcomes are already known, realised.
A model that cannot be watched says why in a ``note``: no champion, an undated data window, or fewer rows
than ``drift_min_rows`` in either window (a small firm's churn: a row per open project a week).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from eqsms.settings import Settings

RECENT_WEEKS = 4  # the watch's window (the verdict judges the same latest weeks of predictions with outcomes)


def watch(settings: Settings, data_dir: Path, at: pd.Timestamp, known: dict) -> dict[str, dict]:
    """By model, what the watch says of the export ``data_dir`` (newest fact ``at``; ``known``: the outcomes by
    model, ``monitoring.outcomes.outcomes``): :func:`watch_engine` on an engine with the store's champions."""
    from features.targets import TARGETS
    from serving.runtime import Engine, NotReady

    try:
        engine = Engine.from_settings(settings.model_copy(update={"data_dir": Path(data_dir).resolve()}))
    except NotReady as err:
        return {name: {"model": name, "note": f"not watched: {str(err).splitlines()[0]}"} for name in TARGETS}
    return watch_engine(engine, settings, at, known)


def watch_engine(
    engine, settings: Settings, at: pd.Timestamp, known: dict, weeks: int = RECENT_WEEKS
) -> dict[str, dict]:
    """By model: its ``version``, ``kind``, the reference window's end (``reference_until``), ``weeks`` and
    ``reference_rows``, and :func:`monitoring.loop.judge_week`'s figures (``flagged``, ``reason``, ``drifted``,
    ``prediction_psi``, the estimates); or a ``note`` saying why it was not watched."""
    from features.targets import TARGETS
    from monitoring.loop import WEEK, reference_dates, rows_of

    blocks: dict[pd.Timestamp, object] = {}

    def block(as_of: pd.Timestamp):
        if as_of not in blocks:
            blocks[as_of] = engine.block(engine.open_projects(as_of), as_of, top_k=0)
        return blocks[as_of]

    def rows(model: str, dates: list[pd.Timestamp]) -> pd.DataFrame:
        return pd.concat([rows_of(engine, block(t), model) for t in dates], ignore_index=True)

    last = at.normalize()
    recent = [last - k * WEEK for k in range(weeks)]
    out = {}
    for name in TARGETS:
        bundle = engine.bundles.get(name)
        head = {"model": name, "version": engine.info[name].version if name in engine.info else None}
        if bundle is None:
            out[name] = {**head, "note": "not watched: no champion loaded"}
            continue
        cut = reference_end(bundle, engine.info[name].reference_until if name in engine.info else None)
        if cut is None:
            out[name] = {**head, "note": "not watched: the champion's data window is not dated"}
            continue
        reference = rows(name, reference_dates(cut))
        head |= {"kind": TARGETS[name].kind, "reference_until": str(cut.date()), "weeks": weeks}
        out[name] = judged(name, bundle, rows(name, recent), reference, settings, known.get(name), head)
    return out


def reference_end(bundle, moved: str | None = None) -> pd.Timestamp | None:
    """Where a champion's reference quarter ends: ``moved``, the day the gate moved it to when it kept the champion
    after it held its quality on newer rows (``training.tracking.REFERENCE_UNTIL``); else the newest fact of the
    export it was trained on (``data_until``), i.e. the rows the service answered just before that training. A model
    registered before ``data_until`` was recorded: the end of its data window (``training.tracking.seen_until``),
    which for churn is a labelling window (a year) earlier: its clients' tenure and award counts had grown since, and
    it flagged on a world with no shift. None when none is a date."""
    from training.tracking import seen_until

    until = moved or bundle.meta.get("data_until")
    return pd.Timestamp(until).normalize() if until else seen_until(bundle)


def judged(
    name: str,
    bundle,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    settings: Settings,
    outcomes: pd.DataFrame | None,
    head: dict | None = None,
) -> dict:
    """One model's watch: ``head`` (its ids and windows), the rows of both windows, and
    :func:`monitoring.loop.judge_week`'s figures; a ``note`` instead when either window has fewer rows than
    ``drift_min_rows`` (no feature could be judged: drift would say nothing, an estimate on a handful of rows
    less)."""
    from features.targets import TARGETS
    from monitoring.loop import judge_week

    head = {**(head or {"model": name}), "rows": len(current), "reference_rows": len(reference)}
    fewest = settings.drift_min_rows
    if min(len(current), len(reference)) < fewest:
        return {
            **head,
            "note": f"not watched: {len(current):,} rows in the latest weeks and {len(reference):,} in the "
            f"reference, fewer than drift_min_rows ({fewest}) in one",
        }
    if outcomes is None:
        outcomes = pd.DataFrame(columns=["milestone_id", "project_id", *TARGETS[name].label_columns, "known_at"])
    week = judge_week(
        current, reference, bundle.features, bundle.categorical, settings, outcomes, model=name, meta=bundle.meta
    )
    return {**head, **week}


def watched_models(watched: dict) -> dict[str, dict]:
    """``watched`` by model: as :func:`watch` gives it, or a summary written before the watch covered every model
    (one model's dict, its name under ``model``)."""
    if not watched:
        return {}
    if isinstance(watched.get("model"), str):
        return {watched["model"]: watched}
    return {name: entry for name, entry in watched.items() if isinstance(entry, dict)}


def headline(entry: dict) -> str:
    """A model's estimates in a few words (``estimated AUC 0.712``; ``estimated MAE 9.8 days, P(late) AUC 0.91``),
    or its note."""
    if "note" in entry:
        return entry["note"]

    def num(value) -> str:
        return "–" if value is None or pd.isna(value) else f"{value:.3f}"

    if entry.get("kind") == "slip":
        mae = entry.get("estimated_mae")
        said = f"estimated MAE {mae:.1f} days" if mae is not None and pd.notna(mae) else "no estimated MAE"
        return f"{said}, P(late) AUC {num(entry.get('estimated_late_auc'))}"
    return f"estimated AUC {num(entry.get('estimated_auc'))}"
