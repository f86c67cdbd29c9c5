"""The `eqsms` console script: one command line over the three stages.

It lives in `serving/`, the one stage allowed to import the other two. Each stage keeps its own commands in its own
`cli.py`; this module only gathers them, so `features` never imports `training` or `serving`.
"""

from __future__ import annotations

import typer

from features import cli as features_cli
from serving import serve_cli
from training import backtest_cli as training_backtest_cli
from training import cli as training_cli

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="EQSMS Risk: defect, delay and churn risk before each milestone.",
)
for stage in (features_cli.app, training_cli.app, training_backtest_cli.app, serve_cli.app):
    app.registered_commands += stage.registered_commands
    app.registered_groups += stage.registered_groups

if __name__ == "__main__":  # pragma: no cover
    app()
