"""Reading raw exports: find a table's files, read them as written, say what to fix when they cannot be read.

A table is one file in the data folder (``<table>.parquet``, ``<table>.csv`` or ``<table>.csv.gz``) or a folder
``<table>/`` of such part files. CSV cells are read as strings, exactly as written (an empty cell is the empty
string), so that the validator can report a bad value as the user wrote it; Parquet columns keep their stored types.
Every row carries where it came from: ``_source_file`` (the file's path relative to the data folder) and
``_source_row`` (its 1-based data record number in that file, header excluded).

A file cut part-way (a copy or an export interrupted) is refused rather than read short: a CSV that ends without a
line break in the middle of a row (fewer fields than the header, or inside a quoted field), a gzip stream that
ends early, a Parquet file without its footer. A CSV that merely lacks the final line break, its last row whole,
is read as usual.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.contract import FILE_SUFFIXES

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
SOURCE_COLUMNS = (SOURCE_FILE, SOURCE_ROW)
CONTRACT_DOC = "see data_samples/README.md"


class ContractError(Exception):
    """The data cannot be used at all: a required table or column is missing, or a file cannot be read.

    The message says what is wrong and what to fix.
    """


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in FILE_SUFFIXES if name.endswith(s)), None)


def _part_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_")) and _suffix(p))


def table_files(data_dir: Path, table: str) -> list[Path]:
    """The files that hold ``table`` in ``data_dir``: one file, or the sorted part files of a folder ``<table>/``.

    An empty list means the table has no file. Two sources for one table (say ``milestones.csv`` and
    ``milestones.parquet``) are ambiguous and raise ``ContractError``.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"{data_dir} is not a folder; give the folder that holds the exported tables")
    sources = {f"{table}{s}": [data_dir / f"{table}{s}"] for s in FILE_SUFFIXES if (data_dir / f"{table}{s}").is_file()}
    folder = data_dir / table
    if folder.is_dir() and (parts := _part_files(folder)):
        sources[f"{table}/"] = parts
    if len(sources) > 1:
        found = ", ".join(sources)
        raise ContractError(
            f"{table}: found more than one source ({found}) in {data_dir}; keep exactly one file or folder a table"
        )
    return next(iter(sources.values()), [])


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as err:
        raise ContractError(f"{path.name}: cannot read the CSV header ({err}); export it as UTF-8 CSV") from err


def _ends_inside_quotes(record: str) -> bool:
    """Whether the text of one CSV record ends inside a quoted field (as pyarrow's and Python's readers parse it:
    a quote opens a field only at its start, and a doubled quote inside one is a quote)."""
    state = "start"  # start of a field, in an unquoted field, in a quoted one, just after its closing quote
    for ch in record:
        if state == "quoted":
            if ch == '"':
                state = "closed"
        elif state == "closed" and ch == '"':
            state = "quoted"
        elif ch in ",\r\n":
            state = "start"
        elif state == "start" and ch == '"':
            state = "quoted"
        else:
            state = "field"
    return state == "quoted"


def _unterminated_last_record(path: Path) -> tuple[int, list[str], bool] | None:
    """A plain CSV's last record when the file does not end with a line break: the line it starts on, its fields
    and whether it ends inside a quoted field; None when the file ends with a line break (or is not plain CSV). Only
    such a file is read for this, in one pass of Python's csv reader."""
    if _suffix(path) != ".csv":
        return None  # a .csv.gz cut part-way is a truncated stream, refused when it is read
    with path.open("rb") as fh:
        if fh.seek(0, 2) == 0:
            return None
        fh.seek(-1, 2)
        if fh.read(1) in (b"\n", b"\r"):
            return None
    pending: list[str] = []  # the physical lines of the record being read

    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:

        def lines():
            for text in fh:
                pending.append(text)
                yield text

        record, raw, start, line = [], "", 1, 0
        try:
            for record in csv.reader(lines()):  # noqa: B007 - the last record is the one wanted
                start, line = line + 1, line + len(pending)
                raw = "".join(pending)
                pending.clear()
        except csv.Error:
            return None  # a field beyond csv's size limit: left to the reader, which says what is wrong
    return start, record, _ends_inside_quotes(raw)


def _read_csv(path: Path) -> pd.DataFrame:
    header = [h.strip() for h in _csv_header(path)]
    if not header or header == [""]:
        raise ContractError(f"{path.name}: the file is empty; it needs a header line naming the columns")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ContractError(f"{path.name}: column(s) {', '.join(repeated)} appear more than once in the header")
    if last := _unterminated_last_record(path):  # no line break at the end: a whole last row, or one cut part-way
        start, fields, quoted = last
        if start == 1:
            return pd.DataFrame({h: pd.Series([], dtype="str") for h in header})  # the header alone
        if len(fields) < len(header) or quoted:
            how = [f"has {len(fields)} of {len(header)} fields"] if len(fields) < len(header) else []
            how += ["ends inside a quoted field"] if quoted else []
            raise ContractError(
                f"{path.name}: ends mid-row (line {start} {' and '.join(how)}): a half-written export? Export it again"
            )
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as err:
        if isinstance(err, OSError) and _suffix(path) == ".csv.gz":  # pyarrow's gzip: a stream cut short or damaged
            raise ContractError(
                f"{path.name}: cannot decompress ({err}): a half-written or damaged export? Export it again"
            ) from err
        raise ContractError(
            f"{path.name}: cannot read as CSV ({err}); every line needs as many fields as the header, fields "
            "holding commas or line breaks must be quoted, and the file must be UTF-8"
        ) from err
    return table.to_pandas()


def _read_parquet(path: Path, row_groups: tuple[int, ...] | None = None) -> pd.DataFrame:
    try:
        if row_groups is not None:
            return pq.ParquetFile(path).read_row_groups(list(row_groups)).to_pandas(date_as_object=False)
        return pq.read_table(path).to_pandas(date_as_object=False)
    except (pa.ArrowException, OSError) as err:
        raise ContractError(f"{path.name}: cannot read as Parquet ({err}); re-export the table") from err


def read_file(path: Path, row_groups: tuple[int, ...] | None = None) -> pd.DataFrame:
    """One file as written: CSV as strings (empty = ""), Parquet in its stored types (only ``row_groups``, if given:
    a Parquet file's row groups, in order)."""
    frame = _read_parquet(path, row_groups) if _suffix(path) == ".parquet" else _read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_table(data_dir: Path, table: str) -> pd.DataFrame | None:
    """All rows of ``table`` as written, with ``_source_file`` and ``_source_row``; None if it has no file."""
    data_dir = Path(data_dir)
    files = table_files(data_dir, table)
    if not files:
        return None
    frames = []
    for path in files:
        frame = read_file(path)
        frame = frame.drop(columns=[c for c in SOURCE_COLUMNS if c in frame.columns])
        frame[SOURCE_ROW] = np.arange(1, len(frame) + 1, dtype=np.int64)
        frames.append(frame)
    names = [p.relative_to(data_dir).as_posix() for p in files]
    out = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    codes = np.repeat(np.arange(len(frames), dtype=np.int32), [len(f) for f in frames])
    out[SOURCE_FILE] = pd.Categorical.from_codes(codes, categories=names)
    out.attrs["source_files"] = names
    return out


def describe_sources(files: list[str], table: str) -> str:
    """How a message names where a table came from: its file, or its files."""
    if not files:
        return table
    return files[0] if len(files) == 1 else f"{table} ({', '.join(files)})"


__all__ = ["ContractError", "read_file", "read_table", "table_files"]
