"""The real server: `eqsms serve` (which becomes `bentoml serve`) started on a free loopback port, called over HTTP,
stopped by its pid; README's curl and Python client examples run against it; the bento built and served without
the MLflow store; start-up refused without champions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from serving.local import HOST, call, free_port, start, stop, wait_ready
from tests.live import serve

pytestmark = pytest.mark.slow  # real server processes and a bento build: `make test-fast` skips them

ROOT = Path(__file__).resolve().parent.parent
README_URL = "http://127.0.0.1:3000"


def serving_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Serving\n", 1)[1].split("\n## ", 1)[0]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", serving_section(), flags=re.S)


def readme_curls() -> list[str]:
    """Each curl command of the Serving section's bash blocks, continuation lines joined."""
    commands = []
    for block in readme_blocks("bash"):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith("curl "):
                commands.append(command)
    return commands


@pytest.fixture(scope="module")
def server(champions, tmp_path_factory):
    server = serve(champions.env(EQSMS_MAX_BATCH_PROJECTS="50"), tmp_path_factory.mktemp("serve") / "serve.log", 90)
    yield server
    assert server.stop() is not None


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=30)


def test_readme_curl_examples(server):
    commands = readme_curls()
    assert len(commands) == 14  # one an endpoint, the CSV answers, the reload and a feedback
    for command in commands:
        done = run(["bash", "-c", command.replace(README_URL, server.base)])
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        if "text/csv" in command:
            header, *rows = done.stdout.splitlines()
            assert header.startswith("project_id,client_id,") and rows, f"{command}\n{done.stdout[:500]}"
            continue
        answer = json.loads(done.stdout)
        assert "error" not in answer, f"{command}\n{answer}"


def test_readme_python_client_examples(server, capsys):
    blocks = readme_blocks("python")
    assert len(blocks) == 5 and all("bentoml.SyncHTTPClient" in block for block in blocks)
    for block in blocks:
        exec(compile(block.replace(README_URL, server.base), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "M000778" in printed and "open projects" in printed and "defect_risk" in printed


def test_bad_requests_get_4xx_and_the_server_goes_on(server):
    risk = f"{server.base}/v1/risk"
    assert call(risk, {"project_id": "P99999"}) == (
        404,
        {"error": "project_id: unknown project id(s): P99999", "field": "project_id"},
    )
    status, answer = call(risk, {"project_id": "P00142", "as_of": "not a date"})
    assert status == 400 and answer["field"] == "as_of"
    status, answer = call(f"{server.base}/v1/risk/batch", {"project_ids": [f"P{i:05d}" for i in range(1, 52)]})
    assert status == 413 and answer["field"] == "project_ids"
    status, answer = call(risk, {"project_id": "P00142", "as_of": "2023-06-01", "top_k": 1})
    assert status == 200 and answer["milestones"]
    assert server.process.poll() is None


def test_eqsms_risk_asks_the_server(server):
    """`eqsms risk --url`: the service's answer, as the API gives it; its 404 is one line and exit status 2."""
    from typer.testing import CliRunner

    from eqsms.cli import app

    runner = CliRunner()
    asked = runner.invoke(
        app, ["risk", "P00142", "--as-of", "2023-06-01", "--top-k", "1", "--url", server.base, "--json"]
    )
    assert asked.exit_code == 0, asked.output
    body = {"project_id": "P00142", "as_of": "2023-06-01", "top_k": 1}
    assert json.loads(asked.stdout) == call(f"{server.base}/v1/risk", body)[1]
    unknown = runner.invoke(app, ["risk", "P99999", "--url", server.base])
    assert unknown.exit_code == 2 and unknown.stdout.count("\n") == 1 and "(404)" in unknown.stdout


def test_health_metrics_and_openapi(server):
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        done = run(["curl", "-sf", f"{server.base}{path}"])
        assert done.returncode == 0, path
    metrics = run(["curl", "-s", f"{server.base}/metrics"])
    assert 'endpoint="/v1/risk"' in metrics.stdout
    counted = [line for line in metrics.stdout.splitlines() if line.startswith("bentoml_service_request_total{")]
    statuses = {
        (line.split('endpoint="')[1].split('"')[0], line.split('http_response_code="')[1][:3]) for line in counted
    }
    assert {("/v1/risk", "200"), ("/v1/risk", "404")} <= statuses  # requests and errors by endpoint and status
    log = server.log.read_text()
    assert "EQSMS Risk ready" in log and "Traceback" not in log  # bad requests leave one line each, no traceback


def test_start_up_is_refused_without_champions(champions, tmp_path):
    """`eqsms serve` on an empty MLflow store: exit status 2, naming what is missing and the command to run."""
    log = tmp_path / "refused.log"
    process = start(free_port(), champions.env(EQSMS_WORK_DIR=str(tmp_path / "empty")), log)
    try:
        assert process.wait(timeout=60) == 2
    finally:
        stop(process)
    text = log.read_text()
    assert "no @champion model for defect_risk, delay, churn" in text and "eqsms train --promote" in text


def test_bento_builds_and_serves_without_the_mlflow_store(champions, server, tmp_path):
    package = subprocess.run(
        [sys.executable, "-m", "eqsms.cli", "package"],
        check=False,
        cwd=ROOT,
        env=champions.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert package.returncode == 0, package.stdout + package.stderr
    tag = re.search(r"bento (eqsms_risk:\w+)", package.stdout).group(1)
    port, log, empty = free_port(), tmp_path / "bento.log", tmp_path / "no_store"
    command = [sys.executable, "-m", "bentoml", "serve", tag, "--host", HOST, "--port", str(port)]
    process = start(port, champions.env(EQSMS_WORK_DIR=str(empty)), log, command, cwd=tmp_path)
    base = f"http://{HOST}:{port}"
    try:
        wait_ready(base, process, timeout=90)
        status, models = call(f"{base}/v1/models")
        assert status == 200 and {m["name"]: m["version"] for m in models["models"]} == {
            "defect_risk": "1",
            "delay": "1",
            "churn": "1",
        }
        request = {"project_id": "P00142", "as_of": "2023-06-01", "top_k": 2}
        assert call(f"{base}/v1/risk", request) == call(f"{server.base}/v1/risk", request)
    except (RuntimeError, TimeoutError) as err:
        pytest.fail(f"{err}\n{log.read_text()[-4000:]}")
    finally:
        stop(process)
    assert not (empty / "mlflow.db").exists() and not (empty / "mlartifacts").exists()  # no MLflow store opened
    assert (empty / "predictions.db").is_file()  # the prediction log is the service's own, in its work folder


def test_bentofile_pins_the_project_dependencies():
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert bentofile["python"]["packages"] == pyproject["project"]["dependencies"]
    assert bentofile["service"] == "serving.service:RiskService"
