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


# ------------------------------------------------------------------------------------- a file cut part-way (§4)


@pytest.mark.parametrize(
    "text",
    [
        "project_id,region\nP1,north\nP2,south",  # no final line break, the last row whole
        "project_id,region\r\nP1,north\r\nP2,south",
        'project_id,region\nP1,north\nP2,"south, ""coast"""',  # a quoted last field, closed
        'project_id,region\nP1,north\nP2,"two\nlines"',
        "project_id,region\nP1,north\nP2,",  # an empty last field is a field
        "project_id,region",  # the header alone
    ],
)
def test_a_csv_without_a_final_line_break_but_a_whole_last_row_is_read(tmp_path, text):
    (tmp_path / "projects.csv").write_text(text, encoding="utf-8")
    with_break = tmp_path / "with_break"
    with_break.mkdir()
    (with_break / "projects.csv").write_text(text + "\n", encoding="utf-8")
    frame, expected = read_table(tmp_path, "projects"), read_table(with_break, "projects")
    pd.testing.assert_frame_equal(frame, expected)
    assert len(frame) == text.count("\nP")  # every row, the last one included


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("project_id,region,contract_value\nP1,north,10\nP2,sou", "line 3 has 2 of 3 fields"),
        ("project_id,region,contract_value\nP1,north,10\nP2", "line 3 has 1 of 3 fields"),
        ("project_id,region,contract_value\r\nP1,north,10\r\nP2,south", "line 3 has 2 of 3 fields"),
        ('project_id,region,contract_value\nP1,north,10\nP2,south,"10', "line 3 ends inside a quoted field"),
        (
            'project_id,region,contract_value\nP1,"a\nb",10\nP2,"two\nli',
            "line 4 has 2 of 3 fields and ends inside a quoted field",
        ),
    ],
)
def test_a_csv_cut_mid_row_is_refused_as_half_written(tmp_path, text, where):
    (tmp_path / "projects.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as refused:
        read_table(tmp_path, "projects")
    assert str(refused.value) == f"projects.csv: ends mid-row ({where}): a half-written export? Export it again"


def test_a_short_row_that_ends_its_line_is_ragged_not_half_written(tmp_path):
    (tmp_path / "projects.csv").write_text("project_id,region\nP1,north\nP2\n")
    with pytest.raises(ContractError, match=r"projects\.csv: cannot read as CSV \(.*Expected 2 columns, got 1"):
        read_table(tmp_path, "projects")


def test_counts_reconcile_with_and_without_final_line_breaks(tmp_path):
    """The validator's world, once as written and once with every file's final line break dropped: the same rows
    in, each accepted or quarantined."""
    from features.validate import load
    from tests.test_validate import assert_reconciles, write_world

    edits = [("surveys", 3, "csat", "7"), ("milestones", 2, "sequence", "x"), ("projects", 3, "project_id", "")]
    whole = load(write_world(tmp_path / "whole", edits))
    bare = write_world(tmp_path / "bare", edits)
    for path in bare.iterdir():
        path.write_bytes(path.read_bytes().rstrip(b"\n"))
    stripped = load(bare)
    for data in (whole, stripped):
        assert_reconciles(data)
    for name, report in whole.reports.items():
        assert report.rows_in > 0 and report.rows_in == stripped.reports[name].rows_in, name
        assert report.rows_quarantined == stripped.reports[name].rows_quarantined, name
    assert sum(r.rows_quarantined for r in whole.reports.values()) >= 2  # the edits were seen


def test_a_truncated_parquet_or_gzip_file_is_refused(tmp_path):
    frame = pd.DataFrame({"project_id": [f"P{i}" for i in range(500)], "region": ["north"] * 500})
    frame.to_parquet(tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "projects.parquet").write_bytes(data[: len(data) // 2])  # a copy interrupted half-way
    with pytest.raises(ContractError, match=r"projects\.parquet: cannot read as Parquet"):
        read_table(tmp_path, "projects")
    (tmp_path / "projects.parquet").unlink()
    data = gzip.compress(frame.to_csv(index=False).encode())
    (tmp_path / "projects.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ContractError, match=r"projects\.csv\.gz: cannot decompress .*half-written"):
        read_table(tmp_path, "projects")


def test_validate_says_a_half_written_table_in_one_line_and_exits_2(tmp_path):
    from typer.testing import CliRunner

    from eqsms.cli import app
    from tests.test_validate import write_world

    folder = write_world(tmp_path / "data")
    text = (folder / "milestones.csv").read_text()
    (folder / "milestones.csv").write_text(text[: text.rindex(",", 0, -15)])  # cut inside the last row
    result = CliRunner().invoke(app, ["validate", str(folder), "--quarantine", str(tmp_path / "q")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "milestones.csv: ends mid-row (line 5 has" in lines[0] and "Export it again" in lines[0]
