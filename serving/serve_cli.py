"""`eqsms serve` and `eqsms package`: the BentoML service on this machine, and the bento that carries it elsewhere."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from features.settings import REPO_ROOT, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False)
_S = get_settings()
SERVICE = "serving.service:RiskService"


def server_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment for the server, with paths made absolute (the server runs from the repository, so
    a relative work or data folder would otherwise move) and BentoML's usage tracking off."""
    env = dict(os.environ if environ is None else environ)
    settings = get_settings()
    env["EQSMS_WORK_DIR"] = str(settings.work_dir.resolve())
    env["EQSMS_DATA_DIR"] = str(settings.data_dir.resolve())
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env


def serve_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = _S.host,
    port: Annotated[int, typer.Option(help="port to listen on")] = _S.port,
) -> None:
    """Start the HTTP service (BentoML) on the @champion models and the data folder in settings.

    It refuses to start, naming what is missing and the command that creates it, without the three champions or
    the data. The process becomes `bentoml serve`: stop it with Ctrl+C (or SIGTERM to its pid).
    """
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
        console.print(f"[bold red]cannot package:[/] {err}")
        raise typer.Exit(2) from err
    for model in models:
        console.print(f"model {model.tag} (registry version {model.info.metadata.get('version')})")
    if build:
        bento = build_bento()
        console.print(
            f"bento {bento.tag}: run it with `bentoml serve {bento.tag}`; build an image with "
            f"`bentoml containerize {bento.tag}`"
        )
