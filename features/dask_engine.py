"""The point-in-time datasets on Dask: the same families, partition by partition, on tables larger than memory.

``eqsms features build --engine dask`` builds exactly the datasets of :func:`features.datasets.build_all` (same
frames, row order, dtypes and fingerprints) on a Dask cluster, without ever holding the large tables (inspections,
resources, complaints, surveys) in one process. No feature is computed twice or differently: each partition builds a
:class:`~features.families.Context` of its own projects with ``Context.build`` and runs ``compute_columns`` of
``features.families`` on its rows; the rows and labels are built by the targets' own row builders, whose features
come through ``memo["compute"]`` (``features.targets.features_of``).

How the data flows:

1. **Validation, piece by piece.** ``projects`` and ``milestones`` (a row a project or a milestone: small) are read
   and validated in the driver with ``features.validate``. Each piece of the large tables (a part file, or a run of
   a big Parquet file's row groups: ``pieces_of``) is read and validated by a worker with the very same
   ``_validate_table`` (cell checks, ordered dates, repeated keys within the piece, and unknown projects against
   the accepted project ids, broadcast). A key repeated *across* pieces is found from two 64-bit hashes of each
   compared key (``validate.key_hashes``; gathered, never the rows): the pieces that hold a key an earlier piece
   held first are validated again, told which keys and where each was first seen, so their repeats are quarantined
   with the pandas engine's reasons. Reports and quarantine frames are merged in the table's order, as the pandas
   engine lists them.
2. **Partitioned by project.** Each validated file is split by partition (projects in ranges of the projects table's
   order, ``partitions`` ranges) into ``<scratch>/<table>/p<k>/<file>.parquet``: a Parquet folder partitioned by
   project, written on disk by the workers (out of core). A partition's pieces, read in file order, hold its
   projects' rows in the order of the whole table, so every project's event streams are the pandas engine's.
3. **The cross-project parts, computed once and broadcast.** Three facts cross projects: the client's history (its
   projects awarded and handed over: ``client_award``, ``client_handover``; its complaints on every project:
   ``client_complaint``) and the firm-wide first-pass results of each milestone kind (``kind_done``). They are built
   in the driver by ``Context.build`` itself, from the whole projects and milestones tables and a compact complaints
   table (``project_id`` and ``received_at`` of every accepted complaint, gathered in file order), then broadcast
   to the workers, which put them in place of their partition's own. The same arrays in the same order go through
   the same code: the streams are bit for bit the pandas engine's, nothing is re-summed per partition. Client and
   kind codes are the global ones (each partition's context carries the whole projects table and the firm's kinds).
4. **Rows and assembly.** The targets' rows (and labels, and the seeded as_of draws) are built in the driver from
   projects and milestones; each partition computes the features of its projects' rows; the driver puts the arrays
   back in row order and makes categoricals as ``compute`` does. ``latest_fact`` (``data_until``, churn's labelling
   window) reads each large table's newest facts, reduced over its files.

The workers must see the driver's file system (a local cluster, or a shared mount for a remote scheduler).
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.contract import FACT_COLUMNS, TABLE_ORDER, TABLES
from features.datasets import BuildResult, build_dataset, folder_fingerprint
from features.families import Context, Family, compute_columns
from features.io import SOURCE_COLUMNS, SOURCE_FILE, SOURCE_ROW, ContractError, read_file, read_table, table_files
from features.registry import categorical_features
from features.targets import TARGETS, TargetUnavailable
from features.validate import (
    DateWindow,
    TableReport,
    ValidatedData,
    _empty_cells,
    _empty_quarantine,
    _fatal_problems,
    _missing_table,
    _validate_table,
    empty_table,
)

DRIVER_TABLES = ("projects", "milestones")  # a row a project or a milestone: validated in the driver
LARGE_TABLES = ("inspections", "resources", "complaints", "surveys")  # validated and partitioned file by file
CROSS_STREAMS = ("kind_done", "client_award", "client_handover", "client_complaint")  # built once, broadcast
PROJECTS_PER_PARTITION = 5_000
PIECE_ROWS = 2_000_000  # a Parquet file of more rows is read by several tasks, each a run of its row groups


@dataclass
class DaskBuild:
    """What :func:`build_all_dask` built: each target's result, the validation (reports and quarantine, as
    ``features.validate.load`` gives them), and how the projects were partitioned."""

    results: dict[str, BuildResult]
    data: ValidatedData
    partitions: int
    partition_of_project: pd.Series  # project_id -> partition
    input_rows: int  # rows read from every table (accepted or not)
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ the cluster


def connect(scheduler: str | None = None, workers: int | None = None, timeout: float = 10.0):
    """A ``distributed.Client`` of ``scheduler`` (an address), or of a new ``LocalCluster`` with a worker a core
    (one thread each: the families are numpy, and two processes use two cores). Raises ``OSError`` when the
    scheduler cannot be reached."""
    from distributed import Client, LocalCluster

    if scheduler:
        _reachable(scheduler, timeout)
        try:
            return Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as err:
            raise OSError(f"cannot reach the Dask scheduler at {scheduler} ({err.__class__.__name__})") from err
    cluster = LocalCluster(
        n_workers=workers or len(os.sched_getaffinity(0)),
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
    )
    return Client(cluster)


def _reachable(address: str, timeout: float) -> None:
    """Refuse at once an address nothing listens on (the client would retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or parts.port is None:
        return  # another transport (ucx, inproc): left to the client
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout).close()
    except OSError as err:
        raise OSError(f"cannot reach the Dask scheduler at {address} ({err.strerror or err})") from err


def close(client) -> None:
    """Close a client made by :func:`connect`, and its local cluster if it made one."""
    from distributed import LocalCluster

    cluster = client.cluster
    client.close()
    if isinstance(cluster, LocalCluster):
        cluster.close()


# ------------------------------------------------------------------------------------------------ worker tasks


def _warm() -> None:
    """Import what the tasks run (``client.run`` on every worker): seconds a process, paid once."""
    import pyarrow.parquet  # noqa: F401

    import features.families  # noqa: F401
    import features.validate  # noqa: F401


@dataclass(frozen=True)
class Piece:
    """What one task validates: a part file, or a run of a big Parquet file's row groups."""

    path: Path
    name: str  # the file as the quarantine names it: its path under the data folder
    row_groups: tuple[int, ...] | None = None  # None: the whole file
    first_row: int = 1  # the source row of its first row


def pieces_of(files: list[Path], data_dir: Path, piece_rows: int) -> list[Piece]:
    """A table's files as the tasks take them, in the table's order: each file whole, but a Parquet file of more
    than ``piece_rows`` rows cut into runs of whole row groups of at most ``piece_rows`` rows (or one group)."""
    import pyarrow.parquet as pq

    from features.io import _suffix

    pieces = []
    for path in files:
        name = path.relative_to(data_dir).as_posix()
        meta = pq.ParquetFile(path).metadata if _suffix(path) == ".parquet" else None
        if meta is None or meta.num_rows <= piece_rows or meta.num_row_groups < 2:
            pieces.append(Piece(path, name))
            continue
        groups, rows, first = [], 0, 1
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if groups and rows + n > piece_rows:
                pieces.append(Piece(path, name, tuple(groups), first))
                groups, first, rows = [], first + rows, 0
            groups.append(g)
            rows += n
        pieces.append(Piece(path, name, tuple(groups), first))
    return pieces


def _validate_file(
    table: str,
    index: int,
    piece: Piece,
    projects,
    window: DateWindow,
    part_of: pd.Series,
    scratch: Path,
    prior: pd.DataFrame | None = None,
) -> dict:
    """Read and validate one piece of a large table (as ``read_table`` + ``_validate_table`` would for it, ``prior``
    the keys first seen in earlier pieces), write its accepted rows by partition, and return what the driver
    reconciles: report, quarantine, cells, absent columns, newest facts, its first keys' hashes (and the complaints'
    compact stream)."""
    raw = read_file(piece.path, piece.row_groups)
    raw = raw.drop(columns=[c for c in SOURCE_COLUMNS if c in raw.columns])
    raw[SOURCE_ROW] = np.arange(piece.first_row, piece.first_row + len(raw), dtype=np.int64)
    raw[SOURCE_FILE] = pd.Categorical.from_codes(np.zeros(len(raw), np.int32), categories=[piece.name])
    spec = TABLES[table]
    result = _validate_table(spec, raw, projects, window, prior=prior, first_keys=True)
    accepted = result.accepted[[c.name for c in spec.columns]]  # the contract's columns: what the families read
    part = part_of.reindex(accepted["project_id"]).to_numpy()
    for old in scratch.glob(f"{table}/p*/{index:06d}.parquet"):  # a piece validated again (``prior``)
        old.unlink()
    for k in np.unique(part):
        folder = scratch / table / f"p{int(k):05d}"
        folder.mkdir(parents=True, exist_ok=True)
        accepted[part == k].to_parquet(folder / f"{index:06d}.parquet", index=False)
    out = {
        "report": result.report,
        "quarantine": result.quarantine,
        "cells": result.cells,
        "absent": result.missing_columns,
        "newest": {c: accepted[c].max() for c in FACT_COLUMNS[table]},
        "first_keys": result.first_keys,
    }
    if table == "complaints":  # the client's complaints across its projects: a cross-project stream
        out["compact"] = accepted[["project_id", "received_at"]]
    return out


def _read_partition(scratch: Path, table: str, k: int) -> pd.DataFrame:
    """A partition's rows of a table: its pieces in file order (the whole table's order), or an empty table."""
    folder = scratch / table / f"p{k:05d}"
    pieces = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not pieces:
        return empty_table(table)
    frames = [pd.read_parquet(p) for p in pieces]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _partition_features(
    k: int,
    rows: pd.DataFrame,
    families: tuple[Family, ...],
    settings: Settings,
    projects: pd.DataFrame,
    kind_code: pd.Index,
    cross: dict,
    scratch: Path,
) -> dict[str, np.ndarray]:
    """The features of a partition's rows: its projects' context (``Context.build``) with the global codes and
    cross-project streams put in, and ``compute_columns`` of the families."""
    tables = {t: _read_partition(scratch, t, k) for t in (*LARGE_TABLES, "milestones")}
    ctx = Context.build({**tables, "projects": projects}, settings)
    ctx = replace(ctx, kind_code=kind_code, streams={**ctx.streams, **cross}, memo={})
    return compute_columns(ctx, rows, families)


# ------------------------------------------------------------------------------------------------ the driver


def _headers(files: list[Path]) -> list[str]:
    """The union of a table's column names over its files (the Parquet schema or the CSV header, not the rows)."""
    import pyarrow.parquet as pq

    from features.io import _csv_header, _suffix

    names: dict[str, None] = {}
    for path in files:
        cols = pq.read_schema(path).names if _suffix(path) == ".parquet" else _csv_header(path)
        names.update(dict.fromkeys(str(c).strip() for c in cols))
    return [c for c in names if c not in SOURCE_COLUMNS]


def _merge_reports(table: str, parts: list[dict]) -> TableReport:
    reports = [p["report"] for p in parts]
    reasons, cells = Counter(), Counter()
    for r in reports:
        reasons.update(r.reasons)
        cells.update(r.cells)
    return TableReport(table, sum(r.rows_in for r in reports), sum(r.rows_accepted for r in reports), reasons, cells)


def _repeats_across_pieces(parts: list[dict], pieces: list[Piece]) -> dict[int, pd.DataFrame]:
    """The keys a piece holds that an earlier piece held first: for each such piece, those keys' hashes and the
    file and row where each was first seen (``prior`` of ``_validate_table``). Each piece's own repeats are already
    quarantined, so a piece lists each key once."""
    if len(parts) < 2:
        return {}
    firsts = [p["first_keys"] for p in parts]
    keys = pd.concat(firsts, ignore_index=True)
    keys["piece"] = np.repeat(np.arange(len(parts), dtype=np.int32), [len(f) for f in firsts])
    h1 = np.sort(keys["h1"].to_numpy())  # a key seen twice has its first hash seen twice: a sort finds those, fast
    twice = np.unique(h1[1:][h1[1:] == h1[:-1]])
    if not twice.size:
        return {}
    keys = keys[np.isin(keys["h1"].to_numpy(), twice)]
    keys = keys[keys.duplicated(["h1", "h2"], keep=False).to_numpy()]  # in the table's order: piece, then row
    if keys.empty:
        return {}
    later = keys.duplicated(["h1", "h2"], keep="first").to_numpy()
    first = keys[~later].rename(columns={"piece": "first_piece", "row": "first_row"})
    repeats = keys[later][["h1", "h2", "piece"]].merge(first, on=["h1", "h2"], sort=False)
    repeats["file"] = np.array([p.name for p in pieces], dtype=object)[repeats["first_piece"].to_numpy()]
    repeats = repeats.rename(columns={"first_row": "row"})[["h1", "h2", "file", "row", "piece"]]
    return {int(k): g.drop(columns="piece").reset_index(drop=True) for k, g in repeats.groupby("piece", sort=True)}


def _newest_facts(table: str, parts: list[dict]) -> pd.DataFrame:
    """One row: the newest value of each of the table's fact columns over its files (what ``latest_fact`` reads)."""
    newest = {}
    for col in FACT_COLUMNS[table]:
        values = pd.Series([p["newest"][col] for p in parts], dtype="datetime64[us]")
        newest[col] = pd.Series([values.max()], dtype="datetime64[us]")
    return pd.DataFrame(newest)


def _compact_complaints(parts: list[dict]) -> pd.DataFrame:
    """The complaints table as the client streams read it: every accepted complaint's project and time, in order;
    the other columns empty (the streams built from them in the driver are not used)."""
    compact = [p["compact"] for p in parts if "compact" in p]
    frame = (
        pd.concat(compact, ignore_index=True) if compact else empty_table("complaints")[["project_id", "received_at"]]
    )
    empty = empty_table("complaints").reindex(range(len(frame)))
    empty["project_id"], empty["received_at"] = frame["project_id"].to_numpy(), frame["received_at"].to_numpy()
    return empty


def _assemble(parts: list[tuple[np.ndarray, dict[str, np.ndarray]]], rows: pd.DataFrame, ctx, families) -> pd.DataFrame:
    """The partitions' feature arrays back in the rows' order, as a frame the way ``features.families.compute``
    makes it (categoricals as pandas categories, made from every row's values at once)."""
    where = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, "int64")
    back = np.argsort(where, kind="stable")
    names = list(parts[0][1]) if parts else []
    columns = {n: np.concatenate([p[1][n] for p in parts])[back] for n in names}
    frame = pd.DataFrame(columns, index=rows.index)
    for col in categorical_features(ctx.settings, families):
        if col in frame:
            frame[col] = frame[col].astype("category")
    return frame


def _row_columns(rows: pd.DataFrame) -> list[str]:
    return [c for c in ("project_id", "as_of", "kind", "sequence", "planned_date") if c in rows.columns]


def build_all_dask(
    data_dir: Path,
    settings: Settings,
    targets: list[str] | None = None,
    scheduler: str | None = None,
    partitions: int | None = None,
    client=None,
    progress: Callable[[str, int, int], None] | None = None,
    piece_rows: int = PIECE_ROWS,
) -> DaskBuild:
    """Each target's dataset from a folder of exports, on Dask: the same :class:`~features.datasets.Dataset` as
    ``build_all(load(data_dir), settings, targets)``. ``client`` (a ``distributed.Client``) or ``scheduler`` (an
    address) says where to run; neither: a new local cluster. ``partitions``: how many project ranges (default:
    one a ``PROJECTS_PER_PARTITION`` projects, at least one a worker). ``piece_rows``: a Parquet file of more rows
    is validated in runs of its row groups (``pieces_of``)."""
    import time

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"{data_dir} is not a folder; give the folder that holds the exported tables")
    absent = [t for t in TABLE_ORDER if TABLES[t].required and not table_files(data_dir, t)]
    if absent:
        raise ContractError("\n".join(_missing_table(t, data_dir) for t in absent))
    own = client is None
    client = client or connect(scheduler)
    scratch = settings.work_dir / "dask-scratch" / uuid.uuid4().hex[:12]
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        say = progress or (lambda *_: None)
        client.run(_warm)  # the workers import the families once, before anything is timed per step
        timings["worker_imports"] = time.monotonic() - started
        say("validating projects and milestones", 0, 4)
        window = DateWindow.of(settings)
        files = {t: table_files(data_dir, t) for t in LARGE_TABLES}
        raw = {t: read_table(data_dir, t) for t in DRIVER_TABLES}
        headers = {t: pd.DataFrame(columns=_headers(f)) for t, f in files.items() if f}
        if problems := _fatal_problems({**raw, **headers}, data_dir):
            raise ContractError("\n".join(problems))
        data = ValidatedData(data_dir, {}, {}, {}, {}, [], {})
        projects_ids = None
        for t in DRIVER_TABLES:
            result = _validate_table(TABLES[t], raw[t], projects_ids, window)
            data.tables[t], data.quarantine[t], data.cells[t], data.reports[t] = result[:4]
            if result.missing_columns:
                data.missing_columns[t] = result.missing_columns
            projects_ids = result.project_ids or projects_ids
        del raw
        projects, milestones = data.tables["projects"], data.tables["milestones"]
        n = len(projects)
        k_parts = partitions or max(len(client.scheduler_info()["workers"]), math.ceil(n / PROJECTS_PER_PARTITION))
        k_parts = max(1, min(k_parts, max(n, 1)))
        part_of = pd.Series((np.arange(n) * k_parts) // max(n, 1), index=pd.Index(projects["project_id"]))
        timings["driver_validation"] = time.monotonic() - started - timings["worker_imports"]

        say("validating and partitioning the large tables", 1, 4)
        scratch.mkdir(parents=True, exist_ok=True)
        shared = {k: client.scatter(v, broadcast=True) for k, v in (("projects", projects_ids), ("part_of", part_of))}
        pieces = {t: pieces_of(f, data_dir, piece_rows) for t, f in files.items()}

        def validate(t: str, i: int, prior: pd.DataFrame | None = None):
            args = (t, i, pieces[t][i], shared["projects"], window, shared["part_of"], scratch, prior)
            return client.submit(_validate_file, *args, pure=False)

        futures = {t: [validate(t, i) for i in range(len(p))] for t, p in pieces.items()}
        results = {t: client.gather(fs) for t, fs in futures.items()}
        for t, parts in results.items():  # keys first seen in an earlier piece: those pieces again, told so
            again = {i: validate(t, i, prior) for i, prior in _repeats_across_pieces(parts, pieces[t]).items()}
            for i, redone in zip(again, client.gather(list(again.values())), strict=True):
                parts[i] = redone
        newest: dict[str, pd.DataFrame] = {}
        for t in LARGE_TABLES:
            parts = results.get(t, [])
            if not parts:
                data.tables[t] = empty_table(t)
                data.quarantine[t], data.cells[t] = _empty_quarantine(t), _empty_cells()
                data.missing_tables.append(t)
                newest[t] = _newest_facts(t, [])
                continue
            data.reports[t] = _merge_reports(t, parts)
            data.quarantine[t] = pd.concat([p["quarantine"] for p in parts], ignore_index=True)
            data.cells[t] = pd.concat([p["cells"] for p in parts], ignore_index=True)
            if gone := [c for c in parts[0]["absent"] if all(c in p["absent"] for p in parts)]:
                data.missing_columns[t] = gone
            newest[t] = _newest_facts(t, parts)
        data.reports = {t: data.reports[t] for t in TABLE_ORDER if t in data.reports}  # the pandas engine's order
        part_of_milestone = part_of.reindex(milestones["project_id"]).to_numpy()
        for k in np.unique(part_of_milestone):
            folder = scratch / "milestones" / f"p{int(k):05d}"
            folder.mkdir(parents=True, exist_ok=True)
            milestones[part_of_milestone == k].to_parquet(folder / "000000.parquet", index=False)
        timings["large_tables"] = time.monotonic() - started - sum(timings.values())

        say("building the cross-project streams", 2, 4)
        empty = {t: empty_table(t) for t in ("inspections", "resources", "surveys")}
        compact = _compact_complaints(results.get("complaints", []))
        del results
        whole = Context.build(
            {**empty, "complaints": compact, "projects": projects, "milestones": milestones}, settings
        )
        streams = {name: whole.streams[name] for name in CROSS_STREAMS}
        broadcast = {"projects": projects, "kind_code": whole.kind_code, "cross": streams}
        cross = {k: client.scatter(v, broadcast=True) for k, v in broadcast.items()}

        def distributed_compute(ctx: Context, rows: pd.DataFrame, families: tuple[Family, ...]) -> pd.DataFrame:
            part = part_of.to_numpy()[ctx.code(rows["project_id"])]
            pending = []
            for k in np.unique(part):
                where = np.flatnonzero(part == k)
                sub = client.scatter(rows.iloc[where][_row_columns(rows)].reset_index(drop=True))  # data, not graph
                args = (int(k), sub, families, settings, cross["projects"], cross["kind_code"], cross["cross"])
                pending.append((where, client.submit(_partition_features, *args, scratch, pure=False)))
            parts = [(where, future.result()) for where, future in pending]
            return _assemble(parts, rows, ctx, families)

        tables = {"projects": projects, "milestones": milestones, **newest}
        light = replace(whole, tables=tables, streams={}, memo={"compute": distributed_compute})
        data_hash = folder_fingerprint(data_dir)
        built: dict[str, BuildResult] = {}
        names = targets or list(TARGETS)
        for name in names:
            say(f"building the dataset {name}", 3, 4)
            try:
                built[name] = BuildResult(dataset=build_dataset(name, light, data_hash))
            except TargetUnavailable as err:
                built[name] = BuildResult(error=str(err))
            timings[f"build_{name}"] = time.monotonic() - started - sum(timings.values())
        input_rows = sum(r.rows_in for r in data.reports.values())
        data.tables = {"projects": projects, "milestones": milestones}  # the large tables stay on disk
        return DaskBuild(built, data, k_parts, part_of, input_rows, timings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with suppress(OSError):
            scratch.parent.rmdir()  # once no other build uses it
        if own:
            close(client)
