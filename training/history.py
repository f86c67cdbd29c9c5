"""The champion history (issue 13, §4): every move of ``@champion`` recorded, read back, and rolled back.

Where: in the MLflow store itself, as a run per move in one experiment, ``eqsms-champion-history``. The store is the
registry of record and a team shares it, so whoever can see the champion sees how it got there, from any machine
and in MLflow's own UI (a move is a row there, filterable by model). A run suits a record better than the registered
model's tags would: it is written whole in one call (``create_run`` with its tags: one transaction in a sqlite
store, one request to a server), so a record is never half there; each move is a row of its own, where tags would be
a read-modify-write of one growing map that two movers could clobber; it has its time and a status; and it outlives
a deleted registered model. A record's facts are its tags (``model``, ``from_version``, ``to_version``, ``action``,
``reason``, ``metric``, ``challenger_value``, ``champion_value``, ``moved_by``, ``moved_at``).

When: the record is written *before* the alias moves, as a run still RUNNING (pending); the alias moves; then the
run is marked FINISHED (done), or FAILED if the move raised. The alias move stays the gate's last write that matters:
the mark after it is best effort and never raises a store's error (the move it describes is made; the training must
not be withdrawn over its record). So a crash or a fault between the record and the mark is detectable, and
:func:`history` does not trust the mark alone: a record not marked done counts as applied only if the store shows the
move happened, that is if the next record of the model found its ``to`` version as the champion (its ``from``) or,
the newest, if ``@champion`` is at its ``to`` version now. A record whose alias never moved reads as not applied.

Rollback moves ``@champion`` back without judging metrics again (the point is to go back), and only through what the
gate recorded: to the champion before the current one in the history (a stack: a promotion pushes, a rollback pops),
or, where the history holds nothing earlier (moves made before it began), to the version the current champion beat
at the gate (its ``gate.champion_version`` tag); with ``--to``, to a version the history shows as champion or whose
``gate.decision`` is ``promoted``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from training.tracking import CHAMPION, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, alias_version, gate_lock

EXPERIMENT = "eqsms-champion-history"
FIRST_MODEL, PROMOTED, ROLLED_BACK = "first model", "promoted", "rolled back"
PENDING, DONE, FAILED = "pending", "done", "failed"
_STATUS = {"RUNNING": PENDING, "FINISHED": DONE, "FAILED": FAILED, "KILLED": FAILED, "SCHEDULED": PENDING}
_TEXT_MAX = 5000  # an MLflow tag value holds 8000 characters; a reason or a command line is cut well before that
_COMMAND_MAX = 160  # a command line as moved_by says it, at most
_log = logging.getLogger(__name__)


def mover(command: str | None = None) -> str:
    """Who or what moves ``@champion``: ``moved_by`` in settings (``EQSMS_MOVED_BY``) or the OS ``user@host``, and
    the command in brackets (given, or the process's command line: ``eqsms train data --model churn --promote``,
    ``eqsms rollback churn``)."""
    from eqsms.settings import get_settings

    who = (get_settings().moved_by or "").strip() or _user_at_host()
    return f"{who} ({command or _command()})"


def _user_at_host() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # a container's uid with no passwd entry and no USER
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _command() -> str:
    """The process's command line, its program by name: ``eqsms train data --model churn --promote``."""
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
    said = " ".join(argv)
    return said if len(said) <= _COMMAND_MAX else said[: _COMMAND_MAX - 3] + "..."


def _experiment_id(client: MlflowClient, model: str) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        if found.lifecycle_stage == "deleted":  # the record of record: brought back, not replaced
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    # No artifacts are logged here; the location is the model's experiment's all the same (the store's own folder).
    beside = client.get_experiment_by_name(f"eqsms-{model}")
    location = beside.artifact_location if beside else None
    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, "mlflow.note.content": "Every move of @champion (eqsms history)."}
    try:
        return client.create_experiment(EXPERIMENT, artifact_location=location, tags=tags)
    except MlflowException as err:  # a move of another model made it a moment ago (a shared server)
        if err.error_code != "RESOURCE_ALREADY_EXISTS" or (found := client.get_experiment_by_name(EXPERIMENT)) is None:
            raise
        return found.experiment_id


def record_move(
    client: MlflowClient,
    model: str,
    to_version: str,
    from_version: str | None,
    action: str,
    reason: str,
    moved_by: str,
    metric: str = "",
    challenger_value: float | None = None,
    champion_value: float | None = None,
) -> str:
    """Record a move of ``@champion`` about to be made, as a pending run (one write); its run id."""
    now = dt.datetime.now(dt.UTC)
    tags = {
        "model": model,
        "to_version": str(to_version),
        "action": action,
        "reason": reason[:_TEXT_MAX],
        "moved_by": moved_by[:_TEXT_MAX],
        "moved_at": now.isoformat(timespec="microseconds"),
        "mlflow.user": moved_by.partition(" (")[0][:250],
    }
    if from_version is not None:
        tags["from_version"] = str(from_version)
    if metric:
        tags["metric"] = metric
    for key, value in (("challenger_value", challenger_value), ("champion_value", champion_value)):
        if value is not None:
            tags[key] = repr(float(value))  # repr: the float back exactly
    said = f"{model}: v{from_version} → v{to_version}" if from_version else f"{model}: v{to_version}"
    run = client.create_run(
        _experiment_id(client, model),
        start_time=int(now.timestamp() * 1000),
        tags=tags,
        run_name=f"{said} ({action})",
    )
    return run.info.run_id


def _mark(client: MlflowClient, run_id: str, status: str) -> None:
    """Mark a record done or failed: best effort (the store may be what failed; :func:`history` reads the alias)."""
    try:
        client.set_terminated(run_id, status)
    except Exception as err:
        _log.warning("the champion history's record %s is left pending: %s", run_id, str(err)[:200])


def move_champion(client: MlflowClient, model: str, version: str, **record) -> None:
    """Record the move (pending), move ``@champion`` to ``version``, mark the record done. ``record``: the other
    arguments of :func:`record_move`. A failing move is marked failed and raised."""
    run_id = record_move(client, model, version, **record)
    try:
        client.set_registered_model_alias(model, CHAMPION, version)
    except BaseException:
        _mark(client, run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    _mark(client, run_id, RunStatus.to_string(RunStatus.FINISHED))


def record_promotion(client: MlflowClient, decision, moved_by: str | None = None) -> None:
    """The gate's move: ``@champion`` to the promoted challenger (a :class:`training.tracking.Decision`), recorded."""
    move_champion(
        client,
        decision.target,
        decision.challenger,
        from_version=decision.champion_before,
        action=PROMOTED if decision.champion_before else FIRST_MODEL,
        reason=decision.reason,
        moved_by=moved_by or mover(),
        metric=decision.metric,
        challenger_value=decision.challenger_value,
        champion_value=decision.champion_value,
    )


def _runs(client: MlflowClient, model: str | None) -> list:
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is None:
        return []
    quote = '"' if "'" in (model or "") else "'"
    where = f"tags.model = {quote}{model}{quote}" if model else ""
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], where, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def history(client: MlflowClient, model: str | None = None, limit: int | None = None) -> list[dict]:
    """The recorded moves of ``@champion`` (of ``model``, or of every model), newest first, as plain dicts: ``time``
    (ISO, UTC), ``model``, ``from`` and ``to`` (versions; ``from`` None for a first model), ``action`` (first model,
    promoted, rolled back), ``reason``, ``metric`` and ``values`` (``challenger`` and ``champion``, as the gate
    measured them; None where it did not), ``moved_by``, ``applied`` (whether the alias moved), ``status`` (done,
    pending: recorded but not marked, failed: the move raised) and ``run_id`` (the record in MLflow)."""
    records = []
    for run in _runs(client, model):
        tags = run.data.tags
        if "model" not in tags or "to_version" not in tags:
            continue  # not a record of ours
        records.append(
            {
                "time": tags.get("moved_at")
                or dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC).isoformat(timespec="microseconds"),
                "model": tags["model"],
                "from": tags.get("from_version"),
                "to": tags["to_version"],
                "action": tags.get("action", ""),
                "reason": tags.get("reason", ""),
                "metric": tags.get("metric", ""),
                "values": {
                    "challenger": _float(tags.get("challenger_value")),
                    "champion": _float(tags.get("champion_value")),
                },
                "moved_by": tags.get("moved_by", ""),
                "applied": run.info.status == "FINISHED",
                "status": _STATUS.get(run.info.status, PENDING),
                "run_id": run.info.run_id,
            }
        )
    records.sort(key=lambda r: r["time"], reverse=True)
    newer: dict[str, dict] = {}  # model -> the record after this one (newest first: already seen)
    for record in records:
        if record["status"] != DONE:  # the mark may be missing or wrong: what the store shows decides
            after = newer.get(record["model"])
            if after is not None:
                record["applied"] = after["from"] == record["to"]
            else:
                record["applied"] = alias_version(client, record["model"], CHAMPION) == record["to"]
        newer[record["model"]] = record
    return records[:limit] if limit else records


@dataclass
class Rollback:
    """What :func:`rollback` did, or why it refused (``moved`` False): like the gate's ``Decision``."""

    target: str
    moved: bool
    reason: str
    from_version: str | None = None
    to_version: str | None = None

    def summary(self) -> str:
        if not self.moved:
            return f"{self.target}: not rolled back: {self.reason}"
        return f"{self.target}: rolled back @{CHAMPION} from v{self.from_version} to v{self.to_version}: {self.reason}"


def _last(stack: list[str], version: str) -> int:
    return len(stack) - 1 - stack[::-1].index(version)


def _lineage(records: list[dict]) -> list[str]:
    """The champions in force, oldest first, as the applied records leave them: a promotion pushes (after the
    champion it replaced, if the stack did not end with it), a rollback pops back to its version."""
    stack: list[str] = []
    for record in reversed(records):  # oldest first
        if not record["applied"]:
            continue
        to = record["to"]
        if record["action"] == ROLLED_BACK:
            stack = stack[: _last(stack, to) + 1] if to in stack else [to]
            continue
        if record["from"] and (not stack or stack[-1] != record["from"]):
            stack.append(record["from"])
        stack.append(to)
    return stack


def _version(client: MlflowClient, model: str, version: str):
    try:
        return client.get_model_version(model, version)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _previous(client: MlflowClient, model: str, current: str, records: list[dict]) -> str | None:
    """The champion before ``current``: from the history, else from the gate's record on ``current``."""
    stack = _lineage(records)
    below = stack[: _last(stack, current)] if current in stack else stack  # not in it: moved outside eqsms
    if below:
        return below[-1]
    found = _version(client, model, current)
    if found is not None and found.tags.get("gate.decision") == PROMOTED:
        return found.tags.get("gate.champion_version")
    return None


def rollback(
    client: MlflowClient,
    model: str,
    to_version: str | None = None,
    reason: str = "",
    moved_by: str | None = None,
) -> Rollback:
    """Move ``@champion`` of ``model`` back to the champion before it (or to ``to_version``, a version that was
    champion or passed the gate), record the move and say what moved. No metric is judged again. Refused (``moved``
    False, the reason says why): no such model, no champion, nothing earlier, the version gone, already the
    champion, or never past the gate."""
    if not is_registered(client, model):
        return Rollback(model, False, f"no registered model named {model}")
    with gate_lock(client, model):  # no gate of the model moves @champion between the reading and the move
        return _roll_back(client, model, to_version, reason, moved_by)


def _roll_back(client: MlflowClient, model: str, to_version: str | None, reason: str, moved_by: str | None) -> Rollback:
    current = alias_version(client, model, CHAMPION)
    records = history(client, model)
    if to_version is None:
        if current is None:
            return Rollback(model, False, f"it has no @{CHAMPION} to roll back from: name a version with --to")
        target = _previous(client, model, current, records)
        if target is None:
            return Rollback(
                model, False, f"no champion before v{current} in the champion history or the gate's records", current
            )
        gone = f"v{target}, the champion before v{current}, no longer exists in the registry: name another with --to"
        said = f"the champion before v{current}"
    else:
        target = str(to_version).strip().removeprefix("v")
        gone = f"v{target} does not exist in the registry (deleted, or never registered)"
        said = "named with --to"
    if target == current:
        return Rollback(model, False, f"v{target} already is the champion", current, target)
    version = _version(client, model, target)
    if version is None:
        return Rollback(model, False, gone, current, target)
    champions = {r["to"] for r in records if r["applied"]} | {r["from"] for r in records if r["from"]}
    decision = version.tags.get("gate.decision")
    if target not in champions and decision != PROMOTED:
        return Rollback(
            model,
            False,
            f"v{target} was never champion and never passed the gate (gate.decision: {decision or 'none'}): "
            "a rollback goes only to a version that did",
            current,
            target,
        )
    reason = reason.strip() or said
    move_champion(
        client,
        model,
        target,
        from_version=current,
        action=ROLLED_BACK,
        reason=reason,
        moved_by=moved_by or mover(),
    )
    return Rollback(model, True, reason, current, target)


def is_registered(client: MlflowClient, model: str) -> bool:
    try:
        client.get_registered_model(model)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True
