"""The BentoML service: HTTP in front of :class:`serving.runtime.Engine`.

``bentoml serve serving.service:RiskService`` (or ``eqsms serve``) starts it. Before any worker starts, a deployment
hook builds the engine once in the server's main process: a missing champion or data folder stops the server there,
with the message naming what is missing and the command that creates it, instead of workers failing over and over.

Every endpoint turns the engine's :class:`RequestError` into a 4xx whose JSON body names the field
(``{"error": "as_of: ...", "field": "as_of"}``); BentoML's own 400s for bodies that fail the request models get the
same ``field`` key (:class:`FieldErrors`). The service answers the next request as if nothing had happened.

Models come from the MLflow registry (``@champion``), or, when the service runs from a bento built by
``eqsms package``, from the BentoML models packed into the bento, so a container needs no MLflow store.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import bentoml
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from eqsms.settings import Settings, get_settings
from serving import SERVICE_NAME, schemas
from serving.runtime import CHAMPION, Champion, Engine, NotReady, RequestError, load_tables

logger = logging.getLogger("bentoml.service.eqsms")
M = TypeVar("M", bound=BaseModel)
BENTO_MODEL_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model puts the MLflow model


# ---------------------------------------------------------------------------------------------------- start-up
def engine_from_bento(settings: Settings) -> Engine:
    """The engine on the models the bento was built with (``eqsms package``) and the data folder in settings."""
    from bentoml.exceptions import NotFound

    from training.bundle import ModelBundle

    pinned = {m.tag.name: m.tag for m in RiskService.bento.info.all_models}
    bundles, champions = {}, {}
    for name in schemas.MODELS:
        try:
            model = bentoml.models.get(pinned[name])
        except (KeyError, NotFound) as err:
            raise NotReady(f"the bento has no model '{name}'. Rebuild it with `eqsms package`.") from err
        bundles[name] = ModelBundle.from_model_dir(Path(model.path_of(BENTO_MODEL_FOLDER)))
        meta = model.info.metadata
        version, alias = str(meta.get("version", model.tag.version)), str(meta.get("alias", CHAMPION))
        champions[name] = Champion(name, version, alias, meta.get("run_id"), meta.get("trained_at"))
    return Engine(settings, load_tables(settings), bundles, champions)


def build_engine(settings: Settings) -> Engine:
    """From the bento's own models when served from a bento, else from the MLflow registry in settings."""
    if RiskService.bento is not None:
        return engine_from_bento(settings)
    return Engine.from_settings(settings)


def refuse(err: NotReady) -> None:
    """Say clearly why the service cannot start (the message names the missing piece and the command to run)."""
    logger.error("EQSMS Risk cannot start: %s", err)


# ------------------------------------------------------------------------------------------------------ errors
class BadRequestsInOneLine(logging.Filter):
    """BentoML logs every request that fails the request model as an error with a traceback; it is the client's
    mistake, answered with a 400: one warning line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            first = exc.errors(include_url=False)[0]
            record.msg = f"{record.msg}: 400, {_field(first['loc'])}: {first['msg']}"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def error_response(field: str, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": f"{field}: {message}", "field": field}, status_code=status)


def _field(loc: list | tuple) -> str:
    """A pydantic error location as one path: ``["rows", 2, "x"]`` -> ``rows[2].x``; the whole body -> ``body``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def with_field(body: dict) -> dict:
    """BentoML's validation 400 (``{"error": "1 validation error for Input", "detail": [...]}``) with the first
    error's field and message up front, like the engine's own errors; ``detail`` keeps every error."""
    detail = body.get("detail")
    if not isinstance(detail, list) or not detail or not isinstance(detail[0], dict):
        return body
    first = detail[0]
    field = _field(first.get("loc", ()))
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return {"error": f"{field}: {first.get('msg', 'invalid')}{more}", "field": field, "detail": detail}


class FieldErrors:
    """ASGI middleware: rewrites the JSON body of BentoML's 400 answers with :func:`with_field`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def relay(message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held["start"], held["body"] = message, b""
                return
            if "start" not in held:
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            await _send_rewritten(send, held["start"], held["body"])

        await self.app(scope, receive, relay)


async def _send_rewritten(send, start: dict, body: bytes) -> None:
    try:
        body = json.dumps(with_field(json.loads(body))).encode()
    except (ValueError, AttributeError):
        pass  # not JSON: pass it on unchanged
    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def answer(compute: Callable[[], M], fields: dict[str, str] | None = None) -> M | JSONResponse:
    """The engine's answer (a response model already), or a 4xx naming the field when the request cannot be
    answered (``fields`` renames the engine's field to the request's where they differ)."""
    try:
        return compute()
    except RequestError as err:
        return error_response((fields or {}).get(err.field, err.field), err.message, err.status)


# ------------------------------------------------------------------------------------------ GET /v1/models
async def models_get(_: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    return JSONResponse(schemas.ModelsResponse(models=service.engine.models()).model_dump(mode="json"))


v1_get = Starlette(routes=[Route("/models", models_get, methods=["GET"])])


# ----------------------------------------------------------------------------------------------------- service
@bentoml.service(
    name=SERVICE_NAME,  # workers: `eqsms serve` passes settings.serve_workers (serving.cli.server_env)
    logging={"access": {"enabled": False}},
    traffic={"timeout": 120},
)
@bentoml.asgi_app(v1_get, path="/v1", name="v1_get")
class RiskService:
    """EQSMS Risk: defect risk, delay and client churn before each milestone, with the drivers behind them."""

    def __init__(self) -> None:
        self.settings = get_settings()
        try:
            self.engine = build_engine(self.settings)
        except NotReady as err:
            refuse(err)
            raise
        logging.getLogger("bentoml._internal.server.http_app").addFilter(BadRequestsInOneLine())
        gc.collect()
        gc.freeze()  # the loaded data and models live as long as the process: keep them out of every GC pass
        logger.info("EQSMS Risk ready: models %s, data %s", self.engine.versions(), self.settings.data_dir)

    @bentoml.on_deployment
    def preflight() -> None:
        """Once, in the server's main process, before workers start: refuse to start if anything is missing."""
        try:
            build_engine(get_settings())
        except NotReady as err:
            refuse(err)
            raise SystemExit(2) from err

    # ---------------------------------------------------------------------------------------------- helpers
    def _top_k(self, top_k: int | None) -> int:
        return self.settings.default_top_k if top_k is None else top_k

    def _meta(self, as_of: datetime) -> dict:
        return {"model_versions": self.engine.versions(), "data_freshness": self.engine.freshness(as_of)}

    # ---------------------------------------------------------------------------------------------- endpoints
    # A single project takes a few milliseconds of CPU: it is answered on the event loop, which saves the hand-off
    # to a worker thread (the batch, which may take a second, keeps the thread pool).
    @bentoml.api(route="/v1/risk", input_spec=schemas.RiskRequest)
    async def risk(
        self,
        project_id: str,
        as_of: datetime | None = None,
        milestone_ids: list[str] | None = None,
        top_k: int | None = None,
    ) -> schemas.RiskResponse:
        """One project's open milestones, each with every milestone target's answer and its drivers; the answers about
        its client (churn risk)."""

        def compute() -> schemas.RiskResponse:
            project = self.engine.risk([project_id], as_of, milestone_ids, self._top_k(top_k))[0]
            return schemas.RiskResponse(**dict(project), **self._meta(project.as_of))

        return answer(compute)

    @bentoml.api(route="/v1/risk/batch", input_spec=schemas.BatchRequest)
    def risk_batch(
        self, project_ids: list[str] | None = None, as_of: datetime | None = None, top_k: int | None = None
    ) -> schemas.BatchResponse:
        """The same for many projects (default: every project open at as_of), scored in one vectorised pass."""

        def compute() -> schemas.BatchResponse:
            limit = self.settings.max_batch_projects
            if project_ids is None:  # every project open at as_of: begun, and not handed over before it
                t = self.engine.resolve_as_of(as_of, [])
                ids = self.engine.open_projects(t)
            else:
                t, ids = as_of, list(dict.fromkeys(project_ids))
                if len(ids) > limit:
                    raise RequestError("project_ids", f"{len(ids)} projects; at most {limit} a request", 413)
            if not ids:
                return schemas.BatchResponse(projects=[], **self._meta(self.engine.resolve_as_of(t, [])))
            projects = self.engine.risk(ids, t, top_k=self._top_k(top_k), field="project_ids")
            return schemas.BatchResponse(projects=projects, **self._meta(projects[0].as_of))

        return answer(compute)

    @bentoml.api(route="/v1/predict", input_spec=schemas.PredictRequest)
    def predict(self, model: str, rows: list[dict[str, Any]], top_k: int | None = None) -> schemas.PredictResponse:
        """Predictions and drivers for feature rows the caller supplies; odd values are scored but flagged."""
        return answer(lambda: self.engine.predict(model, rows, self._top_k(top_k)))

    @bentoml.api(route="/v1/whatif", input_spec=schemas.WhatIfRequest)
    def whatif(
        self, project_id: str, milestone_id: str, changes: dict[str, float], as_of: datetime | None = None
    ) -> schemas.WhatIfResponse:
        """Every target's prediction for one open milestone before and after changing some features."""
        return answer(
            lambda: self.engine.whatif(project_id, milestone_id, changes, as_of),
            fields={"milestone_ids": "milestone_id"},  # the engine checks milestones as a list
        )

    @bentoml.api(route="/v1/features", input_spec=schemas.FeaturesRequest)
    def features(self, project_id: str, milestone_id: str, as_of: datetime | None = None) -> schemas.FeaturesResponse:
        """One open milestone's feature row at as_of, as the models see it: a realistic row for /v1/predict."""
        return answer(
            lambda: self.engine.features(project_id, milestone_id, as_of),
            fields={"milestone_ids": "milestone_id"},  # the engine checks milestones as a list
        )

    @bentoml.api(route="/v1/models")
    def models(self) -> schemas.ModelsResponse:
        """Each champion: name, version, alias, training time, data window, test metrics, features.
        (Also answered to GET /v1/models; POST is what `bentoml.SyncHTTPClient.models()` sends.)"""
        return schemas.ModelsResponse(models=self.engine.models())


RiskService.add_asgi_middleware(FieldErrors)
