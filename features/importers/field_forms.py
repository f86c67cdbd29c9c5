"""A construction field-management app's export: forms (inspections, checklists, diaries) and tasks (issues).

The format is the one of the Irish main contractor's export in ``../shared/real/construction_pm_ireland/`` (two CSV
files, ``Created`` and ``Status Changed`` as dd/mm/yyyy, a task's ``Target`` as an Excel serial day). The mapping
(``data_samples/IMPORTERS.md``):

- **projects**: every project number in either file. The export has no type, region, client or dates for them.
- **inspections**, from the forms: every inspection or checklist form (not diaries, meeting minutes, registers,
  training records and other records that inspect nothing) is an inspection on its ``Created`` day, of the
  discipline of its form group; ``fail`` when it raised actions, with ``defects_found`` its total actions, closed
  when it has no open action left (on its last status change).
- **inspections**, from the tasks: each quality defect or snag and each amber or red safety notice is a failed
  inspection with one defect (severity 1 snag, 2 defect or amber notice, 3 red notice), closed on its last status
  change once closed: the defect history. Good observations, works to go, photos, BCAR and planning items are not
  defects and are not mapped.
- **milestones**: each quality inspection or test-plan form (Quality and Design Team groups, an inspection,
  checklist, test, sign-off, snag or quality-control record) is an acceptance: ``kind`` its form template (the
  ``Name`` without a project-number prefix), ``planned_date`` and ``actual_date`` its ``Created`` day (the export
  has no plan), ``first_pass_accepted`` false when it raised actions. It serves the defect-risk model only: with no
  plan, there is no slip.
- a project whose forms are an exact copy of another project's (the export's 1343/1345 fault) keeps one copy: the
  one whose forms' locations name it; if none do, both copies are dropped.

Not mapped, because they are snapshots taken at export time and would leak the label into history features:
``Association`` (``parent`` marks exactly the forms that raised actions), ``Status``, ``Images``, ``Documents``,
``Comments``, ``OverDue``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from features.importers import (
    Imported,
    ImportReport,
    excel_serial_dates,
    number_text,
    numbers,
    parse_dates,
    read_raw,
    slug,
    timestamp_text,
    unique_ids,
)
from features.io import SOURCE_FILE, SOURCE_ROW

DATE_FORMAT = "%d/%m/%Y"
FORM_COLUMNS = (
    "Ref",
    "Location",
    "Name",
    "Created",
    "Type",
    "Status Changed",
    "Open Actions",
    "Total Actions",
    "Project",
    "Report Forms Status",
    "Report Forms Group",
)
TASK_COLUMNS = ("Ref", "Created", "Target", "Type", "Status Changed", "project", "Report Status", "Task Group")
SNAPSHOT_COLUMNS = ("Association", "Status", "Images", "Documents", "Comments", "OverDue")

# Forms that record something other than an inspection of work.
RECORD = re.compile(
    r"diary|daily work plan|allocation sheet|white ?board|meeting|minutes|training record|sign in sheet|"
    r"access register|permit|delivery record|movement record|free issue|progress record|cause & effect|"
    r"lessons learned|submission record|safe start|qs site review",
    re.IGNORECASE,
)
# Of the inspections of the quality groups, those that accept work: inspections, checklists, tests, sign-offs.
ACCEPTANCE_GROUPS = ("Quality", "Design Team")
ACCEPTANCE = re.compile(
    r"inspect|checklist|test|sign off|snag|quality control record|benchmark|sample|cube|itp|-cl-", re.IGNORECASE
)
NOT_ACCEPTANCE = re.compile(r"request for inspection|non conformance|\bncr\b", re.IGNORECASE)
PREFIX = re.compile(r"^(\d{4}[\s-]+|-\s*)")
# Task types that are defects or safety findings, and their severity (0-3).
TASK_SEVERITY = (
    (re.compile(r"safety notice \(red\)", re.IGNORECASE), "safety", 3),
    (re.compile(r"safety notice \(amber\)", re.IGNORECASE), "safety", 2),
    (re.compile(r"defect", re.IGNORECASE), "quality", 2),
    (re.compile(r"snag", re.IGNORECASE), "quality", 1),
)


def form_template(name: pd.Series) -> pd.Series:
    """The form's template: its ``Name`` without a project-number prefix (``1328 CM-SM-FRM-001 Site Diary``)."""
    return name.str.strip().str.replace(PREFIX, "", regex=True).str.strip()


def _midnight(text: pd.Series) -> pd.Series:
    return parse_dates(text, DATE_FORMAT)


def read_forms(path: Path) -> pd.DataFrame:
    forms = read_raw(path, FORM_COLUMNS, "field-management forms")
    forms["project_id"] = forms["Project"].str.strip()
    forms["template"] = form_template(forms["Name"])
    forms["created"] = _midnight(forms["Created"])
    forms["changed"] = _midnight(forms["Status Changed"])
    forms["total_actions"] = numbers(forms["Total Actions"])
    forms["open_actions"] = numbers(forms["Open Actions"])
    return forms


def read_tasks(path: Path) -> pd.DataFrame:
    tasks = read_raw(path, TASK_COLUMNS, "field-management tasks")
    tasks["project_id"] = tasks["project"].str.strip()
    tasks["created"] = _midnight(tasks["Created"])
    tasks["changed"] = _midnight(tasks["Status Changed"])
    return tasks


# ----------------------------------------------------------------------------------------------- duplicated projects

_CONTENT_SKIP = ("Project", "project_id", SOURCE_FILE, SOURCE_ROW)


def copied_projects(forms: pd.DataFrame) -> dict[str, str]:
    """Projects whose forms exactly copy another project's (every column but the project), and the fate of each:
    ``"kept"`` for the copy whose forms' locations name its project, ``"dropped"`` for the others (all dropped when
    no location names one)."""
    content = [c for c in forms.columns if c not in _CONTENT_SKIP and not c.startswith(("created", "changed"))]
    rows = pd.util.hash_pandas_object(forms[content].astype(str), index=False)
    signature = rows.groupby(forms["project_id"]).agg(lambda h: hash(tuple(sorted(h))))
    fate: dict[str, str] = {}
    for _, group in signature.groupby(signature):
        if len(group) < 2:
            continue
        named = {
            p: int(forms.loc[forms["project_id"] == p, "Location"].str.contains(rf"\b{p}\b", regex=True).sum())
            for p in group.index
        }
        best = max(named.values())
        owners = [p for p, n in named.items() if n == best and best > 0]
        for p in group.index:
            fate[p] = "kept" if owners == [p] else "dropped"
    return fate


# ----------------------------------------------------------------------------------------------- forms


def classify_forms(forms: pd.DataFrame) -> pd.DataFrame:
    """Each form as an inspection (or a record that inspects nothing) and, among inspections, an acceptance."""
    record = forms["template"].str.contains(RECORD) | forms["Report Forms Group"].str.strip().eq("#N/A")
    acceptance = (
        ~record
        & forms["Report Forms Group"].str.strip().isin(ACCEPTANCE_GROUPS)
        & forms["template"].str.contains(ACCEPTANCE)
        & ~forms["template"].str.contains(NOT_ACCEPTANCE)
    )
    return forms.assign(is_inspection=~record, is_acceptance=acceptance)


def form_inspections(forms: pd.DataFrame) -> pd.DataFrame:
    """Inspection and checklist forms as contract inspections: failed when they raised actions."""
    f = forms[forms["is_inspection"]]
    actions = f["total_actions"].fillna(0)
    closed = f["Report Forms Status"].str.strip().eq("Closed") & f["open_actions"].fillna(0).eq(0)
    closed_at = f["created"].where(actions.eq(0), f["changed"].where(closed))
    return pd.DataFrame(
        {
            "inspection_id": f["inspection_id"],
            "project_id": f["project_id"],
            "inspected_at": timestamp_text(f["created"]),
            "discipline": slug(f["Report Forms Group"]),
            "result": np.where(actions > 0, "fail", "pass"),
            "defects_found": number_text(actions),
            "max_severity": "",
            "closed_at": timestamp_text(closed_at),
            "source": "form",
            "form_template": f["template"],
            "form_type": f["Type"].str.strip(),
            SOURCE_FILE: f[SOURCE_FILE],
            SOURCE_ROW: f[SOURCE_ROW],
        }
    )


def acceptances(forms: pd.DataFrame) -> pd.DataFrame:
    """Quality inspection and test-plan forms as acceptance milestones: failed first pass if they raised actions."""
    f = forms[forms["is_acceptance"]].sort_values(["project_id", "created", SOURCE_ROW], kind="stable")
    day = timestamp_text(f["created"]).str[:10]
    return pd.DataFrame(
        {
            "milestone_id": f["inspection_id"],
            "project_id": f["project_id"],
            "kind": f["template"],
            "sequence": (f.groupby("project_id").cumcount() + 1).astype(str),
            "planned_date": day,
            "actual_date": day,
            "first_pass_accepted": np.where(f["total_actions"].fillna(0) > 0, "false", "true"),
            "form_type": f["Type"].str.strip(),
            "form_group": f["Report Forms Group"].str.strip(),
            SOURCE_FILE: f[SOURCE_FILE],
            SOURCE_ROW: f[SOURCE_ROW],
        }
    ).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- tasks


def task_findings(tasks: pd.DataFrame) -> pd.DataFrame:
    """Tasks with their discipline and severity where they are a quality defect or a safety notice (else NaN)."""
    kind = tasks["Type"].str.strip()
    discipline = pd.Series(np.nan, index=tasks.index, dtype=object)
    severity = pd.Series(np.nan, index=tasks.index)
    for pattern, name, level in TASK_SEVERITY:
        hit = kind.str.contains(pattern) & severity.isna()
        discipline[hit], severity[hit] = name, level
    return tasks.assign(discipline=discipline, severity=severity)


def task_inspections(tasks: pd.DataFrame) -> pd.DataFrame:
    """Quality defects and safety notices as failed inspections with one defect each: the defect history."""
    t = tasks[tasks["severity"].notna()]
    closed = t["Report Status"].str.strip().eq("Closed")
    return pd.DataFrame(
        {
            "inspection_id": t["inspection_id"],
            "project_id": t["project_id"],
            "inspected_at": timestamp_text(t["created"]),
            "discipline": t["discipline"],
            "result": "fail",
            "defects_found": "1",
            "max_severity": number_text(t["severity"]),
            "closed_at": timestamp_text(t["changed"].where(closed)),
            "source": "task",
            "form_template": "",
            "form_type": t["Type"].str.strip(),
            "target_date": excel_serial_dates(t["Target"]).dt.strftime("%Y-%m-%d").fillna(""),
            SOURCE_FILE: t[SOURCE_FILE],
            SOURCE_ROW: t[SOURCE_ROW],
        }
    )


# ----------------------------------------------------------------------------------------------- the import


def projects(forms: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    ids = pd.unique(pd.concat([forms["project_id"], tasks["project_id"]], ignore_index=True))
    ids = sorted(i for i in ids if isinstance(i, str) and i)
    return pd.DataFrame({"project_id": ids, SOURCE_FILE: "forms and tasks", SOURCE_ROW: np.arange(1, len(ids) + 1)})


def _report(forms, tasks, fate, kept_forms, findings, inspections, milestones, pr) -> ImportReport:
    report = ImportReport(source=f"{forms[SOURCE_FILE].iat[0]}, {tasks[SOURCE_FILE].iat[0]}")
    snapshot = max(forms["created"].max(), forms["changed"].max(), tasks["created"].max(), tasks["changed"].max())
    report.snapshot = str(snapshot.date())
    report.mapped = {"projects": len(pr), "inspections": len(inspections), "milestones": len(milestones)}
    for p, what in sorted(fate.items()):
        n = int((forms["project_id"] == p).sum())
        if what == "dropped":
            report.skip(
                f"forms of project {p}",
                n,
                "an exact copy of another project's forms (every column but the project); the copy whose locations "
                "name its project is kept, this one is dropped; its tasks are kept",
            )
        else:
            report.notes.append(
                f"project {p}: its {n} forms are copied under another project; kept here, where "
                "their locations name the project"
            )
    records = kept_forms[~kept_forms["is_inspection"]]
    for template, n in records["template"].value_counts().head(12).items():
        report.skip(f"forms {template!r}", n, "a record, not an inspection of work")
    if len(records) > sum(records["template"].value_counts().head(12)):
        rest = len(records) - sum(records["template"].value_counts().head(12))
        report.skip("other record forms", rest, "a record, not an inspection of work")
    inspected = kept_forms[kept_forms["is_inspection"]]
    report.notes.append(
        f"{len(inspected):,} inspection and checklist forms -> inspections (fail when they raised actions: "
        f"{int((inspected['total_actions'].fillna(0) > 0).sum()):,}); {int(findings['severity'].notna().sum()):,} "
        "tasks (quality defects and snags, amber and red safety notices) -> failed inspections with one defect"
    )
    failed = milestones["first_pass_accepted"].eq("false")
    report.notes.append(
        f"{len(milestones):,} quality inspection and test-plan forms -> acceptance milestones "
        f"({int(failed.sum())} failed first pass: {failed.mean():.1%}); planned_date = actual_date = the form's day "
        "(the export has no plan): defect risk only, no slip"
    )
    not_findings = findings[findings["severity"].isna()]
    for kind, n in not_findings["Type"].str.strip().value_counts().items():
        report.skip(f"tasks {kind!r}", n, "not a quality defect or a safety notice")
    for name in SNAPSHOT_COLUMNS:
        report.column(name, "a value as of the export, not when the form or task was made: it would leak the label")
    report.column("Target", "a task's due date (Excel serial day): the contract has none; kept as target_date")
    report.notes.append("no project type, region, client, contract value or project dates in the export")
    return report


def import_field_forms(tasks_path: Path, forms_path: Path) -> Imported:
    """The tasks and forms exports as contract ``projects``, ``inspections`` and ``milestones``."""
    forms, tasks = read_forms(Path(forms_path)), read_tasks(Path(tasks_path))
    fate = copied_projects(forms)
    dropped = [p for p, what in fate.items() if what == "dropped"]
    kept = classify_forms(forms[~forms["project_id"].isin(dropped)])
    kept = kept.assign(inspection_id=unique_ids(kept["Ref"].str.strip()))
    findings = task_findings(tasks).assign(inspection_id=lambda t: unique_ids(t["Ref"].str.strip()))
    inspections = pd.concat([form_inspections(kept), task_inspections(findings)], ignore_index=True)
    inspections["inspection_id"] = unique_ids(inspections["inspection_id"])
    milestones = acceptances(kept)
    pr = projects(forms, tasks)
    report = _report(forms, tasks, fate, kept, findings, inspections, milestones, pr)
    return Imported({"projects": pr, "milestones": milestones, "inspections": inspections}, report)
