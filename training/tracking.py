"""MLflow: one experiment per model, a run per training, the registry, the aliases and the promotion gate.

The embedded default is a sqlite store in the work folder, with artifacts beside it; ``MLFLOW_TRACKING_URI`` (or
the ``mlflow_tracking_uri`` setting) points everything at a tracking server instead. A model is registered only
after its run has logged everything, and serving reads only ``@champion``: a run that fails midway moves no alias
and leaves nothing serving could pick up. A registration or a gate that fails (the store locked or gone) is withdrawn,
and the gate moves ``@champion`` as its last write; ``eqsms train`` checks the store before it trains.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import sqlite3
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from requests import RequestException
from sqlalchemy.exc import SQLAlchemyError

from eqsms.settings import REPO_ROOT, Settings, data_name
from features.datasets import Dataset
from features.targets import target
from training import metrics, pyfunc
from training.bundle import ModelBundle
from training.evaluate import TrainResult, score_rows, too_few_to_judge

CHAMPION, CHALLENGER = "champion", "challenger"
# MLflow 3's experiment type (its UI's ExperimentKind): a classic model-training experiment, not a GenAI one.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
GATE_HEADING = "**Promotion gate**"  # the paragraph of a version's description the gate writes (and rewrites)
# The logged model's environment: what its pyfunc imports (training.pyfunc ships our code; eqsms.settings: pydantic).
PIP_REQUIREMENTS = [
    "lightgbm==4.7.0",
    "pandas==3.1.1",
    "numpy>=2.4,<2.5",
    "scikit-learn==1.9.1",
    "pydantic>=2.7",
    "pydantic-settings>=2.3",
]


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the store in settings (creating the sqlite folder if that is the store)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A uv-made venv has no pip; MLflow warns about it on every logged model, though the requirements are explicit.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    user_choice = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; put the user's environment back, so that the next
    # Settings() resolves its store from settings and the user's own variable, not from this call.
    if user_choice is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_choice
    return MlflowClient(uri, registry_uri=uri)


PROBE_SECONDS = 5  # how long the check before training waits for a locked sqlite file or a silent server
# What a store that is unreachable, locked or unwritable raises (MLflow passes some of SQLAlchemy's and requests' own).
MIDWAY_FAULTS = (MlflowException, SQLAlchemyError, RequestException)
STORE_FAULTS = (*MIDWAY_FAULTS, sqlite3.Error, OSError)  # and, before training, the sqlite file's own


class StoreUnavailable(RuntimeError):
    """The MLflow store cannot be reached or written; the message names it and says what to do."""


def store_problem(uri: str, err: BaseException) -> str:
    """One line for a user: the store, what went wrong with it (the error's first line) and what to do."""
    said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    said = re.sub(r"^\([\w.]+\) ", "", said)  # SQLAlchemy's "(sqlite3.OperationalError) database is locked"
    errno = None if isinstance(err, OSError) else re.search(r"\[Errno -?\d+\] [^'\")]+", said)
    if errno:  # an HTTP error's root cause, not urllib3's chain around it
        said = errno.group(0).strip()
    if "locked" in said:
        todo = "another process holds it: wait for it to finish, or stop it, and train again"
    elif uri.startswith("sqlite:"):
        todo = "point EQSMS_WORK_DIR or MLFLOW_TRACKING_URI at a folder this user can write"
    else:
        todo = "start the tracking server, or point MLFLOW_TRACKING_URI at one that answers"
    return f"the MLflow store {uri} failed ({said}): {todo}"


@contextmanager
def _no_retries() -> Iterator[None]:
    """MLflow's HTTP calls without their retries (minutes, by default) and with a short timeout, for the while."""
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(PROBE_SECONDS)}
    before = {key: os.environ.get(key) for key in quick}
    os.environ.update(quick)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def open_store(settings: Settings) -> MlflowClient:
    """:func:`configure`, then check that the store answers and can be written, before minutes of training: a
    sqlite file whose folder cannot be made or that another process holds locked, or a server that does not answer,
    raise :class:`StoreUnavailable` at once."""
    uri = settings.tracking_uri
    try:
        client = configure(settings)
        if uri.startswith("sqlite:///"):
            path = uri.removeprefix("sqlite:///").split("?")[0]
            with closing(sqlite3.connect(path, timeout=PROBE_SECONDS, isolation_level=None)) as conn:
                conn.execute("BEGIN IMMEDIATE")  # the write lock MLflow will need, taken and given back
                conn.execute("ROLLBACK")
        else:
            with _no_retries():
                client.search_experiments(max_results=1)
    except STORE_FAULTS as err:
        raise StoreUnavailable(store_problem(uri, err)) from err
    return client


def experiment_id(client: MlflowClient, target: str, settings: Settings) -> str:
    name = f"eqsms-{target}"
    found = client.get_experiment_by_name(name)
    if found is not None:
        if EXPERIMENT_KIND_TAG not in found.tags:  # made before it was tagged: not for the UI to guess (or ask)
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id
    local = settings.tracking_uri.startswith("sqlite:")
    location = (settings.work_dir / "mlartifacts").resolve().as_uri() if local else None
    try:
        return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException as err:  # another training of the model made it a moment ago (a shared server)
        if err.error_code != "RESOURCE_ALREADY_EXISTS" or (found := client.get_experiment_by_name(name)) is None:
            raise
        return found.experiment_id


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def flat_metrics(result: TrainResult) -> dict[str, float]:
    """Every number of a training, as MLflow metric names (``model.roc_auc``, ``backtest.fold2.mae``, ...)."""
    out = {f"{who}.{name}": value for who, values in result.metrics.items() for name, value in values.items()}
    out.update({f"lift.{name}": value for name, value in result.lifts.items()})
    for band, named in result.bands.items():
        out.update({f"band.{band}.{who}.{k}": v for who, values in named.items() for k, v in values.items()})
    for fold in result.backtest:
        out.update(
            {
                f"backtest.fold{fold['fold']}.{k}": v
                for k, v in fold.items()
                if isinstance(v, float | int) and k != "fold"
            }
        )
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def summary_metrics(result: TrainResult) -> dict[str, float]:
    """The headline numbers under ``summary.``, apart from the other metrics: the target's headline metric for the
    model, the reference class and the linear baseline (``summary.roc_auc``, ``summary.reference_class_roc_auc``,
    ``summary.linear_roc_auc``), and for a slip the range's coverage."""
    from training.kinds import strategy

    spec = target(result.target)
    metric, m = spec.headline, result.metrics
    pairs = {
        metric: m.get("model", {}).get(metric),
        f"reference_class_{metric}": m.get("reference_class", {}).get(metric),
        f"linear_{metric}": m.get(strategy(spec.kind).linear, {}).get(metric),
    }
    if "coverage" in m.get("model", {}):
        pairs["coverage"] = m["model"]["coverage"]
    return {f"summary.{k}": float(v) for k, v in pairs.items() if v is not None and np.isfinite(v)}


def run_name(name: str, source: str | None, day: dt.date | None = None) -> str:
    """``defect_risk · world · 2026-05-04``: the model, the data it learned (the exports folder's short name) and
    the day, in place of MLflow's random run names."""
    data = data_name(Path(source)) if source else "data"
    return f"{name} · {data} · {(day or dt.date.today()).isoformat()}"


def version_description(result: TrainResult, ds: Dataset, source: str | None) -> str:
    """A registered version's description (Markdown): the data and its windows, and the headline metric on the
    test rows against the reference class and the linear baseline. The gate appends its decision."""
    from training.kinds import strategy

    spec = target(result.target)
    metric, m = spec.headline, result.metrics
    windows = result.bundle.meta["windows"]
    said = " · ".join(
        f"{part} {' .. '.join(windows[part])}" for part in ("train", "calibration", "test") if part in windows
    )
    linear = strategy(spec.kind).linear

    def value(who: str, key: str = metric) -> str:
        v = m.get(who, {}).get(key)
        return "-" if v is None else f"{v:.4f}"

    lines = [
        f"**{spec.name}**, trained on {data_name(Path(source)) if source else 'data'} "
        f"(dataset {ds.fingerprint[:12]}, {len(ds.frame):,} rows).",
        "",
        f"- Data window: {said}",
        f"- {metric} on the test rows: model {value('model')} vs reference class {value('reference_class')} "
        f"vs {linear.replace('_', ' ')} {value(linear)}",
    ]
    if refit := result.bundle.meta.get("refit"):
        lines.append(
            f"- Refit on all {refit['rows']:,} labelled rows; the metrics are those of the model fitted before the "
            "test rows"
        )
    if "coverage" in m.get("model", {}):
        nominal = result.bundle.meta.get("interval_coverage")
        lines.append(
            f"- range coverage {value('model', 'coverage')}" + (f" (nominal {nominal:.2f})" if nominal else "")
        )
    return "\n".join(lines)


@dataclass
class Registered:
    target: str
    run_id: str
    version: str
    model_uri: str
    challenger_before: str | None = None  # what @challenger was before: withdraw() puts it back


SCHEMA_SAMPLE_ROWS = 1000  # MLflow infers a schema value by value: on a 40,000-row dataset that took 3 s


def log_dataset(ds: Dataset) -> None:
    """The dataset as the run's input (MLflow's "Datasets used"): its name, fingerprint, Parquet file, schema and
    size. Logged as metadata (the data stays in its file) with the schema inferred from its first rows."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # MLflow hints at integer columns and guesses the source's kind: not ours to fix
        warnings.simplefilter("ignore", UserWarning)
        schema = infer_signature(ds.frame.head(SCHEMA_SAMPLE_ROWS)).inputs
        source = resolve_dataset_source(ds.source or "memory")
    logged = MetaDataset(source, name=ds.target, digest=ds.fingerprint[:32], schema=schema)
    tags = {"fingerprint": ds.fingerprint, "rows": str(len(ds.frame)), "label": ds.spec.label}
    mlflow.log_input(logged, context="training", tags=tags)


def feedback_metrics(ds: Dataset) -> dict[str, float]:
    """What the planners' stated outcomes did to the dataset (``training.feedback``): ``feedback.labels`` (targets
    labelled from feedback), ``feedback.rows``, ``feedback.conflicts`` (the export's outcome kept), ... Nothing when
    training did not read feedback (the setting off, or the prediction log)."""
    return {f"feedback.{k}": float(v) for k, v in (ds.meta.get("feedback") or {}).items()}


def log_training(
    result: TrainResult,
    ds: Dataset,
    settings: Settings,
    client: MlflowClient,
    params: dict,
    tags: dict,
    artifacts: list[Path],
) -> Registered:
    """One run with everything a reviewer and serving need; then the model is registered as ``@challenger``."""
    bundle = result.bundle
    name = ds.meta.get("model_name", result.target)  # the registry name: the target's, or a prepared table's own
    source = tags.get("source")
    with mlflow.start_run(experiment_id=experiment_id(client, name, settings), run_name=run_name(name, source)) as run:
        log_dataset(ds)
        mlflow.log_params(params)
        mlflow.set_tags(tags)  # the caller's, with the git commit it trained at
        mlflow.log_metrics({**summary_metrics(result), **flat_metrics(result), **feedback_metrics(ds)})
        evaluation = {"backtest": result.backtest, "lifts": result.lifts, "bands": result.bands, **bundle.meta}
        mlflow.log_dict(evaluation, "evaluation.json")
        for path in artifacts:
            mlflow.log_artifact(str(path))
        with tempfile.TemporaryDirectory() as tmp:
            rows = Path(tmp) / "test_rows.parquet"
            with_tested(result).to_parquet(rows, index=False)
            mlflow.log_artifact(str(rows))
            # One model, two flavors: the native booster with bundle.json and the extra boosters (what serving
            # loads), and a python_function whose predict gives the calibrated outputs (training.pyfunc).
            extras = bundle.write_extras(Path(tmp) / "extras")
            info = pyfunc.log_model(bundle, result.test_rows, extras, PIP_REQUIREMENTS)
    before = alias_version(client, name, CHALLENGER)
    version = str(mlflow.register_model(info.model_uri, name).version)
    registered = Registered(name, run.info.run_id, version, f"models:/{name}/{version}", before)
    try:
        client.update_model_version(name, version, description=version_description(result, ds, source))
        client.set_model_version_tag(name, version, "target", result.target)  # the gate judges by its spec
        client.set_registered_model_alias(name, CHALLENGER, version)
        if "training.identity" in tags:  # last: registered_with takes a version with it for a finished training
            client.set_model_version_tag(name, version, "training.identity", tags["training.identity"])
    except BaseException:
        withdraw(client, registered)
        raise
    return registered


def withdraw(client: MlflowClient, registered: Registered) -> None:
    """Undo a registration that a failure cut short (the store locked or gone, Ctrl-C): ``@challenger`` back where it
    was and the version deleted, so the registry is as it was. Best effort, since the store may be what failed."""
    name, version = registered.target, registered.version
    try:
        if registered.challenger_before:
            client.set_registered_model_alias(name, CHALLENGER, registered.challenger_before)
        client.delete_model_version(name, version)
    except Exception as err:  # the error that brought us here is the one to report; say what is left behind
        logging.getLogger(__name__).warning(
            "version %s of %s is left registered (it was never @%s): %s", version, name, CHAMPION, str(err)[:200]
        )


def load_bundle(model_uri: str) -> ModelBundle:
    """A bundle from the registry (``models:/defect_risk@champion``, ``models:/delay/3``) or a run."""
    return ModelBundle.from_model_dir(Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri)))


def registered_with(client: MlflowClient, name: str, identity: str) -> str | None:
    """The version of ``name`` registered from a training with this identity, if the registry has one."""
    try:
        found = client.search_model_versions(f"name='{name}' and tag.`training.identity`='{identity}'")
    except MlflowException:
        return None
    return str(max(int(v.version) for v in found)) if found else None


GATE_LOCK = "{name}.gate-lock"  # the registered model whose existence is the gate's lock on ``name``
LOCK_POLL_SECONDS = 0.5
LOCK_STALE_SECONDS = 600  # a lock seen unchanged this long is taken to be left by a process that died


@contextmanager
def gate_lock(client: MlflowClient, name: str, stale_after: float = LOCK_STALE_SECONDS) -> Iterator[None]:
    """Hold the promotion gate of ``name``: no other gate or rollback of it reads or moves ``@champion`` meanwhile.

    Two trainings of one model at once (a shared tracking server) would otherwise both judge against the same
    champion and both move it, the history recording two moves from one version. The store's registry offers no
    lock and no compare-and-set of an alias, but creating a registered model is atomic in every store (a unique
    name: one creator wins, the others get RESOURCE_ALREADY_EXISTS), and deleting one is a hard delete: the lock is
    a registered model ``<name>.gate-lock``, held for the seconds of a gate, tagged with its holder. A waiter takes
    over a lock whose holder was a process of this host that is gone, or a lock it has seen unchanged for
    ``stale_after`` seconds (a holder that died on another machine); waiting is measured on its own clock."""
    lock = GATE_LOCK.format(name=name)
    holder = {"host": socket.gethostname(), "pid": str(os.getpid())}
    said = f"the promotion gate of {name} is being run (a lock, deleted when it ends)"
    seen, since = None, time.monotonic()
    while True:
        try:
            client.create_registered_model(lock, tags=holder, description=said)
            break
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        try:
            held = client.get_registered_model(lock)
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                continue  # given back meanwhile: try again at once
            raise
        if held.creation_timestamp != seen:
            seen, since = held.creation_timestamp, time.monotonic()
        if _holder_gone(held.tags) or time.monotonic() - since > stale_after:
            logging.getLogger(__name__).warning("taking over the gate lock %s left by %s", lock, held.tags)
            _give_back(client, lock)
            continue
        time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        _give_back(client, lock)


def _holder_gone(tags: dict) -> bool:
    """Whether a lock's holder was a process of this host that is no longer running."""
    pid = tags.get("pid", "")
    return tags.get("host") == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


def _give_back(client: MlflowClient, lock: str) -> None:
    """Delete a gate lock: best effort (the store may be what failed; a waiter takes over a lock left behind)."""
    try:
        client.delete_registered_model(lock)
    except Exception as err:
        if getattr(err, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
            logging.getLogger(__name__).warning("the gate lock %s is left behind: %s", lock, str(err)[:200])


def alias_version(client: MlflowClient, target: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(target, alias).version)
    except MlflowException:
        return None


def gate_metric(bundle: ModelBundle, rows: pd.DataFrame) -> float:
    """The headline metric of the bundle's target on given rows (ROC-AUC for a classifier, MAE for a slip)."""
    spec = target(bundle.target)
    return score_rows(spec, rows, bundle.predict(rows))[spec.headline]


@dataclass
class Decision:
    target: str
    promoted: bool
    reason: str
    challenger: str | None
    champion_before: str | None
    metric: str
    challenger_value: float | None = None
    champion_value: float | None = None

    def summary(self) -> str:
        verb = "promoted" if self.promoted else "kept the champion" if self.champion_before else "no champion"
        values = ""
        if self.champion_value is not None:
            values = (
                f" ({self.metric}: challenger v{self.challenger} {self.challenger_value:.4f}, "
                f"champion v{self.champion_before} {self.champion_value:.4f})"
            )
        return f"{self.target}: {verb}: {self.reason}{values}"


def promote(
    client: MlflowClient,
    name: str,
    tolerance: float,
    baseline_tolerance: float = 0.0,
    moved_by: str | None = None,
    challenger: str | None = None,
) -> Decision:
    """Move ``@champion`` to the challenger (``challenger``, the version a training registered, else ``@challenger``)
    if it beats its baselines and is no worse than the champion.

    The challenger is judged by the test metric it logged: measured on its test rows by the model fitted before
    them (the registered one is refit on every row, those included). It must be no worse than the reference class
    and the linear baseline on those rows (within ``baseline_tolerance``), the first model too, unless the rows are
    too few to judge by (then it says so). Challenger and champion are compared on rows neither learned from
    (:func:`judged_on_fresh_rows`): the challenger's test rows after the champion's data, else each its own. The
    decision and both values are logged to the challenger's run and set as tags on its version. A move of
    ``@champion`` is recorded in the champion history first (``training.history``), by ``moved_by`` (default: the
    user or ``EQSMS_MOVED_BY``, and the command). The gate holds :func:`gate_lock` from reading the aliases to
    moving ``@champion``: two gates of one model (two trainings at once on a shared server) judge one after the other.
    """
    with gate_lock(client, name):
        return _judge(client, name, tolerance, baseline_tolerance, moved_by, challenger)


def _judge(
    client: MlflowClient,
    name: str,
    tolerance: float,
    baseline_tolerance: float,
    moved_by: str | None,
    challenger: str | None,
) -> Decision:
    challenger = challenger or alias_version(client, name, CHALLENGER)
    champion = alias_version(client, name, CHAMPION)
    if challenger is None:
        return Decision(name, False, f"no @{CHALLENGER}: train one with `eqsms train`", None, champion, "")
    if champion == challenger:
        return Decision(name, False, "the challenger already is the champion", challenger, champion, "")
    # A registered model is judged by its target's metric (a prepared table's model has a name of its own).
    version = client.get_model_version(name, challenger)
    spec = target(version.tags.get("target", name))
    metric, logged = spec.headline, client.get_run(version.run_id).data.metrics
    rows = logged_test_rows(version.run_id)
    new = logged.get(f"model.{metric}")
    if new is None:  # logged before the gate read the test metric: the registered model was the one tested
        new = gate_metric(load_bundle(f"models:/{name}/{challenger}"), rows)
    if not (refused := _beaten_by_a_baseline(spec, logged, new, baseline_tolerance, rows)):
        if champion is None:
            few = too_few_to_judge(spec, rows)
            reason = "first model" + (f" ({few[0]}; not judged against the baselines)" if few else "")
            decision = Decision(name, True, reason, challenger, None, metric, new)
        else:
            new, old, basis, fresh = judged_on_fresh_rows(client, name, champion, spec, rows, new)
            better = _no_worse(new, old, metric, tolerance)
            said = f"no worse than the champion within {tolerance}" if better else "worse than the champion"
            moved = None if better or fresh is None else _move_reference(client, name, champion, challenger, fresh)
            if moved:
                said += f"; the champion held its tested {metric} on them, so its drift reference now ends {moved}"
            decision = Decision(name, better, f"{said} ({basis})", challenger, champion, metric, new, old)
    else:
        decision = Decision(name, False, refused, challenger, champion, metric, new)
    _record(client, decision)
    if decision.promoted:  # the last write: a gate that fails before it has moved no alias
        # In the champion history first (pending), then the alias, then the record marked done (never raising).
        from training.history import record_promotion

        record_promotion(client, decision, moved_by)
    return decision


def seen_until(bundle: ModelBundle) -> pd.Timestamp | None:
    """The latest ``as_of`` a registered model learned from: the end of its test window when it was refit on every
    row (``refit_on_all_rows``), else of its calibration window; None when its windows are not dates."""
    windows = bundle.meta.get("windows", {})
    span = windows.get("test" if "refit" in bundle.meta else "calibration")
    if not span or not re.match(r"\d{4}-\d{2}-\d{2}", str(span[1])):
        return None  # a prepared table ordered by a number (a row number, a year-week): no time to compare
    return pd.Timestamp(span[1])


TESTED = "_tested."  # test_rows.parquet's columns of the tested model's predictions (``_tested.probability``...)


Scored = tuple[pd.DataFrame, dict[str, np.ndarray]]  # rows with their labels, and a model's predictions of them


def tested_predictions(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The tested model's predictions of logged test rows (``with_tested``'s columns), keyed as ``predict``'s."""
    return {c.removeprefix(TESTED): rows[c].to_numpy() for c in rows.columns if c.startswith(TESTED)}


def logged_test_rows(run_id: str) -> pd.DataFrame:
    """The test rows a training run logged (``with_tested``)."""
    return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="test_rows.parquet"))


def with_tested(result: TrainResult) -> pd.DataFrame:
    """The test rows as logged: ids, as_of, labels, features, and the tested model's predictions (the model fitted
    before them), so the gate can score it on any subset of them later."""
    tested = {k.removeprefix("model_"): v for k, v in result.predictions.items() if k.startswith("model_")}
    return result.test_rows.assign(**{f"{TESTED}{k}": v for k, v in tested.items()})


def judged_on_fresh_rows(
    client: MlflowClient, name: str, champion: str, spec, rows: pd.DataFrame, logged: float
) -> tuple[float, float, str, Scored | None]:
    """The challenger's and the champion's headline metric on rows neither learned from, which rows, in words, and
    those rows with the champion's predictions when they are newer than its data (else None).

    The challenger's test rows after the champion's data (:func:`seen_until`: a champion refit on every row has
    learned from the older ones, and would look better than it is on them), each model judged on exactly those: the
    challenger by its tested predictions logged with them (``with_tested``), the champion by scoring them. When
    they are too few to judge by, or the challenger's run logged no predictions (trained before they were), the
    challenger's logged test metric against the champion's own logged test metric: each on rows it had not seen."""
    bundle = load_bundle(f"models:/{name}/{champion}")
    until = seen_until(bundle)
    fresh = rows if until is None else rows[pd.to_datetime(rows["as_of"]) > until]
    tested = tested_predictions(fresh)
    if tested and not too_few_to_judge(spec, fresh):
        new = score_rows(spec, fresh, tested)[spec.headline]
        said = f"both on {len(fresh):,} test rows newer than the champion's data"
        theirs = bundle.predict(fresh)
        return new, score_rows(spec, fresh, theirs)[spec.headline], said, (fresh, theirs)
    version = client.get_model_version(name, champion)
    theirs = client.get_run(version.run_id).data.metrics.get(f"model.{spec.headline}")
    if theirs is not None:
        return logged, theirs, "each on its own test rows: too few of the challenger's are new to the champion", None
    said = "the challenger's test rows, some of which the champion learned from"
    return logged, gate_metric(bundle, rows), said, None


REFERENCE_UNTIL = "monitor.reference_until"  # a champion version's tag: where its drift reference now ends


def _move_reference(client: MlflowClient, name: str, champion: str, challenger: str, fresh: Scored) -> str | None:
    """When the gate keeps a champion that, on test rows newer than its data (``fresh``, with its predictions), held
    the quality it was
    tested with (:func:`held_its_quality`), the population up to the challenger's export is one it has been shown
    to serve: its drift reference moves there (the version's ``REFERENCE_UNTIL`` tag, read by
    ``monitoring.watch.reference_end``). Without this, a champion the gate keeps for months is judged against the
    quarter before its own training, and features that move slowly with time (a client's tenure, firm-wide rates)
    flag it though retraining gains nothing. A champion that lost quality keeps its reference, and its flag. The
    date set, or None."""
    version = client.get_model_version(name, champion)
    spec = target(version.tags.get("target", name))
    own = logged_test_rows(version.run_id)
    tested = tested_predictions(own)
    if not tested:
        return None  # trained before the tested predictions were logged: nothing to compare with
    if not held_its_quality(spec, fresh, (own, tested)):
        return None
    run_id = client.get_model_version(name, challenger).run_id  # its bundle's meta, logged beside it: not the model
    until = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation.json").get("data_until")
    if not until:
        return None
    day = str(pd.Timestamp(until).date())
    client.set_model_version_tag(name, champion, REFERENCE_UNTIL, day)
    return day


def held_its_quality(spec, new: Scored, tested: Scored, draws: int = 200) -> bool:
    """Whether a model's headline metric on ``new`` rows is not worse than on the rows it was ``tested`` on beyond
    chance: the 95% bootstrap interval of the difference (each set of rows resampled on its own, ``draws`` times,
    seeded) reaches zero or the better side. Both are samples: a few hundred rows move an AUC by a few hundredths."""
    rng = np.random.default_rng(0)

    def resampled(rows: pd.DataFrame, pred: dict[str, np.ndarray]) -> np.ndarray:
        picks = (rng.integers(0, len(rows), len(rows)) for _ in range(draws))
        values = [score_rows(spec, rows.iloc[p], {k: v[p] for k, v in pred.items()})[spec.headline] for p in picks]
        return np.asarray(values, dtype=float)

    change = resampled(*new) - resampled(*tested)
    if spec.headline in metrics.HIGHER_IS_BETTER:
        return float(np.nanquantile(change, 0.975)) >= 0
    return float(np.nanquantile(change, 0.025)) <= 0


def _no_worse(new: float, old: float, metric: str, tolerance: float) -> bool:
    return new >= old - tolerance if metric in metrics.HIGHER_IS_BETTER else new <= old + tolerance


def _beaten_by_a_baseline(spec, logged: dict, value: float, tolerance: float, rows: pd.DataFrame) -> str | None:
    """Why the challenger is refused for doing worse than the reference class or the linear baseline on its own
    test rows; None when it does not, or when the rows are too few to tell."""
    from training.kinds import strategy

    if too_few_to_judge(spec, rows):
        return None
    metric = spec.headline
    for who in ("reference_class", strategy(spec.kind).linear):
        theirs = logged.get(f"{who}.{metric}")
        if theirs is not None and not _no_worse(value, theirs, metric, tolerance):
            said = who.replace("_", " ")
            return f"refused: worse than {said} on its own test rows ({metric} {value:.4f} vs {theirs:.4f})"
    return None


def _record(client: MlflowClient, d: Decision) -> None:
    version = client.get_model_version(d.target, d.challenger)
    tags = {"gate.decision": "promoted" if d.promoted else "rejected", "gate.reason": d.reason, "gate.metric": d.metric}
    if d.champion_before:
        tags["gate.champion_version"] = d.champion_before
    for key, value in tags.items():
        client.set_model_version_tag(d.target, d.challenger, key, value)
        client.set_tag(version.run_id, key, value)
    for key, value in (("gate.challenger_value", d.challenger_value), ("gate.champion_value", d.champion_value)):
        if value is not None:
            client.log_metric(version.run_id, key, value)
    # The decision in the version's description too, in place of an earlier one (the gate may judge it again).
    before = (version.description or "").split(GATE_HEADING)[0].rstrip()
    said = f"{GATE_HEADING} ({tags['gate.decision']}): {d.summary()}"
    client.update_model_version(d.target, d.challenger, description=f"{before}\n\n{said}" if before else said)
