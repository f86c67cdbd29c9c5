"""A shift injected into the synthetic world from a date: what a monitor must notice (issue 13 §3).

Three kinds (``eqsms generate --shift KIND --shift-from YYYY-MM-DD [--shift-size X]``):

* ``workmanship``: the work done from the date is worse. The workmanship and the subcontractors' quality of every
  project fall by ``size`` (in standard deviations of those traits, 1.0 by default) for the work done on or after
  the date, so a segment's quality ``q`` falls by ``size`` times the share of the segment after it. What the work
  shows moves with it: inspections from the date find more defects (``exp(0.6 size)`` times as many on average)
  and worse ones, so more fail and their defects close later; first-pass acceptances of milestones reached after
  it fail more often (the lower quality, the open defects and failed inspections, the higher rework pressure); the
  resource weeks from the date take more hours for the same earned value, with more overtime, at a higher cost.
  The latent quality is changed, not the labels, so the features move and the oracle's ``truth`` is the shifted
  ``p_fail`` each label was drawn from. Schedules (slips) are not changed, and neither is the clients' side:
  complaints, surveys and churn are drawn from the failures of the world without the shift, so that the same seed
  gives the same clients, projects and plans and every fact before the date is the same as without the shift.
* ``missing-resources``: a share (``size``, 0.3 by default) of the projects stop sending their weekly resource
  reports from the date (the weeks starting on or after it are missing from ``resources``). Nothing that happened
  changes, nor the oracle: only what the export holds.
* ``new-region``: the firm starts working in a region it never worked in. A share (``size``, 0.3 by default) of the
  projects awarded on or after the date are built there: their ``region`` is ``NEW_REGION_NAME``, a value no earlier
  project has (the contract's region is an open set; the models see a category they were not trained on as
  missing). Not knowing the local subcontractors and labour, the work there is worse: workmanship and
  subcontractor quality fall by ``NEW_REGION_FALL`` sd for those projects' work, with every effect the
  ``workmanship`` shift has (inspections, defects, first-pass acceptances, resource hours; the oracle is the
  shifted truth), and, as there, the schedules and the clients' side stay those of the world without the shift.
  The projects keep the traits drawn for them (the old region's mild effects included): only the name and the
  fall are new. A project awarded before the date, and anything before it, is unchanged.

The shift draws from its own generator (seeded from the world's seed), never from the world's, and without a shift
nothing here runs: a world without one is the world the same seed always gave, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads when a shift is applied, not when `eqsms --help` reads the kinds
    import numpy as np

WORKMANSHIP, MISSING_RESOURCES, NEW_REGION = "workmanship", "missing-resources", "new-region"
NEW_REGION_NAME = "coast"  # the region the firm never worked in before (world.simulate.REGIONS are the old ones)
NEW_REGION_FALL = 0.5  # sd: how much worse workmanship and subcontractors are there
KINDS = {
    WORKMANSHIP: "workmanship and subcontractor quality fall by SIZE sd for the work done from the date",
    MISSING_RESOURCES: "a share SIZE of the projects stop sending weekly resource reports from the date",
    NEW_REGION: f"a share SIZE of the projects awarded from the date are in a new region ('{NEW_REGION_NAME}'), "
    f"with workmanship and subcontractor quality {NEW_REGION_FALL:g} sd lower",
}
DEFAULT_SIZE = {WORKMANSHIP: 1.0, MISSING_RESOURCES: 0.3, NEW_REGION: 0.3}
SHARES = (MISSING_RESOURCES, NEW_REGION)  # kinds whose size is a share of projects, in [0, 1]
STREAM = 2  # the shift's generator is seeded [seed, STREAM] (faults use [seed, 1])


@dataclass(frozen=True)
class Shift:
    """A shift of ``kind`` from ``start`` (an ISO date) of ``size`` (the kind's default when None)."""

    kind: str
    start: str
    size: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"shift '{self.kind}' is not one of {', '.join(KINDS)}")
        try:
            dt.date.fromisoformat(self.start)
        except (TypeError, ValueError) as err:
            raise ValueError(f"the shift's start '{self.start}' is not a date (YYYY-MM-DD)") from err
        if self.kind in SHARES and not 0 <= self.amount <= 1:
            raise ValueError(f"the share of projects a {self.kind} shift touches must be in [0, 1], not {self.amount}")

    @property
    def amount(self) -> float:
        """The size, or the kind's default."""
        return DEFAULT_SIZE[self.kind] if self.size is None else float(self.size)

    @property
    def fall(self) -> float:
        """How much lower (sd) workmanship and subcontractor quality are in the work the shift touches (0: none)."""
        return {WORKMANSHIP: self.amount, NEW_REGION: NEW_REGION_FALL}.get(self.kind, 0.0)

    @property
    def day(self) -> float:
        """The start as the simulation's day number (days since 1970-01-01)."""
        return float((dt.date.fromisoformat(self.start) - dt.date(1970, 1, 1)).days)

    def drop(self, t: np.ndarray) -> np.ndarray:
        """The fall in quality of the work the shift touches at times ``t`` (day numbers): ``fall`` from the start,
        0 before."""
        import numpy as np

        return np.where(np.asarray(t) >= self.day, self.fall, 0.0)

    def share_after(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """The share of each span ``[start, end]`` (day numbers, spans of at least a day) on or after the start."""
        import numpy as np

        return np.clip((end - np.maximum(start, self.day)) / np.maximum(end - start, 1.0), 0.0, 1.0)

    def describe(self) -> str:
        return f"{self.kind} from {self.start} (size {self.amount:g})"


def generator(seed: int) -> np.random.Generator:
    """The shift's own random generator for a world of ``seed``."""
    import numpy as np

    return np.random.default_rng([seed, STREAM])
