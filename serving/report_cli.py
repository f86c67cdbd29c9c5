"""`eqsms report`: the KPI gap report of a data folder (issue 11 §3), as one self-contained HTML file.

The KPIs come from :mod:`serving.kpi` (pure functions of the validated tables), the page from
:mod:`serving.kpi_report`; the forecast section from the @champion models in the MLflow store in settings, when it
has them (the rest of the report never needs them). ``--format pdf`` uses WeasyPrint, which turns this HTML into a
PDF without a browser, when it is installed; without it the command says so in one line and what to do instead.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from eqsms.cli_kit import console, fail, one_of
from eqsms.settings import Settings, get_settings

app = typer.Typer(add_completion=False)

FORMATS = ("html", "pdf")
PDF_HELP = (
    "WeasyPrint is not installed here: `pip install weasyprint` (it needs Debian's libpango-1.0-0, "
    "libpangoft2-1.0-0 and libharfbuzz-subset0; a Chinese font such as fonts-wqy-zenhei for --lang zh), or write "
    "the HTML report and print it to PDF from a browser"
)


def parse_as_of(value: str | None, latest: pd.Timestamp | None) -> pd.Timestamp:
    """``--as-of`` as a time: a date means the end of that day (its facts count); none, the data's newest fact."""
    if value is None:
        if latest is None:
            fail("cannot report", "the data has no dated fact: give --as-of")
        return latest
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail("bad --as-of", f"'{value}' is not a date: write it YYYY-MM-DD (or an ISO timestamp)")
    t = pd.Timestamp(parsed)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    if len(value) == 10:  # a date: the whole day
        t = t + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    return t


def _no_store(settings: Settings) -> bool:
    """True when the store in settings is a sqlite file that does not exist: no champions, and nothing is created
    by looking."""
    uri = settings.tracking_uri
    return uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file()


def predictions(engine, candidates: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The champions' P(first-pass failure) and P(late) for each candidate milestone, in one engine call."""
    columns = ["milestone_id", "project_id", "kind", "planned_date", "p_defect", "p_late"]
    if candidates.empty:
        return pd.DataFrame(columns=columns)
    projects = list(dict.fromkeys(candidates["project_id"]))
    answers = engine.risk(projects, as_of, milestone_ids=list(candidates["milestone_id"]), top_k=0)
    rows = [
        (m.milestone_id, p.project_id, m.kind, m.planned_date, m.defect_risk.probability, m.delay.late_probability)
        for p in answers
        for m in p.milestones
    ]
    return pd.DataFrame(rows, columns=columns)


def build_forecast(settings: Settings, tables: dict[str, pd.DataFrame], as_of: pd.Timestamp):
    """The next quarter's forecast (:class:`serving.kpi.Forecast`), or :class:`serving.kpi.NoForecast` saying why
    there is none. ``settings.data_dir`` must be the report's data folder (the engine loads it)."""
    from serving.kpi import NO_CHAMPIONS, SCORING_FAILED, NoForecast, forecast, forecast_candidates, next_quarter

    if _no_store(settings):
        return NoForecast(NO_CHAMPIONS, settings.tracking_uri)
    from serving.runtime import Engine, NotReady, RequestError

    try:
        engine = Engine.from_settings(settings)
    except NotReady as err:
        if "no @champion" in str(err):
            return NoForecast(NO_CHAMPIONS, settings.tracking_uri)
        return NoForecast(SCORING_FAILED, str(err).splitlines()[0])
    except Exception as err:  # noqa: BLE001 - a store that cannot be read costs the forecast, not the report
        return NoForecast(SCORING_FAILED, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    candidates, not_begun = forecast_candidates(tables, as_of)
    try:
        scored = predictions(engine, candidates, as_of)
    except RequestError as err:
        return NoForecast(SCORING_FAILED, err.message)
    result = forecast(
        scored, str(next_quarter(as_of)), settings.forecast_coverage, settings.report_top_projects, not_begun
    )
    result.models = engine.versions()
    return result


def build_report(data_dir: Path, settings: Settings, as_of: str | None = None, step=lambda what: None):
    """Everything the page shows, from the data folder (validated as ``eqsms features`` does) and the store in
    settings; ``step(what)`` is told each stage."""
    from features.contract import latest_fact
    from features.io import ContractError
    from features.validate import load
    from serving.kpi import measure_all, predicted_vs_happened
    from serving.kpi_report import Report

    step("validating the data")
    try:
        data = load(data_dir, settings)
    except ContractError as err:
        fail(f"cannot read {data_dir}", str(err).replace("\n", " "))
    t = parse_as_of(as_of, latest_fact(data.tables))
    present = {name: frame for name, frame in data.tables.items() if name not in data.missing_tables}
    step("measuring the KPIs")
    results = measure_all(present, t, settings)
    step("forecasting the next quarter")
    scoring = settings.model_copy(update={"data_dir": Path(data_dir).resolve()})
    outlook = build_forecast(scoring, data.tables, t)
    step("comparing the logged predictions with what happened")
    logged = logged_predictions(settings)
    held_up = None if logged is None else predicted_vs_happened(data.tables, t, logged, settings.forecast_coverage)
    return Report(
        data_dir=str(data_dir),
        as_of=t,
        results=results,
        forecast=outlook,
        tolerance_days=settings.late_tolerance_days,
        satisfied_min=settings.csat_satisfied_min,
        absent_tables=tuple(data.missing_tables),
        held_up=held_up,
    )


def logged_predictions(settings: Settings) -> pd.DataFrame | None:
    """The prediction log's predictions, or None when there is no log (off, or its SQLite file not made yet:
    reading never creates one)."""
    from sqlalchemy.engine import make_url

    from eqsms.predlog import PredictionLog, log_url

    url = log_url(settings)
    if url is None:
        return None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None
    log = PredictionLog(url)
    try:
        return log.predictions()
    finally:
        log.close()


def _weasyprint():
    """WeasyPrint's HTML class, or a one-line exit saying why not and what to do."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as err:  # OSError: installed, but Pango is not
        fail("cannot write a PDF", f"{PDF_HELP} ({type(err).__name__}: {str(err).splitlines()[0]})")
    return HTML


@app.command()
def report(
    data_dir: Annotated[
        Path | None, typer.Argument(help="folder of exports in the data contract; default: data_dir (settings)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="file to write; default: report.html (report.pdf)")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD: facts known by the end of that day; default: newest")
    ] = None,
    lang: Annotated[str, typer.Option(help="en or zh (Simplified Chinese)", callback=one_of(("en", "zh")))] = "en",
    fmt: Annotated[
        str, typer.Option("--format", help="html, or pdf (needs WeasyPrint)", callback=one_of(FORMATS))
    ] = "html",
) -> None:
    """The KPI gap report: quality-service KPIs against their targets (settings), by project type, region and
    quarter, with trend charts, the worst gaps first and the projects behind them, and the next quarter's forecast
    from the @champion models when the store has them."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from serving.kpi_report import name, render, worst_gap_text

    started = time.monotonic()
    settings = get_settings()
    data_dir = data_dir or settings.data_dir
    out = out or Path(f"report.{fmt}")
    pdf = _weasyprint() if fmt == "pdf" else None  # before the work: a missing library is one line, at once
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    # On a terminal a spinner says what it is doing; in a file or a pipe only the summary line is written.
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("report", total=None)
        built = build_report(data_dir, settings, as_of, lambda what: progress.update(task, description=what))
        progress.update(task, description=f"writing {out}")
        page = render(built, lang)
        out.parent.mkdir(parents=True, exist_ok=True)
        if pdf is None:
            out.write_text(page, encoding="utf-8")
        else:
            pdf(string=page, base_url=None).write_pdf(out)
    missing = [name(r) for r in built.results if not r.measurable]
    measured = len(built.results) - len(missing)
    console.print(
        f"wrote {out.resolve()} ({fmt}, {lang}): KPI gap report of {data_dir} as of {built.as_of:%Y-%m-%d %H:%M}, "
        f"{measured} KPIs measured, {len(missing)} not measurable; worst gap: {worst_gap_text(built.results)}; "
        f"forecast: {_forecast_said(built.forecast)}; {time.monotonic() - started:.1f} s",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


def _forecast_said(outlook) -> str:
    from serving.kpi import NO_CHAMPIONS, Forecast

    if isinstance(outlook, Forecast):
        if not outlook.milestones:
            return f"no open milestone planned in {outlook.quarter}"
        fp, ot = outlook.first_pass[0], outlook.on_time[0]
        return f"{outlook.quarter} first-pass {fp:.1%}, on-time {ot:.1%} ({outlook.milestones} milestones)"
    if outlook.code == NO_CHAMPIONS:
        return "none (no champion models: `eqsms train --promote`)"
    return f"none ({outlook.detail})"
