"""Writing a world: the six contract tables, the oracle and (when dirty) the fault manifest, as CSV or Parquet.

:func:`write_world` is the only function of the ``world`` package that touches the file system;
:func:`generate_world` is simulate + write, the entry of ``eqsms generate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.contract import TABLES, Kind
from world.faults import inject_faults
from world.observe import World, simulate_world
from world.shift import Shift

FORMATS = ("csv", "parquet")
# A Parquet world of more projects than this writes each table but projects as a folder of part files, one a range
# of this many projects (``inspections/part-00000.parquet``, ...): what the Dask engine reads a part at a time.
PART_PROJECTS = 20_000
PART_NAME = "part-{:05d}.parquet"
DIRTY_IS_CSV = "dirty output is CSV only (faulty values cannot be stored in typed Parquet columns)"


@dataclass
class WorldReport:
    """What was written: rows per table, the snapshot, the observed label rates and the oracle's AUCs."""

    out_dir: Path
    fmt: str
    snapshot: pd.Timestamp
    rows: dict[str, int]
    rates: dict[str, float]
    late_tolerance: float
    faults: int = 0
    files: list[Path] = field(default_factory=list)
    shift: Shift | None = None

    def summary(self):
        from rich.table import Table as RichTable

        t = RichTable(title=f"synthetic world in {self.out_dir} ({self.fmt}), snapshot {self.snapshot.date()}")
        t.add_column("table")
        t.add_column("rows", justify="right")
        for name, n in self.rows.items():
            t.add_row(name, f"{n:,}")
        r = self.rates
        t.add_section()
        t.add_row("first-pass failures", f"{r['defect_risk_rate']:.1%} (oracle AUC {r['defect_risk_auc']:.2f})")
        t.add_row(
            f"late milestones (> {self.late_tolerance:g} d)", f"{r['late_rate']:.1%} (oracle AUC {r['late_auc']:.2f})"
        )
        t.add_row("slip median / p90 (days)", f"{r['slip_median']:.0f} / {r['slip_p90']:.0f}")
        t.add_row("churn (complete windows)", f"{r['churn_rate']:.1%} (oracle AUC {r['churn_auc']:.2f})")
        if self.faults:
            t.add_row("faults (faults.csv)", f"{self.faults:,}")
        if self.shift:
            t.add_row("shift", self.shift.describe())
        return t


def to_csv_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A typed table as the strings a CSV export holds: ISO dates and timestamps, true/false, '' when missing."""
    out = {}
    for col in TABLES[table].columns:
        s = frame[col.name]
        if col.kind == Kind.DATE:
            v = s.to_numpy().astype("datetime64[D]").astype(str)
        elif col.kind == Kind.TIMESTAMP:
            v = s.to_numpy().astype("datetime64[s]").astype(str)
        elif col.kind == Kind.BOOL:
            v = np.where(s.isna().to_numpy(), "", np.where(s.fillna(False).to_numpy(bool), "true", "false"))
        else:
            v = s.to_numpy().astype(str)
        v = np.where(v == "NaT", "", v).astype(object)
        out[col.name] = v
    return pd.DataFrame(out)


def _check_format(fmt: str, dirty: float) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be csv or parquet, not {fmt!r}")
    if dirty and fmt != "csv":
        raise ValueError(DIRTY_IS_CSV)


def _clear(out_dir: Path) -> None:
    """Remove the table, oracle and fault files of an earlier world, so a folder never mixes two worlds (the part
    files of a partitioned one too, and their folder once empty)."""
    for name in [*TABLES, "oracle", "faults"]:
        for suffix in (".csv", ".parquet", ".csv.gz"):
            (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
        if (folder := out_dir / name).is_dir():
            for part in folder.glob("part-*.parquet"):
                part.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()


def _parts(world: World, name: str, frame: pd.DataFrame, part_projects: int) -> list[pd.DataFrame]:
    """A table's rows by ranges of ``part_projects`` projects (in the projects table's order), each part in the
    table's row order."""
    rank = pd.Series(np.arange(len(world.tables["projects"])), index=world.tables["projects"]["project_id"])
    part = rank.reindex(frame["project_id"]).to_numpy() // part_projects
    return [frame[part == k].reset_index(drop=True) for k in range(-(-len(rank) // part_projects))]


def _write_parquet(world: World, out_dir: Path, part_projects: int | None = None) -> list[Path]:
    """Typed tables and the oracle as Parquet; the table files written. With more projects than ``part_projects``,
    each table but projects is a folder of part files, a range of projects each."""
    files = []
    partitioned = part_projects is not None and len(world.tables["projects"]) > part_projects
    for name, frame in world.tables.items():
        if partitioned and name != "projects":
            (out_dir / name).mkdir(exist_ok=True)
            for k, part in enumerate(_parts(world, name, frame, part_projects)):
                path = out_dir / name / PART_NAME.format(k)
                part.to_parquet(path, index=False)
                files.append(path)
            continue
        path = out_dir / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        files.append(path)
    world.oracle.to_parquet(out_dir / "oracle.parquet", index=False)
    return files


def _write_csv(world: World, out_dir: Path, dirty: float) -> tuple[list[Path], int]:
    """Tables (with faults when ``dirty``), the manifest and the oracle as CSV; the files written (manifest and
    tables) and the number of injected faults."""
    files = []
    n_faults = 0
    frames = {name: to_csv_frame(name, frame) for name, frame in world.tables.items()}
    if dirty:
        frames, faults = inject_faults(frames, dirty, np.random.default_rng([world.seed, 1]))
        faults.to_csv(out_dir / "faults.csv", index=False, lineterminator="\n")
        n_faults = int((faults["cause"] == "injected").sum())
        files.append(out_dir / "faults.csv")
    for name, frame in frames.items():
        path = out_dir / f"{name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n")
        files.append(path)
    world.oracle.to_csv(out_dir / "oracle.csv", index=False, lineterminator="\n")
    return files, n_faults


def write_world(
    world: World, out_dir: Path, fmt: str = "csv", dirty: float = 0.0, part_projects: int | None = PART_PROJECTS
) -> WorldReport:
    """Write the six tables, ``oracle.<fmt>`` and (when dirty) ``faults.csv`` into ``out_dir``.

    A Parquet world of more than ``part_projects`` projects writes each table but projects as a folder of part
    files, one a range of ``part_projects`` projects (None: one file a table, whatever the size).

    Old table, oracle and fault files in ``out_dir`` are removed first so a folder never mixes two worlds. Faults
    are drawn from their own generator (seeded from the world's seed), so a dirty world is a corrupted copy of the
    clean world of the same seed. Dirty output is CSV only: a Parquet column cannot hold '31/02/2021' as a date.
    """
    _check_format(fmt, dirty)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    if fmt == "parquet":
        files, n_faults = _write_parquet(world, out_dir, part_projects), 0
    else:
        files, n_faults = _write_csv(world, out_dir, dirty)
    files.append(out_dir / f"oracle.{fmt}")
    rows = {name: len(frame) for name, frame in world.tables.items()}
    return WorldReport(out_dir, fmt, world.snapshot, rows, world.rates(), world.late_tolerance, n_faults, files)


def generate_world(
    n_projects: int,
    seed: int,
    out_dir: Path,
    fmt: str = "csv",
    dirty: float = 0.0,
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    shift: Shift | None = None,
    part_projects: int | None = PART_PROJECTS,
) -> WorldReport:
    """Simulate a world of ``n_projects`` projects with ``seed`` and write it to ``out_dir`` (the CLI's entry).

    ``settings`` (read when called if none is given) supply the start date, churn window and late tolerance;
    ``progress(what, done, total)``, if given, hears of each of the two steps before it starts; ``shift``
    (``world.shift``) changes the world from a date; ``part_projects``: see :func:`write_world`.
    """
    _check_format(fmt, dirty)  # before the simulation, not after it
    if progress:
        progress(f"simulating {n_projects:,} projects", 0, 2)
    world = simulate_world(n_projects, seed, settings=settings, shift=shift)
    if progress:
        progress(f"writing the tables and the oracle to {out_dir}", 1, 2)
    report = write_world(world, Path(out_dir), fmt, dirty, part_projects)
    report.shift = shift
    return report
