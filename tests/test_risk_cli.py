"""`eqsms risk`: one project's answer on the terminal (a table, --json, --csv), in process from the champions or
from a service with --url; a user's mistake is one line and exit status 2."""

from __future__ import annotations

import csv
import io
import json
import shlex

import pytest
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings
from serving.local import free_port
from serving.runtime import Engine
from serving.terminal import csv_header
from tests.test_readme import readme_commands

PROJECT, AS_OF = "P00142", "2023-06-01"  # README's example


@pytest.fixture(scope="module")
def engine(champions) -> Engine:
    return Engine.from_settings(Settings(work_dir=champions.work_dir, data_dir=champions.data_dir))


@pytest.fixture
def on_champions(champions, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(champions.work_dir))
    monkeypatch.setenv("EQSMS_DATA_DIR", str(champions.data_dir))


@pytest.fixture(scope="module")
def expected(engine) -> dict:
    """The engine's answer as the API gives it (``POST /v1/risk``)."""
    from serving.state import data_snapshot, folder_fingerprint

    project = engine.risk([PROJECT], AS_OF, top_k=3)[0]
    freshness = engine.freshness(project.as_of).model_dump(mode="json")
    snapshot = data_snapshot(engine, folder_fingerprint(engine.settings.data_dir))
    return {
        **project.model_dump(mode="json"),
        "model_versions": engine.versions(),
        "data_snapshot": snapshot,
        "data_freshness": freshness,
    }


def run(*args: str):
    return CliRunner().invoke(app, ["risk", *args])


def one_line_mistake(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stdout.strip().splitlines()  # stderr may hold MLflow's own log lines
    assert len(lines) == 1, result.output
    for word in words:
        assert word in lines[0], lines[0]


def test_readme_command_prints_the_open_milestones_table(on_champions, expected):
    """The command line README shows, exactly (tests/test_readme.py leaves it to this test: it needs champions)."""
    (command,) = [c for c in readme_commands("eqsms") if c.startswith("eqsms risk ")]
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert expected["milestones"], "README's example has open milestones"
    for m in expected["milestones"]:
        row = next(line for line in out.splitlines() if m["milestone_id"] in line)
        assert m["kind"] in row and m["planned_date"] in row
        assert f"{m['defect_risk']['probability']:.0%} ({m['defect_risk']['level']})" in row
        assert f"late {m['delay']['late_probability']:.0%}" in row
        assert m["defect_risk"]["drivers"][0]["text"] in out
    assert f"churn {expected['churn']['probability']:.0%}" in out
    assert "data: newest fact" in out
    assert max(len(line) for line in out.splitlines()) > 80, "a pipe is not wrapped at 80 columns"


def test_json_is_the_engines_answer(on_champions, expected):
    result = run(PROJECT, "--as-of", AS_OF, "--top-k", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected


def test_csv_has_a_row_per_milestone(on_champions, expected):
    result = run(PROJECT, "--as-of", AS_OF, "--top-k", "3", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == csv_header()
    body = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["milestone_id"] for r in body] == [m["milestone_id"] for m in expected["milestones"]]
    first, m = body[0], expected["milestones"][0]
    assert float(first["defect_risk_probability"]) == m["defect_risk"]["probability"]
    assert float(first["delay_range_high_days"]) == m["delay"]["range_days"][1]
    assert first["delay_drivers"].startswith(m["delay"]["drivers"][0]["text"])
    assert float(first["churn_probability"]) == expected["churn"]["probability"]


def test_url_formats_the_services_answer_the_same(on_champions, expected, monkeypatch):
    """With --url the service's JSON is validated into the same object: the same table as in process."""
    asked = {}

    def service(url, body, key=None):
        asked.update(url=url, body=body)
        assert key is None  # no EQSMS_API_KEY in this environment: none sent
        return 200, expected

    monkeypatch.setattr("serving.local.call", service)
    remote = run(PROJECT, "--as-of", AS_OF, "--top-k", "3", "--url", "http://127.0.0.1:3000/")
    assert remote.exit_code == 0, remote.output
    assert asked == {
        "url": "http://127.0.0.1:3000/v1/risk",
        "body": {"project_id": PROJECT, "as_of": AS_OF, "top_k": 3},
    }
    assert remote.stdout == run(PROJECT, "--as-of", AS_OF, "--top-k", "3").stdout


def test_mistakes_are_one_line(on_champions, tmp_path, monkeypatch):
    one_line_mistake(run("P99999", "--as-of", AS_OF), "unknown project id(s): P99999", "PROJECT_ID")
    one_line_mistake(run(PROJECT, "--as-of", "2023-13-01"), "--as-of", "YYYY-MM-DD")
    one_line_mistake(run(PROJECT, "--as-of", "2031-01-01"), "max_days_after_data", "--as-of")
    one_line_mistake(run(PROJECT, "--as-of", AS_OF, "--json", "--csv"), "--json or --csv")
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path))  # an MLflow store without champions
    one_line_mistake(run(PROJECT, "--as-of", AS_OF), "no @champion model", "eqsms train --promote")


def test_url_mistakes_are_one_line(monkeypatch):
    nobody = f"http://127.0.0.1:{free_port()}"
    one_line_mistake(run(PROJECT, "--url", nobody), f"cannot reach the service at {nobody}", "eqsms serve")
    refusal = {"error": "project_id: unknown project id(s): P99999", "field": "project_id"}
    monkeypatch.setattr("serving.local.call", lambda url, body, key=None: (404, refusal))
    one_line_mistake(run("P99999", "--url", nobody), "(404)", "unknown project id(s): P99999", "PROJECT_ID")
