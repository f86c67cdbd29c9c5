"""The `training` stage's commands: train, promote, history, rollback."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from eqsms.cli_kit import DEBUG, console, fail, one_of, print_table, progress, summary, took, where
from eqsms.settings import get_settings
from features.targets import TARGETS

app = typer.Typer(no_args_is_help=True, add_completion=False)
MODELS = (*TARGETS, "all")
_model_option = one_of(MODELS)


@app.command()
def train(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Argument(help="folder of raw exports (contract v1); default: data_dir")
    ] = None,
    model: Annotated[str, typer.Option(help=f"{', '.join(TARGETS)} or all", callback=_model_option)] = "all",
    promote: Annotated[bool, typer.Option("--promote", help="run the promotion gate after training")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="train again even if the registry holds this dataset's training")
    ] = False,
    dataset: Annotated[Path | None, typer.Option(help="train on this prepared feature table instead")] = None,
    target: Annotated[str | None, typer.Option(help="with --dataset: the label column")] = None,
    time_column: Annotated[str | None, typer.Option(help="with --dataset: the as_of column")] = None,
    id_columns: Annotated[str, typer.Option(help="with --dataset: comma-separated id columns")] = "",
    features: Annotated[
        str, typer.Option(help="with --dataset: comma-separated feature columns (default: all the others)")
    ] = "",
    exclude: Annotated[str, typer.Option(help="with --dataset: comma-separated columns that are not features")] = "",
    registry_name: Annotated[
        str | None, typer.Option("--name", help="with --dataset: the registry name (default: from the file name)")
    ] = None,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="search LightGBM's parameters first (Optuna), judged on the backtest folds, never on the test rows",
        ),
    ] = False,
    budget_minutes: Annotated[
        float | None,
        typer.Option(help="with --tune: minutes of search for all the models together (default: tune_budget_minutes)"),
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="with --tune: at most this many trials a model (default: tune_trials)")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="where the boosters are fitted: pandas (this process) or dask (lightgbm.dask on a Dask cluster; "
            "the datasets are built as without it); default: training_engine",
            callback=one_of(("pandas", "dask")),
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="dask: the scheduler's address (tcp://host:8786); default: a local cluster, a worker a core"),
    ] = None,
) -> None:
    """Fit, evaluate (time split, backtest, baselines, oracle), log to MLflow and register as @challenger."""
    started = time.monotonic()
    from features.cli import load_or_exit
    from training.evaluate import TooFewRows, read_oracle
    from training.feedback import FeedbackUnreadable
    from training.pipeline import Outcome, all_targets, band_rows, run_target, summary_rows, training_datasets
    from training.tables import TableError, dataset_from_table
    from training.tracking import MIDWAY_FAULTS, StoreUnavailable, open_store, store_problem
    from training.tune import Budget

    settings = get_settings()
    engine = engine or settings.training_engine
    if scheduler is not None and engine != "dask":
        fail("--scheduler", "it goes with --engine dask")
    if engine == "dask":  # before the datasets: a scheduler that cannot be reached is said at once
        settings = settings.model_copy(update={"training_engine": "dask"})
        ctx.call_on_close(_on_dask(scheduler))
    if not tune and (budget_minutes is not None or trials is not None):
        fail("--budget-minutes and --trials", "they go with --tune")
    if budget_minutes is not None and not budget_minutes > 0:
        fail("cannot tune", f"--budget-minutes must be above 0, not {budget_minutes:g}")
    if trials is not None and trials < 1:
        fail("cannot tune", f"--trials must be at least 1, not {trials}")
    if dataset is not None:
        if model == "all" or not target or not time_column:
            raise typer.BadParameter("--dataset needs --model (one target), --target and --time-column")
        ids, chosen, left_out = (_names(v) for v in (id_columns, features, exclude))
        try:
            ds = dataset_from_table(
                dataset, model, target, time_column, ids, settings, chosen or None, left_out, registry_name
            )
        except TableError as err:
            fail(f"cannot train on {dataset}", err)
        said = f"{ds.meta['model_name']} (a {model} model): {len(ds.frame):,} rows"
        console.print(f"{said}; features: {', '.join(ds.feature_columns)}", highlight=False)
        for note in ds.meta["notes"]:
            console.print(f"[yellow]note[/]: {note}", highlight=False)
        datasets, oracle, source = {ds.meta["model_name"]: ds}, None, str(dataset)
    else:
        data_dir = data_dir or settings.data_dir
        said = f"point-in-time datasets (reused from {settings.datasets_dir} when built from this data)"
        with progress(said) as shown:
            validating = shown.hook(f"validating {data_dir}", count=True)
            told = shown.hook(count=True)
            try:
                datasets = training_datasets(
                    data_dir, settings, all_targets(model), lambda d: load_or_exit(d, validating), told
                )
            except FeedbackUnreadable as err:
                fail("cannot build the datasets", err)
            except OSError as err:  # most often a work folder that cannot be made or written
                fail("cannot build the datasets", f"{err} (EQSMS_WORK_DIR must be a folder this user can write)")
        for ds in datasets.values():
            if not isinstance(ds, str):
                console.print(f"{ds.target}: dataset {ds.describe()} ({ds.source or 'in memory'})", highlight=False)
        if told_feedback := _feedback_said(datasets):
            console.print(f"planners' feedback: {told_feedback}", highlight=False, soft_wrap=True)
        oracle, source = read_oracle(data_dir), str(data_dir)
    if not os.environ.get(DEBUG):  # MLflow logs a store's error with its traceback: the command says it in one line
        logging.getLogger("mlflow.store.db.utils").addFilter(_no_traceback)
    try:
        client = open_store(settings)  # unreachable, locked or unwritable: said now, not after the training
    except StoreUnavailable as err:
        fail("cannot train", err)
    console.print(f"MLflow store: {settings.tracking_uri}", soft_wrap=True)
    outcomes, searches = [], {}
    trainable = [name for name, ds in datasets.items() if not isinstance(ds, str)]
    budget = Budget((budget_minutes or settings.tune_budget_minutes) * 60, trainable)
    with progress("training", total=len(trainable)) as shown:
        for name, ds in datasets.items():
            if isinstance(ds, str):
                console.print(f"[yellow]{name}[/]: skipped, {ds}")
                outcomes.append(Outcome(name, skipped=ds))
                continue
            target_settings = settings
            try:
                if tune:
                    target_settings, searches[name] = _tune(name, ds, settings, budget, trials, shown)
                shown.update(f"{name}: fitting, calibrating, backtesting and logging ({len(ds.frame):,} rows)")
                outcome = run_target(ds, target_settings, oracle, source, promote, client, force, shown.hook(name))
            except TooFewRows as err:
                fail(f"cannot train {name}", err)
            except MIDWAY_FAULTS as err:  # the store went away or was locked: nothing of this model is registered
                fail(f"cannot train {name}", store_problem(settings.tracking_uri, err))
            shown.advance()
            if searches.get(name) and outcome.registered:
                from training.tune import log_search

                log_search(client, outcome.registered.run_id, searches[name])
            if outcome.skipped:
                console.print(f"[yellow]{name}[/]: {outcome.skipped}", highlight=False, soft_wrap=True)
                outcomes.append(outcome)
                continue
            console.print(f"{name}: run {outcome.registered.run_id}, registered v{outcome.registered.version}")
            for note in outcome.result.notes:
                console.print(f"[yellow]{name}[/]: {note}", highlight=False, soft_wrap=True)
            if outcome.decision:
                console.print(outcome.decision.summary())
            outcomes.append(outcome)
    table = RichTable(title="test rows: model against baselines and oracle")
    for col in ("model", "metric", "reference class", "linear", "oracle", "registry"):
        table.add_column(col)
    rows = summary_rows(outcomes)
    for row in rows:
        table.add_row(*row)
    print_table(table)
    if by_band := band_rows(outcomes, settings):
        table = RichTable(title="test rows by horizon band: model (reference class)")
        for col in ("model", "band", "rows", "metric", "metric", "metric"):
            table.add_column(col)
        for row in by_band:
            table.add_row(*row)
        print_table(table)
    if improved := [found for found in searches.values() if found and found.improved]:
        from training.tune import tuned_settings

        chosen = {found.target: tuned_settings(settings, found).tuned_params[found.target] for found in improved}
        again = json.dumps({**settings.tuned_params, **chosen}, separators=(",", ":"))
        console.print(f"to train with these parameters without a search: EQSMS_TUNED_PARAMS='{again}'", soft_wrap=True)
    trained = {row[0]: row[5] if row[1] == "-" else f"{row[1]} (reference class {row[2]}), {row[5]}" for row in rows}
    wrote = {"dataset": where(dataset)} if dataset is not None else {"datasets": where(settings.datasets_dir)}
    if dataset is None:
        wrote["planners' outcomes"] = _feedback_said(datasets) or "not read (training_uses_feedback or the log is off)"
    if settings.training_engine == "dask":
        wrote["engine"] = "dask: boosters fitted by lightgbm.dask"
    summary(
        f"trained {sum(not o.skipped for o in outcomes)} of {len(outcomes)} models on {where(source)}",
        trained | wrote | {"MLflow store": _absolute(settings.tracking_uri), "time": took(started)},
    )


def _on_dask(scheduler: str | None):
    """Open the Dask client the boosters are fitted on (``training.dask_fit`` finds it as the default client), or
    say in one line why not (exit 2); what closes it (and its local cluster) when the command ends."""
    from features.dask_engine import close, connect
    from training.dask_fit import quiet_lightgbm

    try:
        client = connect(scheduler)
    except OSError as err:
        fail("cannot train on Dask", err)
    quiet_lightgbm()
    workers = len(client.scheduler_info()["workers"])
    console.print(f"training on Dask: {client.scheduler.address}, {workers} workers", highlight=False)
    return lambda: close(client)


def _feedback_said(datasets: dict) -> str:
    """What the planners' stated outcomes did to each dataset, in a line (empty when training did not read them)."""
    from training.feedback import Counts

    counts = {
        name: Counts(**ds.meta["feedback"])
        for name, ds in datasets.items()
        if not isinstance(ds, str) and "feedback" in ds.meta
    }
    if counts and not any(c.stated for c in counts.values()):
        return "no outcome stated in the prediction log"
    return "; ".join(f"{name}: {c.said()}" for name, c in counts.items())


def _no_traceback(record: logging.LogRecord) -> bool:
    return not record.exc_info


def _absolute(uri: str) -> str:
    """A tracking URI with its SQLite file's path made absolute, so it names the store from any folder."""
    sqlite = "sqlite:///"
    return sqlite + where(uri.removeprefix(sqlite)) if uri.startswith(sqlite) else uri


def _tune(name: str, ds, settings, budget, trials: int | None, shown):
    """Search ``ds``'s parameters within its share of the budget; the settings to train with, and the search
    (None when the folds cannot judge parameters: the model trains with the defaults). ``shown``: the progress
    display, told of each trial."""
    from training.tune import TuneError, tuned_settings
    from training.tune import tune as search

    seconds, most = budget.share(name), trials or settings.tune_trials
    said = f"{name}: tuning ({seconds / 60:.1f} min, {most} trials at most; {len(ds.frame):,} rows)"
    shown.update(said)
    try:
        found = search(ds, settings, seconds / 60, most, progress=lambda line: shown.update(f"{said}: {line}"))
    except TuneError as err:
        console.print(f"[yellow]{name}[/]: not tuned: {err}", highlight=False, soft_wrap=True)
        return settings, None
    budget.spend(found.seconds)
    fmt = "{:.4f}".format
    head = f"{name}: {found.trials} trials in {found.seconds / 60:.1f} min, fold {found.metric}"
    if not found.improved:
        console.print(f"{head} {fmt(found.default_score)}: no trial beat the defaults; trained with them")
        return settings, found
    console.print(f"{head} {fmt(found.default_score)} with the defaults, {fmt(found.chosen_score)} with:")
    console.print("  " + ", ".join(f"{k}={v}" for k, v in found.chosen.items()) + " (logged as tuned.*)")
    console.print(f"[yellow]{name}[/]: the backtest folds chose these parameters: only the test rows judge them unseen")
    return tuned_settings(settings, found), found


def _names(listed: str) -> list[str]:
    return [name.strip() for name in listed.split(",") if name.strip()]


@app.command("promote")
def promote_cmd(
    model: Annotated[
        str, typer.Argument(help=f"{', '.join(TARGETS)}, all of them, or a prepared table's registry name")
    ] = "all",
) -> None:
    """Move @champion to @challenger if it is no worse on the challenger's test rows (first model: champion)."""
    from training.pipeline import all_targets
    from training.tracking import configure, promote

    settings = get_settings()
    client = configure(settings)
    for name in all_targets(model):
        console.print(promote(client, name, settings.promotion_tolerance, settings.baseline_tolerance).summary())


@app.command("history")
def history_cmd(
    model: Annotated[
        str | None, typer.Argument(help="a registered model (default: every model): its moves only")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the records as JSON, newest first")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="the newest moves only, this many (default: all)")] = None,
) -> None:
    """Every move of @champion, newest first: when, from and to which version, why, the gate's values and who."""
    from training.history import history, is_registered
    from training.tracking import MIDWAY_FAULTS, configure, store_problem

    settings = get_settings()
    client = configure(settings)
    try:
        records = history(client, model, limit)
        if model and not records and not is_registered(client, model):
            fail(f"no history of {model}", "no registered model of that name (`eqsms history` lists every model's)")
    except MIDWAY_FAULTS as err:
        fail("cannot read the champion history", store_problem(settings.tracking_uri, err))
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    store = _absolute(settings.tracking_uri)
    if not records:
        console.print(f"no move of @champion recorded{f' for {model}' if model else ''} in {store}", highlight=False)
        return
    table = RichTable(title=f"@champion moves, newest first ({store})")
    for col in ("time (UTC)", "model", "move", "action", "reason", "gate metric", "moved by", "applied"):
        table.add_column(col, no_wrap=col not in ("reason", "moved by", "applied"))  # those wrap, if any must
    for r in records:
        table.add_row(*(escape(cell) for cell in _history_row(r)))
    print_table(table)


def _history_row(r: dict) -> list[str]:
    move = f"v{r['from']} → v{r['to']}" if r["from"] else f"v{r['to']}"
    new, old = r["values"]["challenger"], r["values"]["champion"]
    metric = "-"
    if new is not None:
        metric = f"{r['metric']} {new:.4f}" + (f" vs {old:.4f}" if old is not None else "")
    applied = "yes" if r["applied"] else "no: the alias never moved"
    if r["applied"] and r["status"] != "done":
        applied = f"yes (record {r['status']})"
    time_ = r["time"].replace("T", " ")[:19]
    return [time_, r["model"], move, r["action"], r["reason"], metric, r["moved_by"], applied]


@app.command("rollback")
def rollback_cmd(
    model: Annotated[str, typer.Argument(help=f"{', '.join(TARGETS)} or a prepared table's registry name")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="this version (one that was champion, or passed the gate) instead of the one before"),
    ] = None,
    reason: Annotated[str, typer.Option(help="why, for the history (default: where it went back to)")] = "",
) -> None:
    """Move @champion back to the champion before it (or --to a version that was champion), recorded in the
    history. No metric is judged again; only a version that was champion or passed the gate is gone back to."""
    from training.history import rollback
    from training.tracking import MIDWAY_FAULTS, configure, store_problem

    settings = get_settings()
    client = configure(settings)
    try:
        done = rollback(client, model, to, reason)
    except MIDWAY_FAULTS as err:
        fail(f"cannot roll back {model}", store_problem(settings.tracking_uri, err))
    if not done.moved:
        fail(f"cannot roll back {model}", done.reason)
    console.print(done.summary(), highlight=False, soft_wrap=True)
