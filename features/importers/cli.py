"""`eqsms import`: map a real export onto the raw data contract, through the same validation and quarantine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from eqsms.cli_kit import console, fail, progress, summary, took, where
from eqsms.settings import get_settings

import_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Map a real export onto the raw data contract (data_samples/IMPORTERS.md).",
)
Out = Annotated[Path, typer.Option(help="folder to write the contract tables (CSV) and import_report.json to")]
Quarantine = Annotated[
    Path | None,
    typer.Option(help="rejected rows; default: <work_dir>/quarantine/<out's name>"),
]


def _finish(imported, data, out: Path, quarantine: Path, started: float) -> None:
    from features.cli import print_validation, validation_summary
    from features.importers import REPORT_FILE, report_lines

    for line in report_lines(imported.report):
        console.print(line, highlight=False, soft_wrap=True)
    print_validation(data)
    console.print(f"contract tables in {out} (report: {out / REPORT_FILE}); quarantine files in {quarantine}")
    summary(
        f"imported {imported.report.source}",
        validation_summary(data)
        | {
            "contract tables": f"{where(out)} ({', '.join(f'{name}.csv' for name in imported.tables)})",
            "report": where(out / REPORT_FILE),
            "quarantine": where(quarantine),
            "time": took(started),
        },
    )


def _run(build, what: str, out: Path, quarantine: Path | None) -> None:
    """``build()`` maps the export (``what``); then validate, write and summarise, or one line saying what is wrong."""
    started = time.monotonic()
    from features.importers import write_import
    from features.io import ContractError

    quarantine = quarantine or get_settings().quarantine_for(out)
    try:
        with progress(f"reading and mapping {what}") as shown:
            imported = build()
            data = write_import(imported, out, quarantine, shown.hook(f"writing {out}", count=True))
    except ContractError as err:
        fail("cannot import", err)
    _finish(imported, data, out, quarantine, started)


@import_app.command("nyc-sca")
def nyc_sca(
    path: Annotated[Path, typer.Argument(help="the NYC SCA 'Capital Project Schedules and Budgets' CSV export")],
    out: Out,
    quarantine: Quarantine = None,
) -> None:
    """NYC School Construction Authority phases -> projects and milestones (a phase is a milestone)."""
    from features.importers.nyc_sca import import_nyc_sca

    _run(lambda: import_nyc_sca(path), str(path), out, quarantine)


@import_app.command("field-forms")
def field_forms(
    tasks: Annotated[Path, typer.Argument(help="the field-management tasks export (CSV)")],
    forms: Annotated[Path, typer.Argument(help="the field-management forms export (CSV)")],
    out: Out,
    quarantine: Quarantine = None,
) -> None:
    """Field-management forms and tasks -> projects, inspections and acceptance milestones."""
    from features.importers.field_forms import import_field_forms

    _run(lambda: import_field_forms(tasks, forms), f"{tasks} and {forms}", out, quarantine)
