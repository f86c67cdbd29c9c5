"""What every stage's commands share: a choice callback and the one-line exit for a user's mistake."""

from __future__ import annotations

import os
import traceback
from typing import NoReturn

import typer
from rich.console import Console

console = Console()


def one_of(choices: tuple[str, ...]):
    """A Typer callback that accepts only ``choices``, naming them when the value is not one."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"'{value}' is not one of {', '.join(choices)}")
        return value

    return check


DEBUG = "EQSMS_DEBUG"  # set by `eqsms --debug`: a user's mistake comes with its traceback too


def fail(what: str, err: Exception | str) -> NoReturn:
    """A user's mistake: one red line saying what to fix, exit status 2; the traceback only with ``--debug``."""
    if isinstance(err, BaseException) and os.environ.get(DEBUG):
        traceback.print_exception(err)
    console.print(f"[bold red]{what}:[/] {err}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
