"""`eqsms serve` and `eqsms package`: the BentoML service on this machine, and the bento that carries it elsewhere."""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Annotated

import typer

from eqsms.cli_kit import fail
from eqsms.settings import REPO_ROOT, get_settings
from serving import SERVICE_NAME

app = typer.Typer(no_args_is_help=True, add_completion=False)
SERVICE = "serving.service:RiskService"


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
    from rich.console import Console

    from serving.package import build_bento, import_champions
    from serving.runtime import NotReady

    console = Console()
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
