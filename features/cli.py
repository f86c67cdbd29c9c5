"""The `features` stage's commands: validate, features build (`generate` is `world.cli`'s).

Each command is a few lines that call library functions; defaults come from the settings object when the command
runs (an option left out means "as in settings").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from eqsms.cli_kit import fail
from eqsms.settings import get_settings

console = Console()
app = typer.Typer(no_args_is_help=True, add_completion=False)
features_app = typer.Typer(no_args_is_help=True, help="Build point-in-time datasets.")

DataDir = Annotated[
    Path | None, typer.Argument(help="folder of raw exports (CSV or Parquet, one table a source); default: data_dir")
]


def load_or_exit(data_dir: Path):
    """The validated folder, or one line saying why it cannot be used (exit 2)."""
    from features.io import ContractError
    from features.validate import load

    try:
        return load(data_dir)
    except ContractError as err:
        fail(f"cannot use {data_dir}", err)


@app.command()
def validate(
    data_dir: DataDir = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="where rejected rows are written; default: <work_dir>/quarantine/<data>")
    ] = None,
) -> None:
    """Check a folder of exports against the contract; write rejected rows to quarantine files."""
    from features.validate import write_quarantine

    settings = get_settings()
    data_dir = data_dir or settings.data_dir
    quarantine = quarantine or settings.quarantine_for(data_dir)
    data = load_or_exit(data_dir)
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
    for name, rep in data.reports.items():
        if n := rep.cells_nulled:
            top = ", ".join(f"{cell} ({count})" for cell, count in rep.top_cells(3))
            values = "value" if n == 1 else "values"
            console.print(f"[yellow]{name}[/]: {n} bad optional {values} set missing (rows kept): {top}")
    for name in data.missing_tables:
        console.print(f"[yellow]{name}[/]: no file; the features built from it will be missing")


@features_app.command("build")
def build(
    data_dir: DataDir = None,
    out: Annotated[Path | None, typer.Option(help="folder for one Parquet dataset per target")] = None,
) -> None:
    """Validate DATA_DIR and write the defect_risk, delay and churn training datasets as Parquet."""
    from features.datasets import build_all, write_dataset
    from features.validate import write_quarantine

    settings = get_settings()
    data_dir = data_dir or settings.data_dir
    data = load_or_exit(data_dir)
    write_quarantine(data, settings.quarantine_for(data_dir))
    print_validation(data)
    for target, result in build_all(data, settings).items():
        if result.error:
            console.print(f"[yellow]{target}[/]: skipped, {result.error}")
            continue
        path = write_dataset(result.dataset, out or settings.datasets_dir)
        console.print(f"{target}: {result.dataset.describe()} -> {path}")


app.add_typer(features_app, name="features")
