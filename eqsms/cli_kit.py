"""What every stage's commands share: the console, progress while a command works and the summary it ends with, a
choice callback, and the one-line exit for a user's mistake."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from copy import copy
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

PIPED_WIDTH = 200  # a table's room in a file or a pipe (COLUMNS, when set, decides); lines of text are never wrapped


class _Console(Console):
    """rich's Console, except in a file or a pipe: there rich would wrap every line at 80 columns; here a line of text
    is never wrapped (a path stays whole for grep and copy) and a table gets ``PIPED_WIDTH`` columns. Decided at each
    print, so CliRunner's captured output and a redirected stdout are treated alike."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:  # _width: given, or COLUMNS in the environment
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def print(self, *objects, soft_wrap: bool | None = None, **kwargs) -> None:
        if soft_wrap is None and not self.is_terminal and all(isinstance(o, str | Text) for o in objects):
            soft_wrap = True  # text only: soft wrap on a table would lose its centred title
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


console = _Console()


class Steps:
    """What a command tells its progress display: the step it is on and, where the total is known, how far it is.
    On a terminal a spinner, the step, a bar (with a total) and the time so far; elsewhere nothing at all."""

    def __init__(self, progress: Progress | None = None, task=None) -> None:
        self._progress, self._task = progress, task

    def update(self, description: str, done: int | None = None, total: int | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=escape(description), completed=done, total=total)

    def advance(self, description: str | None = None) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
            if description is not None:
                self._progress.update(self._task, description=escape(description))

    def hook(self, prefix: str = "", count: bool = False):
        """A library's ``progress(what, done, total)`` callback: shows ``prefix: what``; with ``count``, the bar
        follows ``done`` of ``total`` too (without, the bar stays this display's own)."""

        def show(what: str, done: int, total: int) -> None:
            said = f"{prefix}: {what}" if prefix else what
            if count:
                self.update(said, done, total)  # a total of 0: a step of unknown length, the bar hidden
            else:
                self.update(said)

        return show


class _Bar(BarColumn):
    """A bar only once the total is known (a step of unknown length has the spinner alone)."""

    def render(self, task):
        return super().render(task) if task.total else Text("")


class _Count(MofNCompleteColumn):
    def render(self, task):
        return super().render(task) if task.total else Text("")


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Steps]:
    """Show that a command is working until the block ends: a spinner, what it is doing, a bar once the total is
    known (targets, folds, tables) and the time so far. The display is cleared after, so what stays on the screen is
    what the command prints; in a file or a pipe there is no display at all."""
    if not console.is_terminal:  # a file or a pipe gets the command's lines, never a spinner's frames
        yield Steps()
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), _Bar(bar_width=24), _Count(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as shown:
        yield Steps(shown, shown.add_task(escape(description), total=total))


def took(started: float) -> str:
    """The time since ``started`` (``time.monotonic()``), in words."""
    seconds = time.monotonic() - started
    return f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def where(path: Path | str) -> str:
    """A path as a summary names it: absolute, so it can be opened from anywhere."""
    return str(Path(path).resolve())


def print_table(table: Table) -> None:
    """Print a rich table; a title wider than the table (a long path in it) goes on a line of its own above, whole,
    where rich would wrap it at the table's width."""
    title = table.title
    if isinstance(title, str) and len(title) > console.measure(table).maximum:
        console.print(title, style="italic", highlight=False, soft_wrap=True)
        table = copy(table)
        table.title = None
    console.print(table)


def summary(title: str, rows: dict[str, str]) -> None:
    """The lines a command ends with: what it did (``title``), then one aligned ``name  value`` line each (counts,
    the files and folders it wrote, the time taken). Never wrapped: a path stays whole."""
    console.print(f"[bold]{escape(title)}[/]", highlight=False, soft_wrap=True)
    wide = max((len(name) for name in rows), default=0)
    for name, value in rows.items():
        console.print(f"  {escape(name.ljust(wide))}  {escape(str(value))}", highlight=False, soft_wrap=True)


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
