"""The end of `make run`: start the real server, wait until it is ready, ask /v1/risk about one open project, print
the answer, stop the server.

    python -m serving.smoke            # on the settings' data folder and MLflow store, on a free loopback port
"""

from __future__ import annotations

import json
import sys
import time

from eqsms.settings import get_settings
from features.targets import CLIENT, MILESTONE, of_scope
from serving import schemas
from serving.local import HOST, call, free_port, start, stop, wait_ready


def open_project() -> tuple[str, str]:
    """An open project with a milestone still ahead on the day after the latest fact of the data folder, and that day
    (the sample world ends years before today: asking as of now would score long-overdue milestones)."""
    from features.contract import latest_fact
    from features.validate import load

    tables = load(get_settings().data_dir).tables
    as_of = latest_fact(tables).ceil("D")
    projects, milestones = tables["projects"], tables["milestones"]
    started = projects[projects["actual_end"].isna() & (projects["planned_start"] < as_of)]["project_id"]
    ahead = milestones[milestones["project_id"].isin(started) & ~(milestones["actual_date"] < as_of)]
    return str(ahead["project_id"].iloc[0]), as_of.date().isoformat()


def _said(spec, answer: dict) -> str:
    return schemas.ANSWER[spec.kind].model_validate(answer).said(spec.name)


def summary(answer: dict) -> list[str]:
    lines = [f"project {answer['project_id']} (client {answer['client_id']}) as of {answer['as_of']}"]
    for m in answer["milestones"]:
        said = ", ".join(_said(spec, m[spec.name]) for spec in of_scope(MILESTONE))
        lines.append(f"  {m['milestone_id']} {m['kind']} planned {m['planned_date']}: {said}")
        lines += [f"      {driver['text']}" for driver in m[of_scope(MILESTONE)[0].name]["drivers"][:2]]
    lines += [f"  client: {_said(spec, answer[spec.name])}" for spec in of_scope(CLIENT)]
    lines.append(f"  models {answer['model_versions']}, data freshness {answer['data_freshness']}")
    return lines


def own_key() -> str | None:
    """The key this run's server asks for, if any: the client's own (EQSMS_API_KEY), else the first it accepts."""
    settings = get_settings()
    for key in (settings.api_key, *settings.api_keys, *settings.admin_keys):
        if key is not None:
            return key.get_secret_value()
    return None


def main() -> int:
    from eqsms.cli_kit import console
    from serving.cli import server_env

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
        status, answer = call(f"{base}/v1/risk", {"project_id": project, "as_of": as_of, "top_k": 2}, key=own_key())
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
