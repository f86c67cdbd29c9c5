"""Faults while training (issue 12, §4): the MLflow store unreachable or locked, training killed midway.

Each test runs `eqsms train --promote` (a subprocess, as an operator would; in process where the fault must come at
one moment) against a real sqlite MLflow store that already has a churn champion, makes the fault happen for real (a
loopback port nobody listens on, a folder that cannot be made, a sqlite file held by another connection's exclusive
transaction, SIGKILL), and reads the registry back with MlflowClient: a fault is one line naming the store (exit 2),
and no alias moves.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from mlflow import MlflowClient

from eqsms.settings import Settings, get_settings
from features.validate import load
from training import tracking
from training.pipeline import datasets_from_data, run_target

SAMPLE = get_settings().data_dir
EQSMS = Path(sys.executable).parent / "eqsms"
TRAIN = ["train", str(SAMPLE), "--model", "churn", "--promote"]
SQLITE_BUSY_SECONDS = 20  # MLflow's own `PRAGMA busy_timeout = 20000` on each session: no setting shortens it


@pytest.fixture(scope="module")
def churn_data():
    settings = Settings(data_dir=SAMPLE)
    return datasets_from_data(load(SAMPLE), settings, ["churn"])["churn"]


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory, churn_data) -> Path:
    """A work folder whose sqlite store has churn v1 as @champion and @challenger (trained once, copied by each
    test: the copies share its artifact folder, each run writing its own)."""
    work = tmp_path_factory.mktemp("faults-base")
    settings = Settings(work_dir=work, data_dir=SAMPLE)
    run_target(churn_data, settings, None, str(SAMPLE), True, tracking.configure(settings))
    return work


@pytest.fixture
def work(trained_store, tmp_path) -> Path:
    copy = tmp_path / "work"
    shutil.copytree(trained_store, copy)
    return copy


def uri_of(work: Path) -> str:
    return f"sqlite:///{work / 'mlflow.db'}"


def registry(uri: str) -> dict:
    """Every registered model's versions (with their run, tags and description) and aliases."""
    client = MlflowClient(uri, registry_uri=uri)
    out = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name='{model.name}'")
        out[model.name] = {
            "aliases": {alias: str(version) for alias, version in model.aliases.items()},
            "versions": sorted((str(v.version), v.run_id, v.status, dict(v.tags), v.description) for v in versions),
        }
    return out


def environment(work: Path | None, **extra: str) -> dict[str, str]:
    """The caller's environment, with the store chosen by ``work`` (or by ``MLFLOW_TRACKING_URI`` in ``extra``)."""
    environ = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environ |= {"PYTHONUNBUFFERED": "1", **({"EQSMS_WORK_DIR": str(work)} if work else {}), **extra}
    return environ


def eqsms(*args: str, work: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
    command = [str(EQSMS), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=180, env=environment(work, **extra), check=False
    )


def assert_one_line_error(done: subprocess.CompletedProcess, *said: str) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    line = next(line for line in output.splitlines() if line.startswith("cannot "))
    for words in said:
        assert words in line, line
    return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_store_unreachable_while_training_is_one_line_at_once(tmp_path):
    """A tracking server that does not answer: said in seconds, before training (MLflow's own retries would spend
    minutes on each call: before the fix the command sat silent for over 5 minutes)."""
    url = f"http://127.0.0.1:{free_port()}"  # loopback, nothing listening
    started = time.monotonic()
    done = eqsms(*TRAIN, work=tmp_path / "work", MLFLOW_TRACKING_URI=url)
    line = assert_one_line_error(done, url, "Connection refused", "start the tracking server")
    assert time.monotonic() - started < 60, line
    assert "run " not in done.stdout  # nothing trained, nothing logged


@pytest.mark.slow
def test_mlflow_store_unreachable_while_training_in_a_folder_that_cannot_be_made(tmp_path):
    """A sqlite store under a path that is a file: one line naming the store (a traceback with --debug)."""
    (tmp_path / "a_file").write_text("not a folder")
    store = f"sqlite:///{tmp_path / 'a_file' / 'mlflow.db'}"
    done = eqsms(*TRAIN, work=tmp_path / "work", MLFLOW_TRACKING_URI=store)
    assert_one_line_error(done, store, "File exists", "MLFLOW_TRACKING_URI")
    debug = eqsms("--debug", *TRAIN, work=tmp_path / "work", MLFLOW_TRACKING_URI=store)
    assert debug.returncode == 2 and "Traceback" in debug.stdout + debug.stderr


def test_mlflow_store_unreachable_while_training_when_the_work_folder_cannot_be_made(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    done = eqsms(*TRAIN, work=tmp_path / "a_file" / "work")
    assert_one_line_error(done, "Not a directory", "EQSMS_WORK_DIR")


@pytest.mark.slow
def test_mlflow_store_locked_before_training_moves_nothing(work):
    """Another process holds the sqlite store in an exclusive transaction: one line after a short wait."""
    before = registry(uri_of(work))
    with closing(sqlite3.connect(work / "mlflow.db", isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        done = eqsms(*TRAIN, "--force", work=work)
        waited = time.monotonic() - started
        holder.execute("ROLLBACK")
    assert_one_line_error(done, uri_of(work), "database is locked", "another process holds it")
    assert waited < 60
    assert registry(uri_of(work)) == before


@pytest.mark.slow
def test_mlflow_store_locked_during_the_gate_moves_no_alias_and_registers_nothing(work, monkeypatch):
    """`eqsms train --promote` with the store locked just as the gate starts writing its decision on a challenger it
    promotes (the new version registered and already @challenger): the write fails after MLflow's 20 s busy wait;
    the lock goes 3 s later; one line names the store, the version is withdrawn and @challenger put back. (In
    process, so that the lock can be taken at that moment: the lock and the store are real.) Before the fix
    @champion had moved to the new version before the failing write, the version stayed registered with its
    training identity (the next `train --promote` would have skipped it as unchanged), and the command ended in a
    traceback."""
    from typer.testing import CliRunner

    from eqsms.cli import app

    uri = uri_of(work)
    before = registry(uri)
    holder = sqlite3.connect(work / "mlflow.db", isolation_level=None, check_same_thread=False, timeout=30)
    record = tracking._record

    def locked_then_record(client, decision):
        holder.execute("BEGIN EXCLUSIVE")
        threading.Timer(SQLITE_BUSY_SECONDS + 3, holder.execute, ["ROLLBACK"]).start()
        return record(client, decision)

    monkeypatch.setattr(tracking, "_record", locked_then_record)
    monkeypatch.setenv("EQSMS_WORK_DIR", str(work))
    monkeypatch.setenv("EQSMS_PROMOTION_TOLERANCE", "1")  # the gate promotes the challenger
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        done = CliRunner().invoke(app, [*TRAIN, "--force"])
    finally:
        time.sleep(0.1)
        holder.close()
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output
    assert f"cannot train churn: the MLflow store {uri} failed (database is locked)" in done.output
    assert registry(uri) == before


def runs_in(db: Path) -> int:
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.slow
def test_training_killed_midway_leaves_the_registry_as_it_was(work):
    """SIGKILL once the new run is in the store (fitting done, logging begun): the registry is as it was, the run is
    left RUNNING (nothing registered from it), and the next `eqsms train --promote` trains, registers and judges."""
    db, uri = work / "mlflow.db", uri_of(work)
    before, runs = registry(uri), runs_in(db)
    command = [str(EQSMS), *TRAIN, "--force"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(work))
    try:
        deadline = time.monotonic() + 120
        while runs_in(db) == runs:
            assert proc.poll() is None, "training ended before it was killed"
            assert time.monotonic() < deadline, "no run started in 2 minutes"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert registry(uri) == before
    client = MlflowClient(uri)
    (killed,) = client.search_runs(
        [client.get_experiment_by_name("eqsms-churn").experiment_id], "attributes.status = 'RUNNING'"
    )
    assert not client.search_model_versions(f"run_id='{killed.info.run_id}'")

    again = eqsms(*TRAIN, "--force", work=work)
    assert again.returncode == 0, again.stdout + again.stderr
    after = registry(uri)["churn"]
    assert after["aliases"]["challenger"] == "2" and after["aliases"]["champion"] in ("1", "2")
    assert [v[0] for v in after["versions"]] == ["1", "2"]
