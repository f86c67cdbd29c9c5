"""The BentoML service in process: the service class instantiated directly, and its HTTP layer through
``TestClient(RiskService.to_asgi())``, on champions trained into a temporary MLflow store (conftest.py)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from starlette.responses import JSONResponse

from eqsms.settings import get_settings
from features.datasets import build_dataset, milestone_rows
from features.families import Context
from serving import schemas
from serving.runtime import NotReady
from serving.service import RiskService, with_field
from tests.agreement import assert_same_milestone_answer
from tests.conftest import SERVED_MAX_BATCH

# From the committed sample world (data_samples/world): an open project, its milestones ahead of and behind AS_OF.
PROJECT, AHEAD, REACHED, AS_OF = "P00142", "M000778", "M000774", "2023-06-01"
OTHER_PROJECTS_MILESTONE = "M000001"


def risk_of(service, **request):
    """The service's /v1/risk method, called in process (it is a coroutine: it runs on the event loop)."""
    return asyncio.run(service.risk(**request))


def body(response: JSONResponse) -> dict:
    return json.loads(response.body)


# ------------------------------------------------------------------------------------------------- in process
def test_risk_answers_with_models_and_freshness(service):
    answer = risk_of(service, project_id=PROJECT, as_of=pd.Timestamp(AS_OF).to_pydatetime(), top_k=2)
    assert isinstance(answer, schemas.RiskResponse)
    assert answer.project_id == PROJECT and answer.client_id == "C00111"
    assert answer.as_of == pd.Timestamp(AS_OF)
    assert answer.model_dump(mode="json")["as_of"] == "2023-06-01T00:00:00"  # what a client reads
    assert AHEAD in [m.milestone_id for m in answer.milestones]
    assert REACHED not in [m.milestone_id for m in answer.milestones]
    assert answer.model_versions == {"defect_risk": "1", "delay": "1", "churn": "1"}
    freshness = answer.data_freshness
    expected_days = (pd.Timestamp(AS_OF) - pd.Timestamp(freshness.latest_fact)) / pd.Timedelta(days=1)
    assert freshness.days_since_latest_fact == pytest.approx(expected_days, abs=0.01)
    for m in answer.milestones:
        assert 0 <= m.defect_risk.probability <= 1 and m.defect_risk.level in ("low", "medium", "high")
        lower, upper = m.delay.range_days
        assert lower <= m.delay.expected_slip_days <= upper and m.delay.range_coverage == pytest.approx(0.8)
        assert 0 < len(m.defect_risk.drivers) <= 2 and 0 < len(m.delay.drivers) <= 2
        assert all(d.text and d.department and d.direction in ("up", "down") for d in m.defect_risk.drivers)
    assert 0 <= answer.churn.probability <= 1 and len(answer.churn.drivers) <= 2


def test_top_k_defaults_to_settings_and_zero_means_no_drivers(service):
    answer = risk_of(service, project_id=PROJECT, as_of=pd.Timestamp(AS_OF).to_pydatetime())
    counts = [len(m.defect_risk.drivers) for m in answer.milestones] + [len(answer.churn.drivers)]
    assert max(counts) == get_settings().default_top_k
    bare = risk_of(service, project_id=PROJECT, as_of=pd.Timestamp(AS_OF).to_pydatetime(), top_k=0)
    assert all(not m.defect_risk.drivers and not m.delay.drivers for m in bare.milestones)
    assert not bare.churn.drivers


def test_batch_is_the_single_answers_in_one_pass(service):
    ids = list(dict.fromkeys([PROJECT, *service.engine.open_projects()[:6]]))
    t = pd.Timestamp("2023-11-01").to_pydatetime()
    batch = service.risk_batch(project_ids=ids + [ids[0]], as_of=t, top_k=3)  # a repeated id is answered once
    assert [p.project_id for p in batch.projects] == ids
    assert batch.model_versions == {"defect_risk": "1", "delay": "1", "churn": "1"}
    for project in batch.projects:
        single = risk_of(service, project_id=project.project_id, as_of=t, top_k=3)
        assert single.model_dump(exclude={"model_versions", "data_snapshot", "data_freshness"}) == project.model_dump()


def test_batch_defaults_to_every_project_open_at_as_of(service):
    """Without ids: the projects begun by as_of and not handed over before it, even when others begin later."""
    t = pd.Timestamp(AS_OF)
    projects = service.engine.projects
    assert (projects["planned_start"] > t).any() and (projects["actual_end"] < t).any()  # both kinds exist then
    batch = service.risk_batch(as_of=t.to_pydatetime(), top_k=0)
    ids = [p.project_id for p in batch.projects]
    assert ids == service.engine.open_projects(t)
    assert (projects.loc[ids, "planned_start"] <= t).all() and not (projects.loc[ids, "actual_end"] < t).any()
    assert len(batch.projects) > SERVED_MAX_BATCH  # the size limit is for the ids a caller sends


def test_engine_errors_become_4xx_responses_in_process(service):
    unknown = risk_of(service, project_id="P99999")
    assert isinstance(unknown, JSONResponse) and unknown.status_code == 404
    assert body(unknown) == {"error": "project_id: unknown project id(s): P99999", "field": "project_id"}
    too_many = service.risk_batch(project_ids=[f"P{i:05d}" for i in range(1, SERVED_MAX_BATCH + 2)])
    assert too_many.status_code == 413 and body(too_many)["field"] == "project_ids"


def test_predict_scores_rows_and_flags_odd_values(service, http):
    bundle = service.engine.bundles["defect_risk"]
    frame = build_dataset("defect_risk", service.engine.ctx).frame.tail(3)
    rows = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame[bundle.features].to_dict("records")
    ]
    rows.append({"milestone_kind": "bridge", "defects_open": 1e6})  # unknown category, far out of range
    response = http.post("/v1/predict", json={"model": "defect_risk", "rows": rows, "top_k": 1})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "defect_risk" and answer["version"] == "1"
    got = [p["probability"] for p in answer["predictions"][:3]]
    assert got == bundle.predict(frame)["probability"].tolist()
    assert all(len(p["drivers"]) <= 1 for p in answer["predictions"])
    flags = {(f["row"], f["feature"], f["flag"]) for f in answer["flags"]}
    assert {(3, "milestone_kind", "unknown_category"), (3, "defects_open", "outside_training_range")} <= flags


def test_whatif_before_after_and_difference(service, http):
    request = {"project_id": PROJECT, "milestone_id": AHEAD, "as_of": AS_OF, "changes": {"defects_open": 0.0}}
    response = http.post("/v1/whatif", json=request)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (
        set(answer["before"]) == set(answer["after"]) == set(answer["difference"]) == {"defect_risk", "delay", "churn"}
    )
    # Closing every open defect does not raise the risk of failing first pass.
    assert answer["after"]["defect_risk"]["probability"] <= answer["before"]["defect_risk"]["probability"]
    assert answer["difference"]["defect_risk"]["probability"] <= 0
    risk = risk_of(
        service, project_id=PROJECT, as_of=pd.Timestamp(AS_OF).to_pydatetime(), milestone_ids=[AHEAD], top_k=0
    )
    assert answer["before"]["defect_risk"]["probability"] == risk.milestones[0].defect_risk.probability
    assert answer["before"]["churn"]["probability"] == risk.churn.probability


def test_models_by_get_and_post(service, http):
    got, posted = http.get("/v1/models"), http.post("/v1/models")
    assert got.status_code == posted.status_code == 200
    here = service.models().model_dump(mode="json")  # the in-process instance: its own (empty) reload history
    assert got.json() == posted.json() and got.json()["models"] == here["models"]
    assert got.json()["data_snapshot"] == here["data_snapshot"]
    models = {m["name"]: m for m in got.json()["models"]}
    assert set(models) == {"defect_risk", "delay", "churn"}
    for m in models.values():
        assert m["version"] == "1" and m["alias"] == "champion" and m["run_id"] and m["trained_at"]
        assert m["features"] and m["test_metrics"] and m["data_window"]


def test_health_openapi_and_examples(http):
    assert http.get("/livez").status_code == 200 and http.get("/readyz").status_code == 200
    spec = http.get("/docs.json").json()
    for route in ("/v1/risk", "/v1/risk/batch", "/v1/features", "/v1/predict", "/v1/whatif", "/v1/trend", "/v1/facts"):
        assert "post" in spec["paths"][route]
    for route in ("/v1/models", "/v1/portfolio", "/v1/worklist"):  # the reads a browser makes (POST /v1/models too)
        assert "get" in spec["paths"][route]
    request = spec["paths"]["/v1/risk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert request["example"]["project_id"] == PROJECT
    answer = spec["paths"]["/v1/risk"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["example"]["milestones"][0]["defect_risk"]["drivers"][0]["text"]


# ------------------------------------------------------------------------------------------------- bad input
BAD = [
    ("malformed body", "/v1/risk", b'{"project_id": "P00142",', 400, "body"),
    ("not an object", "/v1/risk", b'["P00142"]', 400, "body"),
    ("wrong type", "/v1/risk", {"project_id": 142}, 400, "project_id"),
    ("missing field", "/v1/risk", {"as_of": AS_OF}, 400, "project_id"),
    ("unknown key", "/v1/risk", {"project_id": PROJECT, "asof": AS_OF}, 400, "asof"),
    ("not a date", "/v1/risk", {"project_id": PROJECT, "as_of": "last tuesday"}, 400, "as_of"),
    ("negative top_k", "/v1/risk", {"project_id": PROJECT, "top_k": -1}, 400, "top_k"),
    ("unknown project", "/v1/risk", {"project_id": "P99999"}, 404, "project_id"),
    (
        "unknown milestone",
        "/v1/risk",
        {"project_id": PROJECT, "as_of": AS_OF, "milestone_ids": ["M999999"]},
        404,
        "milestone_ids",
    ),
    (
        "another project's milestone",
        "/v1/risk",
        {"project_id": PROJECT, "as_of": AS_OF, "milestone_ids": [OTHER_PROJECTS_MILESTONE]},
        400,
        "milestone_ids",
    ),
    ("as_of before the project began", "/v1/risk", {"project_id": PROJECT, "as_of": "2019-01-01"}, 400, "as_of"),
    ("as_of decades after the data", "/v1/risk", {"project_id": PROJECT, "as_of": "2099-01-01"}, 400, "as_of"),
    ("as_of at the end of time", "/v1/risk", {"project_id": PROJECT, "as_of": "9999-12-31"}, 400, "as_of"),
    ("today, years after the sample", "/v1/risk", {"project_id": PROJECT}, 400, "as_of"),
    ("a batch long after the data", "/v1/risk/batch", {"as_of": "2099-01-01"}, 400, "as_of"),
    ("oversized batch", "/v1/risk/batch", {"project_ids": [f"P{i:05d}" for i in range(1, 61)]}, 413, "project_ids"),
    ("unknown id in a batch", "/v1/risk/batch", {"project_ids": [PROJECT, "P99999"]}, 404, "project_ids"),
    ("empty batch", "/v1/risk/batch", {"project_ids": []}, 400, "project_ids"),
    ("unknown model", "/v1/predict", {"model": "price", "rows": [{}]}, 400, "model"),
    (
        "unknown feature",
        "/v1/predict",
        {"model": "delay", "rows": [{"spi_to_date": 1}, {"nope": 1}]},
        400,
        "rows[1].nope",
    ),
    (
        "text for a number",
        "/v1/predict",
        {"model": "churn", "rows": [{"csat_latest": "good"}]},
        400,
        "rows[0].csat_latest",
    ),
    ("rows not a list", "/v1/predict", {"model": "churn", "rows": {"csat_latest": 3}}, 400, "rows"),
    (
        "a reached milestone",
        "/v1/whatif",
        {"project_id": PROJECT, "milestone_id": REACHED, "as_of": AS_OF, "changes": {}},
        400,
        "milestone_id",
    ),
    (
        "another project's milestone in a what-if",
        "/v1/whatif",
        {"project_id": PROJECT, "milestone_id": OTHER_PROJECTS_MILESTONE, "as_of": AS_OF, "changes": {}},
        400,
        "milestone_id",
    ),
    (
        "a list as a feature value",
        "/v1/predict",
        {"model": "delay", "rows": [{"spi_to_date": [1]}]},
        400,
        "rows[0].spi_to_date",
    ),
    ("an empty id in a batch", "/v1/risk/batch", {"project_ids": [PROJECT, ""]}, 400, "project_ids[1]"),
    (
        "not a feature",
        "/v1/whatif",
        {"project_id": PROJECT, "milestone_id": AHEAD, "as_of": AS_OF, "changes": {"budget": 1}},
        400,
        "changes.budget",
    ),
    (
        "a change that is not a number",
        "/v1/whatif",
        {"project_id": PROJECT, "milestone_id": AHEAD, "changes": {"defects_open": "none"}},
        400,
        "changes.defects_open",
    ),
]


def sent(http, route: str, payload):
    """``payload`` to ``route``: a GET when None, bytes as they are, anything else as JSON."""
    if payload is None:
        return http.get(route)
    if isinstance(payload, bytes):
        return http.post(route, content=payload, headers={"Content-Type": "application/json"})
    return http.post(route, json=payload)


def assert_names_the_field(http, response, case: str, status: int, field: str) -> dict:
    """A refusal with ``status`` whose body names ``field`` and says what is wrong; the service answers the next
    request as if nothing happened. The refusal's body."""
    assert response.status_code == status, f"{case}: {response.text[:500]}"
    answer = response.json()
    assert answer["field"] == field and answer["error"].startswith(f"{field}: "), answer
    assert len(answer["error"]) > len(field) + 5  # the problem is said, not only the field
    assert http.post("/v1/risk", json={"project_id": PROJECT, "as_of": AS_OF, "top_k": 0}).status_code == 200
    return answer


@pytest.mark.parametrize(("case", "route", "payload", "status", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_naming_the_field_and_the_service_goes_on(http, case, route, payload, status, field):
    assert_names_the_field(http, sent(http, route, payload), case, status, field)


def test_validation_error_bodies_get_the_field():
    detail = [{"type": "missing", "loc": ["rows", 2, "x"], "msg": "Field required"}, {"loc": ["y"], "msg": "bad"}]
    out = with_field({"error": "2 validation errors for Input", "detail": detail})
    assert out == {"error": "rows[2].x: Field required (and 1 more)", "field": "rows[2].x", "detail": detail}
    assert with_field({"error": "other"}) == {"error": "other"}


# ------------------------------------------------------------------------------------------------- start-up
def test_refuses_to_start_without_a_champion_or_data(tmp_path, champions, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("EQSMS_DATA_DIR", str(champions.data_dir))
    with pytest.raises(NotReady, match=r"(?s)no @champion model for defect_risk, delay, churn.*eqsms train"):
        RiskService()
    with pytest.raises(SystemExit) as stopped:
        RiskService.inner.preflight()  # what `bentoml serve` runs before starting workers
    assert stopped.value.code == 2
    monkeypatch.setenv("EQSMS_WORK_DIR", str(champions.work_dir))
    monkeypatch.setenv("EQSMS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(NotReady, match="eqsms generate"):
        RiskService()


# ------------------------------------------------------------------------------------- training = serving
def test_training_and_serving_agree_exactly(service, http, champions):
    """Training rows at their own as_of: the service builds the same features and, over HTTP, answers the trained
    bundle's predictions to the last bit."""
    ctx = Context.build(service.engine.tables, service.engine.settings)
    for target in ("defect_risk", "delay"):
        frame = build_dataset(target, ctx).frame.tail(12)  # the latest rows: test rows of the time split
        bundle = champions.outcomes[target].result.bundle
        milestones = service.engine.milestones.set_index("milestone_id").loc[frame["milestone_id"]].reset_index()
        served = milestone_rows(service.engine.ctx, milestones.assign(as_of=frame["as_of"].to_numpy()))
        pd.testing.assert_frame_equal(
            bundle.frame(served).reset_index(drop=True), bundle.frame(frame).reset_index(drop=True), check_exact=True
        )
        expected = bundle.predict(frame)
        for i, row in enumerate(frame.itertuples()):
            request = {
                "project_id": row.project_id,
                "as_of": row.as_of.isoformat(),
                "milestone_ids": [row.milestone_id],
            }
            answer = http.post("/v1/risk", json={**request, "top_k": 0}).json()
            assert_same_milestone_answer(target, answer["milestones"][0][target], expected, i)
    frame = build_dataset("churn", ctx).frame.tail(8)
    expected = champions.outcomes["churn"].result.bundle.predict(frame)["probability"]
    got = [
        http.post("/v1/risk", json={"project_id": p, "as_of": t.isoformat(), "top_k": 0}).json()["churn"]["probability"]
        for p, t in zip(frame["project_id"], frame["as_of"], strict=True)
    ]
    np.testing.assert_array_equal(got, expected)
