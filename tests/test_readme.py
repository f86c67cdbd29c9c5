"""README stays true: every `eqsms` command in it runs, and every `make` target it names exists.

`make run` and `make test` themselves are run by `.ci/run`.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from eqsms.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_commands(program: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(program + " ")]


def test_readme_has_commands():
    assert readme_commands("eqsms") and readme_commands("make")


def test_readme_make_targets_exist():
    for command in readme_commands("make"):
        target = command.split()[1]
        dry = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, check=False)
        assert dry.returncode == 0, f"{command}: {dry.stderr}"


@pytest.mark.slow
def test_readme_eqsms_commands_run_in_order(tmp_path, monkeypatch):
    """The commands run one after another in a scratch copy of the layout they expect."""
    (tmp_path / "data_samples").symlink_to(ROOT / "data_samples")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for command in readme_commands("eqsms"):
        args = shlex.split(command)[1:]
        if args[0] in ("serve", "package", "reload"):
            continue  # a server and a bento: run for real, on champions, by test_serving_e2e.py and test_reload.py
        if args[0] in ("risk", "worklist"):
            continue  # all three champions (only delay is promoted above): tests/test_risk_cli.py, test_worklist_cli.py
        if args[0] == "generate" and "data_samples/world" in args:
            args[args.index("data_samples/world")] = str(tmp_path / "regenerated")  # never rewrite the sample
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{command}\n{result.output}"
    datasets = sorted(p.name for p in (tmp_path / "eqsms_work" / "datasets").glob("*.parquet"))
    assert datasets == ["churn.parquet", "defect_risk.parquet", "delay.parquet"]
    # The committed sample world is exactly what README's generate command writes: the tables byte for byte; the
    # oracle's probabilities to 1e-12, because numpy's exp and log differ in the last bit between processors (the
    # machine CI runs on writes a few oracle values 1 ulp away from the committed file).
    for committed in sorted((ROOT / "data_samples" / "world").iterdir()):
        regenerated = tmp_path / "regenerated" / committed.name
        if committed.name != "oracle.csv":
            assert regenerated.read_bytes() == committed.read_bytes(), committed.name
            continue
        new, old = pd.read_csv(regenerated), pd.read_csv(committed)
        pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-12, atol=0)


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "activate").exists(), reason="no .venv: `make install` makes it")
def test_activating_the_environment_puts_eqsms_on_the_path():
    """README: after `make run`, `source .venv/bin/activate` puts `eqsms` on the PATH."""
    assert "source .venv/bin/activate" in README
    done = subprocess.run(
        ["bash", "-c", "source .venv/bin/activate && command -v eqsms && eqsms --help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(ROOT / ".venv" / "bin" / "eqsms")
