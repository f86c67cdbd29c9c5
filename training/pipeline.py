"""`eqsms train` end to end: datasets -> fit and evaluate -> evidence -> MLflow run -> registry (-> gate)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eqsms.settings import Settings
from features.datasets import (
    Dataset,
    build_all,
    build_dataset,
    folder_fingerprint,
    reusable_dataset,
    tables_fingerprint,
    write_dataset,
)
from features.families import Context
from features.targets import TARGETS, TargetUnavailable, band_texts, target
from training import report
from training.evaluate import TrainResult, refit_on_all_rows, train_target
from training.feedback import apply_outcomes, read_stated
from training.kinds import strategy
from training.tracking import Decision, Registered, configure, log_training, promote, withdraw

KNOWN_LIMITS = [
    "Trained and tested on the rows of one firm's exports; a new firm or project type needs its own backtest.",
    "Drivers (SHAP) are in the raw model's output (log-odds for a probability, days for a slip), before calibration.",
    "The test window is the latest period of the data: metrics can drift as the mix of projects changes.",
]


@dataclass
class Outcome:
    target: str
    result: TrainResult | None = None
    registered: Registered | None = None
    decision: Decision | None = None
    skipped: str | None = None


def evidence(result: TrainResult, ds: Dataset, folder: Path, git_commit: str | None) -> list[Path]:
    """The plots and the model card a reviewer looks at, written into ``folder``."""
    b, rows, pred = result.bundle, result.test_rows, result.predictions
    spec = target(result.target)
    X = b.frame(rows)
    contributions = b.booster.predict(X, pred_contrib=True)
    paths = [
        report.shap_summary_plot(
            contributions, X, folder / "shap_summary.png", f"{spec.name}: drivers on the test rows"
        ),
        report.importance_plot(b.booster, folder / "feature_importance.png", f"{spec.name}: gain importance"),
        *strategy(spec.kind).plots(spec, b, rows, pred, folder),
    ]
    card = report.ModelCard(
        name=spec.name,
        target=ds.meta.get("purpose") or f"{spec.purpose}. Reference class: {spec.reference_class}.",
        intended_use="Planners ranking upcoming milestones and clients for attention; dashboards.",
        not_intended_for=["Judging individual workers or subcontractors", "Contract or legal decisions on its own"],
        dataset_fingerprint=b.meta["dataset_fingerprint"],
        rows=b.meta["rows"],
        as_of_windows={k: tuple(v) for k, v in b.meta["windows"].items()},
        n_features=len(b.features),
        metrics=result.metrics,
        lifts=result.lifts,
        backtest=result.backtest,
        known_limits=[*result.notes, *KNOWN_LIMITS],
        git_commit=git_commit,
    )
    card_path = folder / "model_card.md"
    card_path.write_text(report.model_card(card))
    return [*paths, card_path]


TRAINING_KEYS = (
    "train_share",
    "calibration_share",
    "backtest_folds",
    "interval_coverage",
    "n_estimators",
    "learning_rate",
    "num_leaves",
    "max_depth",
    "min_child_samples",
    "early_stopping_rounds",
    "refit_on_all_rows",
    "seed",
    "horizon_days",
    "late_tolerance_days",
    "churn_window_days",
)


def params_of(result: TrainResult, settings: Settings) -> dict:
    b = result.bundle
    out = {k: getattr(settings, k) for k in TRAINING_KEYS}
    out["num_leaves"] = settings.num_leaves_by_model.get(result.target, settings.num_leaves)
    out["training_engine"] = settings.training_engine  # dask: fitted by lightgbm.dask (training/dask_fit.py)
    out.update({f"tuned.{k}": v for k, v in settings.tuned_params.get(result.target, {}).items()})  # over the above
    out.update(
        {
            "n_features": len(b.features),
            "trees": b.booster.num_trees(),
            "calibration": b.calibrator.method if b.calibrator else "none",
            "conformal_margin_days": round(b.conformal, 3),
        }
    )
    return out


def tags_of(result: TrainResult, ds: Dataset, source: str) -> dict:
    windows = result.bundle.meta["windows"]
    return {
        "target": result.target,
        "source": source,
        "dataset.fingerprint": ds.fingerprint,
        "dataset.rows": str(len(ds.frame)),
        "dataset.as_of_window": " .. ".join(ds.meta.get("as_of_window") or []),
        "dataset.test_window": " .. ".join(windows["test"]),
    }


def training_identity(ds: Dataset, settings: Settings, commit: str | None) -> str:
    """What makes two trainings the same: the dataset's fingerprint, the training parameters (with the ones
    ``eqsms train --tune`` chose for this target), the code's commit."""
    same = {
        "dataset": ds.fingerprint,
        "settings": {k: getattr(settings, k) for k in (*TRAINING_KEYS, "num_leaves_by_model", "delay_objective")},
        "commit": commit,
    }
    if tuned := settings.tuned_params.get(ds.target):  # an untuned training keeps the identity it had
        same["settings"]["tuned_params"] = tuned
    if settings.training_engine != "pandas":  # a training on one machine keeps the identity it had
        same["settings"]["training_engine"] = settings.training_engine
    return hashlib.sha256(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()


def run_target(
    ds: Dataset,
    settings: Settings,
    oracle: pd.DataFrame | None,
    source: str,
    gate: bool,
    client=None,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> Outcome:
    """Train, log and register one target; with ``gate``, run the promotion gate on it. A training the registry
    already holds (same dataset, parameters and code: :func:`training_identity`) is not repeated unless ``force``.
    ``progress(what, done, total)``, if given, hears of each step (fit, refit, evidence, MLflow, gate) as it starts."""
    from training.tracking import git_commit, registered_with

    def step(done: int, what: str) -> None:
        if progress:
            progress(what, done, 5)

    client = client or configure(settings)
    name = ds.meta.get("model_name", ds.target)
    commit = git_commit()
    identity = training_identity(ds, settings, commit)
    if not force and (version := registered_with(client, name, identity)):
        said = f"unchanged: version {version} learned this dataset with these parameters (--force to train again)"
        return Outcome(name, skipped=said)
    step(0, f"fitting, calibrating, baselines and backtest folds ({len(ds.frame):,} rows)")
    result = train_target(ds, settings, oracle)
    if settings.refit_on_all_rows:
        step(1, "refitting on all rows")
        result = refit_on_all_rows(ds, result, settings)
    with tempfile.TemporaryDirectory() as tmp:
        step(2, "evidence: SHAP, plots, model card")
        artifacts = evidence(result, ds, Path(tmp), commit)
        tags = {**tags_of(result, ds, source), "training.identity": identity, "git_commit": commit or "unknown"}
        step(3, "logging to MLflow and registering")
        registered = log_training(result, ds, settings, client, params_of(result, settings), tags, artifacts)
    tolerances = settings.promotion_tolerance, settings.baseline_tolerance
    if gate:
        step(4, "promotion gate")
    try:
        decision = promote(client, registered.target, *tolerances, challenger=registered.version) if gate else None
    except BaseException:  # the gate never moved @champion (its last write): nor does the registry keep the version
        withdraw(client, registered)
        raise
    return Outcome(registered.target, result, registered, decision)


def training_datasets(
    data_dir: Path,
    settings: Settings,
    targets: list[str],
    load,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Dataset | str]:
    """Each asked-for target's dataset, or the reason the data cannot label it.

    The datasets are the named artifacts ``eqsms features build`` writes to ``settings.datasets_dir``: one built
    from the same raw files with the same parameters is reused as it is; any other is built (``load`` validates
    ``data_dir``, only when something must be built) and written there, so one dataset has one fingerprint
    whichever command made it. ``progress(what, done, total)``, if given, hears of each dataset before it is built.
    The planners' stated outcomes (``training.feedback``, when ``training_uses_feedback`` and the prediction log are
    on) label what the export does not, in the datasets returned, never in the files written.
    """
    data_hash = folder_fingerprint(data_dir)
    out: dict[str, Dataset | str] = {}
    for name in targets:
        found = reusable_dataset(settings.datasets_dir, target(name), settings, data_hash) if data_hash else None
        if found is not None:
            out[name] = found
    missing = [name for name in targets if name not in out]
    ctx = None
    if missing:
        if progress:
            progress(f"reading and validating {data_dir}", 0, len(missing))
        data = load(data_dir)
        ctx = Context.build(data.tables, settings)
        data_hash = data_hash or tables_fingerprint(data.tables)
        for done, name in enumerate(missing):
            if progress:
                progress(f"building the {name} dataset", done, len(missing))
            try:
                ds = build_dataset(name, ctx, data_hash)
            except TargetUnavailable as err:
                out[name] = str(err)
                continue
            write_dataset(ds, settings.datasets_dir)
            out[name] = ds
    out = {name: out[name] for name in targets}
    # The planners' stated outcomes join after the named artifact is written: it stays the export's alone.
    if (stated := read_stated(settings)) is None:
        return out
    if ctx is None and len(stated):
        ctx = Context.build(load(data_dir).tables, settings)
    return apply_outcomes(out, ctx, stated)


def datasets_from_data(data, settings: Settings, targets: list[str]) -> dict[str, Dataset | str]:
    """Each target's dataset from validated data in memory, or the reason the data cannot label it (notebooks,
    benchmarks); the same rows and fingerprint as the files ``eqsms features build`` writes, unless planners stated
    outcomes the export lacks (``training.feedback``: then those rows too, and a fingerprint of their own)."""
    out = {name: r.dataset or r.error for name, r in build_all(data, settings, targets).items()}
    if (stated := read_stated(settings)) is None:
        return out
    return apply_outcomes(out, Context.build(data.tables, settings) if len(stated) else None, stated)


def summary_rows(outcomes: list[Outcome]) -> list[list[str]]:
    """One line a target for the terminal: headline metric against baselines and oracle, registry state."""
    rows = []
    for o in outcomes:
        if o.skipped:
            rows.append([o.target, "-", "-", "-", "-", f"skipped: {o.skipped}"])
            continue
        m = o.result.metrics
        key = target(o.result.target).headline
        base = next(name for name in m if name not in ("model", "oracle", "reference_class"))
        fmt = "{:.3f}".format
        state = f"v{o.registered.version}"
        if o.decision:
            state += " champion" if o.decision.promoted else " challenger (gate: kept champion)"
        rows.append(
            [
                o.target,
                f"{key} {fmt(m['model'][key])}",
                fmt(m["reference_class"][key]),
                fmt(m[base][key]),
                fmt(m["oracle"][key]) if "oracle" in m else "-",
                state,
            ]
        )
    return rows


def band_rows(outcomes: list[Outcome], settings: Settings) -> list[list[str]]:
    """One line a target and horizon band: its rows, then each of the kind's band metrics, the model's with the
    reference class's in brackets (the other baselines and the oracle are in MLflow: ``band.<band>.*``)."""
    rows = []
    for o in outcomes:
        if o.skipped or not o.result.bands:
            continue
        kind = strategy(target(o.result.target).kind)
        for band, named in o.result.bands.items():
            said = [
                f"{metric} {named['model'][metric]:.3g} ({named['reference_class'][metric]:.3g})"
                for metric in kind.band_metrics
            ]
            rows.append([o.target, band_texts(settings.near_days)[band], f"{named['rows']['count']:,.0f}", *said])
    return rows


def all_targets(model: str) -> list[str]:
    return list(TARGETS) if model == "all" else [model]
