"""The `world` stage's command: generate (a synthetic world with a known truth).

The command is a few lines that call library functions; defaults come from the settings object when the command
runs (an option left out means "as in settings").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from eqsms.cli_kit import one_of
from eqsms.settings import get_settings

console = Console()
app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def generate(
    out: Annotated[
        Path | None, typer.Option(help="folder to write the six tables and the oracle to; default: <work_dir>/world")
    ] = None,
    projects: Annotated[int | None, typer.Option(min=1, help="number of projects in the world")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed; the same seed gives the same world")] = None,
    dirty: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of rows given a realistic fault")] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet", callback=one_of(("csv", "parquet")))] = "csv",
) -> None:
    """Write a synthetic world with a known truth (an oracle file) in the raw data contract.

    Defaults: <work_dir>/world (the committed sample is rewritten only when --out names it), the settings'
    generate_projects and generate_seed."""
    from world.write import generate_world

    s = get_settings()
    report = generate_world(
        n_projects=projects or s.generate_projects,
        seed=s.generate_seed if seed is None else seed,
        out_dir=out or s.work_dir / "world",
        fmt=fmt,
        dirty=dirty,
        settings=s,
    )
    console.print(report.summary())
