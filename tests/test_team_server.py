"""A team's tracking server (issue 14, §3; docs/team-server.md): PostgreSQL as MLflow's backend store, an artifact
folder and `mlflow server` on loopback, with training, the gate, the champion history, serving and the prediction log
all pointed at it by ``MLFLOW_TRACKING_URI`` and ``EQSMS_PREDICTION_LOG_URL``.

PostgreSQL is Debian's (``tests/pg.py``: a throwaway cluster on a free loopback port); the tests are skipped, saying
why, where it is not installed (CI installs it). Training is light (100 trees, two backtest folds) on the sample
world; the module takes about two minutes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from eqsms import predlog
from eqsms.settings import get_settings
from features.targets import TARGETS
from serving.local import HOST, free_port, start, stop, wait_ready
from tests import pg
from tests.live import serve
from training.tracking import CHAMPION, GATE_LOCK, gate_lock

pytestmark = pytest.mark.slow

SAMPLE = get_settings().data_dir
EQSMS = Path(sys.executable).parent / "eqsms"
DRIVER = "postgresql+psycopg"  # psycopg 3: SQLAlchemy 2.1's driver for postgresql://, said in full
LIGHT = {"EQSMS_N_ESTIMATORS": "100", "EQSMS_BACKTEST_FOLDS": "2"}


@dataclass
class Team:
    tracking_uri: str  # http://127.0.0.1:PORT, the MLflow server
    store_url: str  # its backend store, a PostgreSQL database
    log_url: str  # the prediction log's PostgreSQL database
    artifacts: Path  # the server's artifact folder
    work: Path  # the commands' work folder (datasets; no store of its own)
    postgres: pg.Postgres

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a command pointed at the team's server and prediction log."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "EQSMS_"))}
        return environ | {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "EQSMS_PREDICTION_LOG_URL": self.log_url,
            "EQSMS_WORK_DIR": str(self.work),
            "EQSMS_DATA_DIR": str(SAMPLE),
            "PYTHONUNBUFFERED": "1",
            **LIGHT,
            **extra,
        }

    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)


@pytest.fixture(scope="module")
def postgres():
    if reason := pg.missing():
        pytest.skip(reason)
    server = pg.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def team(postgres, tmp_path_factory):
    """`mlflow server` on a free loopback port, its store a PostgreSQL database, its artifacts a folder. One worker
    (its requests in threads): a second one doubles the start-up (40 s on a busy 2-core host) and adds nothing the
    gate relies on, which PostgreSQL decides (a registered model's unique name, a version's unique number)."""
    folder = tmp_path_factory.mktemp("team")
    store = postgres.create_database("mlflow").replace("postgresql://", f"{DRIVER}://")
    log = postgres.create_database("predictions").replace("postgresql://", f"{DRIVER}://")
    port = free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store),
        *("--artifacts-destination", str(folder / "artifacts"), "--host", HOST, "--port", str(port), "--workers", "1"),
    ]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    process = start(port, environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}, folder / "mlflow.log", command, cwd=folder)
    try:
        wait_ready(f"http://{HOST}:{port}", process, timeout=120, path="/health")
    except (RuntimeError, TimeoutError) as err:
        stop(process)
        pytest.fail(f"{err}\n{(folder / 'mlflow.log').read_text()[-4000:]}")
    warm_up(f"http://{HOST}:{port}")
    yield Team(f"http://{HOST}:{port}", store, log, folder / "artifacts", folder / "work", postgres)
    stop(process)


def warm_up(uri: str, seconds: float = 120) -> None:
    """Until the store answers at once: /health answers before a worker has opened its store, and a worker's first
    request (connecting, checking the schema) can outlast the 5 s that `eqsms train` gives a store to answer."""
    import urllib.request

    deadline, quick = time.monotonic() + seconds, 0
    while quick < 4:  # a few in a row, so that each worker has answered once
        assert time.monotonic() < deadline, f"the MLflow server at {uri} did not answer quickly in {seconds} s"
        started = time.monotonic()
        request = urllib.request.Request(
            f"{uri}/api/2.0/mlflow/experiments/search",
            data=b'{"max_results": 1}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=seconds) as response:
            assert response.status == 200
        quick = quick + 1 if time.monotonic() - started < 1 else 0


def eqsms(team: Team, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(EQSMS), *args], capture_output=True, text=True, timeout=300, env=team.env(), check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def champions(client: MlflowClient) -> dict[str, str]:
    return {name: str(client.get_model_version_by_alias(name, CHAMPION).version) for name in TARGETS}


@pytest.fixture(scope="module")
def trained(team) -> dict[str, str]:
    """Every model trained on the sample world and gated, against the team's server: the champions' versions."""
    eqsms(team, "train", str(SAMPLE), "--promote")
    return champions(team.client())


def test_training_and_the_gate_write_to_the_server(team, trained):
    """The runs, versions and aliases are in PostgreSQL (read there directly), the artifacts in the server's folder,
    and nothing in the work folder but datasets: no sqlite store, no artifacts of its own."""
    assert set(trained) == set(TARGETS)
    engine = sa.create_engine(team.store_url)
    try:
        with engine.connect() as conn:
            names = set(conn.scalars(sa.text("SELECT name FROM registered_models")))
            aliases = dict(
                conn.execute(
                    sa.text("SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'")
                ).all()
            )
    finally:
        engine.dispose()
    assert names == set(TARGETS)  # no gate lock left behind
    assert {name: str(version) for name, version in aliases.items()} == trained
    assert any(path.name == "MLmodel" for path in team.artifacts.rglob("MLmodel"))
    assert not list(team.work.rglob("*.db")) and not (team.work / "mlartifacts").exists()
    history = eqsms(team, "history", "--json").stdout
    assert all(f'"model": "{name}"' in history for name in TARGETS)


def test_two_trainings_at_once_keep_the_registry_consistent(team, trained):
    """Two `eqsms train --promote` of one model on one dataset at once: each registers a version of its own (numbered
    on from the last, no gap, no duplicate), each gate judges the version its training registered, one after the
    other (the gate lock), and the champion history is one chain: each move once, from the champion the one before
    it left. Without the lock both gates judged against the same champion and both moved it: two records from v1."""
    client = team.client()
    before = sorted(int(v.version) for v in client.search_model_versions("name='churn'"))
    command = [str(EQSMS), "train", str(SAMPLE), "--model", "churn", "--promote", "--force"]
    both = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=team.env())
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], "\n".join(out[-3000:] for out in outputs)

    versions = {str(v.version): v for v in client.search_model_versions("name='churn'")}
    assert sorted(int(v) for v in versions) == [*before, before[-1] + 1, before[-1] + 2]
    new = [str(before[-1] + 1), str(before[-1] + 2)]
    assert all(versions[v].tags.get("gate.decision") in ("promoted", "rejected") for v in new)  # each judged once
    model = client.get_registered_model("churn")
    champion = model.aliases[CHAMPION]
    promoted = [v for v in new if versions[v].tags["gate.decision"] == "promoted"]
    assert champion in promoted if promoted else champion == trained["churn"]

    records = [r for r in team_history(team) if r["model"] == "churn"][::-1]  # oldest first
    assert all(r["status"] == "done" and r["applied"] for r in records)
    moves = records[-len(promoted) :] if promoted else []
    assert sorted(r["to"] for r in moves) == sorted(promoted)  # each promotion recorded once
    chain = [r["to"] for r in records]
    assert all(r["from"] == prev for r, prev in zip(records[1:], chain, strict=False))  # one chain, no fork
    assert chain[-1] == champion
    assert GATE_LOCK.format(name="churn") not in {m.name for m in client.search_registered_models()}


def team_history(team: Team) -> list[dict]:
    return json.loads(eqsms(team, "history", "--json").stdout)


def test_the_gate_lock_lets_one_holder_in_and_takes_over_a_dead_ones(team):
    """Against the server: a second holder waits for the first to give the lock back; a lock left by a process of
    this host that is gone is taken over at once."""
    client, spans = team.client(), []

    def hold(seconds: float) -> None:
        with gate_lock(client, "lock-check"):
            entered = time.monotonic()
            time.sleep(seconds)
            spans.append((entered, time.monotonic()))

    threads = [threading.Thread(target=hold, args=(1.0,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    (a_in, a_out), (b_in, b_out) = sorted(spans)
    assert b_in >= a_out  # never both inside

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    client.create_registered_model(
        GATE_LOCK.format(name="lock-check"), tags={"host": socket.gethostname(), "pid": str(gone.pid)}
    )
    started = time.monotonic()
    with gate_lock(client, "lock-check"):
        assert time.monotonic() - started < 5
    assert GATE_LOCK.format(name="lock-check") not in {m.name for m in client.search_registered_models()}


def test_serving_answers_from_the_servers_champions_and_logs_to_postgresql(team, trained, tmp_path):
    """`eqsms serve` loads ``models:/NAME@champion`` from the server, names those versions in its answer, and its
    prediction log's rows land in PostgreSQL."""
    champions_now = champions(team.client())
    server = serve(team.env(EQSMS_PREDICTION_LOG_FLUSH_SECONDS="0.2"), tmp_path / "serve.log", timeout=180)
    try:
        answer = server.post("/v1/risk", {"project_id": "P00142", "as_of": "2023-06-01", "top_k": 3})
    finally:
        assert server.stop() is not None  # the log is flushed as the service stops
    assert answer["model_versions"] == champions_now
    engine = sa.create_engine(team.log_url)
    try:
        with engine.connect() as conn:
            logged = conn.execute(sa.text("SELECT model, model_version FROM predictions")).all()
            served = conn.scalar(sa.text("SELECT count(*) FROM served"))
    finally:
        engine.dispose()
    assert logged and served >= 1
    assert {(model, version) for model, version in logged} <= set(champions_now.items())


def test_the_prediction_logs_migrations_run_on_postgresql(team):
    """Created at the current version by two processes opening it at once (each step applied once, under the
    advisory lock), and opened again: nothing changes."""
    url = team.postgres.create_database("log_migrations").replace("postgresql://", f"{DRIVER}://")
    engines = [predlog.make_engine(url) for _ in range(2)]
    found: list[int] = []
    try:
        threads = [threading.Thread(target=lambda e=e: found.append(predlog.migrate(e))) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(found) == [0, predlog.SCHEMA_VERSION]
        with engines[0].connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            applied = conn.scalar(sa.text("SELECT count(*) FROM schema_version"))
        assert {"predictions", "served", "answer_predictions", "feedback", "schema_version"} <= tables
        assert applied == predlog.SCHEMA_VERSION
        assert predlog.migrate(engines[0]) == predlog.SCHEMA_VERSION
        with engines[0].connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) == tables
            assert conn.scalar(sa.text("SELECT count(*) FROM schema_version")) == applied
    finally:
        for engine in engines:
            engine.dispose()
