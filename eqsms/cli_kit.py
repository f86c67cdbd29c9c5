"""What every stage's commands share: a choice callback and the one-line exit for a user's mistake."""

from __future__ import annotations

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


def fail(what: str, err: Exception | str) -> NoReturn:
    """A user's mistake: one red line saying what to fix, exit status 2, no traceback."""
    console.print(f"[bold red]{what}:[/] {err}", highlight=False)
    raise typer.Exit(2)
