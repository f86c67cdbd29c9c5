"""The API's own pages: the OpenAPI document and the page that shows it, with the product's name, version and words.

BentoML generates ``/docs.json`` from the service (its routes, request and response models) but titles it with the
service's internal name, version "None" and BentoML's own README with badge images fetched from the internet; its
page at ``/`` loads a tag manager from the internet too. :class:`ApiPages` (ASGI middleware) answers ``/`` with a
page that loads only this server's files, and rewrites ``/docs.json``: the product's title, version and description,
and the errors each endpoint answers with (:class:`serving.schemas.ErrorResponse`) in place of BentoML's generic ones.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

from eqsms.settings import get_settings
from serving import schemas

TITLE = "EQSMS Risk"
DESCRIPTION = """\
Defect risk, delay and client churn **before each milestone**, with the drivers behind every number in a planner's
words and the department that must act (quality, technical, safety, cost, customer service, project office).

- `POST /v1/risk`: one project's open milestones with the three predictions and their drivers (`lang`: en or zh).
  Answers about the board's day come precomputed.
- `POST /v1/risk/batch`: many projects in one pass (`Accept: text/csv` for a spreadsheet).
- `POST /v1/whatif`, `POST /v1/features`, `POST /v1/predict`: change the facts and see the risks move; the feature
  row the models saw; score rows you supply.
- `POST /v1/trend`, `POST /v1/facts`: a project's risk over past weeks, and the facts behind it.
- `GET /v1/portfolio`, `GET /v1/worklist`: every open project, and a department's worklist (`text/csv` too).
- `GET /v1/models`: each champion's version, data window, test metrics and reliability curve.

Every error is a 4xx whose JSON body names the field at fault: `{"error": "as_of: ...", "field": "as_of"}`.
The risk board is at [/ui](/ui/).
"""

ERRORS = {
    "400": "the request cannot be answered as asked: the body names the field (an unknown option, a bad date...)",
    "404": "an unknown project or milestone id (named in the body)",
    "413": "too large: a body over max_body_bytes, or too many items in one request (the limit is in the body)",
    "422": "a query parameter out of range (named in the body)",
}


def product_version() -> str:
    try:
        return version("eqsms-risk")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "dev"


# The two ways a key is sent (serving.security.presented_key): either one is enough.
SECURITY_SCHEMES = {
    "bearerKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
KEY_ERRORS = {
    "401": "no key, or a key this service does not know (Authorization: Bearer <key>, or X-API-Key)",
    "403": "an API key that is not an admin key, on /v1/admin",
}


def rewrite_spec(spec: dict, keys_set: bool = False) -> dict:
    """The OpenAPI document with the product's title, version and description, every /v1 operation's errors
    described by :class:`serving.schemas.ErrorResponse`, and how a key is sent: required on /v1 when the service has
    keys (``keys_set``; 401 and, for /v1/admin, 403 described), optional otherwise."""
    spec["info"] = {"title": TITLE, "version": product_version(), "description": DESCRIPTION}
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["ErrorResponse"] = schemas.ErrorResponse.model_json_schema()
    components["securitySchemes"] = SECURITY_SCHEMES
    security = [{name: []} for name in SECURITY_SCHEMES] + ([] if keys_set else [{}])  # {}: no key needed
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, item in spec.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = {k: v for k, v in operation["responses"].items() if not k.startswith("4")}
            said = operation.get("description", "")
            for status, words in ERRORS.items():  # 400 always, 413 on a body; others declared or in the docstring
                body_limit = status == "413" and method == "post"
                if status == "400" or body_limit or status in operation["responses"] or f"{status}:" in said:
                    responses[status] = {"description": words, "content": error}
            if keys_set:
                refusals = ("401", "403") if path.startswith("/v1/admin") else ("401",)
                responses.update({s: {"description": KEY_ERRORS[s], "content": error} for s in refusals})
            operation["responses"] = responses
            operation["security"] = security
            operation.setdefault("tags", ["EQSMS Risk"])
    return spec


INDEX = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>EQSMS Risk API</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" sizes="32x32" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./docs-init.js" charset="UTF-8"></script>
  </body>
</html>
"""

# No validator badge (it would ask swagger.io about the spec) and no top bar: this server's spec only.
INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "./docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
};
"""


def _pages() -> dict[str, tuple[str, bytes]]:
    from serving.i18n import strings_module

    return {
        "/": (INDEX, b"text/html; charset=utf-8"),
        "/docs-init.js": (INIT, b"text/javascript; charset=utf-8"),
        "/ui/strings.js": (strings_module(), b"text/javascript; charset=utf-8"),  # the board's words, from the catalog
    }


PAGES = _pages()


class ApiPages:
    """ASGI middleware: ``/``, ``/docs-init.js`` and the board's ``/ui/strings.js`` from :data:`PAGES`;
    ``/docs.json`` rewritten by :func:`rewrite_spec` (keys required when settings name any: read once, when made,
    as :class:`serving.security.Guard` reads them)."""

    def __init__(self, app) -> None:
        self.app = app
        settings = get_settings()
        self.keys_set = bool(settings.api_keys or settings.admin_keys)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in PAGES:
            text, media = PAGES[path]
            await _send(send, 200, text.encode(), media)
        elif path == "/docs.json":
            await self._rewritten(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _rewritten(self, scope, receive, send) -> None:
        held: dict = {"body": b""}

        async def hold(message) -> None:
            if message["type"] == "http.response.start":
                held["status"] = message["status"]
            else:
                held["body"] += message.get("body", b"")

        await self.app(scope, receive, hold)
        body = held["body"]
        if held.get("status") == 200:
            body = json.dumps(rewrite_spec(json.loads(body), self.keys_set)).encode()
        await _send(send, held.get("status", 500), body, b"application/json")


async def _send(send, status: int, body: bytes, media: bytes) -> None:
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
