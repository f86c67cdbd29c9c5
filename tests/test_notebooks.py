"""The notebook runs for real: converted by README's jupytext command, executed headless by nbclient.

The kernel is ``python3`` as the running environment resolves it (ipykernel's own spec: this interpreter), its
working folder the repository root, and ``EQSMS_WORK_DIR`` a temporary folder with no ``MLFLOW_TRACKING_URI``, so
the notebook's training lands in a throwaway sqlite store and never in the user's.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "notebooks" / "explore_and_explain.py"
README = (ROOT / "README.md").read_text()


def readme_jupytext_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(".venv/bin/jupytext ")]


def convert_as_readme_says(scratch: Path) -> nbformat.NotebookNode:
    """Run README's conversion command in a scratch copy of the layout it expects (the repository stays clean)."""
    [command] = readme_jupytext_commands()
    (scratch / "notebooks").mkdir(parents=True)
    shutil.copy(SCRIPT, scratch / "notebooks" / SCRIPT.name)
    (scratch / ".venv").symlink_to(ROOT / ".venv")
    done = subprocess.run(shlex.split(command), cwd=scratch, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    return nbformat.read(scratch / "notebooks" / SCRIPT.with_suffix(".ipynb").name, as_version=4)


def text_of(cell) -> str:
    """Everything a code cell printed or displayed as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def tagged(notebook, tag: str):
    [cell] = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    return cell


@pytest.mark.slow
def test_notebook_executes_on_the_sample(tmp_path, monkeypatch):
    notebook = convert_as_readme_says(tmp_path / "layout")
    assert notebook.metadata.kernelspec.name == "python3"
    work = tmp_path / "work"
    monkeypatch.setenv("EQSMS_WORK_DIR", str(work))
    for name in ("MLFLOW_TRACKING_URI", "EQSMS_MLFLOW_TRACKING_URI", "EQSMS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)

    # Raises CellExecutionError, with the cell and its traceback, if any cell fails.
    NotebookClient(notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(ROOT)}}).execute()

    code = [c for c in notebook.cells if c.cell_type == "code"]
    # The kernel ran this very interpreter (the venv), not some other python3 on the machine.
    assert f"in {sys.prefix}\n" in text_of(code[0])
    settings = text_of(code[1])
    assert str(ROOT / "data_samples" / "world") in settings
    assert f"sqlite:///{work.resolve() / 'mlflow.db'}" in settings
    assert (work / "mlflow.db").is_file()

    comparison = text_of(tagged(notebook, "comparison"))
    for name in ("defect_risk", "delay", "churn", "roc_auc", "mae", "reference class", "linear", "oracle"):
        assert name in comparison, f"{name} missing from the comparison table:\n{comparison}"

    drivers = [line for line in text_of(tagged(notebook, "drivers")).splitlines() if " pushed " in line]
    assert any("first-pass failure risk" in line for line in drivers), drivers
    assert any("the slip still to come" in line for line in drivers), drivers
    assert all(re.search(r"\((quality|technical|cost|customer service|project office)\)", line) for line in drivers)

    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # slip histogram, SHAP summary, calibration
    assert {p.name for p in (work / "notebooks").glob("*.png")} == {"shap.png", "calibration.png"}
