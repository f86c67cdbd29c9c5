"""The champion history and rollback (issue 13, §4): every move of @champion recorded in the MLflow store, read back
by `eqsms history`, and gone back through by `eqsms rollback`.

One churn model is trained into a temporary store (v1, promoted as the first model); each test copies that store.
A second version is the same model registered again (what a second training registers, without its minutes, as
benchmarks/load.py does), judged by the real gate; the commands run in process against the copy.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings, get_settings
from features.validate import load
from training import history as champion_history
from training import tracking
from training.history import history, record_move
from training.pipeline import datasets_from_data, run_target

SAMPLE = get_settings().data_dir
MODEL = "churn"


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory) -> Path:
    """A work folder whose store has churn v1 as @champion, moved there by the gate as the first model."""
    work = tmp_path_factory.mktemp("history-base")
    settings = Settings(work_dir=work, data_dir=SAMPLE)
    churn = datasets_from_data(load(SAMPLE), settings, [MODEL])[MODEL]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQSMS_MOVED_BY", "the fixture")
        run_target(churn, settings, None, str(SAMPLE), True, tracking.configure(settings))
    return work


@pytest.fixture
def work(trained_store, tmp_path, monkeypatch) -> Path:
    """A copy of the store (sharing its artifact folder), which the commands in this process use."""
    copy = tmp_path / "work"
    shutil.copytree(trained_store, copy)
    monkeypatch.setenv("EQSMS_WORK_DIR", str(copy))
    monkeypatch.setenv("EQSMS_PROMOTION_TOLERANCE", "1")  # the gate promotes the second version
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("EQSMS_MOVED_BY", raising=False)
    monkeypatch.setattr("sys.argv", ["/venv/bin/eqsms", "as", "typed"])  # what moved_by says of the command
    return copy


@pytest.fixture
def client(work) -> MlflowClient:
    return tracking.configure(get_settings())


def eqsms(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line(result, code: int, *words: str) -> str:
    assert result.exit_code == code, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for words_ in words:
        assert words_ in lines[0], lines[0]
    return lines[0]


def champion(client: MlflowClient) -> str | None:
    return tracking.alias_version(client, MODEL, tracking.CHAMPION)


def register_again(client: MlflowClient) -> str:
    """The champion's model registered again as a new version and made @challenger."""
    old = client.get_model_version_by_alias(MODEL, tracking.CHAMPION)
    new = client.create_model_version(MODEL, old.source, run_id=old.run_id)
    client.set_registered_model_alias(MODEL, tracking.CHALLENGER, new.version)
    return str(new.version)


def promoted_twice(client: MlflowClient, monkeypatch) -> None:
    """v2 registered and promoted by `eqsms promote churn`, moved by alice."""
    assert register_again(client) == "2"
    monkeypatch.setenv("EQSMS_MOVED_BY", "alice")
    monkeypatch.setattr("sys.argv", ["/venv/bin/eqsms", "promote", MODEL])
    one_line(eqsms("promote", MODEL), 0, "churn: promoted")
    monkeypatch.delenv("EQSMS_MOVED_BY")
    monkeypatch.setattr("sys.argv", ["/venv/bin/eqsms", "as", "typed"])


def test_the_first_model_is_recorded(client):
    (first,) = history(client)
    assert (first["model"], first["from"], first["to"], first["action"]) == (MODEL, None, "1", "first model")
    assert first["applied"] and first["status"] == "done"
    assert first["reason"].startswith("first model")
    assert first["metric"] == "roc_auc" and 0.5 < first["values"]["challenger"] <= 1
    assert first["values"]["champion"] is None
    assert first["moved_by"].startswith("the fixture (")  # EQSMS_MOVED_BY, then the command


def test_promote_then_rollback_then_nothing_earlier(client, monkeypatch):
    promoted_twice(client, monkeypatch)
    moved = history(client, MODEL)[0]
    assert (moved["from"], moved["to"], moved["action"], moved["applied"]) == ("1", "2", "promoted", True)
    assert moved["metric"] == "roc_auc" and all(0.5 < v <= 1 for v in moved["values"].values())
    assert moved["moved_by"] == "alice (eqsms promote churn)"  # EQSMS_MOVED_BY and the command line

    line = one_line(eqsms("rollback", MODEL, "--reason", "v2 flags every school"), 0)
    assert line == "churn: rolled back @champion from v2 to v1: v2 flags every school"
    assert champion(client) == "1"
    back = history(client, MODEL)[0]
    assert (back["from"], back["to"], back["action"], back["applied"]) == ("2", "1", "rolled back", True)
    assert back["reason"] == "v2 flags every school" and back["values"] == {"challenger": None, "champion": None}
    assert back["moved_by"] == f"{getpass.getuser()}@{socket.gethostname()} (eqsms as typed)"  # no EQSMS_MOVED_BY
    assert [r["action"] for r in history(client)] == ["rolled back", "promoted", "first model"]

    one_line(eqsms("rollback", MODEL), 2, "cannot roll back churn: no champion before v1")
    assert champion(client) == "1" and len(history(client)) == 3


def test_rollback_refuses_a_version_never_champion_gone_or_current(client):
    register_again(client)  # v2: registered, never judged by the gate
    one_line(eqsms("rollback", MODEL, "--to", "2"), 2, "v2 was never champion and never passed the gate")
    one_line(eqsms("rollback", MODEL, "--to", "7"), 2, "v7 does not exist in the registry")
    one_line(eqsms("rollback", MODEL, "--to", "v1"), 2, "v1 already is the champion")
    one_line(eqsms("rollback", "no_such_model"), 2, "no registered model named no_such_model")
    assert champion(client) == "1" and len(history(client)) == 1


def test_rollback_to_a_deleted_champion_is_refused(client, monkeypatch):
    promoted_twice(client, monkeypatch)
    client.delete_model_version(MODEL, "1")
    one_line(eqsms("rollback", MODEL), 2, "v1, the champion before v2, no longer exists in the registry")
    assert champion(client) == "2"


def test_rollback_without_history_goes_back_through_the_gate_records(client, monkeypatch):
    """Moves made before the history began: the current champion's gate record names the champion it beat."""
    promoted_twice(client, monkeypatch)
    for record in history(client):
        client.delete_run(record["run_id"])
    assert history(client) == []
    one_line(eqsms("rollback", MODEL), 0, "from v2 to v1: the champion before v2")
    assert champion(client) == "1"


def test_history_command_json_and_table(client, monkeypatch):
    promoted_twice(client, monkeypatch)
    done = eqsms("history", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == json.loads(json.dumps(history(client)))
    assert [r["to"] for r in json.loads(eqsms("history", MODEL, "--json", "--limit", "1").stdout)] == ["2"]

    table = eqsms("history", MODEL)
    assert table.exit_code == 0, table.output
    for words in ("v1 → v2", "promoted", "first model", "roc_auc 0.", " vs ", "alice (", "yes"):
        assert words in table.stdout, table.stdout
    one_line(eqsms("history", "no_such_model"), 2, "no history of no_such_model")


def test_a_move_whose_alias_did_not_move_is_not_applied(client, monkeypatch):
    """The record is written before the alias moves: a move that fails, or a crash between the two, leaves a
    record that reads as not applied; a record left pending whose alias did move reads as applied."""
    register_again(client)
    moves = client.set_registered_model_alias

    def fails_once(name, alias, version):
        monkeypatch.setattr(client, "set_registered_model_alias", moves)
        raise MlflowException("the store went away")

    monkeypatch.setattr(client, "set_registered_model_alias", fails_once)
    with pytest.raises(MlflowException, match="went away"):
        tracking.promote(client, MODEL, tolerance=1.0)
    assert champion(client) == "1"
    failed = history(client)[0]
    assert (failed["from"], failed["to"], failed["status"], failed["applied"]) == ("1", "2", "failed", False)

    # A crash after the record (never marked): pending, and the alias never moved.
    record_move(client, MODEL, "2", "1", "promoted", "crashed", "bob (test)")
    assert (history(client)[0]["status"], history(client)[0]["applied"]) == ("pending", False)

    # The gate again, now whole: its record is applied; the two before it stay not applied (it found v1 champion).
    tracking.promote(client, MODEL, tolerance=1.0)
    assert [(r["to"], r["status"], r["applied"]) for r in history(client)] == [
        ("2", "done", True),
        ("2", "pending", False),
        ("2", "failed", False),
        ("1", "done", True),
    ]
    table = eqsms("history", MODEL).stdout
    assert table.count("no: the alias never moved") == 2, table

    # A crash after the alias moved, before the mark: read as applied from the alias.
    monkeypatch.setattr(champion_history, "_mark", lambda client, run_id, status: None)
    one_line(eqsms("rollback", MODEL), 0, "from v2 to v1")
    newest = history(client)[0]
    assert (newest["to"], newest["status"], newest["applied"]) == ("1", "pending", True)


def test_the_service_lists_the_champion_history(http):
    """GET /v1/history: the champions' moves the gate recorded (the session's first models), newest first; an
    unknown model is a 400 naming it."""
    moves = http.get("/v1/history").json()["moves"]
    firsts = {m["model"] for m in moves if m["action"] == "first model" and m["applied"]}
    assert firsts == {"defect_risk", "delay", "churn"}
    assert [m["time"] for m in moves] == sorted((m["time"] for m in moves), reverse=True)
    one = http.get("/v1/history", params={"model": "churn"}).json()["moves"]
    assert one and {m["model"] for m in one} == {"churn"}
    refused = http.get("/v1/history", params={"model": "nonsense"})
    assert refused.status_code == 400 and refused.json()["field"] == "model"
