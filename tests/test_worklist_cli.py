"""`eqsms worklist`: a department's worklist on the terminal (a table, --json, --csv), in process from the champions
(the same items the service's GET /v1/worklist answers); a user's mistake is one line and exit status 2."""

from __future__ import annotations

import csv
import io
import json
import shlex

from typer.testing import CliRunner

from eqsms.cli import app
from serving.terminal import WORKLIST_FIELDS
from tests.test_readme import readme_commands
from tests.test_risk_cli import on_champions, one_line_mistake  # noqa: F401  (a fixture)


def run(*args: str):
    return CliRunner().invoke(app, ["worklist", *args])


def test_readme_command_prints_a_worklist(on_champions, served):  # noqa: F811
    """README's command (tests/test_readme.py leaves it here: it needs the champions) prints the items the service
    answers, in its order."""
    (command,) = [c for c in readme_commands("eqsms") if c.startswith("eqsms worklist ")]
    args = shlex.split(command)[1:]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    department = args[args.index("--department") + 1]
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else 20
    _, http = served
    items = http.get("/v1/worklist", params={"department": department, "limit": limit}).json()["items"]
    assert f"{department} worklist as of" in result.stdout
    positions = [result.stdout.index(item["drivers"][0]["text"]) for item in items[:3]]
    assert positions == sorted(positions)


def test_json_and_csv_are_the_services_items(on_champions, served):  # noqa: F811
    _, http = served
    expected = http.get("/v1/worklist", params={"department": "cost", "limit": 6, "sort": "whatif_gain"}).json()
    as_json = json.loads(run("--department", "cost", "--limit", "6", "--sort", "whatif_gain", "--json").stdout)
    assert as_json["items"] == expected["items"] and as_json["total"] == expected["total"]
    rows = list(
        csv.reader(io.StringIO(run("--department", "cost", "--limit", "6", "--sort", "whatif_gain", "--csv").stdout))
    )
    assert rows[0] == WORKLIST_FIELDS and len(rows) == 1 + len(expected["items"])
    assert [r[0] for r in rows[1:]] == [item["project_id"] for item in expected["items"]]


def test_chinese_drivers(on_champions):  # noqa: F811
    answer = json.loads(run("--department", "quality", "--limit", "3", "--lang", "zh", "--json").stdout)
    assert all("质量部" in d["text"] for item in answer["items"] for d in item["drivers"])


def test_mistakes_are_one_line(on_champions):  # noqa: F811
    one_line_mistake(run("--department", "qa"), "--department", "quality")
    one_line_mistake(run("--department", "quality", "--sort", "loud"), "--sort")
    one_line_mistake(run("--department", "quality", "--as-of", "yesterday"), "--as-of")
    one_line_mistake(run("--department", "quality", "--lang", "fr"), "--lang")
