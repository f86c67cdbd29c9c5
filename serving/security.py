"""Who may call the service, from which pages, and what a browser may do with its answers (issue 12, section 5).

:class:`Guard` (ASGI middleware, the outermost of the service's own) does three things on every request:

- **Keys.** When settings name any key (``api_keys``, ``admin_keys``), every path not listed open needs one, sent as
  ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``: all of ``/v1``, and anything unknown. No key or a wrong
  one gets 401 ``{"error": "authorization: ...", "field": "authorization"}`` and nothing else; ``/v1/admin/...``
  needs an admin key (a valid API key gets 403). Open: the health endpoints, ``/metrics`` (unless
  ``metrics_need_key``), the API's documentation (``/``, ``/docs.json``, ``/schema.json``, their scripts and
  styles: they describe the API, as the source does, and hold no data) and the board's static files under ``/ui/``
  (no data either: the board asks for a key when its first API call gets a 401, and sends it with every call).
- **CORS.** Only the dashboard origins in ``cors_origins`` (matched exactly) get ``Access-Control-Allow-Origin``;
  their preflights are answered here (GET and POST; Authorization, Content-Type and X-API-Key). Any other origin
  gets no CORS header, so its browser keeps the answer from its page.
- **Headers.** Every answer says ``nosniff``, ``DENY`` to frames and ``no-referrer``, with a content security
  policy: no inline scripts or styles for the board and the API's page at ``/``, nothing at all for the rest.

Keys are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every configured key without stopping
at a match, so the time taken tells neither a key nor its length. No key is ever logged: the start-up line counts
them. The decisions are the small pure functions below (:func:`path_kind`, :func:`presented_key`, :func:`refusal`,
:func:`security_headers`, :func:`cors_headers`, :func:`preflight_headers`); :class:`Guard` only applies them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eqsms.settings import Settings, get_settings

logger = logging.getLogger("bentoml.service.eqsms")

Headers = list[tuple[bytes, bytes]]  # ASGI's raw headers: lower-case names

OPEN, API, ADMIN = "open", "api", "admin"  # what a path needs when keys are set: nothing, any key, an admin key
_RANK = (OPEN, API, ADMIN)
HEALTH = frozenset({"/livez", "/readyz", "/healthz"})
DOCS = frozenset({"/", "/docs.json", "/docs-init.js", "/schema.json"})
OPEN_FOLDERS = ("/static_content/", "/ui/")  # Swagger UI's files; the board's files (no data in either)
ADMIN_ROOT = "/v1/admin"

BOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Swagger UI (BentoML's static_content, loaded by `/`) renders, opens operations and runs "Try it out" under the
# board's policy without a violation (checked in Chromium by tests/test_security.py): its React code sets styles
# through the DOM, which a policy allows, so it needs no 'unsafe-inline'.
DOCS_CSP = BOARD_CSP
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# `eqsms monitor`'s page (self-contained: its own inline styles, no script, nothing loaded from anywhere).
MONITOR_PAGE = "/v1/monitor"
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
ALWAYS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]

CORS_METHODS = "GET, POST"
CORS_HEADERS = "Authorization, Content-Type, X-API-Key"
CORS_MAX_AGE = 600  # seconds a browser may keep a preflight's answer

NO_KEY = "an API key is needed: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
WRONG_KEY = "the API key is not valid"
NOT_ADMIN = "this endpoint needs an admin key"


# ------------------------------------------------------------------------------------------------------ paths
def path_kind(path: str, metrics_need_key: bool = False) -> str:
    """What ``path`` needs when keys are set: :data:`OPEN`, :data:`API` (any valid key) or :data:`ADMIN`. Anything
    not named open needs a key. A path with ``.`` or ``..`` segments is judged by the stricter of itself and its
    normal form, so no spelling of an admin path passes as an open one."""
    kinds = {_kind(path, metrics_need_key), _kind(_normal(path), metrics_need_key)}
    return max(kinds, key=_RANK.index)


def _normal(path: str) -> str:
    squeezed = re.sub("/{2,}", "/", path)
    normal = posixpath.normpath(squeezed) if squeezed else "/"
    return normal + "/" if squeezed.endswith("/") and normal != "/" else normal


def _kind(path: str, metrics_need_key: bool) -> str:
    p = path.lower()
    if p == ADMIN_ROOT or p.startswith(ADMIN_ROOT + "/"):
        return ADMIN
    if "/." in p:  # a dot segment (or a hidden file): never open
        return API
    if p in HEALTH or p in DOCS or p == "/ui" or p.startswith(OPEN_FOLDERS):
        return OPEN
    if p == "/metrics" and not metrics_need_key:
        return OPEN
    return API


# ------------------------------------------------------------------------------------------------------- keys
def digest(key: str | bytes) -> bytes:
    """A key's SHA-256: the form keys are kept and compared in (equal lengths, whatever the key's)."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


@dataclass(frozen=True)
class Keys:
    """The configured keys' digests: any of ``api`` or ``admin`` reads; only ``admin`` calls admin endpoints."""

    api: tuple[bytes, ...] = ()
    admin: tuple[bytes, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        api = tuple(digest(k.get_secret_value()) for k in settings.api_keys)
        return cls(api, tuple(digest(k.get_secret_value()) for k in settings.admin_keys))

    @property
    def any(self) -> bool:
        return bool(self.api or self.admin)


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request sends: ``Authorization: Bearer <key>`` (scheme in any case), else ``X-API-Key: <key>``."""
    bearer = api_key = None
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"authorization" and bearer is None:
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = token.strip()
        elif name == b"x-api-key" and api_key is None and value.strip():
            api_key = value.strip()
    return bearer or api_key


def key_matches(presented: bytes | None, digests: Sequence[bytes]) -> bool:
    """Whether the key is one of ``digests``: compared with every one, in constant time, without stopping early."""
    if not presented:
        return False
    mine = digest(presented)
    found = False
    for known in digests:
        found |= hmac.compare_digest(mine, known)
    return found


def refusal(kind: str, presented: bytes | None, keys: Keys) -> tuple[int, str] | None:
    """None when a request to a path of ``kind`` with key ``presented`` may pass, else its status and why."""
    if kind == OPEN or not keys.any:
        return None
    if presented is None:
        return 401, NO_KEY
    is_admin = key_matches(presented, keys.admin)
    is_api = key_matches(presented, keys.api)  # both compared always: the time says nothing about which
    if not (is_admin or is_api):
        return 401, WRONG_KEY
    if kind == ADMIN and not is_admin:
        return 403, NOT_ADMIN
    return None


# ---------------------------------------------------------------------------------------------------- headers
def security_headers(path: str) -> Headers:
    """The headers every answer to ``path`` carries: its content security policy and :data:`ALWAYS`."""
    p = path.lower()
    csp = DOCS_CSP if p == "/" else BOARD_CSP if p == "/ui" or p.startswith("/ui/") else API_CSP
    csp = REPORT_CSP if p == MONITOR_PAGE else csp
    return [(b"content-security-policy", csp.encode()), *ALWAYS]


def cors_headers(origin: str | None, allowed: frozenset[str]) -> Headers:
    """``Access-Control-Allow-Origin`` for an allowed origin (exactly as listed); nothing for any other; and, when
    origins are listed at all, ``Vary: Origin`` so that no cache hands one origin's answer to another."""
    vary: Headers = [(b"vary", b"Origin")] if allowed else []
    if origin is None or origin not in allowed:
        return vary
    return [(b"access-control-allow-origin", origin.encode()), *vary]


def preflight_headers(origin: str | None, allowed: frozenset[str]) -> Headers | None:
    """The answer's headers to an allowed origin's preflight (``OPTIONS`` with ``Access-Control-Request-Method``);
    None for any other origin (its preflight goes on like any request, and gets no CORS header)."""
    if origin is None or origin not in allowed:
        return None
    return [
        *cors_headers(origin, allowed),
        (b"access-control-allow-methods", CORS_METHODS.encode()),
        (b"access-control-allow-headers", CORS_HEADERS.encode()),
        (b"access-control-max-age", str(CORS_MAX_AGE).encode()),
    ]


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _stamped(headers: Headers, extra: Headers) -> Headers:
    """``headers`` with ``extra``'s: each of ours replaces the app's of the same name, except Vary, which adds."""
    ours = {name for name, _ in extra} - {b"vary"}
    return [(k, v) for k, v in headers if k.lower() not in ours] + extra


# ------------------------------------------------------------------------------------------------- middleware
class Guard:
    """ASGI middleware: keys, CORS and security headers as the module says; settings read once, when made."""

    def __init__(self, app, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        self.app = app
        self.keys = Keys.from_settings(settings)
        self.origins = frozenset(settings.cors_origins)
        self.metrics_need_key = settings.metrics_need_key
        logger.info("EQSMS Risk access: %s", describe(settings))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            kind = path_kind(scope["path"], self.metrics_need_key)
            if refusal(kind, presented_key(scope["headers"]), self.keys) is not None:
                await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, headers = scope["path"], scope["headers"]
        origin = _origin(headers)
        extra = security_headers(path)
        if scope["method"] == "OPTIONS" and _header(headers, b"access-control-request-method") is not None:
            preflight = preflight_headers(origin, self.origins)
            if preflight is not None:
                await _reply(send, 204, b"", preflight + extra)
                return
        extra += cors_headers(origin, self.origins)
        refused = refusal(path_kind(path, self.metrics_need_key), presented_key(headers), self.keys)
        if refused is not None:
            status, message = refused
            body = json.dumps({"error": f"authorization: {message}", "field": "authorization"}).encode()
            told = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
            if status == 401:
                told.append((b"www-authenticate", b"Bearer"))
            await _reply(send, status, body, told + extra)
            return

        async def stamp(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _stamped(list(message.get("headers", [])), extra)}
            await send(message)

        await self.app(scope, receive, stamp)


def describe(settings: Settings) -> str:
    """One line on who may call the service, for the log: counts of keys, never a key."""
    if not settings.api_keys and not settings.admin_keys:
        access = "no API key set: /v1 and the board are open to anyone who can reach the server"
    else:
        admin = f"{len(settings.admin_keys)} admin" if settings.admin_keys else "no admin key: admin endpoints closed"
        metrics = ", /metrics too" if settings.metrics_need_key else ""
        access = f"/v1 needs a key ({len(settings.api_keys)} API, {admin}{metrics})"
    origins = ", ".join(settings.cors_origins) or "none"
    return f"{access}; cross-origin pages allowed: {origins}"


def _origin(headers: Headers) -> str | None:
    value = _header(headers, b"origin")
    return None if value is None else value.decode("latin-1")


async def _reply(send, status: int, body: bytes, headers: Headers) -> None:
    if status != 204:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
