"""The board's API in process: the precomputed portfolio and answers, the worklists, a project's trend and facts, the
languages, the CSV answers and the API's own pages, through ``TestClient(RiskService.to_asgi())`` on the champions
trained once per session (conftest.py)."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from features.registry import DEPARTMENTS
from serving.runtime import Champion, Engine
from tests.test_leakage import rewrite

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def portfolio(http) -> dict:
    response = http.get("/v1/portfolio")
    assert response.status_code == 200
    return response.json()


# ------------------------------------------------------------------------------------------------------ portfolio
def test_portfolio_lists_every_project_open_at_its_day(service, portfolio):
    day = pd.Timestamp(portfolio["as_of"])
    newest = service.engine.latest_fact
    assert day == newest.ceil("D")  # the sample world ends long before today: the day after its newest fact
    assert [p["project_id"] for p in portfolio["projects"]] == service.engine.open_projects(day)
    assert portfolio["snapshot"]["projects"] == len(portfolio["projects"]) > 50
    assert portfolio["model_versions"] == service.engine.versions()


def test_portfolio_lines_say_what_the_computed_answers_say(service, portfolio):
    """Each line's next milestone and churn risk equal an answer computed afresh (not from the snapshot)."""
    day = pd.Timestamp(portfolio["as_of"])
    lines = portfolio["projects"][:25]
    fresh = {p.project_id: p for p in service.engine.risk([line["project_id"] for line in lines], day)}
    for line in lines:
        project = fresh[line["project_id"]]
        assert line["churn"]["probability"] == round(project.churn.probability, 4)
        assert line["open_milestones"] == len(project.milestones)
        if project.milestones:
            first = min(project.milestones, key=lambda m: m.planned_date)
            assert line["next"]["milestone_id"] == first.milestone_id
            assert line["next"]["defect_risk"]["probability"] == round(first.defect_risk.probability, 4)
            assert line["next"]["delay"]["range_days"] == [round(d, 1) for d in first.delay.range_days]
        ranks = {"low": 0, "medium": 1, "high": 2}
        shown = [line["churn"]["level"]] + ([line["next"]["defect_risk"]["level"]] if line["next"] else [])
        assert ranks[line["level"]] >= max(ranks[level] for level in shown)


def test_todays_answer_comes_precomputed_and_equals_the_computed_one(service, http, portfolio):
    day = portfolio["as_of"][:10]
    project = next(p["project_id"] for p in portfolio["projects"] if p["open_milestones"] > 1)
    fast = http.post("/v1/risk", json={"project_id": project, "as_of": day})
    assert fast.status_code == 200
    precomputed = service._precomputed(
        service.holder.current, project, pd.Timestamp(day), service.settings.default_top_k, "en"
    )
    assert precomputed is not None and json.loads(precomputed.body) == fast.json()
    computed = http.post("/v1/risk", json={"project_id": project, "as_of": day, "top_k": 4}).json()
    fast = fast.json()
    assert fast["model_versions"] == computed["model_versions"]
    for a, b in zip(fast["milestones"], computed["milestones"], strict=True):
        assert a["defect_risk"]["probability"] == b["defect_risk"]["probability"]
        assert a["delay"]["expected_slip_days"] == b["delay"]["expected_slip_days"]
        assert [d["text"] for d in a["defect_risk"]["drivers"][:4]] == [d["text"] for d in b["defect_risk"]["drivers"]]


def test_chinese_answers_tell_the_drivers_in_chinese(http, portfolio):
    day = portfolio["as_of"][:10]
    project = next(p["project_id"] for p in portfolio["projects"] if p["open_milestones"])
    zh = http.post("/v1/risk", json={"project_id": project, "as_of": day, "lang": "zh"}).json()
    en = http.post("/v1/risk", json={"project_id": project, "as_of": day}).json()
    drivers = zh["milestones"][0]["defect_risk"]["drivers"]
    assert drivers and all(CJK.search(d["text"]) for d in drivers)
    assert [d["feature"] for d in drivers] == [d["feature"] for d in en["milestones"][0]["defect_risk"]["drivers"]]
    by_header = http.post(
        "/v1/risk", json={"project_id": project, "as_of": day}, headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    ).json()
    assert by_header["milestones"][0]["defect_risk"]["drivers"] == drivers
    lines = http.get("/v1/portfolio?lang=zh").json()["projects"]
    assert all(CJK.search(line["top_driver"]["text"]) for line in lines if line["top_driver"])
    words = http.get("/v1/ui/strings?lang=zh").json()
    assert words.keys() == http.get("/v1/ui/strings?lang=en").json().keys()


# ------------------------------------------------------------------------------------------------------ worklists
@pytest.mark.parametrize("department", DEPARTMENTS)
def test_a_worklist_holds_only_its_departments_upward_drivers_ranked(http, department):
    answer = http.get("/v1/worklist", params={"department": department, "limit": 5000}).json()
    items = answer["items"]
    assert answer["total"] == len(items)
    ranks = {"low": 0, "medium": 1, "high": 2}
    keys = [(-ranks[i["level"]], -i["share"]) for i in items]
    assert keys == sorted(keys)
    for item in items:
        assert item["drivers"] and all(d["department"] == department for d in item["drivers"])
        assert all(d["direction"] == "up" and d["contribution"] >= 0 for d in item["drivers"])  # rounded to 4 places
        assert 0 < item["share"] <= 1 and item["added"] > 0
        assert (item["milestone_id"] is None) == (item["target"] == "churn")


def test_the_whatif_gain_is_what_the_whatif_endpoint_says(service, http, portfolio):
    """Acting on the department's actionable drivers (set to the day's median) lowers the prediction by
    ``whatif_gain``: the worklist's batch rescoring and /v1/whatif agree."""
    items = http.get("/v1/worklist", params={"department": "quality", "sort": "whatif_gain", "target": "defect_risk"})
    item = items.json()["items"][0]
    assert item["whatif_gain"] > 0
    block = service.holder.current.snapshots.current.block
    actionable = {"defects_open", "inspections_open", "days_to_close_mean"}
    changes = {
        d["feature"]: float(np.nanmedian(block.columns["milestone"][d["feature"]]))
        for d in item["drivers"]
        if d["feature"] in actionable
    }
    assert changes, "the top item by what-if gain names an actionable driver"
    whatif = http.post(
        "/v1/whatif",
        json={
            "project_id": item["project_id"],
            "milestone_id": item["milestone_id"],
            "as_of": portfolio["as_of"],
            "changes": changes,
        },
    ).json()
    assert whatif["before"]["defect_risk"]["probability"] == pytest.approx(item["prediction"], abs=1e-12)
    assert -whatif["difference"]["defect_risk"]["probability"] == pytest.approx(item["whatif_gain"], abs=1e-9)


def test_worklist_as_csv_for_a_spreadsheet(http):
    response = http.get("/v1/worklist", params={"department": "cost", "limit": 7}, headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    as_json = http.get("/v1/worklist", params={"department": "cost", "limit": 7}).json()["items"]
    assert [r["milestone_id"] or None for r in rows] == [i["milestone_id"] for i in as_json]
    assert [float(r["prediction"]) for r in rows] == [i["prediction"] for i in as_json]


def test_batch_as_csv_one_row_per_open_milestone(http, portfolio):
    day = portfolio["as_of"][:10]
    ids = [p["project_id"] for p in portfolio["projects"][:6]]
    body = {"project_ids": ids, "as_of": day, "top_k": 1}
    as_json = http.post("/v1/risk/batch", json=body).json()["projects"]
    response = http.post("/v1/risk/batch", json=body, headers={"Accept": "text/csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == sum(max(1, len(p["milestones"])) for p in as_json)
    assert {r["project_id"] for r in rows} == set(ids)


@pytest.mark.parametrize(
    "params, status, field",
    [
        ({"department": "qa"}, 400, "department"),
        ({"department": "quality", "sort": "loudest"}, 400, "sort"),
        ({"department": "quality", "target": "profit"}, 400, "target"),
        ({"department": "quality", "limit": 0}, 422, "limit"),
        ({}, 422, "department"),
    ],
)
def test_a_bad_worklist_request_names_the_field(http, params, status, field):
    response = http.get("/v1/worklist", params=params)
    assert response.status_code == status
    assert response.json()["field"] == field


# ----------------------------------------------------------------------------------------------- project views
def _engine_on(service, tables) -> Engine:
    champions = {name: Champion(name, info.version) for name, info in service.engine.info.items()}
    return Engine(service.settings, tables, service.engine.bundles, champions)


def test_trend_and_facts_see_nothing_after_their_day(service, http, portfolio):
    """Rewriting every fact known only after the day changes neither the project's trend nor its facts."""
    day = pd.Timestamp(portfolio["as_of"]) - pd.Timedelta(days=60)
    project = next(
        p for p in service.engine.open_projects(day) if p in {x["project_id"] for x in portfolio["projects"]}
    )
    trend = http.post("/v1/trend", json={"project_id": project, "as_of": day.isoformat(), "weeks": 6}).json()
    facts = http.post("/v1/facts", json={"project_id": project, "as_of": day.isoformat()}).json()
    assert len(trend["points"]) == 6 and trend["points"][-1]["as_of"].startswith(str(day.date()))
    assert facts["inspections"] and all(i["inspected_at"] < day.isoformat() for i in facts["inspections"])
    rewritten = _engine_on(service, rewrite(service.engine.tables, day, np.random.default_rng(5), future=True))
    from serving import board

    again = board.trend(rewritten, project, day, 6)
    assert [p["defect_risk"] for p in again] == [p["defect_risk"] for p in trend["points"]]
    assert [p["churn"] for p in again] == [p["churn"] for p in trend["points"]]
    again_facts = board.facts(rewritten, project, day)
    assert again_facts["inspections"] == facts["inspections"]
    assert again_facts["open_defects"] == facts["open_defects"] and again_facts["spi"] == facts["spi"]


def test_trend_ends_with_the_answer_of_its_day(service, http, portfolio):
    day = portfolio["as_of"]
    project = next(p["project_id"] for p in portfolio["projects"] if p["open_milestones"])
    last = http.post("/v1/trend", json={"project_id": project, "as_of": day}).json()["points"][-1]
    answer = http.post("/v1/risk", json={"project_id": project, "as_of": day}).json()
    assert last["defect_risk"] == max(m["defect_risk"]["probability"] for m in answer["milestones"])
    assert last["churn"] == answer["churn"]["probability"]


def test_models_carry_their_test_evidence(http):
    models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
    for m in models.values():
        curve = m["evidence"]["reliability"]
        assert len(curve) == 10 and sum(p["count"] for p in curve) == m["rows"]["test"]
        assert [p["predicted"] for p in curve] == sorted(p["predicted"] for p in curve)
    assert set(models["delay"]["evidence"]["coverage_by_band"]) <= {"ahead", "near", "overdue"}


# ---------------------------------------------------------------------------------------------- the API's pages
def test_the_openapi_page_names_the_product_and_its_errors(http):
    spec = http.get("/docs.json").json()
    assert spec["info"]["title"] == "EQSMS Risk" and spec["info"]["version"] not in ("None", "")
    assert "BentoML" not in spec["info"]["description"] and "http" not in spec["info"]["description"]
    assert {"get"} <= set(spec["paths"]["/v1/models"]) and "/v1/worklist" in spec["paths"]
    batch = spec["paths"]["/v1/risk/batch"]["post"]
    assert {"400", "413"} <= set(batch["responses"]) and batch["description"]
    assert spec["paths"]["/v1/risk"]["post"]["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    page = http.get("/").text
    assert "googletagmanager" not in page and "https://" not in page
    assert "validatorUrl: null" in http.get("/docs-init.js").text
