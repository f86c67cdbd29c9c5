"""`eqsms retrain DATA_DIR`: one command for cron or any scheduler (issue 13 §4).

Validate the new export, build the datasets, train a challenger of each model, run the gate (which refuses a model
worse than its champion or than the baselines), promote or not, and tell a running service to reload; then one
line a scheduler can mail or alert on, and an exit status:

- 0: done: trained and judged (promoted or not), or nothing to do (the export is the one last retrained on, or the
  monitor raised no flag when ``--when flagged``);
- 1: trained and promoted, but the service could not be told to reload (down, refused, or its reload failed): the
  new champions are in the registry and the service still answers with the old ones until it polls;
- 2: could not run: the export fails validation, the MLflow store cannot be used, a bad option.

The export's identity is its files' content (``features.datasets.folder_fingerprint``, as the datasets' cache uses):
the same export copied again with new times is no new data. The last run's identity and outcome are kept in
``<work_dir>/retrain/last.json``; ``--force`` retrains anyway. With ``--when flagged``, a changed export is retrained
on only when the monitor's last verdict (``eqsms monitor``: ``<work_dir>/monitor/verdict.json``) flagged a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from eqsms.settings import Settings

DONE, NOT_TOLD, CANNOT = 0, 1, 2
WHEN = ("changed", "flagged")


@dataclass
class Retrained:
    """What one run did, as the summary line and ``last.json`` say it."""

    fingerprint: str | None
    data_until: str | None = None  # the export's newest fact (``--min-days`` counts new data from it)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    trained: bool = False
    reason: str = ""
    models: dict[str, str] = field(default_factory=dict)  # model -> what happened, in words
    promoted: list[str] = field(default_factory=list)
    reload: str = "not asked"
    status: int = DONE

    def line(self) -> str:
        """The one line for the scheduler."""
        head = f"retrain {'done' if self.status == DONE else 'ATTENTION' if self.status == NOT_TOLD else 'FAILED'}"
        if not self.trained:
            return f"{head}: {self.reason}"
        said = "; ".join(f"{m} {what}" for m, what in self.models.items())
        return f"{head}: data {self.fingerprint[:12] if self.fingerprint else '?'}: {said}; service: {self.reload}"


def state_file(settings: Settings) -> Path:
    return settings.work_dir / "retrain" / "last.json"


def verdict_file(settings: Settings) -> Path:
    return settings.monitor_page.parent / "verdict.json"


def read_json(path: Path) -> dict | None:
    """A state file written by this package (the last run, the monitor's verdict), or None when there is none."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def last_run(settings: Settings) -> dict | None:
    return read_json(state_file(settings))


def remember(settings: Settings, run: Retrained) -> None:
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(run), indent=2) + "\n")


def why_not(fingerprint: str | None, last: dict | None, when: str, verdict: dict | None, force: bool) -> str | None:
    """Why this run has nothing to do, or None when it should train (a pure decision, tested as such)."""
    if force:
        return None
    if fingerprint is None:
        return "the export folder has no table files"
    if last is not None and last.get("fingerprint") == fingerprint and last.get("trained"):
        return f"nothing to do: the export is the one retrained on at {last.get('at')} (data {fingerprint[:12]})"
    if when == "flagged" and not (verdict or {}).get("flagged"):
        said = "no verdict yet: run `eqsms monitor`" if verdict is None else "the monitor raised no flag"
        return f"nothing to do: {said}"
    return None


def too_soon(until, last: dict | None, min_days: float) -> str | None:
    """Why an export whose newest fact is ``until`` is too little new data to retrain on: fewer than ``min_days``
    days of facts after the export the last training run used (``--min-days``; data time, not the clock, so a
    weekly cron with ``--when flagged`` retrains at most every ``min_days`` days of data however often it flags)."""
    import pandas as pd

    before = (last or {}).get("data_until") if (last or {}).get("trained") else None
    if not min_days or before is None or until is None:
        return None
    days = (pd.Timestamp(until) - pd.Timestamp(before)) / pd.Timedelta(days=1)
    if days >= min_days:
        return None
    return (
        f"nothing to do: {int(days)} days of new data since the last retrain (data to {pd.Timestamp(before).date()}); "
        f"--min-days asks for {min_days:g}"
    )


def told(decision) -> str:
    """A gate's decision in a few words."""
    if decision is None:
        return "trained (no gate)"
    if decision.promoted:
        return f"promoted v{decision.challenger}"
    kept = f"kept v{decision.champion_before}" if decision.champion_before else "no champion"
    return f"{kept} (v{decision.challenger}: {decision.reason})"


def ask_reload(url: str, settings: Settings) -> tuple[bool, str]:
    """POST /v1/admin/reload on the service at ``url`` with the key in settings: whether it reloaded, and what it
    said."""
    import urllib.error

    from serving.local import call, client_key

    try:
        status, answer = call(f"{url.rstrip('/')}/v1/admin/reload", {}, timeout=600, key=client_key(settings))
    except (urllib.error.URLError, OSError) as err:
        return False, f"not reached at {url} ({getattr(err, 'reason', err)})"
    if status != 200 or not isinstance(answer, dict):
        return False, f"refused the reload ({status}: {answer.get('error') if isinstance(answer, dict) else answer})"
    if not answer.get("ok"):
        return False, f"its reload failed ({answer.get('error')}); it answers with what it had"
    return True, f"reloaded ({', '.join(answer.get('changed') or []) or 'nothing changed'})"
