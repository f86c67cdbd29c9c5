"""`eqsms import`: map a real export onto the raw data contract, through the same validation and quarantine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from eqsms.cli_kit import fail
from eqsms.settings import get_settings

console = Console()
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


def _finish(imported, out: Path, quarantine: Path) -> None:
    from features.cli import print_validation
    from features.importers import report_lines, write_import

    data = write_import(imported, out, quarantine)
    for line in report_lines(imported.report):
        console.print(line, highlight=False, soft_wrap=True)
    print_validation(data)
    console.print(f"contract tables in {out} (report: {out / 'import_report.json'}); quarantine files in {quarantine}")


def _run(build, out: Path, quarantine: Path | None) -> None:
    from features.io import ContractError

    try:
        imported = build()
        _finish(imported, out, quarantine or get_settings().quarantine_for(out))
    except ContractError as err:
        fail("cannot import", err)


@import_app.command("nyc-sca")
def nyc_sca(
    path: Annotated[Path, typer.Argument(help="the NYC SCA 'Capital Project Schedules and Budgets' CSV export")],
    out: Out,
    quarantine: Quarantine = None,
) -> None:
    """NYC School Construction Authority phases -> projects and milestones (a phase is a milestone)."""
    from features.importers.nyc_sca import import_nyc_sca

    _run(lambda: import_nyc_sca(path), out, quarantine)


@import_app.command("field-forms")
def field_forms(
    tasks: Annotated[Path, typer.Argument(help="the field-management tasks export (CSV)")],
    forms: Annotated[Path, typer.Argument(help="the field-management forms export (CSV)")],
    out: Out,
    quarantine: Quarantine = None,
) -> None:
    """Field-management forms and tasks -> projects, inspections and acceptance milestones."""
    from features.importers.field_forms import import_field_forms

    _run(lambda: import_field_forms(tasks, forms), out, quarantine)
