"""Importers of real export formats, on tiny raw files written here by hand (same headers as the real exports).

Every value below is invented; only the column headers and the cell formats follow the real exports.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from eqsms.cli import app
from features.importers import REPORT_FILE, write_import
from features.importers.field_forms import form_template, import_field_forms
from features.importers.nyc_sca import import_nyc_sca
from features.io import ContractError
from features.validate import load

# The real header, trailing spaces included; then invented phases in the export's cell formats.
NYC_CSV = """\
Project Geographic District ,Project Building Identifier,Project School Name,Project Type ,Project Description,\
Project Phase Name,Project Status Name,Project Phase Actual Start Date,Project Phase Planned End Date,\
Project Phase Actual End Date,Project Budget Amount,Final Estimate of Actual Costs Through End of Phase Amount,\
Total Phase Actual Spending Amount,DSF Number(s)
7,X901,P.S. 901 - BRONX,SCA CIP,ROOF REPLACEMENT,Scope,Complete,1/10/2022,3/1/2022,3/15/2022,50000,52000,52000,\
DSF0000000901
7,X901,P.S. 901 - BRONX,SCA CIP,ROOF REPLACEMENT,Design,Complete,3/16/2022,9/1/2022,8/20/2022,120000,110000,110000,\
DSF0000000901
7,X901,P.S. 901 - BRONX,SCA CIP,ROOF REPLACEMENT,Construction,In-Progress,10/1/2022,6/30/2023,,900000,950000,400000,\
DSF0000000901
7,X901,P.S. 901 - BRONX,SCA CIP,ROOF REPLACEMENT,"CM,F&E",In-Progress,10/1/2022,6/30/2023,,60000,61000,30000,\
DSF0000000901
9,X902,P.S. 902 - BRONX,DOE - RESOA,BATHROOM UPGRADES,Construction,In-Progress,6/28/2023,DOER,,DOER,206654,0,\
DSF0000000902
9,X903,I.S. 903 - BRONX,SCA CIP,BOILER CONVERSION,Scope,PNS,PNS,PNS,PNS,10000,10000,0,DSF0000000903
9,X903,I.S. 903 - BRONX,SCA CIP,BOILER CONVERSION,Design,PNS,PNS,PNS,PNS,30000,30000,0,DSF0000000903
2,M904,M904 SPED - MANHATTAN,SCA CIP,DEMOLITION,Scope,Complete,7/1/2022,8/29/2022,7/1/2022,20000,19000,19000,\
DSF0000000904
2,M904,M904 SPED - MANHATTAN,SCA CIP,DEMOLITION,Scope,Complete,9/13/2022,9/13/2022,9/20/2022,15000,15000,15000,\
DSF0000000904
2,M905,P.S. 905 - MANHATTAN,SCA CIP RESOA,PLAYGROUND,Scope,In-Progress,9/30/2023,12/31/2024,,40000,40000,0,\
DSF0000000905
"""

FORM_HEADER = [
    "Ref", "Status", "Location", "Name", "Created", "Type", "Status Changed", "Open Actions", "Total Actions",
    "Association", "OverDue", "Images", "Comments", "Documents", "Project", "Report Forms Status",
    "Report Forms Group",
]  # fmt: skip
TASK_HEADER = [
    "Ref", "Status", "Location", "Description", "Created", "Target", "Type", "To Package", "Status Changed",
    "Association", "OverDue", "Images", "Comments", "Documents", "Priority", "Cause", "project", "Report Status",
    "Task Group",
]  # fmt: skip


def form(ref, name, created, ftype, changed, open_, total, project, status, group, location="Site>Block A"):
    assoc = "parent" if int(total) else ""
    return [ref, "Closed", location, name, created, ftype, changed, open_, total, assoc, "FALSE", "TRUE", "FALSE",
            "FALSE", project, status, group]  # fmt: skip


def task(ref, created, target, kind, changed, project, status, group, description="invented"):
    return [ref, "Closed", "Site", description, created, target, kind, "Main Contractor", changed, "FormAnswer",
            "FALSE", "TRUE", "FALSE", "FALSE", "", "JPC - Quality - Workmanship", project, status, group]  # fmt: skip


COPY = "9002 - Project Invented>Quality Control"
FORMS = [
    form("F9.1", "9001 QM-CL-CS-110 Concreting Inspection (In Situ)", "02/03/2020", "Quality 01 Structural",
         "05/03/2020", "0", "2", "9001", "Closed", "Quality"),
    form("F9.2", "9001 QM-CL-CS-110 Concreting Inspection (In Situ)", "09/03/2020", "Quality 01 Structural",
         "09/03/2020", "0", "0", "9001", "Closed", "Quality"),
    form("F9.3", "SM-FRM-001 Daily Site Diary", "02/03/2020", "Site Management", "02/03/2020", "0", "0", "9001",
         "Closed", "Site Management"),
    form("F9.4", "EHS Managment Inspection - Daily", "03/03/2020", "Safety Forms", "04/03/2020", "1", "3", "9001",
         "Open", "Safety"),
    form("F9.5", "QM-FRM-QC-010 RFIT - Request for Inspection or Test", "04/03/2020", "Quality 00 General",
         "04/03/2020", "0", "0", "9001", "Closed", "Quality"),
    form("F9.6", "QM-FRM-BCAR-100 Structural BCAR Inspection", "10/03/2020", "Design Team / BC(A)R", "20/03/2020",
         "0", "1", "9001", "Closed", "Design Team"),
    form("F9.7", "QM-CL-ARC-202 Partitions Inspection", "31/02/2020", "Quality 02 Architectural", "01/03/2020", "0",
         "0", "9001", "Closed", "Quality"),
    # Project 9003's forms are an exact copy of 9002's: the copy's locations name 9002, so 9003's are dropped.
    form("F9.8", "QM-CL-ARC-202 Partitions Inspection", "11/03/2020", "Quality 02 Architectural", "11/03/2020", "0",
         "0", "9002", "Closed", "Quality", COPY),
    form("F9.9", "CM-EHS-FRM-007 COVID-19 Inspection", "12/03/2020", "Safety Forms", "12/03/2020", "0", "0", "9002",
         "Closed", "Safety", COPY),
    form("F9.8", "QM-CL-ARC-202 Partitions Inspection", "11/03/2020", "Quality 02 Architectural", "11/03/2020", "0",
         "0", "9003", "Closed", "Quality", COPY),
    form("F9.9", "CM-EHS-FRM-007 COVID-19 Inspection", "12/03/2020", "Safety Forms", "12/03/2020", "0", "0", "9003",
         "Closed", "Safety", COPY),
]  # fmt: skip
TASKS = [
    task("T9.1", "04/03/2020", "43900", "JPC - Quality Defect (compliance)", "10/03/2020", "9001", "Closed", "Quality"),
    task("T9.2", "05/03/2020", "", "JPC - Quality Snag (aesthetic)", "05/03/2020", "9001", "Open", "Quality"),
    task("T9.3", "03/03/2020", "", "Safety Notice (Amber) - General Issue", "06/03/2020", "9001", "Closed", "Safety"),
    task("T9.4", "03/03/2020", "", "Safety Notice (Red) - Serious Issue", "03/03/2020", "9001", "Open", "Safety"),
    task("T9.5", "03/03/2020", "", "Safety Notice (Green) - Good Observation", "03/03/2020", "9001", "Closed",
         "Safety"),
    task("T9.6", "06/03/2020", "", "JPC - Works To Go", "06/03/2020", "9001", "Open", "Site Management"),
    task("T9.7", "12/03/2020", "", "Safety Notice (Amber) - General Issue", "13/03/2020", "9003", "Closed", "Safety"),
    task("T9.1", "07/03/2020", "", "JPC - Quality Snag (aesthetic)", "08/03/2020", "9001", "Closed", "Quality",
         "another task under a repeated ref"),
]  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig") as fh:  # the real exports carry a BOM
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def nyc_file(tmp_path) -> Path:
    path = tmp_path / "sca_schedules.csv"
    path.write_text(NYC_CSV, encoding="utf-8")
    return path


@pytest.fixture
def field_files(tmp_path) -> tuple[Path, Path]:
    return write_csv(tmp_path / "tasks.csv", TASK_HEADER, TASKS), write_csv(tmp_path / "forms.csv", FORM_HEADER, FORMS)


# ----------------------------------------------------------------------------------------------- NYC SCA


def test_nyc_phases_become_milestones(nyc_file, tmp_path):
    imported = import_nyc_sca(nyc_file)
    data = write_import(imported, tmp_path / "out", tmp_path / "quarantine")
    assert {name: rep.rows_quarantined for name, rep in data.reports.items()} == {"projects": 0, "milestones": 0}
    ms = data.tables["milestones"].set_index("phase")
    # Phases with a planned end date: 4 of project 1, 2 Scope rounds of project 4, 1 of project 5.
    assert len(ms) == 7
    assert imported.report.snapshot == "2023-09-30"  # the latest actual date in the file
    scope = ms[ms["kind"] == "scope"].iloc[0]
    assert scope["planned_date"] == pd.Timestamp("2022-03-01") and scope["actual_date"] == pd.Timestamp("2022-03-15")
    assert ms.loc["CM,F&E", "kind"] == "cm_f_e"
    # In progress: no actual date; past its planned end at the snapshot: flagged as a censored slip, not on time.
    construction = ms.loc["Construction"]
    assert pd.isna(construction["actual_date"]) and construction["overdue_at_snapshot_days"] == "92"
    future = data.tables["milestones"].query("kind == 'scope' and actual_date.isna()").iloc[0]
    assert future["overdue_at_snapshot_days"] in ("", None) or pd.isna(future["overdue_at_snapshot_days"])
    # A phase repeated within a project keeps both rounds.
    assert data.tables["milestones"]["milestone_id"].str.endswith("/scope#2").sum() == 1
    # Sequence follows the planned end within a project.
    one = data.tables["milestones"][data.tables["milestones"]["project_id"] == construction["project_id"]]
    assert sorted(one["sequence"].tolist()) == [1, 2, 3, 4]


def test_nyc_projects_and_what_is_not_mapped(nyc_file, tmp_path):
    imported = import_nyc_sca(nyc_file)
    data = write_import(imported, tmp_path / "out", tmp_path / "quarantine")
    projects = data.tables["projects"].set_index("building_id")
    assert len(projects) == 5
    roof = projects.loc["X901"]
    assert roof["project_type"] == "SCA CIP" and roof["region"] == "7"
    assert roof["contract_value"] == 50000 + 120000 + 900000 + 60000
    assert roof["planned_end"] == pd.Timestamp("2023-06-30") and pd.isna(roof["actual_end"])  # still running
    assert projects.loc["M904", "actual_end"] == pd.Timestamp("2022-09-20")  # every phase complete
    unmapped = {u.what: u.count for u in imported.report.unmapped}
    assert unmapped["phases whose planned end is 'PNS'"] == 2
    assert unmapped["phases whose planned end is 'DOER'"] == 1
    assert any("Total Phase Actual Spending Amount" in u.what for u in imported.report.unmapped)
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["mapped"] == {"projects": 5, "milestones": 7}
    assert report["validation"]["tables"]["milestones"]["quarantined"] == 0


def test_nyc_output_is_a_valid_contract_folder(nyc_file, tmp_path):
    write_import(import_nyc_sca(nyc_file), tmp_path / "out", tmp_path / "quarantine")
    again = load(tmp_path / "out")  # read back as any export: every row accepted
    assert all(rep.rows_quarantined == 0 for rep in again.reports.values())
    assert again.tables["milestones"]["actual_date"].notna().sum() == 4


def test_nyc_cli(nyc_file, tmp_path):
    out = tmp_path / "out"
    args = ["import", "nyc-sca", str(nyc_file), "--out", str(out), "--quarantine", str(tmp_path / "q")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "not mapped" in result.output and "censored" in result.output
    assert (out / "projects.csv").is_file() and (out / "milestones.csv").is_file()


def test_wrong_file_says_what_is_missing(field_files, tmp_path):
    _, forms = field_files
    with pytest.raises(ContractError, match="not a NYC SCA"):
        import_nyc_sca(forms)
    result = CliRunner().invoke(app, ["import", "nyc-sca", str(forms), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Project Phase Name" in result.output


# ----------------------------------------------------------------------------------------------- field forms


def test_form_template_drops_the_project_prefix():
    names = pd.Series(["1328 CM-SM-FRM-001 Site Diary", "- EHS Inspection", "QM-CL-CS-105 Piling Inspection"])
    assert form_template(names).tolist() == [
        "CM-SM-FRM-001 Site Diary",
        "EHS Inspection",
        "QM-CL-CS-105 Piling Inspection",
    ]


def test_field_forms_acceptances(field_files, tmp_path):
    tasks, forms = field_files
    imported = import_field_forms(tasks, forms)
    data = write_import(imported, tmp_path / "out", tmp_path / "quarantine")
    ms = data.tables["milestones"].set_index("milestone_id")
    # Quality and design-team inspections are acceptances; the RFIT request, the diary and safety forms are not.
    assert sorted(ms.index) == ["F9.1", "F9.2", "F9.6", "F9.8"]
    assert ms.loc["F9.1", "first_pass_accepted"] == False  # noqa: E712  (raised actions)
    assert ms.loc["F9.2", "first_pass_accepted"] == True  # noqa: E712
    assert ms.loc["F9.6", "first_pass_accepted"] == False  # noqa: E712
    assert ms.loc["F9.1", "kind"] == "QM-CL-CS-110 Concreting Inspection (In Situ)"
    assert ms.loc["F9.1", "planned_date"] == ms.loc["F9.1", "actual_date"] == pd.Timestamp("2020-03-02")
    # 31/02/2020 is no date: the form goes to quarantine with its raw file and row, like any bad export row.
    quarantined = data.quarantine["milestones"]
    assert quarantined["_source_file"].tolist() == ["forms.csv"] and quarantined["_source_row"].tolist() == [7]
    assert (tmp_path / "quarantine" / "milestones.csv").is_file()


def test_field_forms_inspections_and_defect_history(field_files, tmp_path):
    tasks, forms = field_files
    imported = import_field_forms(tasks, forms)
    data = write_import(imported, tmp_path / "out", tmp_path / "quarantine")
    insp = data.tables["inspections"].set_index("inspection_id")
    # Forms: all but the diary (a record) and the quarantined bad date; the copied project's forms once.
    forms_in = sorted(i for i in insp.index if i.startswith("F"))
    assert forms_in == ["F9.1", "F9.2", "F9.4", "F9.5", "F9.6", "F9.8", "F9.9"]
    assert insp.loc["F9.1", "result"] == "fail" and insp.loc["F9.1", "defects_found"] == 2
    assert insp.loc["F9.1", "closed_at"] == pd.Timestamp("2020-03-05")  # closed, no open action left
    assert pd.isna(insp.loc["F9.4", "closed_at"])  # an action still open
    assert insp.loc["F9.2", "closed_at"] == insp.loc["F9.2", "inspected_at"]  # nothing to close
    assert insp.loc["F9.4", "discipline"] == "safety" and insp.loc["F9.6", "discipline"] == "design_team"
    # Tasks: defects and snags, amber and red notices; not the good observation nor the works to go.
    tasks_in = insp[insp["source"] == "task"]
    assert sorted(tasks_in.index) == ["T9.1", "T9.1#2", "T9.2", "T9.3", "T9.4", "T9.7"]
    assert tasks_in["max_severity"].to_dict() == {
        "T9.1": 2, "T9.2": 1, "T9.3": 2, "T9.4": 3, "T9.7": 2, "T9.1#2": 1,
    }  # fmt: skip
    assert (tasks_in["result"] == "fail").all() and (tasks_in["defects_found"] == 1).all()
    assert insp.loc["T9.1", "closed_at"] == pd.Timestamp("2020-03-10") and pd.isna(insp.loc["T9.2", "closed_at"])
    assert insp.loc["T9.1", "target_date"] == "2020-03-10"  # Excel serial day 43900
    # The project whose forms were a copy keeps its own tasks.
    assert insp.loc["T9.7", "project_id"] == "9003"
    assert "9003" not in set(data.tables["milestones"]["project_id"])
    # Snapshot columns that leak the label are not read.
    assert "Association" not in insp.columns and "association" not in insp.columns


def test_field_forms_report(field_files, tmp_path):
    tasks, forms = field_files
    imported = import_field_forms(tasks, forms)
    report = imported.report
    assert report.mapped == {"projects": 3, "inspections": 14, "milestones": 5}
    unmapped = {u.what: u for u in report.unmapped}
    assert unmapped["forms of project 9003"].count == 2
    assert unmapped["forms 'SM-FRM-001 Daily Site Diary'"].count == 1
    assert unmapped["tasks 'Safety Notice (Green) - Good Observation'"].count == 1
    assert unmapped["column 'Association'"].why.endswith("leak the label")
    assert any("9002" in note for note in report.notes)


def test_field_forms_cli(field_files, tmp_path):
    tasks, forms = field_files
    out = tmp_path / "out"
    args = ["import", "field-forms", str(tasks), str(forms), "--out", str(out), "--quarantine", str(tmp_path / "q")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "forms of project 9003" in result.output
    again = load(out)
    assert all(rep.rows_quarantined == 0 for rep in again.reports.values())
    assert len(again.tables["milestones"]) == 4


def test_copies_with_no_owner_are_both_dropped(tmp_path):
    rows = [r[:] for r in FORMS if r[14] in ("9002", "9003")]
    for r in rows:
        r[2] = "Site>Block B"  # no location names either project
    forms = write_csv(tmp_path / "forms.csv", FORM_HEADER, rows)
    tasks = write_csv(tmp_path / "tasks.csv", TASK_HEADER, TASKS[:1])
    imported = import_field_forms(tasks, forms)
    assert imported.tables["milestones"].empty
    dropped = {u.what for u in imported.report.unmapped}
    assert {"forms of project 9002", "forms of project 9003"} <= dropped
