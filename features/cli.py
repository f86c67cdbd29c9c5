"""The `features` stage's commands: generate, validate, features build.

Each command is a few lines that call library functions; defaults come from the settings object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from features.importers.cli import import_app
from features.settings import get_settings

console = Console()
app = typer.Typer(no_args_is_help=True, add_completion=False)
features_app = typer.Typer(no_args_is_help=True, help="Build point-in-time datasets.")

_S = get_settings()
DataDir = Annotated[Path, typer.Argument(help="folder of raw exports (CSV or Parquet, one table a source)")]


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder to write the six tables and the oracle to")] = _S.data_dir,
    projects: Annotated[int, typer.Option(help="number of projects in the world")] = _S.generate_projects,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same world")] = _S.generate_seed,
    dirty: Annotated[float, typer.Option(help="share of rows given a realistic fault (0 = clean)")] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
) -> None:
    """Write a synthetic world with a known truth (an oracle file) in the raw data contract."""
    from features.generate import generate_world

    report = generate_world(n_projects=projects, seed=seed, out_dir=out, fmt=fmt, dirty=dirty)
    console.print(report.summary())


@app.command()
def validate(
    data_dir: DataDir = _S.data_dir,
    quarantine: Annotated[Path, typer.Option(help="where rejected rows are written")] = _S.quarantine_dir,
) -> None:
    """Check a folder of exports against the contract; write rejected rows to quarantine files."""
    from features.io import ContractError
    from features.validate import load, write_quarantine

    try:
        data = load(data_dir)
    except ContractError as err:
        console.print(f"[bold red]cannot use {data_dir}:[/] {err}")
        raise typer.Exit(2) from err
    write_quarantine(data, quarantine)
    print_validation(data)
    console.print(f"quarantine files in {quarantine}")


def print_validation(data) -> None:
    table = RichTable(title="validation")
    for col in ("table", "rows in", "accepted", "quarantined", "top reasons"):
        table.add_column(col, justify="left" if col in ("table", "top reasons") else "right")
    for name, rep in data.reports.items():
        top = ", ".join(f"{code} ({n})" for code, n in rep.top_reasons(3))
        table.add_row(name, str(rep.rows_in), str(rep.rows_accepted), str(rep.rows_quarantined), top or "-")
    console.print(table)
    for name in data.missing_tables:
        console.print(f"[yellow]{name}[/]: no file; the features built from it will be missing")


@features_app.command("build")
def build(
    data_dir: DataDir = _S.data_dir,
    out: Annotated[Path, typer.Option(help="folder for one Parquet dataset per target")] = _S.datasets_dir,
) -> None:
    """Validate DATA_DIR and write the defect_risk, delay and churn training datasets as Parquet."""
    from features.datasets import build_all, write_dataset
    from features.io import ContractError
    from features.validate import load, write_quarantine

    settings = get_settings()
    try:
        data = load(data_dir)
    except ContractError as err:
        console.print(f"[bold red]cannot use {data_dir}:[/] {err}")
        raise typer.Exit(2) from err
    write_quarantine(data, settings.quarantine_dir)
    print_validation(data)
    for target, result in build_all(data, settings).items():
        if result.error:
            console.print(f"[yellow]{target}[/]: skipped, {result.error}")
            continue
        path = write_dataset(result.dataset, out)
        console.print(f"{target}: {result.dataset.describe()} -> {path}")


app.add_typer(features_app, name="features")
app.add_typer(import_app, name="import")
