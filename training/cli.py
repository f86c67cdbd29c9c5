"""The `training` stage's commands: train, promote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from features.settings import get_settings

console = Console()
app = typer.Typer(no_args_is_help=True, add_completion=False)
_S = get_settings()
MODELS = ("defect_risk", "delay", "churn", "all")


def one_of(choices: tuple[str, ...]):
    """A Typer callback that accepts only ``choices``, naming them when the value is not one."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"'{value}' is not one of {', '.join(choices)}")
        return value

    return check


_model_option = one_of(MODELS)


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(help="folder of raw exports (contract v1)")] = _S.data_dir,
    model: Annotated[str, typer.Option(help="defect_risk, delay, churn or all", callback=_model_option)] = "all",
    promote: Annotated[bool, typer.Option("--promote", help="run the promotion gate after training")] = False,
    dataset: Annotated[Path | None, typer.Option(help="train on this prepared feature table instead")] = None,
    target: Annotated[str | None, typer.Option(help="with --dataset: the label column")] = None,
    time_column: Annotated[str | None, typer.Option(help="with --dataset: the as_of column")] = None,
    id_columns: Annotated[str, typer.Option(help="with --dataset: comma-separated id columns")] = "",
) -> None:
    """Fit, evaluate (time split, backtest, baselines, oracle), log to MLflow and register as @challenger."""
    from features.io import ContractError
    from features.validate import load
    from training.evaluate import read_oracle
    from training.pipeline import (
        Outcome,
        all_targets,
        dataset_from_table,
        datasets_from_data,
        run_target,
        summary_rows,
    )
    from training.tracking import configure

    settings = get_settings()
    client = configure(settings)
    console.print(f"MLflow store: {settings.tracking_uri}")
    if dataset is not None:
        if model == "all" or not target or not time_column:
            raise typer.BadParameter("--dataset needs --model (one target), --target and --time-column")
        ids = [c for c in id_columns.split(",") if c]
        datasets = {model: dataset_from_table(dataset, model, target, time_column, ids, settings)}
        oracle, source = None, str(dataset)
    else:
        try:
            data = load(data_dir)
        except ContractError as err:
            console.print(f"[bold red]cannot use {data_dir}:[/] {err}")
            raise typer.Exit(2) from err
        with console.status("building point-in-time datasets"):
            datasets = datasets_from_data(data, settings, all_targets(model))
        oracle, source = read_oracle(data_dir), str(data_dir)
    outcomes = []
    for name, ds in datasets.items():
        if isinstance(ds, str):
            console.print(f"[yellow]{name}[/]: skipped, {ds}")
            outcomes.append(Outcome(name, skipped=ds))
            continue
        with console.status(f"{name}: fitting, calibrating, backtesting and logging ({len(ds.frame):,} rows)"):
            outcome = run_target(ds, settings, oracle, source, promote, client)
        console.print(f"{name}: run {outcome.registered.run_id}, registered v{outcome.registered.version}")
        if outcome.decision:
            console.print(outcome.decision.summary())
        outcomes.append(outcome)
    table = RichTable(title="test rows: model against baselines and oracle")
    for col in ("model", "metric", "reference class", "linear", "oracle", "registry"):
        table.add_column(col)
    for row in summary_rows(outcomes):
        table.add_row(*row)
    console.print(table)


@app.command("promote")
def promote_cmd(
    model: Annotated[str, typer.Argument(help="defect_risk, delay, churn or all", callback=_model_option)] = "all",
) -> None:
    """Move @champion to @challenger if it is no worse on the challenger's test rows (first model: champion)."""
    from training.pipeline import all_targets
    from training.tracking import configure, promote

    settings = get_settings()
    client = configure(settings)
    for name in all_targets(model):
        console.print(promote(client, name, settings.promotion_tolerance).summary())
