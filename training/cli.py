"""The `training` stage's commands: train, promote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from eqsms.cli_kit import fail, one_of
from eqsms.settings import get_settings
from features.targets import TARGETS

console = Console()
app = typer.Typer(no_args_is_help=True, add_completion=False)
MODELS = (*TARGETS, "all")
_model_option = one_of(MODELS)


@app.command()
def train(
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
) -> None:
    """Fit, evaluate (time split, backtest, baselines, oracle), log to MLflow and register as @challenger."""
    from features.cli import load_or_exit
    from training.evaluate import TooFewRows, read_oracle
    from training.pipeline import Outcome, all_targets, band_rows, run_target, summary_rows, training_datasets
    from training.tables import TableError, dataset_from_table
    from training.tracking import configure

    settings = get_settings()
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
        with console.status(f"point-in-time datasets (reused from {settings.datasets_dir} when built from this data)"):
            datasets = training_datasets(data_dir, settings, all_targets(model), load_or_exit)
        for ds in datasets.values():
            if not isinstance(ds, str):
                console.print(f"{ds.target}: dataset {ds.describe()} ({ds.source})", highlight=False)
        oracle, source = read_oracle(data_dir), str(data_dir)
    client = configure(settings)
    console.print(f"MLflow store: {settings.tracking_uri}", soft_wrap=True)
    outcomes = []
    for name, ds in datasets.items():
        if isinstance(ds, str):
            console.print(f"[yellow]{name}[/]: skipped, {ds}")
            outcomes.append(Outcome(name, skipped=ds))
            continue
        with console.status(f"{name}: fitting, calibrating, backtesting and logging ({len(ds.frame):,} rows)"):
            try:
                outcome = run_target(ds, settings, oracle, source, promote, client, force)
            except TooFewRows as err:
                fail(f"cannot train {name}", err)
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
    for row in summary_rows(outcomes):
        table.add_row(*row)
    console.print(table)
    if by_band := band_rows(outcomes, settings):
        table = RichTable(title="test rows by horizon band: model / reference class / simplest baseline / oracle")
        for col in ("model", "band", "rows", "metric", "metric", "metric"):
            table.add_column(col)
        for row in by_band:
            table.add_row(*row)
        console.print(table)


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
