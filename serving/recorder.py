"""What the service tells the prediction log (:mod:`eqsms.predlog`, issue 13 §1): a scored block as log records.

A block (:class:`serving.runtime.Block`) holds every answer of one request, or of the day's snapshot: each milestone
target's answer for each open milestone, each client target's answer for each project. Each answer becomes one
:class:`eqsms.predlog.PredictionRecord` with the model's version, the data snapshot it was computed from, and the
hash of the feature row the model saw (its own features, hashed a block at a time: a few microseconds a row).

Which answers are recorded: ``/v1/risk``, ``/v1/risk/batch``, the worklists and the board's portfolio, the answers
a planner acts on. ``/v1/whatif`` (hypothetical rows) and ``/v1/predict`` (rows the caller made up, with no project
or date) are not predictions about a milestone and are not recorded. The day's snapshot is recorded with the board's
first load of it, once, not with every page load: a portfolio is every open project.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from prometheus_client import Gauge

from eqsms.predlog import PredictionLog, PredictionRecord, features_hashes
from features.targets import CLIENT, MILESTONE, of_scope
from serving.runtime import Block, Engine

# On /metrics: each worker's own log, summed over the live workers (prometheus_client's multiprocess mode).
LOG_STATS = {
    name: Gauge(f"eqsms_prediction_log_{name}", words, multiprocess_mode="livesum")
    for name, words in {
        "queued": "predictions waiting to be written to the prediction log",
        "written": "predictions written to the prediction log since the workers started",
        "dropped": "predictions not logged: the queue was full (the database slow or down) or the log closing",
        "failed": "predictions the log's database refused, or still unwritten when the log closed",
    }.items()
}


def measure(log: PredictionLog) -> None:
    """The log's counters on /metrics."""
    stats = log.stats()
    for name, gauge in LOG_STATS.items():
        gauge.set(stats[name])


def block_records(engine: Engine, block: Block, fingerprint: str) -> dict[str, list[PredictionRecord]]:
    """Every answer of ``block`` as a record, by project (its milestones' answers, then its client's)."""
    versions = engine.versions()
    latest = engine.latest_fact
    clients = engine.projects["client_id"]
    common = {"as_of": block.as_of, "data_fingerprint": fingerprint, "data_latest_fact": latest}
    out: dict[str, list[PredictionRecord]] = {p: [] for p in block.project_ids}

    def add(scope: str, project_ids: Iterable[str], milestone_ids: Iterable[str | None]) -> None:
        columns = block.columns[scope]
        ids = list(zip(project_ids, milestone_ids, strict=True))
        for spec in of_scope(scope):
            hashes = features_hashes({f: columns[f] for f in engine.bundles[spec.name].features if f in columns})
            for (project, milestone), answer, row_hash in zip(ids, block.answers[spec.name], hashes, strict=True):
                client = clients.get(project)
                out[project].append(
                    PredictionRecord.from_answer(
                        spec.name,
                        answer,
                        model_version=str(versions[spec.name]),
                        project_id=project,
                        milestone_id=milestone,
                        client_id=None if pd.isna(client) else str(client),
                        features_hash=row_hash,
                        **common,
                    )
                )

    if len(block.rows):
        add(MILESTONE, block.rows["project_id"], block.rows["milestone_id"])
    add(CLIENT, block.project_ids, [None] * len(block.project_ids))
    return out


def all_records(by_project: dict[str, list[PredictionRecord]], project_ids: Iterable[str] | None = None):
    """The records of ``project_ids`` (default: every project), one sequence."""
    chosen = by_project if project_ids is None else (p for p in project_ids if p in by_project)
    return [record for p in chosen for record in by_project[p]]
