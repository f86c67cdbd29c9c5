"""Limits and hostile input (issue 12, §3): every bound on a request is a 4xx naming the field, never a 5xx, a stuck
worker or an echo of the oversized value; values a feature cannot take are refused; odd ids are answered.

Through the served app in process (``http``, conftest.py: max_batch_projects 50, the other limits at their
defaults), and :class:`serving.limits.BodyLimit` on a bare ASGI app.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from eqsms.settings import Settings
from features.datasets import build_dataset
from features.families import Context
from serving.limits import MAX_ID_LENGTH, MAX_TEXT_LENGTH, SHOWN, BodyLimit, domain, out_of_domain, shown
from tests.test_serving import AHEAD, AS_OF, PROJECT, assert_names_the_field, sent

LIMITS = Settings.model_construct()  # the defaults: the served app runs with them (but max_batch_projects)
LONG_ID = "P" + "9" * MAX_ID_LENGTH  # one character over the limit
WHATIF = {"project_id": PROJECT, "milestone_id": AHEAD, "as_of": AS_OF}


def _raw(text: str) -> bytes:
    return text.encode()


# (case, route, payload: a dict sent as JSON or bytes sent as they are, status, field)
BAD_LIMITS = [
    (
        "a body over max_body_bytes",
        "/v1/predict",
        b'{"model": "delay", "rows": [{}]}' + b" " * LIMITS.max_body_bytes,
        413,
        "body",
    ),
    (
        "more rows than max_predict_rows",
        "/v1/predict",
        {"model": "delay", "rows": [{}] * (LIMITS.max_predict_rows + 1)},
        413,
        "rows",
    ),
    (
        "more changes than max_whatif_changes",
        "/v1/whatif",
        {**WHATIF, "changes": {f"f{i}": 1.0 for i in range(LIMITS.max_whatif_changes + 1)}},
        413,
        "changes",
    ),
    ("an id over the length limit", "/v1/risk", {"project_id": LONG_ID}, 400, "project_id"),
    ("a long id in a batch", "/v1/risk/batch", {"project_ids": [PROJECT, LONG_ID]}, 400, "project_ids[1]"),
    ("a long milestone id", "/v1/risk", {"project_id": PROJECT, "milestone_ids": [LONG_ID]}, 400, "milestone_ids[0]"),
    (
        "a long milestone id in a what-if",
        "/v1/whatif",
        {**WHATIF, "milestone_id": LONG_ID, "changes": {}},
        400,
        "milestone_id",
    ),
    ("a long id for a trend", "/v1/trend", {"project_id": LONG_ID}, 400, "project_id"),
    ("a long id for facts", "/v1/facts", {"project_id": LONG_ID}, 400, "project_id"),
    ("a long id for features", "/v1/features", {"project_id": LONG_ID, "milestone_id": AHEAD}, 400, "project_id"),
    (
        "a long feature name",
        "/v1/predict",
        {"model": "delay", "rows": [{"f" * 5000: 1}]},
        400,
        "rows[0]." + shown("f" * 5000),
    ),
    (
        "a long text value",
        "/v1/predict",
        {"model": "delay", "rows": [{"milestone_kind": "k" * (MAX_TEXT_LENGTH + 1)}]},
        400,
        "rows[0].milestone_kind",
    ),
    ("top_k over 50", "/v1/risk", {"project_id": PROJECT, "top_k": 51}, 400, "top_k"),
    ("weeks over 104", "/v1/trend", {"project_id": PROJECT, "weeks": 105}, 400, "weeks"),
    # values a feature cannot take
    (
        "a negative count in a what-if",
        "/v1/whatif",
        {**WHATIF, "changes": {"defects_open": -50}},
        400,
        "changes.defects_open",
    ),
    (
        "a share above 1 in a what-if",
        "/v1/whatif",
        {**WHATIF, "changes": {"overtime_share_recent": 1.5}},
        400,
        "changes.overtime_share_recent",
    ),
    (
        "negative hours in a what-if",
        "/v1/whatif",
        {**WHATIF, "changes": {"downtime_hours_recent": -1}},
        400,
        "changes.downtime_hours_recent",
    ),
    (
        "NaN in a what-if",
        "/v1/whatif",
        _raw(json.dumps({**WHATIF, "changes": {"defects_open": float("nan")}})),
        400,
        "changes.defects_open",
    ),
    (
        "Infinity in a what-if",
        "/v1/whatif",
        _raw(json.dumps({**WHATIF, "changes": {"defects_open": float("inf")}})),
        400,
        "changes.defects_open",
    ),
    (
        "a number past a float in a what-if",
        "/v1/whatif",
        _raw(json.dumps(WHATIF)[:-1] + ', "changes": {"defects_open": 1' + "0" * 400 + "}}"),
        400,
        "changes.defects_open",
    ),
    (
        "NaN in a row",
        "/v1/predict",
        b'{"model": "defect_risk", "rows": [{"defects_open": NaN}]}',
        400,
        "rows[0].defects_open",
    ),
    (
        "-Infinity in a row",
        "/v1/predict",
        b'{"model": "defect_risk", "rows": [{}, {"spi_recent": -Infinity}]}',
        400,
        "rows[1].spi_recent",
    ),
    (
        "a number past a float in a row",
        "/v1/predict",
        _raw('{"model": "defect_risk", "rows": [{"defects_open": 1' + "0" * 400 + "}]}"),
        400,
        "rows[0].defects_open",
    ),
    (
        "'NaN' as text in a row",
        "/v1/predict",
        {"model": "defect_risk", "rows": [{"defects_open": "NaN"}]},
        400,
        "rows[0].defects_open",
    ),
    (
        "'inf' as text in a row",
        "/v1/predict",
        {"model": "defect_risk", "rows": [{"defects_open": "inf"}]},
        400,
        "rows[0].defects_open",
    ),
    (
        "true for a number",
        "/v1/predict",
        {"model": "defect_risk", "rows": [{"defects_open": True}]},
        400,
        "rows[0].defects_open",
    ),
    (
        "a negative count in a row",
        "/v1/predict",
        {"model": "defect_risk", "rows": [{"defects_open": 3}, {"defects_open": -1}]},
        400,
        "rows[1].defects_open",
    ),
    (
        "negative money in a row",
        "/v1/predict",
        {"model": "churn", "rows": [{"contract_value": -1e6}]},
        400,
        "rows[0].contract_value",
    ),
    (
        "a share above 1 in a row",
        "/v1/predict",
        {"model": "delay", "rows": [{"late_delivery_share_recent": 2}]},
        400,
        "rows[0].late_delivery_share_recent",
    ),
    ("a long department", "/v1/worklist?department=" + "q" * 5000, None, 422, "department"),
]


@pytest.mark.parametrize(("case", "route", "payload", "status", "field"), BAD_LIMITS, ids=[b[0] for b in BAD_LIMITS])
def test_over_a_limit_is_a_4xx_naming_the_field_without_the_value(http, case, route, payload, status, field):
    response = sent(http, route, payload)
    assert_names_the_field(http, response, case, status, field)
    assert len(response.content) < 2000, f"{case}: the answer repeats the request ({len(response.content):,} bytes)"


def test_no_answer_repeats_a_long_value(http):
    """Not in the error, not in the field, not in pydantic's detail (its ``input``): at most 40 characters of it."""
    value = "Z" * 90  # under the id limit: the engine itself answers, and cuts the id it repeats
    unknown = http.post("/v1/risk", json={"project_id": value, "as_of": AS_OF})
    assert unknown.status_code == 404 and value[:SHOWN] not in unknown.text
    assert unknown.json()["error"] == f"project_id: unknown project id(s): {shown(value)}"
    for request in (
        {"project_id": "Z" * 100_000},
        {"project_id": PROJECT, "as_of": "Z" * 100_000},
        {"project_id": PROJECT, "lang": "Z" * 100_000},
        {"project_id": PROJECT, "top_k": "Z" * 100_000},
        {"project_id": PROJECT, "Z" * 100_000: 1},
    ):
        response = http.post("/v1/risk", json=request)
        assert response.status_code == 400 and "Z" * 41 not in response.text, response.text[:300]
    many = http.post("/v1/predict", json={"model": "delay", "rows": [{"spi_recent": [1]}] * 500})
    assert many.status_code == 400 and len(many.json()["detail"]) <= 10  # 500 errors said in ten


ODD_IDS = [
    "项目-001",
    "\U0001f3d7\U0001f4a5",
    "P00142\x00",
    "\u202eP00142",
    "\u200f\u200e",
    " ",
    "P00142 ",
    "%00",
    "' OR 1=1",
]


@pytest.mark.parametrize("odd", ODD_IDS, ids=[repr(i) for i in ODD_IDS])
def test_odd_ids_are_answered_never_a_5xx(http, odd):
    requests = [
        ("/v1/risk", {"project_id": odd, "as_of": AS_OF}, "project_id"),
        ("/v1/risk/batch", {"project_ids": [odd], "as_of": AS_OF}, "project_ids"),
        ("/v1/trend", {"project_id": odd, "as_of": AS_OF}, "project_id"),
        ("/v1/facts", {"project_id": odd, "as_of": AS_OF}, "project_id"),
        ("/v1/features", {"project_id": odd, "milestone_id": AHEAD, "as_of": AS_OF}, "project_id"),
        ("/v1/whatif", {"project_id": PROJECT, "milestone_id": odd, "as_of": AS_OF, "changes": {}}, "milestone_id"),
        ("/v1/risk", {"project_id": PROJECT, "milestone_ids": [odd], "as_of": AS_OF}, "milestone_ids"),
    ]
    for route, request, field in requests:
        response = http.post(route, json=request)
        assert response.status_code == 404, (route, response.text)
        assert response.json()["field"] == field
    worklist = http.get("/v1/worklist", params={"department": odd})
    assert worklist.status_code == 400 and worklist.json()["field"] == "department"


MODEL_PATHS = ["models:/defect_risk/1", "runs:/0123/model", "file:///etc/passwd", "/tmp/model", "../delay", "churn "]


@pytest.mark.parametrize("named", MODEL_PATHS)
def test_a_model_is_named_never_loaded_from_a_request(http, named):
    """Models come from the configured store or the bento: a request names one of the three champions, and a
    path, a URI or anything else in its place is a 400 on ``model``, loading nothing."""
    response = http.post("/v1/predict", json={"model": named, "rows": [{"defects_open": 1}]})
    assert response.status_code == 400 and response.json()["field"] == "model", response.text


def test_huge_numbers_are_scored_and_flagged(http):
    rows = [{"defects_open": 1e308, "contract_value": 1e308, "spi_recent": 1e308}, {"days_to_milestone": -1e308}]
    response = http.post("/v1/predict", json={"model": "delay", "rows": rows})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert all(np.isfinite(p["expected_slip_days"]) for p in answer["predictions"])
    flagged = {(f["row"], f["feature"]) for f in answer["flags"] if f["flag"] == "outside_training_range"}
    assert {(0, "defects_open"), (0, "spi_recent"), (1, "days_to_milestone")} <= flagged
    whatif = http.post("/v1/whatif", json={**WHATIF, "changes": {"defects_open": 1e308, "days_to_milestone": -1e308}})
    assert whatif.status_code == 200, whatif.text


def test_values_a_feature_can_take_pass(http):
    """At the edges of their domains: zero counts, shares of 0 and 1, an overrun past the planned duration, a project
    ahead of plan, negative days and trends."""
    changes = {
        "defects_open": 0,
        "inspection_fail_rate_30d": 1,
        "overtime_share_recent": 0,
        "elapsed_share": 1.4,
        "milestones_behind_plan": -1,
        "days_to_milestone": -30,
        "csat_trend": -2,
    }
    assert http.post("/v1/whatif", json={**WHATIF, "changes": changes}).status_code == 200
    assert http.post("/v1/predict", json={"model": "defect_risk", "rows": [changes]}).status_code == 200


def test_every_value_the_features_compute_lies_in_its_domain(service):
    """The domains refuse nothing the features themselves produce: every training row of the sample world passes."""
    ctx = Context.build(service.engine.tables, service.engine.settings)
    specs = service.engine.feature_specs
    for target in ("defect_risk", "delay", "churn"):
        frame = build_dataset(target, ctx).frame
        for name, spec in specs.items():
            if name not in frame or spec.categorical:
                continue
            values = frame[name].to_numpy(dtype="float64")
            values = values[~np.isnan(values)]
            lo, hi = domain(name, spec)
            assert ((values >= lo) & (values <= hi)).all(), f"{target}: {name} ({spec.unit}) outside [{lo}, {hi}]"
            assert np.isfinite(values).all(), name


def test_out_of_domain_says_why(service):
    specs = service.engine.feature_specs
    assert out_of_domain("defects_open", specs["defects_open"], -2) == "a count cannot be negative, got -2"
    assert out_of_domain("overtime_share_recent", specs["overtime_share_recent"], 1.5).startswith("a share lies")
    assert "finite" in out_of_domain("spi_recent", specs["spi_recent"], float("inf"))
    assert out_of_domain("csat_trend", specs["csat_trend"], -3) is None
    assert out_of_domain("not_a_feature", None, -1e300) is None


def test_shown_cuts_long_values():
    assert shown("P00142") == "P00142"
    assert shown("x" * 41) == "x" * 39 + "…" and len(shown("x" * 10_000)) == 40
    assert shown(True) == "True"


# --------------------------------------------------------------------------------------------- BodyLimit, bare
def _run(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[dict], int]:
    """Call an ASGI app with a request of ``chunks``; the messages it sent and how many chunks it read."""
    read, sent = [0], []

    async def receive():
        if read[0] >= len(chunks):
            return {"type": "http.disconnect"}
        read[0] += 1
        return {"type": "http.request", "body": chunks[read[0] - 1], "more_body": read[0] < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent, read[0]


async def _echo(scope, receive, send) -> None:
    """An app that reads the whole body (like BentoML) and answers its size; a vanished client is an error."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away")
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def _status_and_body(sent: list[dict]) -> tuple[int, dict | bytes]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    status = sent[0]["status"]
    return status, (json.loads(body) if status != 200 else body)


def test_body_limit_refuses_a_declared_length_before_reading():
    sent, read = _run(BodyLimit(_echo, max_bytes=100), [(b"content-length", b"20000000")], [b"x" * 50] * 3)
    status, body = _status_and_body(sent)
    assert status == 413 and read == 0
    assert body == {"error": "body: 20,000,000 bytes; at most 100 a request (max_body_bytes)", "field": "body"}


def test_body_limit_stops_reading_a_streamed_body_at_the_limit():
    chunks = [b"x" * 40] * 1000  # 40 kB, chunked: no Content-Length
    sent, read = _run(BodyLimit(_echo, max_bytes=100), [], chunks)
    status, body = _status_and_body(sent)
    assert status == 413 and body["field"] == "body" and "at most 100" in body["error"]
    assert read == 3  # 120 bytes read: one chunk past the limit, not one more
    assert len([m for m in sent if m["type"] == "http.response.start"]) == 1  # the app's own answer never went out


def test_body_limit_passes_what_fits():
    sent, read = _run(BodyLimit(_echo, max_bytes=100), [(b"content-length", b"100")], [b"x" * 50, b"y" * 50])
    assert _status_and_body(sent) == (200, b"100") and read == 2
    assert _status_and_body(_run(BodyLimit(_echo, max_bytes=100), [], [b"x" * 100])[0]) == (200, b"100")


def test_body_limit_refuses_a_length_that_is_not_a_number():
    sent, _ = _run(BodyLimit(_echo, max_bytes=100), [(b"content-length", b"lots")], [b"x"])
    status, body = _status_and_body(sent)
    assert status == 400 and body["field"] == "body"


def test_a_bad_request_naming_a_percent_sign_is_logged_in_one_line():
    """A field a request names goes into the log line BentoML formats with its own arguments: a '%' in it (found
    by schemathesis: a what-if change named 'çï00¾%') must not break the formatting into a logging traceback."""
    import logging

    from pydantic import BaseModel, ValidationError

    from serving.service import BadRequestsInOneLine

    class Changes(BaseModel):
        changes: dict[str, float]

    with pytest.raises(ValidationError) as caught:
        Changes.model_validate({"changes": {"rate 5%s%": None}})
    record = logging.LogRecord("bentoml", logging.ERROR, __file__, 1, "Invalid request from %s", ("client",), None)
    record.exc_info = (ValidationError, caught.value, None)
    assert BadRequestsInOneLine().filter(record)
    said = record.getMessage()
    assert said.startswith("Invalid request from client: 400, changes.rate 5%s%") and record.levelname == "WARNING"
