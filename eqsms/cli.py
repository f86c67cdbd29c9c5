"""The ``eqsms`` console script: the root that each stage's commands plug into (``add_typer``).

Each stage keeps its commands in its own ``cli.py`` and knows nothing of the others' or of this root; a command
imports its stage's library lazily, so ``eqsms --help`` stays fast, and reads settings when it runs.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from eqsms.cli_kit import DEBUG
from features.cli import app as features_app
from features.importers.cli import import_app
from monitoring.cli import app as monitoring_app
from serving.cli import app as serving_app
from serving.report_cli import app as report_app
from training.backtest_cli import app as backtest_app
from training.cli import app as training_app
from world.cli import app as world_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="EQSMS Risk: defect, delay and churn risk before each milestone.",
)


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="with a user's mistake, show the traceback too")] = False,
) -> None:
    """EQSMS Risk: defect, delay and churn risk before each milestone."""
    if debug:
        os.environ[DEBUG] = "1"


app.add_typer(world_app)  # generate: first, as the first step of the README
app.add_typer(features_app)
app.add_typer(import_app, name="import")
app.add_typer(training_app)
app.add_typer(backtest_app)
app.add_typer(serving_app)
app.add_typer(report_app)
app.add_typer(monitoring_app)

if __name__ == "__main__":  # pragma: no cover
    app()
