"""New data and new champions while serving (issue 12 §1): a real `eqsms serve` with two workers answers several
clients while the three champions are promoted to new versions and the data folder is swapped for a new export; a
reload asked of one worker reaches both. No request fails, none gets a 5xx, and no answer mixes the old set and the
new one (old models with new data, or one new model beside old ones). A reload that cannot load leaves the old set
answering and says why."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from serving.local import call
from tests.live import Clients, serve

pytestmark = pytest.mark.slow  # a real server with two workers

CLIENTS = 4


@pytest.fixture(scope="module")
def store(champions, tmp_path_factory) -> Path:
    """A copy of the champions' MLflow store: promotions here leave the session's store as it was."""
    copy = tmp_path_factory.mktemp("reload") / "store"
    shutil.copytree(champions.work_dir, copy, ignore=shutil.ignore_patterns("quarantine", "datasets"))
    return copy


@pytest.fixture(scope="module")
def server(champions, store, tmp_path_factory):
    exports = tmp_path_factory.mktemp("exports")
    shutil.copytree(champions.data_dir, exports / "data")
    env = champions.env(
        EQSMS_WORK_DIR=str(store),
        MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}",  # the copy, whatever the session set
        EQSMS_DATA_DIR=str(exports / "data"),
        EQSMS_SERVE_WORKERS="2",
        EQSMS_RELOAD_CHECK_SECONDS="0.5",
        EQSMS_RELOAD_POLL_SECONDS="0",  # only asked reloads: the test decides when
    )
    server = serve(env, exports / "serve.log")
    yield server.base, exports, server.log
    server.stop()


def promote_all(store: Path) -> dict[str, str]:
    """Each champion registered again as a new version and moved to @champion, as `eqsms train --promote` does."""
    from benchmarks.load import promote_all as promote

    return promote(store)


def swap_in(exports: Path, make) -> None:
    """A new export written beside the folder, then swapped in by two renames (never half a folder)."""
    new, old = exports / "incoming", exports / "previous"
    shutil.rmtree(new, ignore_errors=True)
    shutil.copytree(exports / "data", new)
    make(new)
    shutil.rmtree(old, ignore_errors=True)
    (exports / "data").rename(old)
    new.rename(exports / "data")


def drop_last_complaint(folder: Path) -> None:
    path = folder / "complaints.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


class Load(Clients):
    """Clients asking /v1/risk (today's, precomputed) and /v1/risk/batch until stopped; every answer kept."""

    def __init__(self, base: str, projects: list[str], day: str) -> None:
        self.base, self.projects, self.day = base, projects, day
        self.answers: list[tuple[float, int, dict | None]] = []
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(k,), daemon=True) for k in range(CLIENTS)]

    def client(self, k: int) -> None:
        i = k
        while not self.stopped.is_set():
            project = self.projects[i % len(self.projects)]
            if i % 5 == 0:
                status, body = call(
                    f"{self.base}/v1/risk/batch", {"project_ids": self.projects[:5], "top_k": 1, "as_of": self.day}
                )
            else:
                status, body = call(f"{self.base}/v1/risk", {"project_id": project, "as_of": self.day})
            self.answers.append((time.monotonic(), status, body))
            i += CLIENTS


def test_new_champions_and_new_data_under_load_fail_nothing_and_mix_nothing(server, store):
    base, exports, log = server
    status, portfolio = call(f"{base}/v1/portfolio")
    assert status == 200
    day, projects = portfolio["as_of"][:10], [p["project_id"] for p in portfolio["projects"][:40]]
    old_set = (json.dumps(portfolio["model_versions"], sort_keys=True), portfolio["data_snapshot"]["fingerprint"])

    with Load(base, projects, day) as load:
        time.sleep(3)
        versions = promote_all(store)
        swap_in(exports, drop_last_complaint)
        status, outcome = call(f"{base}/v1/admin/reload", {})
        asked = time.monotonic()
        time.sleep(4)
    assert status == 200 and outcome["ok"], outcome
    assert outcome["model_versions"] == versions and versions == {"defect_risk": "2", "delay": "2", "churn": "2"}
    new_set = (json.dumps(versions, sort_keys=True), outcome["data_snapshot"]["fingerprint"])
    assert new_set[1] != old_set[1]

    statuses = [status for _, status, _ in load.answers]
    assert len(statuses) > 100 and set(statuses) == {200}, {s for s in statuses if s != 200}
    seen = [
        (when, (json.dumps(body["model_versions"], sort_keys=True), body["data_snapshot"]["fingerprint"]))
        for when, _, body in load.answers
    ]
    mixed = [s for _, s in seen if s not in (old_set, new_set)]
    assert mixed == []
    assert any(s == old_set for _, s in seen) and any(s == new_set for _, s in seen)
    late = [s for when, s in seen if when > asked + 2]  # both workers have followed by then
    assert late and set(late) == {new_set}
    assert "EQSMS Risk reloaded" in log.read_text()
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'eqsms_reloads_total{outcome="ok"}' in metrics
    assert 'eqsms_model_version{model="defect_risk"} 2.0' in metrics
    assert "eqsms_data_snapshot_age_seconds" in metrics
    assert "bentoml_service_request_total" in metrics  # requests and errors by endpoint and status, BentoML's


def test_readme_reload_command_says_what_changed(server):
    """README's `eqsms reload` line, run against the server: nothing new since the last reload, said in one line."""
    from typer.testing import CliRunner

    from eqsms.cli import app
    from tests.test_readme import readme_commands

    (command,) = [c for c in readme_commands("eqsms") if c.startswith("eqsms reload")]
    base, _, _ = server
    result = CliRunner().invoke(app, [*command.split()[1:-1], base])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("reloaded in ") and "nothing changed" in result.output


def test_a_reload_that_cannot_load_leaves_the_old_set_answering(server):
    base, exports, _ = server
    before = call(f"{base}/v1/models")[1]
    swap_in(exports, lambda folder: (folder / "projects.csv").unlink())  # a required table missing
    status, outcome = call(f"{base}/v1/admin/reload", {})
    assert status == 200 and outcome["ok"] is False and "projects" in outcome["error"]
    status, models = call(f"{base}/v1/models")
    assert status == 200 and models["data_snapshot"] == before["data_snapshot"]
    assert [m["version"] for m in models["models"]] == [m["version"] for m in before["models"]]
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as ready:  # still ready
        assert ready.status == 200
    day = before["data_snapshot"]["latest_fact"][:10]
    project = call(f"{base}/v1/portfolio")[1]["projects"][0]["project_id"]
    status, answer = call(f"{base}/v1/risk", {"project_id": project, "as_of": day})
    assert status == 200 and answer["data_snapshot"] == before["data_snapshot"]
    # /v1/models says what went wrong, on the worker that tried (or the one that followed the marker)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        last = call(f"{base}/v1/models")[1]["last_reload"]
        if last.get("ok") is False:
            break
        time.sleep(0.2)
    assert last.get("ok") is False and "projects" in last["error"]
    (exports / "data").rename(exports / "broken")  # the good export back, for a worker that starts again
    (exports / "previous").rename(exports / "data")
