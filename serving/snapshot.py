"""Today's answers, precomputed: every open project scored once per data snapshot and set of models.

The board's portfolio (10,000 open projects and more) cannot be scored per page load, and most ``/v1/risk`` calls
ask about today. A :class:`Snapshot` scores every project open at the board's ``as_of``
(:func:`serving.board.snapshot_as_of`: today, or the day after the data's newest fact when the export is older) in
one vectorised pass when the service starts, and keeps the answers, the portfolio lines and the department
worklists' items. A request for another ``as_of`` is computed as before.

Freshness: the snapshot is as fresh as the data and models the service loaded; it is rebuilt when the day changes
(the next request after midnight UTC starts a rebuild in a background thread and is answered from the old one, or
computed, until the new one is ready) and whenever the service loads new data or models.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from features.registry import DEPARTMENTS
from serving import board, recorder
from serving.runtime import Block, Engine


@dataclass
class Snapshot:
    """Every project open at ``as_of`` scored once (``block``, kept with every contribution for the worklists)."""

    as_of: pd.Timestamp
    built_at: datetime
    seconds: float
    block: Block | None
    projects: dict  # project_id -> schemas.ProjectRisk
    lines: list[dict]  # the portfolio, one line a project (serving.board.portfolio)
    worklists: dict[str, pd.DataFrame] = field(default_factory=dict)  # department -> serving.board.worklist_table
    risk_bodies: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (project, lang) -> /v1/risk's body
    portfolio_bodies: dict[str, bytes] = field(default_factory=dict)  # lang -> /v1/portfolio's body
    records: dict[str, list] = field(default_factory=dict)  # project -> its answers for the prediction log
    logged: bool = False  # whether the board's first load recorded the whole snapshot in the prediction log

    @classmethod
    def build(cls, engine: Engine, fingerprint: str = "", now: pd.Timestamp | None = None) -> Snapshot:
        """``fingerprint``: the data snapshot's, which the prediction log's records name."""
        started = time.perf_counter()
        t = board.snapshot_as_of(engine, now)
        ids = engine.open_projects(t)
        block = engine.block(ids, t, top_k=engine.settings.default_top_k, keep=True) if ids else None
        projects = engine.projects_of(block) if block is not None else []
        # Every department's worklist ranked now (its what-if rescoring is the costly part), its words per request.
        worklists = {d: board.worklist_table(engine, block, d) for d in DEPARTMENTS} if block is not None else {}
        return cls(
            as_of=t,
            built_at=datetime.now(UTC),
            seconds=round(time.perf_counter() - started, 3),
            block=block,
            projects={p.project_id: p for p in projects},
            lines=board.portfolio(engine, projects),
            worklists=worklists,
            records=recorder.block_records(engine, block, fingerprint) if block is not None else {},
        )

    def answers(self, as_of: pd.Timestamp) -> bool:
        """Whether this snapshot holds the answers as of ``as_of``."""
        return as_of == self.as_of

    def worklist(
        self, engine: Engine, department: str, sort: str = "risk", targets=None, limit: int | None = None
    ) -> tuple[list[dict], int]:
        """The department's worklist at the snapshot's ``as_of``: its items (found when the snapshot was built)
        ranked by ``sort``, the drivers told for the ``limit`` items returned."""
        wanted = board.check_worklist(department, sort, targets)
        if self.block is None:
            return [], 0
        table = self.worklists[department]
        return board.told_items(engine, self.block, department, board.ranked(table, sort, wanted), limit)

    def about(self) -> dict:
        """What the board says of the snapshot."""
        return {
            "as_of": self.as_of.isoformat(),
            "built_at": self.built_at.isoformat(),
            "build_seconds": self.seconds,
            "projects": len(self.projects),
        }


class Snapshots:
    """The service's current snapshot, rebuilt in the background when the board's ``as_of`` moves on (a new day)."""

    def __init__(self, engine: Engine, fingerprint: str = "") -> None:
        self.engine, self.fingerprint = engine, fingerprint
        self.current = Snapshot.build(engine, fingerprint)
        self._rebuilding = threading.Lock()

    def get(self) -> Snapshot:
        """The current snapshot; starts a rebuild when the day has moved on (answered from the old one meanwhile)."""
        if board.snapshot_as_of(self.engine) != self.current.as_of and self._rebuilding.acquire(blocking=False):
            threading.Thread(target=self._rebuild, daemon=True, name="eqsms-snapshot").start()
        return self.current

    def _rebuild(self) -> None:
        try:
            self.current = Snapshot.build(self.engine, self.fingerprint)
        finally:
            self._rebuilding.release()
