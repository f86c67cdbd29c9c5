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
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import bentoml
import pandas as pd
from fastapi import FastAPI, Query
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from eqsms import predlog
from eqsms.settings import Settings, get_settings
from features.datasets import today
from features.targets import CLIENT, TARGETS
from serving import SERVICE_NAME, board, i18n, recorder, schemas, terminal
from serving.limits import MAX_ID_LENGTH, BodyLimit, shown
from serving.monitor_metrics import MonitorMetrics
from serving.openapi import ApiPages
from serving.runtime import CHAMPION, Champion, Engine, NotReady, RequestError, load_tables
from serving.security import Guard
from serving.state import Holder, Served

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
            said = f"{_field(first['loc'])}: {first['msg']}".replace("%", "%%")  # a field a request named may hold %
            record.msg = f"{record.msg}: 400, {said}"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def error_response(field: str, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": f"{field}: {message}", "field": field}, status_code=status)


def _field(loc: list | tuple) -> str:
    """A pydantic error location as one path: ``["rows", 2, "x"]`` -> ``rows[2].x``; the whole body -> ``body``.
    A part the request wrote (a dict key) is cut to 40 characters: a field never echoes an oversized key."""
    out = ""
    if len(loc) > 1 and loc[0] in ("query", "path", "header", "body"):
        loc = loc[1:]  # FastAPI's reads say where the field was: the field's name is enough
    for part in loc:
        if part == "[key]":
            continue  # pydantic's mark of an error in a dict's key: the key before it names the field
        out += f"[{part}]" if isinstance(part, int) else (f".{shown(str(part))}" if out else shown(str(part)))
    return out or "body"


MAX_DETAIL = 10  # validation errors kept in a 400's detail: the body stays small whatever the request


def _said(error: dict) -> dict:
    """One validation error as a 400 repeats it: without the ``input`` pydantic copies into it, its location cut."""
    loc = [shown(p) if isinstance(p, str) else p for p in error.get("loc", ())]
    return {k: (loc if k == "loc" else v) for k, v in error.items() if k != "input"}


def with_field(body: dict) -> dict:
    """BentoML's validation 400 (``{"error": "1 validation error for Input", "detail": [...]}``) with the first
    error's field and message up front, like the engine's own errors; ``detail`` keeps every error."""
    detail = body.get("detail")
    if not isinstance(detail, list) or not detail or not isinstance(detail[0], dict):
        return body
    first = detail[0]
    field = _field(first.get("loc", ()))
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    kept = [_said(e) if isinstance(e, dict) else e for e in detail[:MAX_DETAIL]]
    return {"error": f"{field}: {first.get('msg', 'invalid')}{more}", "field": field, "detail": kept}


class FieldErrors:
    """ASGI middleware: rewrites the JSON body of BentoML's 400 answers (and FastAPI's 422s) with
    :func:`with_field`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def relay(message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (400, 422):
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


def answer(compute: Callable[[], M], fields: dict[str, str] | None = None, ctx=None) -> M | JSONResponse:
    """The engine's answer (a response model already), or a 4xx naming the field when the request cannot be
    answered (``fields`` renames the engine's field to the request's where they differ). ``ctx``: the endpoint's
    ``bentoml.Context`` when it takes one; BentoML then sets the status from it, so the error's status goes there."""
    try:
        return compute()
    except RequestError as err:
        if ctx is not None:
            ctx.response.status_code = err.status
        return error_response((fields or {}).get(err.field, err.field), err.message, err.status)


# ---------------------------------------------------------------------------------------------- GET /v1/...
# The board's reads: plain GETs a browser can cache and link, in a FastAPI app mounted at /v1 (BentoML's own routes,
# all POST, are matched first). Each finds the service instance of its worker.
v1_get = FastAPI(title="EQSMS Risk: reads", docs_url=None, redoc_url=None, openapi_url=None)
Department = Annotated[
    str,
    Query(max_length=MAX_ID_LENGTH, description="quality, technical, safety, cost, customer service or project office"),
]
LangQuery = Annotated[schemas.Lang | None, Query(description=schemas.LANG)]


def _service() -> RiskService:
    return bentoml.get_current_service()


@v1_get.get("/models", response_model=schemas.ModelsResponse, summary="the champions and their test evidence")
def models_get() -> schemas.ModelsResponse:
    """Each champion: name, version, training time, data window, test metrics, reliability curve, features."""
    return _service().models_now()


@v1_get.get("/portfolio", response_model=schemas.PortfolioResponse, summary="every open project, precomputed")
def portfolio_get(request: Request, lang: LangQuery = None) -> Response:
    """Every project open at the board's as_of (today, or the day after the data's newest fact when the export is
    older), one line each: its next milestone's defect risk, slip and range, its client's churn risk, its worst level
    and its strongest upward driver. Precomputed once per data snapshot and models (see `snapshot`)."""
    return _service().portfolio(i18n.pick_lang(request.headers.get("accept-language"), lang))


@v1_get.get("/worklist", response_model=schemas.WorklistResponse, summary="a department's worklist")
def worklist_get(
    request: Request,
    department: Department,
    as_of: Annotated[
        datetime | None, Query(description="default: the board's as_of (the precomputed snapshot)")
    ] = None,
    target: Annotated[
        str | None,
        Query(max_length=MAX_ID_LENGTH, description="only this target's items: defect_risk, delay or churn"),
    ] = None,
    lang: LangQuery = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="items at most")] = 50,
    sort: Annotated[
        str,
        Query(
            max_length=MAX_ID_LENGTH, description="risk (level, then the department's share), added, share, whatif_gain"
        ),
    ] = "risk",
) -> Response:
    """The milestones and clients where the department's drivers push risk up, ranked by the prediction's level and
    the department's share of its upward push (or by what they add, or by the what-if gain of acting on them), with
    the drivers in words. `Accept: text/csv` for a spreadsheet. 400: an unknown department, target or sort."""
    chosen = i18n.pick_lang(request.headers.get("accept-language"), lang)
    targets = None if target is None else [target]
    return _service().worklist(department, as_of, targets, chosen, limit, sort, _wants_csv(request))


@v1_get.post("/admin/reload", summary="load new data and new champions without a failed request")
def reload_post() -> JSONResponse:
    """Load the data folder and the @champion models in settings beside the ones answering now, then switch: this
    worker at once, the others within `reload_check_seconds`. Requests in flight finish on the set they started with.
    A reload that fails leaves the old set answering: 200 with `ok: false` and the reason (also in GET /v1/models)."""
    return JSONResponse(_service().reload("asked by POST /v1/admin/reload"))


@v1_get.get(
    "/monitor", summary="how the predictions held up: the page `eqsms monitor` wrote", response_class=HTMLResponse
)
def monitor_get() -> Response:
    """The latest `eqsms monitor` page: each model beside the reference class on the logged predictions whose
    outcome is known, per version and week. 404: no page yet (run `eqsms monitor DATA_DIR`)."""
    page = _service().settings.monitor_page
    try:
        return HTMLResponse(page.read_text(encoding="utf-8"))
    except OSError:
        return error_response("monitor", "no monitor page yet: run `eqsms monitor DATA_DIR` on a new export", 404)


# Not GET /v1/feedback: BentoML's document keeps one of a mounted app's path and a service API's of the same path.
@v1_get.get("/notes", summary="the planners' notes and overrides about a project's predictions")
def notes_get(project_id: Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)]) -> Response:
    """Every note and override recorded against the project's predictions (POST /v1/feedback), newest first. 404:
    an unknown project."""
    return _service().feedback_of(project_id)


@v1_get.get("/history", summary="every move of @champion: when, from which version to which, why, by whom")
def history_get(
    model: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, description="defect_risk, delay or churn")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="the newest moves at most")] = 50,
) -> Response:
    """The champion history the gate and `eqsms rollback` record in the MLflow store, newest first (empty when the
    service runs from a bento, which carries no store). 400: an unknown model."""
    return _service().history(model, limit)


@v1_get.get("/monitor/summary", summary="how the predictions held up, for the board")
def monitor_summary_get() -> Response:
    """The latest `eqsms monitor`'s figures: per model and version, the predictions judged and their metrics beside
    the reference class's, and the verdict. 404: none yet."""
    path = _service().settings.monitor_page.parent / "summary.json"
    try:
        return Response(path.read_bytes(), media_type="application/json")
    except OSError:
        return error_response("monitor", "no monitor figures yet: run `eqsms monitor DATA_DIR` on a new export", 404)


@v1_get.get("/ui/strings", summary="the board's words in a language")
def ui_strings_get(request: Request, lang: LangQuery = None) -> dict[str, str]:
    """Every text of the risk board, key -> text, in English or Simplified Chinese."""
    return i18n.ui_strings(i18n.pick_lang(request.headers.get("accept-language"), lang))


def _wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def csv_response(header: list[str], rows: list[list], name: str) -> Response:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    disposition = f'attachment; filename="{name}.csv"'
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={"content-disposition": disposition})


UI_DIR = Path(__file__).parent / "ui"


# ----------------------------------------------------------------------------------------------------- service
@bentoml.service(
    name=SERVICE_NAME,  # workers: `eqsms serve` passes settings.serve_workers (serving.cli.server_env)
    logging={"access": {"enabled": False}},
    traffic={"timeout": 120},
)
@bentoml.asgi_app(v1_get, path="/v1", name="v1_get")
@bentoml.asgi_app(StaticFiles(directory=UI_DIR, html=True, check_dir=False), path="/ui", name="ui")
class RiskService:
    """EQSMS Risk: defect risk, delay and client churn before each milestone, with the drivers behind them."""

    def __init__(self) -> None:
        self.settings = get_settings()
        try:
            self.holder = Holder.start(self.settings, build_engine)
        except NotReady as err:
            refuse(err)
            raise
        logging.getLogger("bentoml._internal.server.http_app").addFilter(BadRequestsInOneLine())
        self.log = predlog.from_settings(self.settings)  # one a worker: its writer thread is this process's
        self.holder.measures.append(lambda: recorder.measure(self.log))
        self.holder.measures.append(MonitorMetrics(self.settings.monitor_page.parent / "summary.json"))
        gc.collect()
        gc.freeze()  # the loaded data and models live until a reload: keep them out of every GC pass
        served = self.holder.current
        snapshot = served.snapshots.current
        logger.info(
            "EQSMS Risk ready: models %s, data %s (%s); %d open projects precomputed as of %s in %.1f s",
            served.engine.versions(),
            served.data_dir,
            served.fingerprint,
            len(snapshot.projects),
            snapshot.as_of.date(),
            snapshot.seconds,
        )
        models_too = RiskService.bento is None  # a bento's models are its own: only its data can change
        self.holder.poll(self.settings.reload_check_seconds, self.settings.reload_poll_seconds, models_too)

    @bentoml.on_shutdown
    def close_log(self) -> None:
        """Write what the prediction log still queues when the worker stops. Its atexit hook is not enough: uvicorn
        ends a worker stopped by SIGTERM by raising the signal again once it has shut down, and a process ended by
        a signal runs no atexit hook (each graceful stop lost up to a second of answers: tests/test_replicas.py)."""
        self.log.close()

    @bentoml.on_deployment
    def preflight() -> None:
        """Once, in the server's main process, before workers start: refuse to start if anything is missing."""
        settings = get_settings()
        try:
            build_engine(settings)
            predlog.from_settings(settings).close()  # created or migrated once, before the workers open it
        except (NotReady, predlog.SchemaError) as err:
            refuse(err)
            raise SystemExit(2) from err

    # ---------------------------------------------------------------------------------------------- helpers
    def _top_k(self, top_k: int | None) -> int:
        return self.settings.default_top_k if top_k is None else top_k

    @property
    def engine(self) -> Engine:
        """The current set's engine (a request takes ``self.holder.current`` once and uses its engine throughout)."""
        return self.holder.current.engine

    @staticmethod
    def _meta(served: Served, as_of: datetime) -> dict:
        """What every answer says of the set it was computed from: the model versions, the data snapshot, and how
        fresh the data is at ``as_of``."""
        return {
            "model_versions": served.engine.versions(),
            "data_snapshot": served.data_snapshot(),
            "data_freshness": served.engine.freshness(as_of),
        }

    def _lang(self, ctx, lang: str | None) -> str:
        """The language asked for: ``lang``, else the request's Accept-Language (in process: English)."""
        return i18n.pick_lang(ctx.request.headers.get("accept-language") if ctx else None, lang)

    @staticmethod
    def _told(served: Served, project: BaseModel, lang: str) -> dict:
        """A project's answer as a dict, its driver texts in ``lang``."""
        return i18n.translate_project(project.model_dump(), lang, served.engine.feature_specs)

    def _record(self, records, endpoint: str) -> None:
        """Tell the prediction log which predictions this answer served (queued: written off the request path)."""
        if records:
            self.log.record(records, predlog.Served(endpoint, uuid.uuid4().hex))

    def _record_block(self, served: Served, block, endpoint: str) -> None:
        self._record(recorder.all_records(recorder.block_records(served.engine, block, served.fingerprint)), endpoint)

    def _precomputed(
        self, served: Served, project_id: str, as_of: datetime | None, top_k: int, lang: str
    ) -> Response | None:
        """The snapshot's answer for the project, serialised once, when the request asks what the snapshot holds
        (its as_of, the default drivers, all open milestones); else None."""
        snapshot = served.snapshots.get()
        if top_k != self.settings.default_top_k or project_id not in snapshot.projects:
            return None
        t = today() if as_of is None else _naive_utc(as_of)
        if not snapshot.answers(t):
            return None
        self._record(snapshot.records.get(project_id, ()), "risk")
        body = snapshot.risk_bodies.get((project_id, lang))
        if body is None:
            project = snapshot.projects[project_id]
            told = self._told(served, project, lang) if lang != "en" else dict(project)
            body = schemas.RiskResponse(**told, **self._meta(served, project.as_of)).model_dump_json().encode()
            snapshot.risk_bodies[(project_id, lang)] = body
        return Response(body, media_type="application/json")

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
        lang: str | None = None,
        ctx=None,  # bentoml.Context, given by BentoML (a parameter named ctx); None when called in process
    ) -> schemas.RiskResponse:
        """One project's open milestones, each with every milestone target's answer and its drivers; the answers about
        its client (churn risk). Today's answers (the board's as_of) come precomputed. 404: unknown project or
        milestone; 400: an as_of before the project began or too far after the data."""
        chosen, k, served = self._lang(ctx, lang), self._top_k(top_k), self.holder.current

        def compute() -> schemas.RiskResponse | Response:
            if milestone_ids is None:
                ready = self._precomputed(served, project_id, as_of, k, chosen)
                if ready is not None:
                    return ready
            block = served.engine.block([project_id], as_of, milestone_ids, k)
            project = served.engine.projects_of(block)[0]
            self._record_block(served, block, "risk")
            told = self._told(served, project, chosen) if chosen != "en" else dict(project)
            return schemas.RiskResponse(**told, **self._meta(served, project.as_of))

        return answer(compute, ctx=ctx)

    @bentoml.api(route="/v1/risk/batch", input_spec=schemas.BatchRequest)
    def risk_batch(
        self,
        project_ids: list[str] | None = None,
        as_of: datetime | None = None,
        top_k: int | None = None,
        lang: str | None = None,
        ctx=None,  # bentoml.Context (see risk)
    ) -> schemas.BatchResponse:
        """The same for many projects (default: every project open at as_of), scored in one vectorised pass.
        `Accept: text/csv` answers one row per open milestone. 413: more than max_batch_projects ids."""
        chosen, served = self._lang(ctx, lang), self.holder.current
        engine = served.engine

        def compute() -> schemas.BatchResponse:
            limit = self.settings.max_batch_projects
            if project_ids is None:  # every project open at as_of: begun, and not handed over before it
                t = engine.resolve_as_of(as_of, [])
                ids = engine.open_projects(t)
            else:
                t, ids = as_of, list(dict.fromkeys(project_ids))
                if len(ids) > limit:
                    raise RequestError("project_ids", f"{len(ids)} projects; at most {limit} a request", 413)
            projects = []
            if ids:
                block = engine.block(ids, t, top_k=self._top_k(top_k), field="project_ids")
                projects = engine.projects_of(block)
                self._record_block(served, block, "batch")
            meta = self._meta(served, projects[0].as_of if projects else engine.resolve_as_of(t, []))
            if chosen != "en":
                projects = [schemas.ProjectRisk(**self._told(served, p, chosen)) for p in projects]
            if ctx is not None and _wants_csv(ctx.request):
                stale = meta["data_freshness"].stale
                rows = [row for p in projects for row in terminal.csv_rows(p, stale)]
                return csv_response(terminal.csv_header(), rows, "risk")
            return schemas.BatchResponse(projects=projects, **meta)

        return answer(compute, ctx=ctx)

    @bentoml.api(route="/v1/trend", input_spec=schemas.TrendRequest)
    def trend(self, project_id: str, as_of: datetime | None = None, weeks: int = 12) -> schemas.TrendResponse:
        """The project's risks scored as of each past week up to as_of, each week seeing only its own facts: the
        highest defect risk, slip and P(late) over its open milestones, and its client's churn risk."""

        engine = self.holder.current.engine

        def compute() -> schemas.TrendResponse:
            t = engine.resolve_as_of(as_of, [project_id])
            return schemas.TrendResponse(
                project_id=project_id, as_of=t, points=board.trend(engine, project_id, t, weeks)
            )

        return answer(compute)

    @bentoml.api(route="/v1/facts", input_spec=schemas.FactsRequest)
    def facts(self, project_id: str, as_of: datetime | None = None) -> schemas.FactsResponse:
        """What the project's risks rest on at as_of: its plan, its latest inspections and complaints as known then,
        its open defects and complaints, its SPI and CPI."""
        engine = self.holder.current.engine
        return answer(lambda: schemas.FactsResponse(**board.facts(engine, project_id, as_of)))

    # ----------------------------------------------------------------------------------------- board's reads
    def portfolio(self, lang: str) -> Response:
        """The snapshot's portfolio in ``lang``, serialised once per snapshot and language."""
        served = self.holder.current
        snapshot = served.snapshots.get()
        if not snapshot.logged:  # the whole snapshot once, with the board's first load of it
            snapshot.logged = True
            self._record(recorder.all_records(snapshot.records), "board")
        body = snapshot.portfolio_bodies.get(lang)
        if body is None:
            lines = snapshot.lines
            if lang != "en":
                lines = [_told_line(line, lang, served.engine.feature_specs) for line in lines]
            body = schemas.PortfolioResponse(
                as_of=snapshot.as_of,
                snapshot=snapshot.about(),
                levels=self.settings.risk_levels,
                projects=lines,
                **self._meta(served, snapshot.as_of),
            ).model_dump_json()
            snapshot.portfolio_bodies[lang] = body = body.encode()
        return Response(body, media_type="application/json")

    def worklist(
        self, department: str, as_of: datetime | None, targets, lang: str, limit: int, sort: str, csv: bool
    ) -> Response:
        served = self.holder.current
        engine = served.engine
        try:
            snapshot = served.snapshots.get()
            t = snapshot.as_of if as_of is None else _naive_utc(as_of)
            if snapshot.answers(t):
                items, total = snapshot.worklist(engine, department, sort, targets, limit)
                listed = dict.fromkeys(item["project_id"] for item in items)
                self._record(recorder.all_records(snapshot.records, listed), "worklist")
            else:
                board.check_worklist(department, sort, targets)
                t = engine.resolve_as_of(t, [])
                block = engine.block(engine.open_projects(t), t, top_k=0, keep=True)
                items, total = board.worklist(engine, block, department, limit, sort, targets)
                listed = dict.fromkeys(item["project_id"] for item in items)
                self._record(
                    recorder.all_records(recorder.block_records(engine, block, served.fingerprint), listed), "worklist"
                )
        except RequestError as err:
            return error_response(err.field, err.message, err.status)
        if lang != "en":
            items = [board.told_item(item, lang, engine.feature_specs) for item in items]
        if csv:
            return csv_response(terminal.WORKLIST_FIELDS, terminal.worklist_rows(items), f"worklist-{department}")
        body = schemas.WorklistResponse(
            department=department,
            as_of=t,
            items=items,
            total=total,
            model_versions=engine.versions(),
            data_snapshot=served.data_snapshot(),
        )
        return Response(body.model_dump_json(), media_type="application/json")

    @bentoml.api(route="/v1/predict", input_spec=schemas.PredictRequest)
    def predict(self, model: str, rows: list[dict[str, Any]], top_k: int | None = None) -> schemas.PredictResponse:
        """Predictions and drivers for feature rows the caller supplies; odd values are scored but flagged. 400: a
        value a feature cannot take (text for a number, NaN, a negative count); 413: more than max_predict_rows rows."""
        served = self.holder.current
        return answer(lambda: _stamped(served, served.engine.predict(model, rows, self._top_k(top_k))))

    @bentoml.api(route="/v1/whatif", input_spec=schemas.WhatIfRequest)
    def whatif(
        self, project_id: str, milestone_id: str, changes: dict[str, float], as_of: datetime | None = None
    ) -> schemas.WhatIfResponse:
        """Every target's prediction for one open milestone before and after changing some features. 400: a value
        the feature cannot take (a negative count, a share above 1); 404: unknown project or milestone; 413: more than
        max_whatif_changes changes."""
        served = self.holder.current
        return answer(
            lambda: _stamped(served, served.engine.whatif(project_id, milestone_id, changes, as_of)),
            fields={"milestone_ids": "milestone_id"},  # the engine checks milestones as a list
        )

    @bentoml.api(route="/v1/features", input_spec=schemas.FeaturesRequest)
    def features(self, project_id: str, milestone_id: str, as_of: datetime | None = None) -> schemas.FeaturesResponse:
        """One open milestone's feature row at as_of, as the models see it: a realistic row for /v1/predict."""
        served = self.holder.current
        return answer(
            lambda: _stamped(served, served.engine.features(project_id, milestone_id, as_of)),
            fields={"milestone_ids": "milestone_id"},  # the engine checks milestones as a list
        )

    @bentoml.api(route="/v1/feedback", input_spec=schemas.FeedbackRequest)
    def feedback(
        self,
        project_id: str,
        model: str,
        milestone_id: str | None = None,
        note: str = "",
        corrected_level: str | None = None,
        outcome_label: float | None = None,
        author: str | None = None,
    ) -> schemas.FeedbackResponse:
        """A planner's note or override about a prediction (a corrected level, or the outcome when known), kept in
        the prediction log beside the predictions. 404: unknown project or milestone; 400: a milestone for churn, none
        for defect_risk or delay, an outcome the model cannot have, or the prediction log turned off."""
        engine = self.holder.current.engine

        def compute() -> schemas.FeedbackResponse:
            engine.check_projects([project_id])
            if milestone_id is not None and TARGETS[model].scope == CLIENT:
                raise RequestError("milestone_id", f"{model} is about the project's client: give no milestone_id")
            if milestone_id is not None:
                engine.check_milestones([milestone_id], [project_id])
            try:
                number = self.log.add_feedback(
                    note,
                    project_id=project_id,
                    milestone_id=milestone_id,
                    client_id=engine.client_of(project_id),
                    model=model,
                    author=author,
                    corrected_level=corrected_level,
                    outcome_label=outcome_label,
                )
            except predlog.LogDisabled as err:
                raise RequestError("prediction_log", str(err)) from err
            except ValueError as err:
                raise RequestError(_feedback_field(str(err)), str(err)) from err
            kind = "override" if corrected_level is not None or outcome_label is not None else "note"
            return schemas.FeedbackResponse(
                id=number, kind=kind, project_id=project_id, milestone_id=milestone_id, model=model
            )

        return answer(compute, fields={"milestone_ids": "milestone_id"})  # the engine checks milestones as a list

    def history(self, model: str | None, limit: int) -> Response:
        if model is not None and model not in schemas.MODELS:
            return error_response("model", f"{shown(model)} is not one of {', '.join(schemas.MODELS)}")
        if RiskService.bento is not None:
            return JSONResponse({"moves": [], "note": "served from a bento: its models carry no champion history"})
        from training.history import history
        from training.tracking import configure

        try:
            moves = history(configure(self.settings), model, limit)
        except Exception as err:  # noqa: BLE001 - a store that cannot be read now costs the history, not the service
            logger.warning("EQSMS Risk: the champion history cannot be read: %s", str(err).splitlines()[0][:200])
            return JSONResponse({"moves": [], "note": "the MLflow store cannot be read now"})
        return JSONResponse({"moves": moves})

    def feedback_of(self, project_id: str) -> Response:
        try:
            self.holder.current.engine.check_projects([project_id])
        except RequestError as err:
            return error_response(err.field, err.message, err.status)
        kept = self.log.feedback(project_id=project_id).sort_values("at", ascending=False)
        columns = ["id", "at", "model", "milestone_id", "kind", "note", "corrected_level", "outcome_label", "author"]
        items = json.loads(kept[columns].to_json(orient="records", date_format="iso")) if len(kept) else []
        return JSONResponse({"project_id": project_id, "items": items})

    @bentoml.api(route="/v1/models")
    def models(self) -> schemas.ModelsResponse:
        """Each champion: name, version, alias, training time, data window, test metrics, reliability curve,
        features. (Also answered to GET /v1/models; POST is what `bentoml.SyncHTTPClient.models()` sends.)"""
        return self.models_now()

    def models_now(self) -> schemas.ModelsResponse:
        served = self.holder.current
        return schemas.ModelsResponse(
            models=served.engine.models(), data_snapshot=served.data_snapshot(), last_reload=self.holder.last_reload
        )

    # ------------------------------------------------------------------------------------------------- reloads
    def reload(self, reason: str) -> dict:
        """Ask every worker to reload (the marker file) and reload this one now; the outcome."""
        self.holder.ask_every_worker(self.settings)
        return self.holder.reload(reason)


def _feedback_field(message: str) -> str:
    """The request field a refusal of the prediction log is about: the first the message names, else the body."""
    named = [
        (m.start(), name) for name in schemas.FeedbackRequest.model_fields if (m := re.search(rf"\b{name}\b", message))
    ]
    return min(named)[1] if named else "body"


def _stamped(served: Served, response: M) -> M:
    """An answer the engine built, with the model versions and the data snapshot it was computed from."""
    return response.model_copy(
        update={"model_versions": served.engine.versions(), "data_snapshot": served.data_snapshot()}
    )


def _naive_utc(value: datetime) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def _told_line(line: dict, lang: str, specs) -> dict:
    """A portfolio line with its top driver's text in ``lang``."""
    driver = line.get("top_driver")
    if not driver:
        return line
    return {**line, "top_driver": {**driver, "text": i18n.driver_text(driver, driver["target"], lang, specs)}}


RiskService.add_asgi_middleware(Guard)  # first: the outermost (keys, CORS, security headers)
RiskService.add_asgi_middleware(FieldErrors)
RiskService.add_asgi_middleware(BodyLimit)  # 413 before a body over max_body_bytes is read
RiskService.add_asgi_middleware(ApiPages)
