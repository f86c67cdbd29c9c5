"""Schemathesis against a live `eqsms serve` (issue 12, §3): requests generated from the OpenAPI document the
service publishes (``/docs.json``), valid and invalid, at every endpoint; no answer is a 5xx, and every answer
matches the schema published for its status.

100 cases an operation that takes parameters, valid and invalid, about 1,000 in all (about three minutes).
"""

from __future__ import annotations

import socket
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from serving import local
from tests.conftest import SERVED_MAX_BATCH

EXAMPLES = 100  # cases an operation with parameters (10 of them; 6 take none and run once): about 1,000
ADMIN_EXAMPLES = 5  # a reload loads the data and the models again: a few are enough to see it answer


@pytest.fixture(scope="module")
def live(champions, tmp_path_factory):
    """`eqsms serve` on a free port, on the champions (max_batch_projects small, so the limit is reached)."""
    port = local.free_port()
    log = tmp_path_factory.mktemp("schemathesis") / "serve.log"
    env = champions.env(EQSMS_MAX_BATCH_PROJECTS=str(SERVED_MAX_BATCH), EQSMS_SERVE_WORKERS="2")
    process = local.start(port, env, log)
    base = f"http://{local.HOST}:{port}"
    try:
        local.wait_ready(base, process)
        yield base
    finally:
        local.stop(process)
        if "Traceback" in log.read_text(errors="replace"):
            pytest.fail(f"the server logged a traceback: {log}")


def _fuzz(operation, base: str, examples: int, cases: Counter) -> None:
    """``examples`` generated requests, valid and invalid, to one operation; raises on the first failed check."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=examples, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(operation.as_strategy(mode) for mode in GenerationMode))
    def run(case) -> None:
        cases[label] += 1
        response = case.call(base_url=base, timeout=60)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()


@pytest.mark.slow
def test_generated_requests_get_no_5xx_and_match_the_schema(live):
    """Every operation of the live document: EXAMPLES cases each, half valid and half invalid requests (schemathesis
    4's strategies under hypothesis; its pytest plugin's ``from_fixture`` does not run under pytest 9)."""
    published = schemathesis.openapi.from_url(f"{live}/docs.json", timeout=30)
    operations = [result.ok() for result in published.get_all_operations()]
    cases: Counter = Counter()
    failures: dict[str, str] = {}
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        examples = ADMIN_EXAMPLES if operation.path.startswith("/v1/admin/") else EXAMPLES
        try:
            _fuzz(operation, live, examples, cases)
        except (Exception, BaseExceptionGroup) as err:  # every operation is tried; the failures are reported together
            failures[label] = f"{type(err).__name__}: {err}"[:3000]
    print(f"schemathesis: {sum(cases.values())} cases: {dict(sorted(cases.items()))}")
    assert not failures, "\n\n".join(f"{label}\n{said}" for label, said in failures.items())
    assert set(cases) == {f"{op.method.upper()} {op.path}" for op in operations}
    assert sum(cases.values()) >= 1000


@pytest.mark.slow
def test_a_huge_declared_body_is_refused_before_it_is_sent(live):
    """A client declares 20 MB and sends a few bytes: the server answers 413 at once, without waiting for the rest,
    and goes on answering."""
    host, port = local.HOST, int(live.rsplit(":", 1)[1])
    with socket.create_connection((host, port), timeout=10) as conn:
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {20 * 1024 * 1024}\r\n\r\n"
        )
        conn.sendall(head.encode() + b'{"model": "delay", "rows": [')
        answer = b""
        while chunk := conn.recv(4096):  # the server closes the connection after its answer
            answer += chunk
        answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"field": "body"' in answer or '"field":"body"' in answer
    status, _ = local.call(f"{live}/v1/predict", {"model": "delay", "rows": [{}]})
    assert status == 200
