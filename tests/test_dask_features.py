"""The Dask engine (``features.dask_engine``) builds exactly the pandas engine's datasets, on a real local cluster;
the generator's partitioned Parquet reads back as the whole tables; ``eqsms features build --engine dask``."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings
from features.datasets import build_all
from features.io import read_table, table_files
from features.targets import TARGETS
from features.validate import load
from world import generate_world


@pytest.fixture(scope="module")
def parted(tmp_path_factory):
    """300 projects as Parquet, each table but projects in three part files of 100 projects."""
    out = tmp_path_factory.mktemp("parted")
    generate_world(n_projects=300, seed=7, out_dir=out, fmt="parquet", part_projects=100)
    return out


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(work_dir=tmp_path_factory.mktemp("work"))


def assert_same_datasets(expected: dict, got: dict) -> None:
    assert list(expected) == list(got)
    for name, want in expected.items():
        assert want.error == got[name].error
        if want.error:
            continue
        a, b = want.dataset, got[name].dataset
        pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
        assert a.meta == b.meta and a.fingerprint == b.fingerprint
        assert (a.id_columns, a.label_columns, a.feature_columns) == (b.id_columns, b.label_columns, b.feature_columns)


def test_dask_engine_equals_pandas_engine_across_partitions(dask_client, parted, settings):
    from features.dask_engine import build_all_dask

    expected = build_all(load(parted, settings), settings)
    got = build_all_dask(parted, settings, client=dask_client, partitions=4)

    assert got.partitions == 4 and got.partition_of_project.nunique() == 4
    assert_same_datasets(expected, got.results)
    assert all(not r.error for r in got.results.values()) and set(got.results) == set(TARGETS)
    # The cross-project parts are exercised: clients whose projects lie in different partitions, with churn rows.
    projects = got.data.tables["projects"]
    spread = projects.assign(part=got.partition_of_project.reindex(projects["project_id"]).to_numpy())
    split = spread.groupby("client_id")["part"].nunique()
    split = set(split[split > 1].index)
    assert len(split) >= 10
    assert expected["churn"].dataset.frame["client_id"].isin(split).sum() >= 10
    # ... and a client's history counts its projects of other partitions (more awards than its partition holds).
    churn = expected["churn"].dataset.frame.merge(spread[["project_id", "part"]], on="project_id")
    local = spread.groupby(["client_id", "part"]).size().rename("local").reset_index()
    churn = churn.merge(local, on=["client_id", "part"])
    assert (churn["client_projects_awarded"] > churn["local"]).any()


def test_validation_and_quarantine_match_on_a_dirty_export(dask_client, tmp_path, settings):
    from features.dask_engine import build_all_dask

    generate_world(n_projects=150, seed=5, out_dir=tmp_path, fmt="csv", dirty=0.05)
    data = load(tmp_path, settings)
    got = build_all_dask(tmp_path, settings, client=dask_client, partitions=3)

    assert sum(r.rows_quarantined for r in data.reports.values()) > 100
    assert_same_validation(data, got)
    assert (data.missing_tables, data.missing_columns) == (got.data.missing_tables, got.data.missing_columns)
    assert_same_datasets(build_all(data, settings), got.results)


def test_a_missing_optional_table_is_missing_in_both_engines(dask_client, parted, tmp_path, settings):
    from features.dask_engine import build_all_dask

    shutil.copytree(parted, tmp_path / "data", ignore=shutil.ignore_patterns("surveys"))
    data = load(tmp_path / "data", settings)
    got = build_all_dask(tmp_path / "data", settings, client=dask_client, partitions=3)

    assert data.missing_tables == got.data.missing_tables == ["surveys"]
    assert_same_datasets(build_all(data, settings), got.results)


def assert_same_validation(data, got) -> None:
    assert list(data.reports) == list(got.data.reports)
    for name, report in data.reports.items():
        assert report.as_dict() == got.data.reports[name].as_dict()
        pd.testing.assert_frame_equal(data.quarantine[name], got.data.quarantine[name], check_exact=True)
        pd.testing.assert_frame_equal(data.cells[name], got.data.cells[name], check_exact=True)


def test_keys_repeated_across_part_files_are_quarantined_as_pandas_does(dask_client, tmp_path, settings):
    from features.dask_engine import build_all_dask

    generate_world(n_projects=20, seed=3, out_dir=tmp_path, fmt="csv")
    for table in ("inspections", "resources"):
        rows = pd.read_csv(tmp_path / f"{table}.csv", dtype=str, keep_default_na=False)
        (tmp_path / f"{table}.csv").unlink()
        (tmp_path / table).mkdir()
        a, b = rows.iloc[:100].copy(), rows.iloc[99:].copy()  # row 99 in both
        b = pd.concat([b, rows.iloc[[10, 10, 150]]])  # a's row 10 twice more in b; b's own row 150 again
        a.loc[20, "project_id"] = "P-NOT-A-PROJECT"  # quarantined in a, yet the first of its key ...
        b = pd.concat([b, rows.iloc[[20]]])  # ... so b's copy repeats it
        a.to_csv(tmp_path / table / "a.csv", index=False)
        b.to_csv(tmp_path / table / "b.csv", index=False)
        rows.iloc[[150, 30]].to_csv(tmp_path / table / "c.csv", index=False)  # first held by b and by a

    data = load(tmp_path, settings)
    got = build_all_dask(tmp_path, settings, client=dask_client, partitions=2)

    assert_same_validation(data, got)
    assert_same_datasets(build_all(data, settings), got.results)
    reasons = got.data.quarantine["inspections"]["_reason"]
    assert reasons.str.contains("repeats inspections/a.csv row").sum() == 5  # a's 99, 10, 10, 20 in b; 30 in c
    assert reasons.str.contains("repeats inspections/b.csv row").sum() == 1  # b's 150 in c
    assert reasons.str.contains("repeats source row").sum() == 1  # b's 150 in b
    # A resources key holds the project: a's row 20 (another project now) is not repeated by b's copy.
    assert got.data.reports["resources"].reasons["duplicate_id"] == 6


def test_a_big_parquet_file_is_read_in_runs_of_row_groups(dask_client, tmp_path, settings):
    import pyarrow.parquet as pq

    from features.dask_engine import build_all_dask, pieces_of

    generate_world(n_projects=60, seed=4, out_dir=tmp_path, fmt="parquet", part_projects=None)
    rows = pd.read_parquet(tmp_path / "inspections.parquet")
    rows = pd.concat([rows, rows.iloc[[5, 430, 431, 5]]], ignore_index=True)  # repeats across and within groups
    rows.to_parquet(tmp_path / "inspections.parquet", index=False, row_group_size=100)

    pieces = pieces_of([tmp_path / "inspections.parquet"], tmp_path, piece_rows=250)
    groups = pq.ParquetFile(tmp_path / "inspections.parquet").metadata.num_row_groups
    assert groups == -(-len(rows) // 100) and len(pieces) >= 10  # 100 rows a group, at most 250 rows a piece
    assert [g for p in pieces for g in p.row_groups] == list(range(groups))
    assert pieces[1].row_groups == (2, 3) and pieces[1].first_row == 201
    data = load(tmp_path, settings)
    got = build_all_dask(tmp_path, settings, client=dask_client, partitions=3, piece_rows=250)

    assert data.reports["inspections"].reasons["duplicate_id"] == 4
    assert_same_validation(data, got)
    assert_same_datasets(build_all(data, settings), got.results)


def test_partitioned_parquet_reads_back_as_the_whole_tables(parted, tmp_path, settings):
    whole = tmp_path / "whole"
    generate_world(n_projects=300, seed=7, out_dir=whole, fmt="parquet", part_projects=None)

    assert [p.name for p in table_files(parted, "inspections")] == [f"part-0000{k}.parquet" for k in range(3)]
    assert table_files(parted, "projects") == [parted / "projects.parquet"]
    for table in ("milestones", "inspections", "resources", "complaints", "surveys"):
        parts, one = read_table(parted, table), read_table(whole, table)
        key = [c for c in one.columns if c.endswith("_id") and c != "project_id"] or ["project_id", "week_start"]
        columns = [c for c in one.columns if not c.startswith("_source")]

        def tidy(frame, columns=columns, key=key):
            return frame[columns].sort_values(key).reset_index(drop=True)

        pd.testing.assert_frame_equal(tidy(parts), tidy(one), check_exact=True)
    # Each project's rows keep their order, so the datasets are the same (the fingerprints name different files).
    a, b = build_all(load(parted, settings), settings), build_all(load(whole, settings), settings)
    for name in a:
        pd.testing.assert_frame_equal(a[name].dataset.frame, b[name].dataset.frame, check_exact=True)
    # A world written over a partitioned one leaves no part file behind.
    generate_world(n_projects=30, seed=7, out_dir=parted.parent / "again", fmt="parquet", part_projects=10)
    generate_world(n_projects=30, seed=7, out_dir=parted.parent / "again", fmt="csv")
    assert not (parted.parent / "again" / "inspections").exists()


@pytest.mark.slow
def test_features_build_on_dask_from_the_command_line(parted, tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    runner = CliRunner()
    pandas_out, dask_out = tmp_path / "pandas", tmp_path / "dask"

    assert runner.invoke(app, ["features", "build", str(parted), "--out", str(pandas_out)]).exit_code == 0
    result = runner.invoke(app, ["features", "build", str(parted), "--out", str(dask_out), "--engine", "dask"])

    assert result.exit_code == 0, result.output
    assert re.search(r"engine +dask, \d+ partitions of projects", result.output)  # a local cluster
    for name in TARGETS:
        a, b = (pd.read_parquet(out / f"{name}.parquet") for out in (pandas_out, dask_out))
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert (pandas_out / f"{name}.json").read_text() == (dask_out / f"{name}.json").read_text()


def test_an_unreachable_scheduler_is_one_line(parted, tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    args = ["features", "build", str(parted), "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "cannot build on Dask: cannot reach the Dask scheduler at tcp://127.0.0.1:1 (Connection refused)"
    ]
