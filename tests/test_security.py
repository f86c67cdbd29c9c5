"""Who may call the service (issue 12, section 5): API keys, CORS and security headers (:mod:`serving.security`).

The decisions as pure functions; :class:`serving.security.Guard` around a small stand-in app (fast) and around the
real service app of the session (``served``); and a real `eqsms serve` with keys and a dashboard origin in its
environment, its log searched for the keys, and Chromium on the board and the API page (slow).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from eqsms.settings import Settings
from serving import security
from serving.security import (
    ADMIN,
    API,
    BOARD_CSP,
    OPEN,
    Guard,
    Keys,
    cors_headers,
    describe,
    digest,
    key_matches,
    path_kind,
    preflight_headers,
    presented_key,
    refusal,
    security_headers,
)

with warnings.catch_warnings():  # starlette 1.x asks for httpx2; the test client works the same with httpx
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

UI = Path(__file__).resolve().parent.parent / "serving" / "ui"
KEY_1, KEY_2, ADMIN_KEY = "k1-rotating-out-7fbd2c", "k2-rotating-in-91e4aa", "admin-only-5c03d8"
WRONG = "not-a-key-4e1f09"
DASHBOARD, OTHER = "https://dash.example.com", "https://evil.example.net"


def keyed(**more) -> Settings:
    """Settings with two API keys (one being rotated out), an admin key and a dashboard origin."""
    return Settings(api_keys=f"{KEY_1},{KEY_2}", admin_keys=ADMIN_KEY, cors_origins=DASHBOARD, **more)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ----------------------------------------------------------------------------------------------- settings
def test_keys_come_from_the_environment_comma_separated_or_as_a_json_list(monkeypatch):
    monkeypatch.setenv("EQSMS_API_KEYS", f" {KEY_1} , {KEY_2},")
    monkeypatch.setenv("EQSMS_ADMIN_KEYS", json.dumps([ADMIN_KEY]))
    monkeypatch.setenv("EQSMS_CORS_ORIGINS", f"{DASHBOARD},http://localhost:8080")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == [KEY_1, KEY_2]
    assert [k.get_secret_value() for k in settings.admin_keys] == [ADMIN_KEY]
    assert settings.cors_origins == [DASHBOARD, "http://localhost:8080"]
    assert settings.metrics_need_key is False


def test_no_key_is_ever_printed_by_the_settings():
    settings = keyed()
    for text in (repr(settings), str(settings), settings.model_dump_json(), describe(settings)):
        assert KEY_1 not in text and KEY_2 not in text and ADMIN_KEY not in text
    assert "2 API, 1 admin" in describe(settings)


def test_no_keys_by_default_and_blank_ones_are_no_keys(monkeypatch):
    assert Settings().api_keys == [] and Settings().admin_keys == [] and Settings().cors_origins == []
    monkeypatch.setenv("EQSMS_API_KEYS", " , ")
    assert not Keys.from_settings(Settings()).any


def test_a_garbled_key_list_fails_closed_and_is_not_echoed(monkeypatch):
    """A JSON list with a typo is read as comma-separated keys nobody holds: every call is refused, none echoed."""
    monkeypatch.setenv("EQSMS_API_KEYS", f'["{KEY_1}",')
    keys = Keys.from_settings(Settings())
    assert keys.any and not key_matches(KEY_1.encode(), keys.api)


@pytest.mark.parametrize("origin", ["https://dash.example.com/", "dash.example.com", "*", "https://a.b/path"])
def test_an_origin_must_be_scheme_host_and_port(origin):
    with pytest.raises(ValidationError, match="not an origin"):
        Settings(cors_origins=origin)


# -------------------------------------------------------------------------------------------------- paths
@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/livez", OPEN),
        ("/readyz", OPEN),
        ("/healthz", OPEN),
        ("/metrics", OPEN),
        ("/", OPEN),
        ("/docs.json", OPEN),
        ("/docs-init.js", OPEN),
        ("/schema.json", OPEN),
        ("/static_content/swagger-ui.css", OPEN),
        ("/ui", OPEN),
        ("/ui/", OPEN),
        ("/ui/app.js", OPEN),
        ("/ui/strings.js", OPEN),
        ("/v1/risk", API),
        ("/v1/portfolio", API),
        ("/v1/ui/strings", API),
        ("/v1", API),
        ("/anything-else", API),
        ("/livez/", API),
        ("/ui/./app.js", API),
        ("/ui/../v1/portfolio", API),
        ("/v1/admin", ADMIN),
        ("/v1/admin/reload", ADMIN),
        ("/V1/Admin/reload", ADMIN),
        ("//v1//admin/reload", ADMIN),
        ("/ui/../v1/admin/reload", ADMIN),
        ("/v1/x/../admin/reload", ADMIN),
    ],
)
def test_what_each_path_needs(path, kind):
    assert path_kind(path) == kind


def test_metrics_can_need_a_key_and_health_never_does():
    assert path_kind("/metrics", metrics_need_key=True) == API
    assert path_kind("/livez", metrics_need_key=True) == OPEN


# --------------------------------------------------------------------------------------------------- keys
@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ([(b"authorization", b"Bearer abc")], b"abc"),
        ([(b"authorization", b"bearer   abc ")], b"abc"),
        ([(b"x-api-key", b"abc")], b"abc"),
        ([(b"authorization", b"Bearer abc"), (b"x-api-key", b"other")], b"abc"),
        ([(b"authorization", b"Basic YTpi"), (b"x-api-key", b"abc")], b"abc"),
        ([(b"authorization", b"Basic YTpi")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([(b"x-api-key", b"")], None),
        ([], None),
    ],
)
def test_the_key_a_request_sends(headers, key):
    assert presented_key(headers) == key


def test_either_rotated_key_matches_and_nothing_else_does():
    keys = Keys.from_settings(keyed())
    assert key_matches(KEY_1.encode(), keys.api) and key_matches(KEY_2.encode(), keys.api)
    for wrong in (b"", None, KEY_1[:-1].encode(), KEY_1.encode() + b"x", ADMIN_KEY.encode()):
        assert not key_matches(wrong, keys.api)


def test_keys_are_compared_with_every_configured_key_in_constant_time(monkeypatch):
    """compare_digest on equal-length digests, once for every key, even when the first one matches."""
    calls = []

    def counted(a, b):
        calls.append((len(a), len(b)))
        return a == b

    monkeypatch.setattr(security.hmac, "compare_digest", counted)
    digests = tuple(digest(k) for k in (KEY_1, KEY_2, "third-key"))
    assert key_matches(KEY_1.encode(), digests)
    assert calls == [(32, 32)] * 3


@pytest.mark.parametrize(
    ("kind", "key", "answer"),
    [
        (OPEN, None, None),
        (API, None, 401),
        (API, "wrong", 401),
        (API, KEY_1, None),
        (API, KEY_2, None),
        (API, ADMIN_KEY, None),
        (ADMIN, None, 401),
        (ADMIN, "wrong", 401),
        (ADMIN, KEY_1, 403),
        (ADMIN, ADMIN_KEY, None),
    ],
)
def test_who_may_pass(kind, key, answer):
    refused = refusal(kind, None if key is None else key.encode(), Keys.from_settings(keyed()))
    assert (refused and refused[0]) == answer


def test_without_keys_everything_is_open_even_admin():
    assert refusal(ADMIN, None, Keys()) is None and refusal(API, b"anything", Keys()) is None


def test_an_admin_key_alone_closes_the_api_too():
    keys = Keys.from_settings(Settings(admin_keys=[SecretStr(ADMIN_KEY)]))
    assert refusal(API, None, keys)[0] == 401 and refusal(API, ADMIN_KEY.encode(), keys) is None


# ------------------------------------------------------------------------------------------------ headers
def test_security_headers_by_path():
    for path in ("/ui/", "/ui/app.js", "/"):
        assert dict(security_headers(path))[b"content-security-policy"] == BOARD_CSP.encode()
    api = dict(security_headers("/v1/risk"))
    assert api[b"content-security-policy"].startswith(b"default-src 'none'")
    assert api[b"x-content-type-options"] == b"nosniff" and api[b"x-frame-options"] == b"DENY"
    assert api[b"referrer-policy"] == b"no-referrer"
    assert "'unsafe-inline'" not in BOARD_CSP and "'unsafe-eval'" not in BOARD_CSP


def test_cors_headers_only_for_a_listed_origin_matched_exactly():
    allowed = frozenset({DASHBOARD})
    assert dict(cors_headers(DASHBOARD, allowed)) == {
        b"access-control-allow-origin": DASHBOARD.encode(),
        b"vary": b"Origin",
    }
    for other in (OTHER, DASHBOARD + ":443", DASHBOARD.upper(), "null", None):
        assert cors_headers(other, allowed) == [(b"vary", b"Origin")]
        assert preflight_headers(other, allowed) is None
    assert cors_headers(DASHBOARD, frozenset()) == []
    preflight = dict(preflight_headers(DASHBOARD, allowed))
    assert preflight[b"access-control-allow-methods"] == b"GET, POST"
    assert preflight[b"access-control-allow-headers"] == b"Authorization, Content-Type, X-API-Key"
    assert int(preflight[b"access-control-max-age"]) > 0


# ------------------------------------------------------------------------------ the middleware, stand-in app
def stand_in() -> Starlette:
    """The service's shape: reads and an admin endpoint under /v1, health, metrics, docs and the board's files."""

    async def data(request: Request) -> JSONResponse:
        return JSONResponse({"risk": 0.42, "path": request.url.path})

    async def text(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"vary": "Accept-Encoding", "x-frame-options": "SAMEORIGIN"})

    return Starlette(
        routes=[
            Route("/v1/risk", data, methods=["POST"]),
            Route("/v1/portfolio", data),
            Route("/v1/admin/reload", data, methods=["POST"]),
            Route("/livez", text),
            Route("/metrics", text),
            Route("/docs.json", data),
            Mount("/ui", StaticFiles(directory=UI, html=True)),
        ]
    )


@pytest.fixture
def guarded() -> TestClient:
    return TestClient(Guard(stand_in(), keyed()))


def test_no_key_or_a_wrong_one_gets_401_naming_authorization_and_no_data(guarded):
    for headers in ({}, bearer("wrong"), {"X-API-Key": "wrong"}, {"Authorization": f"Basic {KEY_1}"}):
        answer = guarded.post("/v1/risk", json={}, headers=headers)
        assert answer.status_code == 401
        assert set(answer.json()) == {"error", "field"} and answer.json()["field"] == "authorization"
        assert answer.headers["www-authenticate"] == "Bearer" and answer.headers["cache-control"] == "no-store"
        assert "0.42" not in answer.text
    assert guarded.get("/v1/portfolio").status_code == 401


def test_either_rotated_key_passes_by_either_header(guarded):
    for headers in (bearer(KEY_1), bearer(KEY_2), {"X-API-Key": KEY_2}, bearer(ADMIN_KEY)):
        answer = guarded.post("/v1/risk", json={}, headers=headers)
        assert answer.status_code == 200 and answer.json()["risk"] == 0.42


def test_admin_endpoints_need_an_admin_key(guarded):
    assert guarded.post("/v1/admin/reload", headers=bearer(KEY_1)).status_code == 403
    assert guarded.post("/v1/admin/reload", headers=bearer(KEY_1)).json()["field"] == "authorization"
    assert guarded.post("/v1/admin/reload").status_code == 401
    assert guarded.post("/v1/admin/reload", headers=bearer(ADMIN_KEY)).status_code == 200


def test_health_metrics_docs_and_the_boards_files_stay_open(guarded):
    for path in ("/livez", "/metrics", "/docs.json", "/ui/", "/ui/app.js", "/ui/key.js"):
        assert guarded.get(path).status_code == 200, path
    closed = TestClient(Guard(stand_in(), keyed(metrics_need_key=True)))
    assert closed.get("/metrics").status_code == 401 and closed.get("/livez").status_code == 200
    assert closed.get("/metrics", headers=bearer(KEY_1)).status_code == 200


def test_without_keys_everything_is_open_as_before():
    client = TestClient(Guard(stand_in(), Settings()))
    assert client.post("/v1/risk", json={}).status_code == 200
    assert client.post("/v1/admin/reload").status_code == 200


def test_security_headers_on_every_answer_replacing_the_apps(guarded):
    for path, csp in (("/ui/", BOARD_CSP), ("/livez", None), ("/v1/portfolio", None)):
        for headers in ({}, bearer(KEY_1)):
            answer = guarded.get(path, headers=headers)
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"  # the app's SAMEORIGIN replaced
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert answer.headers["content-security-policy"] == (csp or security.API_CSP)
    assert "Accept-Encoding" in guarded.get("/livez").headers["vary"]  # the app's Vary kept, Origin added


def test_cors_for_the_dashboard_origin_only(guarded):
    ok = guarded.post("/v1/risk", json={}, headers={"Origin": DASHBOARD, **bearer(KEY_1)})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == DASHBOARD
    refused = guarded.post("/v1/risk", json={}, headers={"Origin": DASHBOARD})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == DASHBOARD  # readable
    other = guarded.post("/v1/risk", json={}, headers={"Origin": OTHER, **bearer(KEY_1)})
    assert other.status_code == 200 and not any(h.startswith("access-control-") for h in other.headers)


def test_preflight_answered_for_the_dashboard_without_a_key(guarded):
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    answer = guarded.options("/v1/risk", headers={"Origin": DASHBOARD, **asked})
    assert answer.status_code == 204 and answer.content == b""
    assert answer.headers["access-control-allow-origin"] == DASHBOARD
    assert answer.headers["access-control-allow-methods"] == "GET, POST"
    assert "Authorization" in answer.headers["access-control-allow-headers"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    other = guarded.options("/v1/risk", headers={"Origin": OTHER, **asked})
    assert other.status_code == 401 and not any(h.startswith("access-control-") for h in other.headers)


def test_no_key_in_the_log(guarded, caplog):
    with caplog.at_level(logging.DEBUG):
        client = TestClient(Guard(stand_in(), keyed()))
        for key in (KEY_1, "wrong-key-value"):
            client.post("/v1/risk", json={}, headers=bearer(key))
    assert "needs a key" in caplog.text
    for key in (KEY_1, KEY_2, ADMIN_KEY, "wrong-key-value"):
        assert key not in caplog.text


def test_a_websocket_without_a_key_is_closed():
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with TestClient(Guard(stand_in(), keyed())).websocket_connect("/v1/anything"):
            pass


# --------------------------------------------------------------------------- the middleware, the real app
@pytest.fixture(scope="module")
def real(served) -> TestClient:
    """The session's service app (``served``) inside the guard, as the service registers it. No lifespan: the
    session's client already started it (BentoML registers its metrics once a process)."""
    return TestClient(Guard(served[1].app, keyed()))


def test_the_real_service_asks_for_a_key(real):
    body = {"project_id": "P00142", "as_of": "2023-06-01", "top_k": 1}
    refused = real.post("/v1/risk", json=body)
    assert refused.status_code == 401 and "milestones" not in refused.text
    assert real.get("/v1/portfolio").status_code == 401
    answer = real.post("/v1/risk", json=body, headers=bearer(KEY_2))
    assert answer.status_code == 200 and answer.json()["milestones"]
    assert answer.headers["content-security-policy"] == security.API_CSP
    unknown = real.post("/v1/risk", json={"project_id": "P99999"}, headers=bearer(KEY_1))
    assert unknown.status_code == 404 and unknown.json()["field"] == "project_id"  # the service's own errors pass
    assert real.get("/v1/portfolio", headers={"X-API-Key": KEY_1}).json()["projects"]


def test_the_real_board_and_docs_are_open_with_their_policy(real):
    for path in ("/ui/", "/ui/strings.js", "/", "/docs.json", "/livez"):
        answer = real.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["x-frame-options"] == "DENY"
    assert real.get("/ui/").headers["content-security-policy"] == BOARD_CSP
    assert real.get("/").headers["content-security-policy"] == BOARD_CSP


def test_the_service_puts_the_guard_outermost():
    """The guard must come before every other middleware of the service (first registered is outermost), so the
    pages ApiPages answers itself get its headers too."""
    from serving.service import RiskService

    assert RiskService.middlewares[0][0] is Guard


# --------------------------------------------------------------------------------------------- real server
@pytest.fixture(scope="module")
def keyed_server(champions, tmp_path_factory):
    from tests.live import serve

    log = tmp_path_factory.mktemp("keyed-serve") / "serve.log"
    env = champions.env(
        EQSMS_API_KEYS=f"{KEY_1},{KEY_2}",
        EQSMS_ADMIN_KEYS=json.dumps([ADMIN_KEY]),
        EQSMS_CORS_ORIGINS=DASHBOARD,
        EQSMS_SERVE_WORKERS="1",
    )
    server = serve(env, log)
    yield server
    server.stop()


def fetch(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    """The status, the headers (lower-case names) and the body of one request."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


@pytest.mark.slow
def test_a_real_server_with_keys(keyed_server):
    base = keyed_server.base
    body = {"project_id": "P00142", "as_of": "2023-06-01", "top_k": 1}
    for headers in ({}, bearer(WRONG), {"X-API-Key": WRONG}):
        status, told, content = fetch(f"{base}/v1/risk", "POST", body, headers)
        assert status == 401 and json.loads(content)["field"] == "authorization" and b"milestones" not in content
        assert told["www-authenticate"] == "Bearer"
    for key in (KEY_1, KEY_2):
        status, told, content = fetch(f"{base}/v1/risk", "POST", body, bearer(key))
        assert status == 200 and json.loads(content)["milestones"]
        assert told["x-content-type-options"] == "nosniff" and told["x-frame-options"] == "DENY"
        assert told["content-security-policy"] == security.API_CSP and told["referrer-policy"] == "no-referrer"
    assert fetch(f"{base}/v1/portfolio", headers={"X-API-Key": KEY_2})[0] == 200
    assert fetch(f"{base}/v1/portfolio")[0] == 401
    status, _, content = fetch(f"{base}/v1/admin/reload", "POST", {}, bearer(KEY_1))
    assert status == 403 and json.loads(content)["field"] == "authorization"
    assert fetch(f"{base}/v1/admin/reload", "POST", {})[0] == 401

    for path in ("/livez", "/readyz", "/metrics", "/", "/docs.json", "/ui/", "/ui/app.js", "/ui/strings.js"):
        assert fetch(f"{base}{path}")[0] == 200, path
    status, told, _ = fetch(f"{base}/ui/")
    assert told["content-security-policy"] == BOARD_CSP and told["x-frame-options"] == "DENY"

    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    status, told, _ = fetch(f"{base}/v1/risk", "OPTIONS", None, {"Origin": DASHBOARD, **asked})
    assert status == 204 and told["access-control-allow-origin"] == DASHBOARD
    assert told["access-control-allow-methods"] == "GET, POST"
    status, told, _ = fetch(f"{base}/v1/risk", "OPTIONS", None, {"Origin": OTHER, **asked})
    assert status == 401 and "access-control-allow-origin" not in told
    status, told, _ = fetch(f"{base}/v1/risk", "POST", body, {"Origin": DASHBOARD, **bearer(KEY_1)})
    assert status == 200 and told["access-control-allow-origin"] == DASHBOARD
    status, told, _ = fetch(f"{base}/v1/risk", "POST", body, {"Origin": OTHER, **bearer(KEY_1)})
    assert status == 200 and not any(h.startswith("access-control-") for h in told)

    log = keyed_server.log.read_text()
    assert "needs a key (2 API, 1 admin)" in log
    for key in (KEY_1, KEY_2, ADMIN_KEY, WRONG):
        assert key not in log, "a key in the server's log"


@pytest.mark.slow
def test_the_api_document_says_how_to_send_a_key(keyed_server):
    """With keys set, every /v1 operation requires one of the two schemes the guard reads, and says 401 (403 for
    the admin endpoints); schemathesis, on the keyless service, reads the same schemes as optional."""
    spec = json.loads(fetch(f"{keyed_server.base}/docs.json")[2])
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerKey"]["scheme"] == "bearer" and schemes["apiKeyHeader"]["name"] == "X-API-Key"
    operations = {
        (path, m): op for path, item in spec["paths"].items() if path.startswith("/v1/") for m, op in item.items()
    }
    assert ("/v1/risk", "post") in operations
    for (path, _), operation in operations.items():
        assert operation["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}], path
        assert "401" in operation["responses"], path
        assert ("403" in operation["responses"]) == path.startswith("/v1/admin"), path


def test_without_keys_the_document_makes_the_key_optional():
    from serving.openapi import rewrite_spec

    spec = rewrite_spec({"paths": {"/v1/risk": {"post": {"responses": {"200": {"description": "ok"}}}}}})
    operation = spec["paths"]["/v1/risk"]["post"]
    assert {} in operation["security"] and "401" not in operation["responses"]


@pytest.mark.slow
def test_the_commands_send_the_key_in_settings(keyed_server, monkeypatch):
    """`eqsms risk --url` and `eqsms reload --url` send EQSMS_API_KEY; without it, or with an ordinary key for a
    reload, they say what to set in one line (exit 2)."""
    from typer.testing import CliRunner

    from eqsms.cli import app

    def run(*args: str, key: str | None):
        if key is None:
            monkeypatch.delenv("EQSMS_API_KEY", raising=False)
        else:
            monkeypatch.setenv("EQSMS_API_KEY", key)
        return CliRunner().invoke(app, [*args, "--url", keyed_server.base])

    risk = ("risk", "P00142", "--as-of", "2023-06-01", "--json")
    refused = run(*risk, key=None)
    assert refused.exit_code == 2 and "asks for a key" in refused.output and "EQSMS_API_KEY" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    wrong = run(*risk, key=WRONG)
    assert wrong.exit_code == 2 and "was refused" in wrong.output and WRONG not in wrong.output
    answered = run(*risk, key=KEY_2)
    assert answered.exit_code == 0 and json.loads(answered.output)["project_id"] == "P00142"
    worklist = run("worklist", "--department", "quality", "--json", key=KEY_1)
    assert worklist.exit_code == 0 and json.loads(worklist.output)["department"] == "quality"
    ordinary = run("reload", key=KEY_1)
    assert ordinary.exit_code == 2 and "not an admin key" in ordinary.output
    reloaded = run("reload", key=ADMIN_KEY)
    assert reloaded.exit_code == 0 and "reloaded" in reloaded.output


@pytest.mark.slow
def test_the_board_asks_for_the_key_once_and_no_page_breaks_its_policy(keyed_server, tmp_path):
    """Chromium: the board shows the key form, refuses a wrong key, loads the portfolio with a right one; neither
    the board nor the API page (Swagger UI, an operation opened and tried) breaks its content security policy."""
    from tests import browser

    browser.require()
    with browser.chromium() as launched:
        page = browser.open_page(launched)
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text) if m.text.startswith("CSP ") else None)
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation',"
            " e => console.log('CSP ' + e.violatedDirective + ' ' + e.blockedURI))"
        )
        page.goto(f"{keyed_server.base}/ui/")
        page.wait_for_selector("dialog.key-dialog", timeout=20_000)
        page.fill("#api-key", WRONG)
        page.click("dialog button[type=submit]")
        page.wait_for_selector("dialog .key-refused", timeout=20_000)
        page.fill("#api-key", KEY_2)
        page.click("dialog button[type=submit]")
        page.wait_for_selector("table tbody tr", timeout=30_000)
        assert page.locator("dialog").count() == 0
        page.screenshot(path=str(tmp_path / "board-with-key.png"))
        page.goto(f"{keyed_server.base}/ui/#/project/P00142")  # the same tab: the key is kept
        page.wait_for_selector(".card.milestone", timeout=30_000)
        assert page.locator("dialog").count() == 0

        page.goto(f"{keyed_server.base}/")
        page.wait_for_selector("#swagger-ui .info", timeout=20_000)
        page.click(".opblock-summary >> nth=0")
        page.click(".try-out__btn")
        page.click(".execute")
        page.wait_for_selector(".responses-wrapper .response", timeout=20_000)
        page.wait_for_timeout(500)
        assert violations == []
