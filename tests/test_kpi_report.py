"""The KPI gap report (`eqsms report`): its figures on the tiny hand-written world against values computed here in
plain Python from the raw strings (not with the module's pandas), the page it writes (self-contained, escaped, in
two languages), KPIs the data cannot give, the forecast from real champions, and PDF."""

from __future__ import annotations

import itertools
import math
import re
import statistics
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eqsms.cli import app
from eqsms.settings import Settings, get_settings
from serving.kpi import (
    Forecast,
    NoForecast,
    contributions,
    forecast_candidates,
    kpi_items,
    kpi_specs,
    measure_all,
    poisson_binomial,
    rate_range,
    with_segments,
)
from serving.kpi_report import STRINGS, Report, render
from serving.report_cli import build_report
from tests.test_importers import field_files, nyc_file  # noqa: F401  (fixtures)
from tests.tiny_world import RAW, validated_tables

AS_OF = pd.Timestamp("2021-01-20")  # the tiny world's newest fact: P1's handover
TOLERANCE = 15.0  # days: M1 and M0 (10 days late) are on time, M2 and M3 (20 days) are not
SCRIPT = "<script>alert(1)</script>"
runner = CliRunner()


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def settings(**extra) -> Settings:
    return Settings(late_tolerance_days=TOLERANCE, **extra)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validated_tables()


@pytest.fixture(scope="module")
def results(tables):
    return {r.spec.key: r for r in measure_all(tables, AS_OF, settings())}


def write_world(folder: Path, raw: dict[str, list[dict[str, str]]]) -> Path:
    """The tiny world as a folder of CSV exports."""
    folder.mkdir(parents=True, exist_ok=True)
    for table, records in raw.items():
        pd.DataFrame(records, dtype="str").to_csv(folder / f"{table}.csv", index=False)
    return folder


# ------------------------------------------------------------------- the figures, against plain Python on RAW


def expected_figures(as_of: datetime, tolerance: float) -> dict[str, float]:
    """Every KPI of the tiny world, from the raw strings, by loops (the module works on typed frames)."""
    out = {}
    reached = [m for m in RAW["milestones"] if m["actual_date"] and when(m["actual_date"]) <= as_of]
    judged = [m["first_pass_accepted"] == "true" for m in reached if m["first_pass_accepted"]]
    out["first_pass"] = sum(judged) / len(judged)
    due = [m for m in RAW["milestones"] if when(m["planned_date"]) + timedelta(days=tolerance) < as_of]
    on_time = [
        bool(m["actual_date"])
        and when(m["actual_date"]) <= as_of
        and (when(m["actual_date"]) - when(m["planned_date"])).days <= tolerance
        for m in due
    ]
    out["on_time"] = sum(on_time) / len(on_time)
    inspections = [i for i in RAW["inspections"] if when(i["inspected_at"]) <= as_of]
    out["failed_inspections"] = sum(i["result"] == "fail" for i in inspections) / len(inspections)
    out["rework"] = sum(i["result"] != "pass" for i in inspections) / len(inspections)
    out["defects_per_inspection"] = statistics.mean(int(i["defects_found"]) for i in inspections)
    surveys = [s for s in RAW["surveys"] if when(s["surveyed_at"]) <= as_of]
    out["csat"] = statistics.mean(float(s["csat"]) >= 4 for s in surveys)
    promoters = sum(float(s["nps"]) >= 9 for s in surveys)
    detractors = sum(float(s["nps"]) <= 6 for s in surveys)
    out["nps"] = 100 * (promoters - detractors) / len(surveys)
    for kpi, column, seconds in (("response", "first_response_at", 3600), ("resolution", "resolved_at", 86400)):
        times = sorted(
            (when(c[column]) - when(c["received_at"])).total_seconds() / seconds
            for c in RAW["complaints"]
            if c[column] and when(c[column]) <= as_of
        )
        out[f"{kpi}_median"] = statistics.median(times)
        out[f"{kpi}_p90"] = float(np.percentile(times, 90))  # linear, as pandas' quantile
    weeks = [w for w in RAW["resources"] if when(w["week_start"]) + timedelta(days=7) <= as_of]
    earned = sum(float(w["earned_value"]) for w in weeks)
    out["spi"] = earned / sum(float(w["planned_value"]) for w in weeks)
    out["cpi"] = earned / sum(float(w["actual_cost"]) for w in weeks)
    return out


def test_every_kpi_matches_the_raw_data(results):
    expected = expected_figures(AS_OF.to_pydatetime(), TOLERANCE)
    assert set(expected) == set(results)
    for key, value in expected.items():
        assert results[key].value == pytest.approx(value), key
    # and a few by hand, so that a shared mistake in both readings would show
    assert results["first_pass"].value == 0.5  # M1, M3 accepted; M2, M0 not
    assert results["on_time"].value == 0.5  # M1, M0 10 days late; M2, M3 20; M4 not due
    assert results["response_median"].value == pytest.approx(30.0)  # K1 12 h, K2 48 h; K3, K4 unanswered
    assert results["spi"].value == pytest.approx(2700 / 4000)


def test_only_facts_known_at_as_of_count(tables):
    as_of = pd.Timestamp("2020-12-17")
    got = {r.spec.key: r.value for r in measure_all(tables, as_of, settings())}
    expected = expected_figures(as_of.to_pydatetime(), TOLERANCE)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert got["spi"] == pytest.approx(2700 / 3000)  # the week of 12-14 is not over


def test_results_come_worst_gap_first(tables):
    ranked = measure_all(tables, AS_OF, settings())
    gaps = [r.gap for r in ranked]
    assert gaps == sorted(gaps, reverse=True)
    first_pass = next(r for r in ranked if r.spec.key == "first_pass")
    assert first_pass.gap == pytest.approx((0.95 - 0.5) / 0.95)


def test_breakdowns_by_quarter_type_and_region(results):
    first_pass = results["first_pass"]
    quarters = first_pass.segments["quarter"].set_index("segment")
    # reached: M0 2019-11-10 (failed), M1 2020-04-11, M2 2020-07-21 (failed), M3 2021-01-20
    assert quarters["value"].to_dict() == {"2019Q4": 0.0, "2020Q2": 1.0, "2020Q3": 0.0, "2021Q1": 1.0}
    by_type = first_pass.segments["project_type"].set_index("segment")
    assert by_type.loc["school", "value"] == 0.5 and by_type.loc["school", "n"] == 4
    assert "office" not in by_type.index  # P2's milestone is open: nothing to count
    spi = results["spi"].segments["region"].set_index("segment")
    assert spi.loc["north", "value"] == pytest.approx(0.675)


def test_the_projects_behind_a_gap_add_up_to_it(tables, results):
    first_pass = results["first_pass"].projects.set_index("project_id")
    # P0: 1 milestone of 4, none accepted; P1: 3 of 4, 2 accepted; target 0.95
    assert first_pass["contribution"].to_dict() == pytest.approx({"P0": 0.95 / 4, "P1": (3 * 0.95 - 2) / 4})
    assert list(first_pass.index) == ["P0", "P1"]  # the largest part first
    assert first_pass["contribution"].sum() == pytest.approx(0.95 - 0.5)
    spec = kpi_specs(settings())["response_p90"]
    items = with_segments(kpi_items("response_p90", tables, AS_OF, settings()), tables["projects"])
    assert contributions(items, spec, top=5).empty  # 12 h and 48 h: no complaint slower than the 72 h target
    slower = contributions(items, kpi_specs(settings(response_p90_target_hours=24))["response_p90"], top=5)
    assert slower[["project_id", "contribution"]].to_dict("records") == [{"project_id": "P1", "contribution": 1.0}]


# ------------------------------------------------------------------------------------------------- forecast


def test_poisson_binomial_is_exact():
    p = np.array([0.1, 0.5, 0.8, 0.3, 0.95])
    brute = np.zeros(len(p) + 1)
    for outcome in itertools.product((0, 1), repeat=len(p)):
        brute[sum(outcome)] += math.prod(q if o else 1 - q for q, o in zip(p, outcome, strict=True))
    assert poisson_binomial(p) == pytest.approx(brute)
    same = poisson_binomial(np.full(10, 0.3))
    assert same == pytest.approx([math.comb(10, k) * 0.3**k * 0.7 ** (10 - k) for k in range(11)])


def test_rate_range_is_the_central_share_of_the_distribution():
    p = np.full(100, 0.9)
    expected, low, high = rate_range(p, 0.8)
    assert expected == pytest.approx(0.9)
    # Binomial(100, 0.9): P(S <= 86) = 0.1239, P(S <= 85) = 0.0726, P(S <= 93) = 0.8817, P(S <= 94) = 0.9424
    assert (low, high) == (0.86, 0.94)


def test_forecast_candidates_are_open_and_planned_next_quarter(tables):
    # M4 (P2's, planned 2021-06-01) is open and planned in 2021Q2, but P2 starts on 2021-04-01: not begun
    candidates, not_begun = forecast_candidates(tables, pd.Timestamp("2021-03-15"))
    assert candidates.empty and not_begun == 1
    candidates, not_begun = forecast_candidates(tables, pd.Timestamp("2021-04-15"))  # next quarter: 2021Q3
    assert candidates.empty and not_begun == 0
    late_start = {**tables, "projects": tables["projects"].assign(planned_start=pd.NaT)}  # no start: taken as begun
    candidates, not_begun = forecast_candidates(late_start, pd.Timestamp("2021-03-15"))
    assert list(candidates["milestone_id"]) == ["M4"] and not_begun == 0


# ------------------------------------------------------------------------------------------------ the page


def report_of(tables, results_list, lang="en") -> str:
    report = Report("tiny", AS_OF, results_list, NoForecast("no_champions", "sqlite:///nowhere"), TOLERANCE, 4.0)
    return render(report, lang)


def test_the_page_shows_the_figures_in_both_languages(tables):
    ranked = measure_all(tables, AS_OF, settings())
    english, chinese = report_of(tables, ranked, "en"), report_of(tables, ranked, "zh")
    for page, words in ((english, STRINGS["en"]), (chinese, STRINGS["zh"])):
        assert words["names"]["first_pass"] in page and words["title"] in page
        assert "50.0%" in page  # first-pass and on-time rates
        assert "67.50%" not in page and "0.68" in page  # SPI 0.675
        assert "eqsms train --promote" in page  # the forecast section says how to get one
        assert page.count("<svg") == len(ranked)  # a trend chart per measurable KPI
    assert "一次验收合格率" in chinese and "节点按期完成率" in chinese and "净推荐值" in chinese
    assert "15 days" in english  # the on-time rule names its tolerance


def test_markup_in_the_data_shows_as_text(tmp_path, monkeypatch):
    raw = {t: [dict(r) for r in rows] for t, rows in RAW.items()}
    for rows in raw.values():
        for row in rows:
            if row.get("project_id") == "P0":
                row["project_id"] = SCRIPT
            if row.get("region") == "north":
                row["region"] = "<b>north</b>"
    folder = write_world(tmp_path / "markup", raw)
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the id is shown, as text
    assert "<script" not in page and "<b>north" not in page and "&lt;b&gt;north&lt;/b&gt;" in page


def test_kpis_without_data_are_not_measurable_not_zero(tmp_path, monkeypatch):
    raw = {t: [dict(r) for r in rows] for t, rows in RAW.items() if t != "surveys"}
    for row in raw["complaints"]:
        row["first_response_at"] = ""
    folder = write_world(tmp_path / "patchy", raw)
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("not measurable (no surveys table in the data folder)") == 2  # CSAT and NPS
    assert page.count("not measurable (complaints.first_response_at is empty)") == 2  # median and p90
    assert "4 not measurable" in result.output
    assert 'id="csat"' not in page  # no section, no chart, no zero


def test_the_command_on_the_sample_world(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))  # a store with no champions
    out = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", str(get_settings().data_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "worst gap:" in result.output
    page = out.read_text()
    assert "http://" not in page and "https://" not in page and "src=" not in page and "<link" not in page
    assert "<script" not in page
    assert "Forecast: next quarter" in page and "eqsms train --promote" in page
    assert page.count("<svg") == 13  # every KPI is measurable in the sample world
    assert not (tmp_path / "work").exists()  # looking for champions created no store


def test_a_bad_as_of_is_one_line(tmp_path):
    result = runner.invoke(app, ["report", str(get_settings().data_dir), "--as-of", "2023-02-30"])
    assert result.exit_code == 2 and "bad --as-of" in result.output and len(result.output.splitlines()) == 1


def test_pdf_without_weasyprint_says_why_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails, as where it is not installed
    out = tmp_path / "report.pdf"
    result = runner.invoke(app, ["report", str(get_settings().data_dir), "--format", "pdf", "--out", str(out)])
    assert result.exit_code == 2
    assert "WeasyPrint" in result.output and "print it to PDF from a browser" in result.output
    assert not out.exists()


def test_pdf_with_weasyprint(tmp_path, monkeypatch):
    pytest.importorskip("weasyprint")
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    folder = write_world(tmp_path / "tiny", RAW)
    out = tmp_path / "report.pdf"
    result = runner.invoke(app, ["report", str(folder), "--format", "pdf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow  # the session's champions: a full training when no other test has asked for them
def test_the_forecast_from_the_champions(champions):
    from serving.runtime import Engine

    report = build_report(champions.data_dir, champions.settings)
    outlook = report.forecast
    assert isinstance(outlook, Forecast), outlook
    assert outlook.quarter == str(report.as_of.to_period("Q") + 1) and outlook.milestones > 0
    # The engine's answers for the same milestones, read here: open at as_of, planned in the next quarter.
    engine = Engine.from_settings(champions.settings)
    m = engine.tables["milestones"]
    quarter = pd.Period(outlook.quarter)
    ids = m[
        (m["actual_date"].isna() | (m["actual_date"] > report.as_of)) & (m["planned_date"].dt.to_period("Q") == quarter)
    ]
    begun = engine.projects.loc[ids["project_id"], "planned_start"].to_numpy() <= report.as_of.to_datetime64()
    ids = ids[begun]
    answers = engine.risk(list(dict.fromkeys(ids["project_id"])), report.as_of, list(ids["milestone_id"]), top_k=0)
    p_fail = [mm.defect_risk.probability for a in answers for mm in a.milestones]
    p_late = [mm.delay.late_probability for a in answers for mm in a.milestones]
    assert outlook.milestones == len(p_fail) == len(ids)
    assert outlook.first_pass[0] == pytest.approx(1 - statistics.mean(p_fail))
    assert outlook.on_time[0] == pytest.approx(1 - statistics.mean(p_late))
    for expected, low, high in (outlook.first_pass, outlook.on_time):
        assert 0 <= low <= expected <= high <= 1
    page = render(report)
    assert f"{outlook.first_pass[0] * 100:.1f}%" in page and "P(first-pass failure)" in page


def report_of_import(importer: str, files: list[Path], tmp_path: Path, monkeypatch) -> tuple[str, int, int]:
    """The report of an export imported with ``importer``: its page and how many KPIs were measured and not."""
    data = tmp_path / "imported"
    args = ["import", importer, *map(str, files), "--out", str(data), "--quarantine", str(tmp_path / "q")]
    imported = runner.invoke(app, args)
    assert imported.exit_code == 0, imported.output
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    measured, missing = re.search(r"(\d+) KPIs measured, (\d+) not measurable", result.output).groups()
    return out.read_text(), int(measured), int(missing)


def test_the_command_on_an_imported_nyc_export(nyc_file, tmp_path, monkeypatch):  # noqa: F811
    """An imported export (the importers' test file, shaped as the real one) gives a report: what its data holds is
    measured (on-time milestones), and what it cannot give is listed as not measurable with the reason."""
    page, measured, missing = report_of_import("nyc-sca", [nyc_file], tmp_path, monkeypatch)
    assert measured >= 1 and missing >= 1
    assert page.count("not measurable (") >= missing and "On-time milestone rate" in page


def test_the_command_on_an_imported_field_forms_export(field_files, tmp_path, monkeypatch):  # noqa: F811
    page, measured, missing = report_of_import("field-forms", list(field_files), tmp_path, monkeypatch)
    assert measured >= 1 and missing >= 1
    assert page.count("not measurable (") >= missing


def test_predicted_vs_happened_takes_the_latest_prediction_made_before_each_milestone():
    from serving.kpi import predicted_vs_happened, rate_range

    tables = validated_tables()
    m = tables["milestones"]
    judged = m[m["actual_date"].notna() & m["first_pass_accepted"].notna()]
    assert len(judged) >= 2
    day = pd.Timedelta(days=1)
    logged = pd.DataFrame(
        [
            row
            for _, ms in judged.iterrows()
            for row in (
                ("defect_risk", ms["milestone_id"], ms["actual_date"] - 30 * day, 0.9),  # superseded
                ("defect_risk", ms["milestone_id"], ms["actual_date"] - 5 * day, 0.25),  # the one that counts
                ("defect_risk", ms["milestone_id"], ms["actual_date"] + day, 0.99),  # made after: not a prediction
                ("delay", ms["milestone_id"], ms["actual_date"] - 5 * day, 0.7),  # another model
            )
        ],
        columns=["model", "milestone_id", "as_of", "probability"],
    )
    held_up = predicted_vs_happened(tables, judged["actual_date"].max(), logged, 0.8)
    assert held_up["milestones"].sum() == len(judged)
    for line in held_up.itertuples():
        quarter = judged[judged["actual_date"].dt.to_period("Q").astype(str) == line.quarter]
        expected, low, high = rate_range(np.full(len(quarter), 0.75), 0.8)
        assert (line.predicted, line.low, line.high) == pytest.approx((expected, low, high))
        assert line.happened == pytest.approx(quarter["first_pass_accepted"].astype(bool).mean())
    from serving.kpi_report import held_up_table

    for lang in ("en", "zh"):
        assert STRINGS[lang]["held_up"] in held_up_table(held_up, lang)
