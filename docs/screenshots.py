"""The README's pictures of the board (and of the KPI report): rerun after changing the board.

    .venv/bin/python -m docs.screenshots        (or: python docs/screenshots.py)

Starts `eqsms serve` on the current settings' MLflow store and data folder (EQSMS_* variables, as `make run` left
them: `make run` first), opens the board in Debian's Chromium (:mod:`tests.browser`) and writes
``docs/board.png`` (the portfolio), ``docs/project.png`` (the riskiest project's page) and, when `eqsms report`
can write the KPI report of that data, ``docs/report.png``. The server is stopped at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: the repository's packages are importable all the same
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eqsms.settings import REPO_ROOT, get_settings  # noqa: E402
from serving.local import HOST, call, free_port, start, stop, wait_ready  # noqa: E402
from tests import browser  # noqa: E402

DOCS = REPO_ROOT / "docs"


def riskiest(portfolio: dict) -> str:
    lines = [p for p in portfolio["projects"] if p["next"]] or portfolio["projects"]
    if not lines:
        raise SystemExit("the portfolio is empty: no open project at the snapshot's as_of")
    return max(lines, key=lambda p: p["next"]["defect_risk"]["probability"] if p["next"] else 0)["project_id"]


def board_shots(chromium, base: str) -> list[Path]:
    status, portfolio = call(f"{base}/v1/portfolio?lang=en")
    if status != 200:
        raise SystemExit(f"GET /v1/portfolio answered {status}: {portfolio}")
    page = browser.open_page(chromium)
    page.goto(f"{base}/ui/?lang=en#/")
    page.wait_for_selector("tr.project-row")
    page.screenshot(path=str(DOCS / "board.png"))
    page.goto(f"{base}/ui/?lang=en#/project/{riskiest(portfolio)}")
    page.wait_for_selector("article.milestone li.driver")
    page.wait_for_selector("svg.line-chart path.line")
    page.wait_for_selector(".facts .tiles")
    page.screenshot(path=str(DOCS / "project.png"), full_page=True)
    page.context.close()
    return [DOCS / "board.png", DOCS / "project.png"]


def report_shot(chromium, env: dict[str, str]) -> Path | None:
    """The KPI report of the data folder, if `eqsms report` writes one; None (and why) otherwise."""
    with tempfile.TemporaryDirectory(prefix="eqsms-report-") as folder:
        html = Path(folder) / "report.html"
        done = subprocess.run(
            [sys.executable, "-m", "eqsms.cli", "report", "--out", str(html)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not html.exists():
            said = (done.stdout + done.stderr)[-800:]
            print(f"no report picture: `eqsms report` failed ({done.returncode}): {said}")  # noqa: T201 (a script's output)
            return None
        page = browser.open_page(chromium)
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(DOCS / "report.png"))
        page.context.close()
    return DOCS / "report.png"


def main() -> None:
    reason = browser.missing()
    if reason:
        raise SystemExit(f"cannot take screenshots: {reason}")
    settings = get_settings()
    env = {**os.environ, "EQSMS_WORK_DIR": str(settings.work_dir), "EQSMS_DATA_DIR": str(settings.data_dir)}
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="eqsms-shots-") as folder:
        log = Path(folder) / "serve.log"
        port = free_port()
        process = start(port, env, log)
        base = f"http://{HOST}:{port}"
        try:
            wait_ready(base, process, timeout=120)
            with browser.chromium() as chromium:
                written = board_shots(chromium, base)
                shot = report_shot(chromium, env)
                written += [shot] if shot else []
        except (RuntimeError, TimeoutError) as err:
            raise SystemExit(f"{err}\n{log.read_text()[-3000:]}") from err
        finally:
            stop(process)
    for path in written:
        print(f"wrote {path.relative_to(REPO_ROOT)}")  # noqa: T201 (a script's output)


if __name__ == "__main__":
    main()
