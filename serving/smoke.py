"""The end of `make run`: start the real server, wait until it is ready, ask /v1/risk about one open project, print
the answer, stop the server. Also the helpers the end-to-end tests start and stop servers with.

    python -m serving.smoke            # on the settings' data folder and MLflow store, on a free loopback port
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from features.settings import REPO_ROOT, get_settings

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(
    port: int, env: dict[str, str], log: Path, args: list[str] | None = None, cwd: Path = REPO_ROOT
) -> subprocess.Popen:
    """`eqsms serve` (or the given command) in the background, its output in ``log``, in its own process group."""
    command = args or [sys.executable, "-m", "serving.cli", "serve", "--host", HOST, "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def call(url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    """POST ``body`` as JSON (GET when None); the status and the decoded JSON answer, errors included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 90) -> None:
    """Until /readyz answers 200; raises if the server exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server was not ready after {timeout:.0f} s")


def stop(process: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM to the server's pid (BentoML stops its workers); its process group is killed only if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    return process.returncode


def open_project() -> tuple[str, str]:
    """An open project with a milestone still ahead on the day after the latest fact of the data folder, and that day
    (the sample world ends years before today: asking as of now would score long-overdue milestones)."""
    from features.datasets import latest_fact
    from features.validate import load

    tables = load(get_settings().data_dir).tables
    as_of = latest_fact(tables).ceil("D")
    projects, milestones = tables["projects"], tables["milestones"]
    started = projects[projects["actual_end"].isna() & (projects["planned_start"] < as_of)]["project_id"]
    ahead = milestones[milestones["project_id"].isin(started) & ~(milestones["actual_date"] < as_of)]
    return str(ahead["project_id"].iloc[0]), as_of.date().isoformat()


def summary(answer: dict) -> list[str]:
    lines = [f"project {answer['project_id']} (client {answer['client_id']}) as of {answer['as_of']}"]
    for m in answer["milestones"]:
        d, s = m["defect_risk"], m["delay"]
        lo, hi = s["range_days"]
        lines.append(
            f"  {m['milestone_id']} {m['kind']} planned {m['planned_date']}: defect risk {d['probability']:.0%} "
            f"({d['level']}), slip {s['expected_slip_days']:.0f} days [{lo:.0f}, {hi:.0f}], "
            f"late {s['late_probability']:.0%}"
        )
        lines += [f"      {driver['text']}" for driver in d["drivers"][:2]]
    churn = answer["churn"]
    lines.append(f"  client churn risk {churn['probability']:.0%} ({churn['level']})")
    lines.append(f"  models {answer['model_versions']}, data freshness {answer['data_freshness']}")
    return lines


def main() -> int:
    from rich.console import Console

    from serving.serve_cli import server_env

    console = Console()
    port, log = free_port(), get_settings().work_dir / "serve_smoke.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    base = f"http://{HOST}:{port}"
    console.print(f"starting the service on {base} (log: {log})")
    started = time.monotonic()
    env = server_env()
    env.setdefault("BENTOML_HOME", str((log.parent / "bentoml").resolve()))  # BentoML's scratch files stay here
    process = start(port, env, log)
    try:
        wait_ready(base, process)
        console.print(f"ready in {time.monotonic() - started:.1f} s")
        project, as_of = open_project()
        status, answer = call(f"{base}/v1/risk", {"project_id": project, "as_of": as_of, "top_k": 2})
        if status != 200:
            console.print(f"[bold red]/v1/risk answered {status}:[/] {answer}")
            return 1
        console.print(f"POST /v1/risk {json.dumps({'project_id': project, 'as_of': as_of, 'top_k': 2})} -> 200")
        for line in summary(answer):
            console.print(line, highlight=False, soft_wrap=True)
        return 0
    except (RuntimeError, TimeoutError) as err:
        console.print(f"[bold red]{err}[/]\n{log.read_text()[-3000:]}")
        return 1
    finally:
        stop(process)
        console.print("server stopped")


if __name__ == "__main__":
    sys.exit(main())
