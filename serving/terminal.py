"""`eqsms risk` on a terminal: one project's answer (:class:`serving.schemas.RiskResponse`, the body of
``POST /v1/risk``) as a rich table, as CSV rows, or as the API's JSON.

Pure formatting: the command (``serving.cli``) gets the answer in process or from a running service, and both ways
come here as the same validated object. The columns follow the target specs (``features.targets``): each milestone
target is a column of its answer and a column of its drivers; each client target is a line under the table.
"""

from __future__ import annotations

import csv
from typing import IO

from rich.console import Group
from rich.table import Table
from rich.text import Text

from features.targets import CLASSIFIER, CLIENT, MILESTONE, SLIP, of_scope
from serving import schemas

LEVEL_STYLE = {"low": "green", "medium": "yellow", "high": "bold red"}


def _cell(spec, answer) -> Text:
    """A target's answer in a few words (``23% (medium)``; ``12 days [3, 30], late 64%``), its level coloured."""
    text = Text(answer.said("").strip())
    if spec.kind == CLASSIFIER:
        text.stylize(LEVEL_STYLE.get(answer.level, ""))
    return text


def drivers_text(drivers: list[schemas.Driver]) -> str:
    """Each driver's text, one a line (the text names the feature's department: ``... (quality) pushed ...``)."""
    return "\n".join(d.text for d in drivers)


def title(answer: schemas.RiskResponse) -> str:
    client = f" (client {answer.client_id})" if answer.client_id else ""
    return f"project {answer.project_id}{client} as of {answer.as_of:%Y-%m-%d %H:%M}: open milestones"


def table(answer: schemas.RiskResponse) -> Table:
    """One row per open milestone: id, kind, planned date, each milestone target's answer and its drivers."""
    specs = of_scope(MILESTONE)
    out = Table(title=title(answer), title_justify="left", show_lines=True, highlight=False)
    for column in ("milestone", "kind", "planned"):
        out.add_column(column, no_wrap=True)
    for spec in specs:
        out.add_column(spec.name.replace("_", " "), no_wrap=True)
    for spec in specs:
        out.add_column(f"{spec.name.replace('_', ' ')} drivers", overflow="fold")
    for m in answer.milestones:
        answers = [getattr(m, spec.name) for spec in specs]
        out.add_row(
            m.milestone_id,
            m.kind or "",
            str(m.planned_date or ""),
            *(_cell(spec, a) for spec, a in zip(specs, answers, strict=True)),
            *(drivers_text(a.drivers) for a in answers),
        )
    return out


def footer(answer: schemas.RiskResponse) -> list[Text]:
    """The client targets' answers with their drivers, then how fresh the data is (a stale answer in red)."""
    lines = []
    for spec in of_scope(CLIENT):
        client_answer = getattr(answer, spec.name)
        line = Text(f"client {answer.client_id or '(none)'}: {spec.name} ")
        line.append_text(_cell(spec, client_answer))
        lines.append(line)
        lines += [Text(f"    {d.text}") for d in client_answer.drivers]
    f = answer.data_freshness
    if f.latest_fact is None:
        fresh = Text("data: no fact known before as_of: STALE", style="bold red")
    else:
        days = f.days_since_latest_fact
        fresh = Text(f"data: newest fact {f.latest_fact:%Y-%m-%d %H:%M}, {days:g} days before as_of")
        if f.stale:
            fresh.append(f": STALE (more than {f.stale_after_days:g} days), the answer may be out of date", "bold red")
    lines.append(fresh)
    versions = ", ".join(f"{name} v{version}" for name, version in answer.model_versions.items())
    lines.append(Text(f"models: {versions}", style="dim"))
    return lines


def render(answer: schemas.RiskResponse) -> Group:
    """The table (or a line saying no milestone is open) and the footer."""
    head = table(answer) if answer.milestones else Text(f"{title(answer)}: none")
    return Group(head, *footer(answer))


# ------------------------------------------------------------------------------------------------------------ csv
FIELDS = {
    CLASSIFIER: ("probability", "level"),
    SLIP: ("expected_slip_days", "range_low_days", "range_high_days", "late_probability", "delay_incurred_days"),
}


def _columns(spec, with_drivers: bool) -> list[str]:
    return [f"{spec.name}_{field}" for field in FIELDS[spec.kind] + (("drivers",) if with_drivers else ())]


def _values(spec, answer, with_drivers: bool) -> list[object]:
    if spec.kind == CLASSIFIER:
        values: list[object] = [answer.probability, answer.level]
    else:
        low, high = answer.range_days
        values = [answer.expected_slip_days, low, high, answer.late_probability, answer.delay_incurred_days]
    if with_drivers:
        values.append("; ".join(d.text for d in answer.drivers))
    return values


def csv_header() -> list[str]:
    """The CSV columns: the milestone's, each milestone target's with its drivers joined, each client target's
    (without drivers: they repeat on every row), and whether the data is stale."""
    head = ["project_id", "client_id", "as_of", "milestone_id", "kind", "planned_date"]
    head += [c for spec in of_scope(MILESTONE) for c in _columns(spec, True)]
    head += [c for spec in of_scope(CLIENT) for c in _columns(spec, False)]
    return [*head, "data_stale"]


def csv_rows(project: schemas.ProjectRisk, stale: bool) -> list[list[object]]:
    """One flat row per open milestone, in the order of :func:`csv_header` (a project with none open: one row of
    its client's answers, the milestone columns empty); ``stale``: the data's freshness flag of the answer."""
    client = [v for spec in of_scope(CLIENT) for v in _values(spec, getattr(project, spec.name), False)]
    head: list[object] = [project.project_id, project.client_id or "", project.as_of.isoformat()]
    empty = ["", "", ""] + ["" for spec in of_scope(MILESTONE) for _ in _columns(spec, True)]
    rows = []
    for m in project.milestones:
        row = [*head, m.milestone_id, m.kind or "", m.planned_date.isoformat() if m.planned_date else ""]
        row += [v for spec in of_scope(MILESTONE) for v in _values(spec, getattr(m, spec.name), True)]
        rows.append([*row, *client, stale])
    return rows or [[*head, *empty, *client, stale]]


def write_csv(answer: schemas.RiskResponse, out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header())
    writer.writerows(csv_rows(answer, answer.data_freshness.stale))


# -------------------------------------------------------------------------------------------------------- worklist
WORKLIST_FIELDS = [
    "project_id",
    "client_id",
    "milestone_id",
    "kind",
    "planned_date",
    "target",
    "prediction",
    "level",
    "added",
    "share",
    "whatif_gain",
    "drivers",
]


def worklist_rows(items: list[dict]) -> list[list[object]]:
    """A worklist's items (``schemas.WorklistItem`` dicts) as CSV rows of :data:`WORKLIST_FIELDS`, the drivers'
    texts joined."""
    return [
        [
            *("" if item[c] is None else item[c] for c in WORKLIST_FIELDS[:-1]),
            "; ".join(d["text"] for d in item["drivers"]),
        ]
        for item in items
    ]


def _amount(target_name: str, value: float | None) -> str:
    """A prediction or a change of it in the target's unit: percentage points or days."""
    if value is None:
        return "–"
    return f"{value:.0f} d" if target_name == "delay" else f"{value:.0%}"


def worklist_table(answer: schemas.WorklistResponse) -> Table:
    """One row per item: where, which prediction, what the department's drivers add, the what-if gain, the drivers."""
    out = Table(
        title=f"{answer.department} worklist as of {answer.as_of:%Y-%m-%d}: {len(answer.items)} of {answer.total}",
        title_justify="left",
        show_lines=True,
        highlight=False,
    )
    for column in ("project", "milestone", "target", "prediction", "added", "share", "what-if gain"):
        out.add_column(column, no_wrap=True)
    out.add_column("the department's drivers", overflow="fold")
    for item in answer.items:
        prediction = Text(f"{_amount(item.target, item.prediction)} ({item.level})", LEVEL_STYLE.get(item.level, ""))
        out.add_row(
            item.project_id,
            item.milestone_id or f"client {item.client_id or ''}",
            item.target,
            prediction,
            _amount(item.target, item.added),
            f"{item.share:.0%}",
            _amount(item.target, item.whatif_gain),
            drivers_text(item.drivers),
        )
    return out
