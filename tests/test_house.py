"""The house the stages live in: settings read when a command runs, one console script, one dataset path."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings, get_settings

SAMPLE = get_settings().data_dir


def test_settings_are_read_when_a_command_runs_not_at_import(tmp_path, monkeypatch):
    """The console script was imported above, with the default data folder; a command run now sees the
    environment as it is now."""
    monkeypatch.setenv("EQSMS_DATA_DIR", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "nowhere" in result.output and "Traceback" not in result.output


def test_paths_are_resolved_once_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(work_dir=Path("work"), data_dir=Path("exports"))
    monkeypatch.chdir("/")
    assert settings.work_dir == tmp_path / "work" and settings.data_dir == tmp_path / "exports"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}"


def test_every_stage_plugs_into_one_console_script():
    commands = CliRunner().invoke(app, ["--help"]).output
    for command in ("generate", "validate", "features", "import", "train", "promote", "backtest", "serve", "package"):
        assert command in commands
    assert CliRunner().invoke(app, ["train", "--model", "nope"]).exit_code == 2


def test_features_build_then_train_log_one_fingerprint_and_the_dataset(tmp_path, monkeypatch):
    """`eqsms train` reuses the dataset `eqsms features build` wrote, and its MLflow run names it as its input."""
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runner = CliRunner()
    built = runner.invoke(app, ["features", "build", str(SAMPLE)])
    assert built.exit_code == 0, built.output
    datasets = tmp_path / "datasets"
    fingerprint = json.loads((datasets / "churn.json").read_text())["fingerprint"]
    written = (datasets / "churn.parquet").stat().st_mtime_ns
    trained = runner.invoke(app, ["train", str(SAMPLE), "--model", "churn"])
    assert trained.exit_code == 0, trained.output
    assert (datasets / "churn.parquet").stat().st_mtime_ns == written  # reused, not rebuilt
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("eqsms-churn").experiment_id])[0]
    assert run.data.tags["dataset.fingerprint"] == fingerprint
    (logged,) = run.inputs.dataset_inputs
    assert logged.dataset.name == "churn" and fingerprint.startswith(logged.dataset.digest)
    assert logged.dataset.source and "churn.parquet" in logged.dataset.source
    assert {t.key: t.value for t in logged.tags}["fingerprint"] == fingerprint


def test_train_builds_and_writes_the_datasets_features_build_would(tmp_path, monkeypatch):
    """On a fresh work folder `eqsms train` builds the dataset itself and writes it where `features build` would,
    with the same identity."""
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "a"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert CliRunner().invoke(app, ["train", str(SAMPLE), "--model", "churn"]).exit_code == 0
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "b"))
    assert CliRunner().invoke(app, ["features", "build", str(SAMPLE)]).exit_code == 0
    made = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/datasets/churn.json"))]
    assert len(made) == 2 and made[0]["fingerprint"] == made[1]["fingerprint"]


def test_training_unchanged_data_again_registers_nothing_unless_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runner = CliRunner()
    command = ["train", str(SAMPLE), "--model", "churn", "--promote"]
    assert runner.invoke(app, command).exit_code == 0
    again = runner.invoke(app, command)
    assert again.exit_code == 0 and "unchanged: version 1 learned this dataset" in again.output
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [str(v.version) for v in client.search_model_versions("name='churn'")] == ["1"]
    forced = runner.invoke(app, [*command, "--force"])
    assert forced.exit_code == 0 and "registered v2" in forced.output
    monkeypatch.setenv("EQSMS_SEED", "8")  # another parameter: another training
    assert "registered v3" in runner.invoke(app, command).output


def test_each_data_folder_has_its_own_quarantine(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    for name in ("export_march", "export_april"):
        shutil.copytree(SAMPLE, tmp_path / name)
        assert CliRunner().invoke(app, ["validate", str(tmp_path / name)]).exit_code == 0
    folders = sorted(p.name for p in (tmp_path / "work" / "quarantine").iterdir())
    assert folders == ["export-april", "export-march"]
    assert all((tmp_path / "work" / "quarantine" / f / "summary.json").exists() for f in folders)
