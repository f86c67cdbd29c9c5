"""Reading raw exports: which files make a table, cells read as written, where each row came from."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from features.io import ContractError, read_table, table_files


def test_table_files_single_file_folder_of_parts_or_nothing(tmp_path):
    (tmp_path / "projects.csv").write_text("project_id\nP1\n")
    assert table_files(tmp_path, "projects") == [tmp_path / "projects.csv"]
    parts = tmp_path / "inspections"
    parts.mkdir()
    for name in ("part-1.csv", "part-0.parquet", "_SUCCESS", ".part-0.crc", "notes.txt"):
        (parts / name).write_text("x\n")
    assert [p.name for p in table_files(tmp_path, "inspections")] == ["part-0.parquet", "part-1.csv"]
    assert table_files(tmp_path, "surveys") == []


def test_two_sources_for_one_table_are_ambiguous(tmp_path):
    (tmp_path / "projects.csv").write_text("project_id\nP1\n")
    pd.DataFrame({"project_id": ["P1"]}).to_parquet(tmp_path / "projects.parquet")
    with pytest.raises(ContractError, match=r"projects: found more than one source \(projects.parquet, projects.csv\)"):
        table_files(tmp_path, "projects")


def test_csv_cells_are_strings_as_written_with_their_source_row(tmp_path):
    text = '\ufeff project_id , contract_value,region\nP1,001.50,"north, coast"\nP2,,"two\nlines"\n P3 ,NA,\n'
    (tmp_path / "projects.csv").write_text(text, encoding="utf-8")
    frame = read_table(tmp_path, "projects")
    assert list(frame.columns) == ["project_id", "contract_value", "region", "_source_row", "_source_file"]
    assert frame["project_id"].tolist() == ["P1", "P2", " P3 "]
    assert frame["contract_value"].tolist() == ["001.50", "", "NA"]  # no number parsing, no NA guessing
    assert frame["region"].tolist() == ["north, coast", "two\nlines", ""]
    assert frame["_source_row"].tolist() == [1, 2, 3]  # data records, not lines
    assert frame["_source_file"].astype(str).tolist() == ["projects.csv"] * 3


def test_gzipped_csv_and_parquet_parts(tmp_path):
    with gzip.open(tmp_path / "surveys.csv.gz", "wt") as fh:
        fh.write("survey_id,csat\nS1,4\nS2,5\n")
    assert read_table(tmp_path, "surveys")["csat"].tolist() == ["4", "5"]
    parts = tmp_path / "milestones"
    parts.mkdir()
    pd.DataFrame({"milestone_id": ["M1", "M2"], "sequence": [1, 2]}).to_parquet(parts / "a.parquet")
    pd.DataFrame({"milestone_id": ["M3"], "sequence": [3]}).to_parquet(parts / "b.parquet")
    frame = read_table(tmp_path, "milestones")
    assert frame["sequence"].dtype == "int64"  # Parquet keeps its types
    assert frame["_source_file"].astype(str).tolist() == ["milestones/a.parquet"] * 2 + ["milestones/b.parquet"]
    assert frame["_source_row"].tolist() == [1, 2, 1]


def test_no_file_is_none(tmp_path):
    assert read_table(tmp_path, "complaints") is None


def test_repeated_header_column_is_fatal(tmp_path):
    (tmp_path / "projects.csv").write_text("project_id,region,region\nP1,a,b\n")
    with pytest.raises(ContractError, match="region appear more than once"):
        read_table(tmp_path, "projects")


def test_non_utf8_csv_is_fatal(tmp_path):
    (tmp_path / "projects.csv").write_bytes("project_id,region\nP1,Zürich\n".encode("latin-1"))
    with pytest.raises(ContractError, match="UTF-8"):
        read_table(tmp_path, "projects")
