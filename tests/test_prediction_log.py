"""The service's prediction log (issue 13 §1): what the service answers is what the log holds.

Through the in-process app (``http``, conftest.py), read back from the log's SQLite file in the champions' work folder
by a second :class:`eqsms.predlog.PredictionLog` (the app's writer flushes each second); and a real `eqsms serve`
stopped with SIGTERM: every prediction it answered is in the log afterwards.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from eqsms.predlog import PredictionLog, default_url
from tests.test_serving import AHEAD, AS_OF, PROJECT


@pytest.fixture(scope="module")
def log(champions, http):  # noqa: ARG001 - http: the app that writes the log is started
    reader = PredictionLog(default_url(champions.work_dir))
    yield reader
    reader.close()


def served_since(log: PredictionLog, since: datetime, expected: int, endpoint: str | None = None) -> pd.DataFrame:
    """The served rows written since ``since``, once there are ``expected`` (the app's writer flushes each second)."""
    deadline = time.monotonic() + 10
    while True:
        rows = log.served(since=since, endpoint=endpoint)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def answered(answer: dict) -> dict[tuple[str, str | None], dict]:
    """(model, milestone) -> the answer's prediction, for one project's answer."""
    out = {}
    for m in answer["milestones"]:
        out[("defect_risk", m["milestone_id"])] = {"probability": m["defect_risk"]["probability"]}
        delay = m["delay"]
        out[("delay", m["milestone_id"])] = {
            "probability": delay["late_probability"],
            "slip_days": delay["expected_slip_days"],
            "slip_low": delay["range_days"][0],
            "slip_high": delay["range_days"][1],
        }
    out[("churn", None)] = {"probability": answer["churn"]["probability"]}
    return out


def test_an_answer_is_in_the_log_as_it_was_given(http, log):
    since = datetime.now(UTC)
    answer = http.post("/v1/risk", json={"project_id": PROJECT, "as_of": AS_OF, "top_k": 2}).json()
    said = answered(answer)
    rows = served_since(log, since, len(said))
    assert len(rows) == len(said) and set(rows["endpoint"]) == {"risk"} and rows["request_id"].nunique() == 1
    predictions = log.predictions().set_index("key").loc[rows["prediction_key"]]
    assert set(predictions["data_fingerprint"]) == {answer["data_snapshot"]["fingerprint"]}
    assert (predictions["as_of"] == pd.Timestamp(AS_OF)).all() and set(predictions["project_id"]) == {PROJECT}
    for _, p in predictions.iterrows():
        milestone = None if pd.isna(p["milestone_id"]) else p["milestone_id"]
        assert p["model_version"] == answer["model_versions"][p["model"]]
        for field, value in said.pop((p["model"], milestone)).items():
            assert p[field] == pytest.approx(value, rel=1e-9), (p["model"], field)
        assert len(p["drivers"]) <= 2 and len(p["features_hash"]) == 32
    assert not said  # every prediction of the answer, once


def test_the_same_prediction_is_kept_once_and_served_twice(http, log):
    body = {"project_ids": [PROJECT, "P00007"], "as_of": AS_OF, "top_k": 1}
    since = datetime.now(UTC)
    first = http.post("/v1/risk/batch", json=body).json()
    http.post("/v1/risk/batch", json=body)
    per_answer = sum(2 * len(p["milestones"]) + 1 for p in first["projects"])
    rows = served_since(log, since, 2 * per_answer, "batch")
    assert len(rows) == 2 * per_answer and rows["request_id"].nunique() == 2
    assert rows["prediction_key"].nunique() == per_answer  # the second answer served the same predictions


def test_what_ifs_and_made_up_rows_are_not_predictions(http, log):
    since = datetime.now(UTC)
    http.post("/v1/whatif", json={"project_id": PROJECT, "milestone_id": AHEAD, "as_of": AS_OF, "changes": {}})
    http.post("/v1/predict", json={"model": "delay", "rows": [{"defects_open": 3}]})
    marker = http.post("/v1/risk", json={"project_id": PROJECT, "as_of": AS_OF}).json()  # written after them
    rows = served_since(log, since, len(answered(marker)))
    assert set(rows["endpoint"]) == {"risk"}


def test_feedback_is_kept_beside_the_predictions(http, log):
    note = {"project_id": PROJECT, "milestone_id": AHEAD, "model": "defect_risk"}
    said = http.post("/v1/feedback", json={**note, "note": "subcontractor replaced", "corrected_level": "low"})
    assert said.status_code == 200 and said.json()["kind"] == "override"
    kept = log.feedback(project_id=PROJECT).set_index("id").loc[said.json()["id"]]
    assert kept["note"] == "subcontractor replaced" and kept["corrected_level"] == "low"
    assert kept["milestone_id"] == AHEAD and kept["model"] == "defect_risk" and kept["client_id"]
    outcome = http.post("/v1/feedback", json={**note, "model": "delay", "outcome_label": 12.5, "author": "planner"})
    assert outcome.status_code == 200 and outcome.json()["kind"] == "override"
    assert log.feedback(project_id=PROJECT).set_index("id").loc[outcome.json()["id"], "outcome_label"] == 12.5


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"project_id": "P99999", "model": "churn", "note": "x"}, 404, "project_id"),
        ({"project_id": PROJECT, "milestone_id": "M999999", "model": "delay", "note": "x"}, 404, "milestone_id"),
        ({"project_id": PROJECT, "milestone_id": AHEAD, "model": "churn", "note": "x"}, 400, "milestone_id"),
        ({"project_id": PROJECT, "model": "delay", "note": "x"}, 400, "milestone_id"),
        ({"project_id": PROJECT, "milestone_id": AHEAD, "model": "defect_risk"}, 400, "note"),
        ({"project_id": PROJECT, "model": "churn", "outcome_label": 0.5}, 400, "outcome_label"),
        ({"project_id": PROJECT, "model": "churn", "corrected_level": "severe"}, 400, "corrected_level"),
        ({"project_id": PROJECT, "model": "churn", "note": "x" * 2001}, 400, "note"),
    ],
    ids=[
        "unknown project",
        "unknown milestone",
        "churn names no milestone",
        "delay needs one",
        "says nothing",
        "a churn outcome is 0 or 1",
        "an unknown level",
        "a long note",
    ],
)
def test_feedback_refused_names_the_field(http, body, status, field):
    refused = http.post("/v1/feedback", json=body)
    assert refused.status_code == status and refused.json()["field"] == field, refused.text


@pytest.mark.slow
def test_nothing_served_is_lost_when_the_server_stops(champions, tmp_path):
    """A real server (two workers) answers; SIGTERM; every prediction it served is in the log, and /metrics
    counted them while it ran."""
    from serving.local import call
    from tests.live import serve

    url = default_url(tmp_path)
    env = champions.env(EQSMS_PREDICTION_LOG_URL=url, EQSMS_SERVE_WORKERS="2", EQSMS_RELOAD_POLL_SECONDS="0")
    server = serve(env, tmp_path / "serve.log")
    expected = 0
    try:
        for i, project in enumerate(["P00142", "P00007", "P00100", "P00200"] * 5):
            status, answer = call(f"{server.base}/v1/risk", {"project_id": project, "as_of": AS_OF, "top_k": i % 3})
            assert status == 200, answer
            expected += len(answered(answer))
        time.sleep(2.5)  # a measure of the gauges (each reload check) after a flush
        metrics = server.get_text("/metrics")
    finally:
        assert server.stop() == 0
    written = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("eqsms_prediction_log_written")
    )
    reader = PredictionLog(url)
    try:
        assert len(reader.served(endpoint="risk")) == expected
        assert 0 < written <= expected
    finally:
        reader.close()


def test_a_projects_feedback_is_listed_newest_first(http):
    body = {"project_id": PROJECT, "milestone_id": AHEAD, "model": "delay", "note": "crane booked late"}
    first = http.post("/v1/feedback", json=body).json()["id"]
    second = http.post("/v1/feedback", json={**body, "note": "crane on site", "corrected_level": "low"}).json()["id"]
    listed = http.get("/v1/notes", params={"project_id": PROJECT}).json()["items"]
    ids = [item["id"] for item in listed]
    assert ids.index(second) < ids.index(first)
    newest = listed[ids.index(second)]
    assert newest["kind"] == "override" and newest["corrected_level"] == "low" and newest["milestone_id"] == AHEAD
    unknown = http.get("/v1/notes", params={"project_id": "P99999"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "project_id"
