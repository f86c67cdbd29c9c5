"""`eqsms serve` and `eqsms package`: the BentoML service on this machine, and the bento that carries it elsewhere."""

from __future__ import annotations

import errno
import os
import socket
import sys
from datetime import datetime
from typing import Annotated

import typer

from eqsms.cli_kit import console, fail
from eqsms.settings import REPO_ROOT, get_settings
from serving import SERVICE_NAME

app = typer.Typer(no_args_is_help=True, add_completion=False)
SERVICE = "serving.service:RiskService"

# Options that `eqsms risk` and `eqsms worklist` share.
ServiceUrl = Annotated[
    str | None, typer.Option(help="ask a running service (e.g. http://127.0.0.1:3000) instead of scoring here")
]
AsJson = Annotated[bool, typer.Option("--json", help="print the answer as the API gives it")]


def server_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment for the server, with paths made absolute (the server runs from the repository, so
    a relative work or data folder would otherwise move) and BentoML's usage tracking off."""
    env = dict(os.environ if environ is None else environ)
    settings = get_settings()  # paths are resolved here, from the caller's working directory
    env["EQSMS_WORK_DIR"] = str(settings.work_dir)
    env["EQSMS_DATA_DIR"] = str(settings.data_dir)
    # The service's workers, from settings: BentoML reads its service options from this variable at start-up.
    options = f"services.{SERVICE_NAME}.workers={settings.serve_workers}"
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(filter(None, (env.get("BENTOML_CONFIG_OPTIONS"), options)))
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env


def cannot_listen(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (taken, or not an address of this machine), or None."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
            probe.bind((host, port))
    except OSError as err:
        taken = err.errno == errno.EADDRINUSE
        return "the port is taken (another server?): pass --port" if taken else f"{err.strerror}: pass --host"
    return None


def serve_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on; default: host (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on; default: port (3000)")] = None,
) -> None:
    """Start the HTTP service (BentoML) on the @champion models and the data folder in settings.

    It refuses to start, naming what is missing and the command that creates it, without the three champions or
    the data. The process becomes `bentoml serve`: stop it with Ctrl+C (or SIGTERM to its pid).
    """
    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    if problem := cannot_listen(host, port):
        fail(f"cannot serve on {host}:{port}", problem)
    command = serve_command(host, port)
    env = server_env()
    os.chdir(REPO_ROOT)  # the import path serving.service resolves from the repository root
    os.execve(command[0], command, env)  # replace this process: one pid to stop, signals go straight in


@app.command()
def package(
    build: Annotated[bool, typer.Option(help="build the bento after importing the models")] = True,
) -> None:
    """Import the three @champion models into the BentoML model store and build the bento (bentofile.yaml)."""
    from serving.package import build_bento, import_champions
    from serving.runtime import NotReady

    try:
        models = import_champions(get_settings())
    except NotReady as err:
        fail("cannot package", err)
    for model in models:
        console.print(f"model {model.tag} (registry version {model.info.metadata.get('version')})")
    if build:
        bento = build_bento()
        console.print(
            f"bento {bento.tag}: run it with `bentoml serve {bento.tag}`; build an image with "
            f"`bentoml containerize {bento.tag}`"
        )


def show(renderable) -> None:
    """A table on the terminal; to a pipe or a file, unwrapped (not squeezed into 80 columns)."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=1000)
    console.print(renderable)


def _as_of(value: str | None) -> str | None:
    """``--as-of`` checked here (an ISO date or timestamp), so that a typo is one line before anything loads."""
    if value is None:
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        fail("bad --as-of", f"'{value}' is not a date: write it YYYY-MM-DD (or an ISO timestamp)")
    return value


def risk_in_process(project_id: str, as_of: str | None, top_k: int | None):
    """The answer of ``POST /v1/risk``, from the @champion models and the data folder in settings."""
    from serving import schemas
    from serving.runtime import Engine, NotReady, RequestError

    settings = get_settings()
    try:
        engine = Engine.from_settings(settings)
    except NotReady as err:
        fail("cannot score", str(err).replace("\n", " "))  # one line
    try:
        project = engine.risk([project_id], as_of, top_k=settings.default_top_k if top_k is None else top_k)[0]
    except RequestError as err:
        fail(f"cannot score {project_id}", _hint(err.field, str(err)))
    from serving.state import data_snapshot, folder_fingerprint

    return schemas.RiskResponse(
        **dict(project),
        model_versions=engine.versions(),
        data_snapshot=data_snapshot(engine, folder_fingerprint(settings.data_dir)),
        data_freshness=engine.freshness(project.as_of),
    )


def risk_from_service(url: str, project_id: str, as_of: str | None, top_k: int | None):
    """The answer of a running service's ``POST /v1/risk`` (``url``: its base address), validated."""
    from serving import schemas

    body = {"project_id": project_id, "as_of": as_of, "top_k": top_k}
    endpoint = f"{url.rstrip('/')}/v1/risk"
    return _from_service(url, endpoint, {k: v for k, v in body.items() if v is not None}, schemas.RiskResponse)


def ask_service(url: str, endpoint: str, body: dict | None) -> tuple[int, object]:
    """A running service's status and JSON answer at ``endpoint`` (POST ``body``, or GET when None), sent with the
    key in settings (``EQSMS_API_KEY``) when there is one; an unreachable service, a body that is not JSON, or a
    refused key is one line naming what to fix."""
    import urllib.error

    from serving.local import call, client_key

    key = client_key(get_settings())
    try:
        status, answer = call(endpoint, body, key=key)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        fail(f"cannot reach the service at {url}", f"{reason}: start it with `eqsms serve`, or check --url")
    except ValueError as err:
        fail(f"the service at {url} did not answer JSON", f"{err}: is --url an EQSMS Risk service?")
    if status == 401:
        said = "was refused" if key else "is needed"
        fail(f"the service at {url} asks for a key", f"EQSMS_API_KEY {said}: set it to one of the service's keys")
    if status == 403:
        fail(f"the service at {url} refused the key", "EQSMS_API_KEY is not an admin key: this needs one")
    return status, answer


def _from_service(url: str, endpoint: str, body: dict | None, model):
    """A running service's answer at ``endpoint`` (POST ``body``, or GET when None) validated into ``model``; a
    refusal or an unreachable service is one line naming what to fix."""
    from pydantic import ValidationError

    status, answer = ask_service(url, endpoint, body)
    if status != 200:
        error = answer.get("error", answer) if isinstance(answer, dict) else answer
        field = answer.get("field", "") if isinstance(answer, dict) else ""
        fail(f"the service refused the request ({status})", _hint(field, str(error)))
    try:
        return model.model_validate(answer)
    except ValidationError as err:
        fail(f"the service at {url} answered an unexpected body", err.errors(include_url=False)[0]["msg"])


def _hint(field: str, error: str) -> str:
    """The engine's message, with the option of this command that sets the field at fault."""
    option = {
        "project_id": "PROJECT_ID",
        "as_of": "--as-of",
        "top_k": "--top-k",
        "department": "--department",
        "target": "--target",
        "sort": "--sort",
    }.get(field)
    return f"{error} (fix {option})" if option else error


@app.command()
def risk(
    project_id: Annotated[str, typer.Argument(help="the project to score, e.g. P00142")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="score as of this date (YYYY-MM-DD); default: today (UTC)")
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=0, max=50, help="drivers per prediction; default: default_top_k (5)")
    ] = None,
    url: ServiceUrl = None,
    as_json: AsJson = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print one CSV row per milestone")] = False,
) -> None:
    """The project's milestones not yet reached: defect risk, delay and the drivers behind them; the client's churn
    risk; how fresh the data is.

    Scored here from the @champion models and the data in settings, or by a running service with --url (POST /v1/risk).
    """

    from serving.terminal import render, write_csv

    if as_json and as_csv:
        fail("choose one output", "--json or --csv, not both")
    as_of = _as_of(as_of)
    if url:
        answer = risk_from_service(url, project_id, as_of, top_k)
    else:
        answer = risk_in_process(project_id, as_of, top_k)
    if as_json:
        sys.stdout.write(answer.model_dump_json() + "\n")
    elif as_csv:
        write_csv(answer, sys.stdout)
    else:
        show(render(answer))


def worklist_in_process(department: str, as_of: str | None, target: str | None, lang: str, limit: int, sort: str):
    """The answer of ``GET /v1/worklist``, from the @champion models and the data folder in settings; as of the
    board's day (today, or the day after the data's newest fact) unless ``as_of`` says."""
    from serving import board, schemas
    from serving.runtime import Engine, NotReady, RequestError

    try:
        engine = Engine.from_settings(get_settings())
    except NotReady as err:
        fail("cannot score", str(err).replace("\n", " "))
    targets = None if target is None else [target]
    try:
        board.check_worklist(department, sort, targets)
        t = board.snapshot_as_of(engine) if as_of is None else engine.resolve_as_of(as_of, [])
        block = engine.block(engine.open_projects(t), t, top_k=0, keep=True)
        items, total = board.worklist(engine, block, department, limit, sort, targets)
    except RequestError as err:
        fail("cannot make the worklist", _hint(err.field, str(err)))
    told = [board.told_item(item, lang, engine.feature_specs) for item in items]
    return schemas.WorklistResponse(
        department=department, as_of=t, items=told, total=total, model_versions=engine.versions()
    )


def worklist_from_service(url: str, query: dict):
    """The answer of a running service's ``GET /v1/worklist`` (``url``: its base address), validated."""
    import urllib.parse

    from serving import schemas

    endpoint = f"{url.rstrip('/')}/v1/worklist?{urllib.parse.urlencode({k: v for k, v in query.items() if v})}"
    return _from_service(url, endpoint, None, schemas.WorklistResponse)


@app.command()
def worklist(
    department: Annotated[
        str, typer.Option(help="quality, technical, safety, cost, customer service or project office")
    ],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="as of this date; default: today, or the day after the data's newest fact"),
    ] = None,
    target: Annotated[str | None, typer.Option(help="only this target: defect_risk, delay or churn")] = None,
    sort: Annotated[
        str, typer.Option(help="risk (level, then the department's share), added, share, whatif_gain")
    ] = "risk",
    limit: Annotated[int, typer.Option(min=1, help="items at most")] = 20,
    lang: Annotated[str, typer.Option(help="language of the driver texts: en or zh")] = "en",
    url: ServiceUrl = None,
    as_json: AsJson = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print one CSV row per item")] = False,
) -> None:
    """A department's worklist: the open milestones and clients where its drivers push risk up, with what they add,
    the what-if gain of acting on them and the drivers in words (GET /v1/worklist with --url)."""
    import csv

    from serving.terminal import WORKLIST_FIELDS, worklist_rows, worklist_table

    if as_json and as_csv:
        fail("choose one output", "--json or --csv, not both")
    if lang not in ("en", "zh"):
        fail("bad --lang", f"'{lang}' is not one of en, zh")
    as_of = _as_of(as_of)
    if url:
        query = {"department": department, "as_of": as_of, "target": target, "sort": sort, "limit": limit, "lang": lang}
        answer = worklist_from_service(url, query)
    else:
        answer = worklist_in_process(department, as_of, target, lang, limit, sort)
    if as_json:
        sys.stdout.write(answer.model_dump_json() + "\n")
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(WORKLIST_FIELDS)
        writer.writerows(worklist_rows([item.model_dump(mode="json") for item in answer.items]))
    else:
        show(worklist_table(answer))


@app.command()
def reload(
    url: Annotated[str, typer.Option(help="the running service's address")] = "http://127.0.0.1:3000",
) -> None:
    """Ask a running service to load the data folder and the @champion models in its settings beside the ones
    answering now and switch (POST /v1/admin/reload): every worker follows; a reload that fails leaves the old
    ones answering, and this command says why (exit 1). When the service has keys, EQSMS_API_KEY must be an admin
    key."""
    status, answer = ask_service(url, f"{url.rstrip('/')}/v1/admin/reload", {})
    if status != 200 or not isinstance(answer, dict):
        fail(f"the service refused the reload ({status})", str(answer))
    if not answer.get("ok"):
        console.print(f"[bold red]reload failed[/]: {answer.get('error')} (still answering from what it had)")
        raise typer.Exit(1)
    changed = ", ".join(answer.get("changed") or []) or "nothing changed"
    console.print(f"reloaded in {answer['seconds']:.1f} s: {changed}; models {answer['model_versions']}")
