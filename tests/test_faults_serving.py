"""Serving faults (issue 12 §4), each a test named after the fault, on a real `eqsms serve` with two workers.

- The data folder missing, a required table unreadable, or a table half-written when a reload is asked: the reload
  answers ``ok: false`` saying why, both workers keep the set they had (every answer names its data snapshot),
  ``GET /v1/models`` says why and ``/readyz`` stays ready. One server for these, each fault put right after its test.
- A worker killed (SIGKILL) under keep-alive load: BentoML's arbiter (circus, which looks at its processes every
  10 s) starts another; the only requests that fail are those on the killed worker's connections, at most one a
  client, which then connects again and goes on; no 5xx; the server itself stays up and has two workers again, the
  new one answering.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from serving.local import call
from tests.live import Clients, Server, serve

pytestmark = pytest.mark.slow  # real servers with two workers

CLIENTS = 4
FAILED_RELOAD = re.compile(r"EQSMS Risk reload \(.*\) failed")


def start(champions, root: Path) -> Server:
    """`eqsms serve` on a copy of the champions' store (a reload writes its marker there) and of their data."""
    store, data = root / "store", root / "data"
    shutil.copytree(champions.work_dir, store, ignore=shutil.ignore_patterns("quarantine", "datasets"))
    shutil.copytree(champions.data_dir, data)
    env = champions.env(
        EQSMS_WORK_DIR=str(store),
        MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}",
        EQSMS_DATA_DIR=str(data),
        EQSMS_SERVE_WORKERS="2",
        EQSMS_RELOAD_CHECK_SECONDS="0.5",
        EQSMS_RELOAD_POLL_SECONDS="0",  # only asked reloads: the test decides when
    )
    server = serve(env, root / "serve.log")
    # /readyz answers once one worker is up: wait for both, so that each fault meets two workers with the same set.
    deadline = time.monotonic() + 60
    while server.log.read_text().count("EQSMS Risk ready:") < 2:
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the second worker did not start:\n{server.log.read_text()[-3000:]}")
        time.sleep(0.2)
    return server


@dataclass
class OldSet:
    """What the server answers from before a fault: its data snapshot, model versions, a day and projects."""

    snapshot: dict
    versions: list[str]
    day: str
    projects: list[str]

    @classmethod
    def of(cls, server: Server) -> OldSet:
        models, portfolio = server.get("/v1/models"), server.get("/v1/portfolio")
        return cls(
            models["data_snapshot"],
            [m["version"] for m in models["models"]],
            portfolio["as_of"][:10],
            [p["project_id"] for p in portfolio["projects"][:40]],
        )

    def request(self, i: int) -> dict:
        return {"project_id": self.projects[i % len(self.projects)], "as_of": self.day}


@pytest.fixture(scope="module")
def server(champions, tmp_path_factory):
    server = start(champions, tmp_path_factory.mktemp("faults"))
    yield server
    server.stop()


def data_dir(server: Server) -> Path:
    return server.log.parent / "data"


def reload_fails(server: Server) -> dict:
    """Ask for a reload that cannot load; wait until both workers have tried (the log has two more failures:
    the asked worker's and the one that follows the marker). The asked worker's outcome."""
    failed = len(FAILED_RELOAD.findall(server.log.read_text()))
    status, outcome = call(f"{server.base}/v1/admin/reload", {})
    assert status == 200 and outcome["ok"] is False, outcome
    deadline = time.monotonic() + 15
    while len(FAILED_RELOAD.findall(server.log.read_text())) < failed + 2:
        assert time.monotonic() < deadline, server.log.read_text()[-3000:]
        time.sleep(0.2)
    return outcome


def assert_old_set_answers(server: Server, before: OldSet, why: str) -> None:
    """Every answer (fresh connections, so both workers) is 200 from the data and models of ``before``, both say
    why the reload failed, and the server is ready."""
    for i in range(16):
        status, answer = call(f"{server.base}/v1/risk", before.request(i))
        assert status == 200, answer
        assert answer["data_snapshot"] == before.snapshot
    for _ in range(6):
        models = server.get("/v1/models")
        assert models["data_snapshot"] == before.snapshot
        assert [m["version"] for m in models["models"]] == before.versions
        assert models["last_reload"]["ok"] is False and why in models["last_reload"]["error"], models["last_reload"]
    with urllib.request.urlopen(f"{server.base}/readyz", timeout=5) as ready:
        assert ready.status == 200


# ------------------------------------------------------------------------------------------------- data faults


def test_data_folder_missing_at_reload(server):
    before = OldSet.of(server)
    data, away = data_dir(server), server.log.parent / "away"
    data.rename(away)
    try:
        outcome = reload_fails(server)
        assert f"the data folder {data} cannot be read: No such file or directory" in outcome["error"], outcome
        assert_old_set_answers(server, before, "cannot be read")
    finally:
        away.rename(data)


def utf16(path: Path) -> None:
    """The table saved again as UTF-16 ("Unicode text", as a spreadsheet offers it): not readable as UTF-8."""
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))


def not_parquet(path: Path) -> None:
    """The table replaced by a .parquet file that is not Parquet (an error page saved under the export's name)."""
    path.unlink()
    path.with_suffix(".parquet").write_bytes(b"<html><body>502 Bad Gateway</body></html>\n")


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (utf16, "milestones.csv: cannot read the CSV header"),
        (not_parquet, "milestones.parquet: cannot read as Parquet"),
    ],
    ids=["utf16", "not-parquet"],
)
def test_table_unreadable_at_reload(server, spoil, why):
    before = OldSet.of(server)
    table = data_dir(server) / "milestones.csv"
    original = table.read_bytes()
    spoil(table)
    try:
        outcome = reload_fails(server)
        assert why in outcome["error"], outcome
        assert_old_set_answers(server, before, why)
    finally:
        table.with_suffix(".parquet").unlink(missing_ok=True)
        table.write_bytes(original)


def test_table_half_written_at_reload(server):
    """milestones.csv cut in the middle of a row, as a copy interrupted part-way leaves it: refused as half-written
    (not read short, its last row quarantined), and the old set keeps answering."""
    before = OldSet.of(server)
    table = data_dir(server) / "milestones.csv"
    original = table.read_bytes()
    row = original.index(b"\n", len(original) // 2) + 1  # a row half-way down the file
    cut = original.index(b",", original.index(b",", row) + 1) + 4  # its third field, 3 characters in
    table.write_bytes(original[:cut])
    line = original[:cut].count(b"\n") + 1
    why = f"milestones.csv: ends mid-row (line {line} has 3 of 7 fields): a half-written export? Export it again"
    try:
        outcome = reload_fails(server)
        assert why in outcome["error"], outcome
        assert_old_set_answers(server, before, why)
    finally:
        table.write_bytes(original)


# ------------------------------------------------------------------------------------------------- a worker killed


def workers(server: Server) -> list[int]:
    """The server's API worker processes (children of BentoML's arbiter running the worker module), not the dead."""
    found = []
    for child in psutil.Process(server.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker.service" in child.cmdline():
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return sorted(found)


def peers(pid: int, port: int) -> set[int]:
    """The client ports of the connections worker ``pid`` holds on the server's ``port``."""
    return {
        c.raddr.port
        for c in psutil.Process(pid).net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port and c.raddr
    }


class KeepAliveLoad(Clients):
    """Clients each on one keep-alive connection asking /v1/risk (today's, precomputed) until stopped; a client
    whose connection fails counts the failure, connects again and goes on."""

    join_seconds = 90.0

    def __init__(self, host: str, port: int, served: OldSet) -> None:
        self.host, self.port, self.served = host, port, served
        self.results: list[tuple[float, int, int | None, str | None]] = []  # (when, client, status, error)
        self.connections: dict[int, http.client.HTTPConnection] = {}
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(k,), daemon=True) for k in range(CLIENTS)]

    def client(self, k: int) -> None:
        i, connection = k, None
        while not self.stopped.is_set():
            if connection is None:
                connection = self.connections[k] = http.client.HTTPConnection(self.host, self.port, timeout=60)
            body = json.dumps(self.served.request(i))
            started = time.monotonic()
            try:
                connection.request("POST", "/v1/risk", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = json.loads(response.read() or b"null")
                ok = response.status != 200 or answer["data_snapshot"] == self.served.snapshot
                self.results.append((started, k, response.status if ok else -1, None))
            except (OSError, http.client.HTTPException) as err:
                self.results.append((started, k, None, f"{type(err).__name__}: {err}"))
                connection.close()
                connection = None
            i += CLIENTS

    def ports(self) -> dict[int, int]:
        """Each client's local port (its connection's end)."""
        return {k: c.sock.getsockname()[1] for k, c in self.connections.items() if c.sock is not None}


def answered_by(pid: int, host: str, port: int, body: dict) -> tuple[int, bool]:
    """A request on a new connection: its status, and whether worker ``pid`` holds the connection (answered it)."""
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("POST", "/v1/risk", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status, connection.sock.getsockname()[1] in peers(pid, port)
    finally:
        connection.close()


def test_worker_killed_under_load(champions, tmp_path):
    server = start(champions, tmp_path)
    try:
        host, port = urlsplit(server.base).hostname, urlsplit(server.base).port
        served = OldSet.of(server)
        before = workers(server)
        assert len(before) == 2, before
        with KeepAliveLoad(host, port, served) as load:
            time.sleep(3)
            clients = load.ports()
            assert len(clients) == CLIENTS
            held = {pid: {k for k, p in clients.items() if p in peers(pid, port)} for pid in before}
            victim = max(before, key=lambda pid: len(held[pid]))  # the worker with the most of our clients
            on_victim = held[victim]
            assert on_victim and set().union(*held.values()) == set(clients), held
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            spawned = ready = None
            probes = []
            while ready is None:
                assert time.monotonic() - killed < 90, f"no new worker answering 90 s after the kill: {workers(server)}"
                now = workers(server)
                new = [pid for pid in now if pid not in before]
                if spawned is None and new:
                    spawned = time.monotonic()
                if new:
                    status, by_new = answered_by(new[0], host, port, served.request(len(probes)))
                    probes.append(status)
                    if by_new and status == 200:
                        ready = time.monotonic()
                        continue
                time.sleep(0.2)
            time.sleep(3)  # and a while more
        print(
            f"\nworker {victim} killed holding clients {sorted(on_victim)}: a new worker after "
            f"{spawned - killed:.1f} s, answering after {ready - killed:.1f} s; {len(load.results)} requests, "
            f"failed: {[(k, e) for _, k, s, e in load.results if s is None]}"
        )
        assert server.process.poll() is None, "the server's main process died"
        after = workers(server)
        assert len(after) == 2 and victim not in after, after
        assert set(probes) == {200}, probes
        statuses = [s for _, _, s, _ in load.results if s is not None]
        assert len(statuses) > 100 and set(statuses) == {200}, {s for s in statuses if s != 200}  # no 5xx
        failed = [(when, k) for when, k, s, _ in load.results if s is None]
        assert len(failed) <= len(on_victim) <= CLIENTS, failed
        assert {k for _, k in failed} <= on_victim  # only the killed worker's connections, once each
        for when, k in failed:  # the client connected again and went on
            assert any(s == 200 for t, c, s, _ in load.results if c == k and t > when), k
    finally:
        server.stop()
