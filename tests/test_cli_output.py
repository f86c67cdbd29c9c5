"""What a command prints when its output goes to a file or a pipe: whole lines (not wrapped at 80 columns), no
colour codes or spinner frames, and a summary that says where it wrote (issue 11 §4)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rich.table import Table
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.cli_kit import print_table, progress, summary

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")
SPINNER = re.compile(r"[\u2800-\u28ff]")  # rich's spinner frames are braille characters


def piped(*args: str, work_dir: Path) -> str:
    """``eqsms ARGS`` run as a user would pipe it (`eqsms ... | less`): stdout a pipe, no COLUMNS, no forced colour."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-m", "eqsms.cli", *args],
        capture_output=True,  # stdout is a pipe, as in `eqsms ... | less`
        text=True,
        env={**env, "EQSMS_WORK_DIR": str(work_dir)},
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_piped_output_keeps_long_lines_whole_and_plain(tmp_path):
    deep = tmp_path / "a" / "folder" / "deep" / "enough" / "that" / "its" / "path" / "is" / "longer" / "than" / "80"
    world, quarantine = deep / "world", deep / "quarantine"
    assert len(str(world)) > 80

    out = piped("generate", "--projects", "30", "--out", str(world), work_dir=tmp_path)
    out += piped("validate", str(world), "--quarantine", str(quarantine), work_dir=tmp_path)

    lines = out.splitlines()
    assert f"quarantine files in {quarantine}" in lines  # printed whole, on one line
    assert any(line.startswith(f"synthetic world in {world} (csv)") for line in lines)  # a table's long title
    assert ["folder", str(world)] in [line.split() for line in lines]  # the summary's
    assert max(len(line) for line in lines) > 80
    assert not ANSI.search(out) and not SPINNER.search(out)
    assert "\r" not in out  # no progress display redrawn in place


def test_summary_names_what_was_written(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    runner, world, datasets = CliRunner(), tmp_path / "world", tmp_path / "datasets"
    assert runner.invoke(app, ["generate", "--projects", "30", "--out", str(world)]).exit_code == 0

    result = runner.invoke(app, ["features", "build", str(world), "--out", str(datasets)])

    assert result.exit_code == 0, result.output
    said = dict(
        line.strip().split(None, 1) for line in result.output.split("built ", 1)[1].splitlines()[1:] if line.strip()
    )
    assert said["defect_risk"].endswith(f"-> {(datasets / 'defect_risk.parquet').resolve()}")
    assert said["quarantine"] == str((tmp_path / "work" / "quarantine" / "world").resolve())
    assert said["rows"].endswith(" 0 quarantined") and said["time"].endswith(" s")
    assert (datasets / "defect_risk.parquet").is_file()


def test_helpers_print_nothing_animated_and_nothing_wrapped_off_a_terminal(capsys):
    with progress("working", total=3) as shown:
        shown.advance("more")
        shown.hook("step", count=True)("reading", 2, 3)
    table = Table(title="t")
    table.add_column("path")
    table.add_row("/x" * 70)
    print_table(table)
    summary("did it", {"folder": "/y" * 70, "n": "3"})

    out = capsys.readouterr().out
    assert "working" not in out and not SPINNER.search(out)
    assert any("/x" * 70 in line for line in out.splitlines())
    assert "  folder  " + "/y" * 70 in out.splitlines()
