"""The `features` stage's commands: validate, features build (`generate` is `world.cli`'s).

Each command is a few lines that call library functions; defaults come from the settings object when the command
runs (an option left out means "as in settings").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from eqsms.cli_kit import console, fail, one_of, print_table, progress, summary, took, where
from eqsms.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False)
features_app = typer.Typer(no_args_is_help=True, help="Build point-in-time datasets.")

DataDir = Annotated[
    Path | None, typer.Argument(help="folder of raw exports (CSV or Parquet, one table a source); default: data_dir")
]


def load_or_exit(data_dir: Path, progress=None):
    """The validated folder, or one line saying why it cannot be used (exit 2); ``progress(what, done, total)``
    hears of each table read and validated."""
    from features.io import ContractError
    from features.validate import load

    try:
        return load(data_dir, progress=progress)
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
    started = time.monotonic()
    from features.validate import write_quarantine

    settings = get_settings()
    data_dir = data_dir or settings.data_dir
    quarantine = quarantine or settings.quarantine_for(data_dir)
    with progress(f"validating {data_dir}") as shown:
        data = load_or_exit(data_dir, shown.hook(count=True))
        shown.update(f"writing the quarantine files to {quarantine}")
        written = write_quarantine(data, quarantine)
    print_validation(data)
    console.print(f"quarantine files in {quarantine}")
    files = f"{len(written)} file" + ("" if len(written) == 1 else "s")
    summary(
        f"validated {where(data_dir)}",
        validation_summary(data) | {"quarantine": f"{where(quarantine)} ({files})", "time": took(started)},
    )


def build_on_dask(data_dir: Path, settings, scheduler: str | None, partitions: int | None, progress=None):
    """The validation and the datasets from ``features.dask_engine``, or one line saying why not (exit 2)."""
    from features.dask_engine import build_all_dask
    from features.io import ContractError

    try:
        built = build_all_dask(data_dir, settings, scheduler=scheduler, partitions=partitions, progress=progress)
    except ContractError as err:
        fail(f"cannot use {data_dir}", err)
    except OSError as err:
        fail("cannot build on Dask", err)
    return built.data, built.results, f"dask, {built.partitions} partitions of projects"


def validation_summary(data) -> dict[str, str]:
    """The summary's lines about a validation: the tables read and the rows they held, accepted and quarantined."""
    reports = data.reports.values()
    rows_in, accepted = sum(r.rows_in for r in reports), sum(r.rows_accepted for r in reports)
    said = {
        "tables": f"{len(data.reports)} read" + (f", {len(data.missing_tables)} absent" if data.missing_tables else ""),
        "rows": f"{rows_in:,} in, {accepted:,} accepted, {rows_in - accepted:,} quarantined",
    }
    if cells := sum(r.cells_nulled for r in reports):
        said["cells set missing"] = f"{cells:,} (rows kept)"
    return said


def print_validation(data) -> None:
    table = RichTable(title="validation")
    for col in ("table", "rows in", "accepted", "quarantined", "top reasons"):
        table.add_column(col, justify="left" if col in ("table", "top reasons") else "right")
    for name, rep in data.reports.items():
        top = ", ".join(f"{code} ({n})" for code, n in rep.top_reasons(3))
        table.add_row(name, str(rep.rows_in), str(rep.rows_accepted), str(rep.rows_quarantined), top or "-")
    print_table(table)
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
    engine: Annotated[
        str,
        typer.Option(
            help="pandas (one process) or dask (partitions of projects on a Dask cluster: tables larger than memory)",
            callback=one_of(("pandas", "dask")),
        ),
    ] = "pandas",
    scheduler: Annotated[
        str | None,
        typer.Option(help="dask: the scheduler's address (tcp://host:8786); default: a local cluster, a worker a core"),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(min=1, help="dask: project ranges; default features.dask_engine's, one a worker at least"),
    ] = None,
) -> None:
    """Validate DATA_DIR and write the defect_risk, delay and churn training datasets as Parquet."""
    started = time.monotonic()
    from features.datasets import build_all, write_dataset
    from features.validate import write_quarantine

    settings = get_settings()
    data_dir = data_dir or settings.data_dir
    out, quarantine = out or settings.datasets_dir, settings.quarantine_for(data_dir)
    with progress(f"validating {data_dir}") as shown:
        if engine == "dask":
            data, built, engine = build_on_dask(data_dir, settings, scheduler, partitions, shown.hook(count=True))
            write_quarantine(data, quarantine)
        else:
            data = load_or_exit(data_dir, shown.hook(count=True))
            write_quarantine(data, quarantine)
            built = build_all(data, settings, progress=shown.hook("building the dataset", count=True))
        shown.update(f"writing the datasets to {out}")
        written = {target: write_dataset(r.dataset, out) for target, r in built.items() if not r.error}
    print_validation(data)
    said = validation_summary(data)
    for target, result in built.items():
        if result.error:
            console.print(f"[yellow]{target}[/]: skipped, {result.error}")
            said[target] = f"skipped: {result.error}"
            continue
        console.print(f"{target}: {result.dataset.describe()} -> {written[target]}")
        said[target] = f"{len(result.dataset.frame):,} rows -> {where(written[target])}"
    summary(
        f"built {len(written)} point-in-time datasets from {where(data_dir)}",
        said | {"engine": engine, "quarantine": where(quarantine), "time": took(started)},
    )


app.add_typer(features_app, name="features")
