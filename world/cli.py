"""The `world` stage's command: generate (a synthetic world with a known truth).

The command is a few lines that call library functions; defaults come from the settings object when the command
runs (an option left out means "as in settings").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from eqsms.cli_kit import fail, one_of, print_table, progress, summary, took, where
from eqsms.settings import get_settings
from world.shift import DEFAULT_SIZE, KINDS, Shift

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
    shift: Annotated[
        str | None,
        typer.Option(
            help="change the world from --shift-from: " + "; ".join(f"{k}: {v}" for k, v in KINDS.items()),
            callback=one_of(tuple(KINDS)),
        ),
    ] = None,
    shift_from: Annotated[str | None, typer.Option(help="the shift's first day, YYYY-MM-DD")] = None,
    part_projects: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Parquet: more projects than this write each table but projects as a folder of part files, "
            "this many projects a part; default world.write.PART_PROJECTS",
        ),
    ] = None,
    shift_size: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="the shift's SIZE; default " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_SIZE.items())
        ),
    ] = None,
) -> None:
    """Write a synthetic world with a known truth (an oracle file) in the raw data contract.

    Defaults: <work_dir>/world (the committed sample is rewritten only when --out names it), the settings'
    generate_projects and generate_seed. With --shift, the same world (same seed) changed from --shift-from on:
    the monitor's test (world/shift.py says what each kind changes)."""
    started = time.monotonic()
    from world.write import PART_PROJECTS, generate_world

    if (shift is None) != (shift_from is None) or (shift_size is not None and shift is None):
        fail("cannot generate", "--shift KIND and --shift-from YYYY-MM-DD go together (--shift-size with them)")
    try:
        injected = Shift(shift, shift_from, shift_size) if shift else None
    except ValueError as err:
        fail("cannot generate", err)
    s = get_settings()
    n_projects, out_dir = projects or s.generate_projects, out or s.work_dir / "world"
    with progress(f"generating {n_projects:,} projects", total=2) as shown:
        report = generate_world(
            n_projects=n_projects,
            seed=s.generate_seed if seed is None else seed,
            out_dir=out_dir,
            fmt=fmt,
            dirty=dirty,
            settings=s,
            progress=shown.hook(count=True),
            shift=injected,
            part_projects=part_projects or PART_PROJECTS,
        )
    print_table(report.summary())
    rows = {
        "projects": f"{report.rows.get('projects', n_projects):,}",
        "rows": f"{sum(report.rows.values()):,} in {len(report.rows)} tables ({fmt})",
    }
    if report.faults:
        rows["faults"] = f"{report.faults:,} (faults.csv)"
    if injected:
        rows["shift"] = injected.describe()
    names = sorted({f.relative_to(out_dir).parts[0] for f in report.files})  # a partitioned table: its folder
    rows |= {"folder": where(out_dir), "files": ", ".join(names), "time": took(started)}
    summary("generated a synthetic world", rows)
