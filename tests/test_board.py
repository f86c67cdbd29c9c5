"""The risk board (``serving/ui``, served at ``/ui``) in a real browser against a real `eqsms serve`.

Debian's Chromium driven by Playwright (:mod:`tests.browser`): the portfolio lists the data's open projects, filters
and sorting work, a project page shows drivers with their departments and its numbers open their model's accuracy,
a what-if changes a number, the Chinese page shows Chinese driver texts, and a project id holding markup shows as
text and runs nothing. Screenshots of each page go to a temporary folder named in the output (and to
``$EQSMS_ARTIFACTS`` when set). Two fast checks read the board's files: the page's words are the catalog's
(:mod:`serving.i18n`), and no script writes markup or reaches beyond the service.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from serving.local import stop
from tests import browser
from tests.live import serve

UI = Path(__file__).resolve().parent.parent / "serving" / "ui"
CJK = re.compile(r"[\u4e00-\u9fff]")
MARKUP_ID = "<img src=x onerror=window.__xss=1>"
DEPARTMENTS = {"quality", "technical", "safety", "cost", "customer service", "project office"}


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def chromium():
    browser.require()
    with browser.chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server(champions, chromium, tmp_path_factory):
    started = serve(champions.env(), tmp_path_factory.mktemp("board-serve") / "serve.log")
    yield started
    stop(started.process)


@pytest.fixture(scope="module")
def shots(tmp_path_factory, pytestconfig) -> Path:
    folder = tmp_path_factory.mktemp("board-screenshots")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nboard screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def portfolio(server) -> dict:
    return server.get("/v1/portfolio?lang=en")


class Board:
    """One browser page on the board, failing the test on any script error."""

    def __init__(self, page, base: str, shots: Path) -> None:
        self.page, self.base, self.shots = page, base, shots
        self.errors: list[str] = []
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("dialog", lambda dialog: (self.errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))

    def open(self, route: str = "#/", query: str = "") -> None:
        self.page.goto(f"{self.base}/ui/{query}{route}")
        self.page.wait_for_selector("body.ready")

    def shot(self, name: str, full_page: bool = False) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        browser.keep(path)
        return path

    def rows(self):
        return self.page.locator("tr.project-row")


@pytest.fixture
def board(chromium, server, shots):
    page = browser.open_page(chromium)
    opened = Board(page, server.base, shots)
    yield opened
    page.context.close()
    assert opened.errors == []


def wait_rows(board: Board) -> None:
    board.page.wait_for_selector("tr.project-row")


def project_with_milestone(portfolio: dict) -> dict:
    """The open project with the highest defect risk at its next milestone."""
    lines = [p for p in portfolio["projects"] if p["next"]]
    return max(lines, key=lambda p: p["next"]["defect_risk"]["probability"])


# ---------------------------------------------------------------------------------------------------- portfolio
@pytest.mark.slow
def test_portfolio_lists_the_open_projects(board, portfolio):
    board.open()
    wait_rows(board)
    ids = [p["project_id"] for p in portfolio["projects"]]
    assert ids, "the sample world has open projects at the snapshot's as_of"
    shown = board.rows().evaluate_all("rows => rows.map(r => r.dataset.projectId)")
    assert len(shown) == min(len(ids), 200)
    if len(ids) <= 200:
        assert sorted(shown) == sorted(ids)
    counter = board.page.locator(".counter").inner_text()
    assert f"{len(ids):,}" in counter
    meta = board.page.locator("#meta").inner_text()
    assert portfolio["as_of"][:10] in meta  # the header line says which moment the board shows
    board.shot("portfolio")

    # sorted by defect risk, highest first; a click on the header turns it round
    def risks() -> list[float]:
        wanted = {p["project_id"]: p["next"]["defect_risk"]["probability"] for p in portfolio["projects"] if p["next"]}
        ids_now = board.rows().evaluate_all("rows => rows.map(r => r.dataset.projectId)")
        return [wanted[i] for i in ids_now if i in wanted]

    assert risks() == sorted(risks(), reverse=True)
    board.page.locator("th.h-defect button").click()
    assert risks() == sorted(risks())


@pytest.mark.slow
def test_filters_narrow_the_rows_and_every_row_matches(board, portfolio):
    board.open()
    wait_rows(board)
    projects = portfolio["projects"]
    region = max({p["region"] for p in projects}, key=lambda r: sum(p["region"] == r for p in projects))
    board.page.select_option("select[name=region]", region)
    regions = board.rows().evaluate_all("rows => rows.map(r => r.dataset.region)")
    assert 0 < len(regions) < len(projects)
    assert regions == [region] * sum(p["region"] == region for p in projects)

    board.page.select_option("select[name=level]", "high")
    levels = board.rows().evaluate_all("rows => rows.map(r => [r.dataset.region, r.dataset.level])")
    assert levels == [[region, "high"]] * sum(p["region"] == region and p["level"] == "high" for p in projects)

    board.page.click("button:has-text('Reset')")
    department = next(p["top_driver"]["department"] for p in projects if p["top_driver"])
    board.page.select_option("select[name=department]", department)
    departments = board.rows().evaluate_all("rows => rows.map(r => r.dataset.department)")
    assert departments == [department] * sum(
        bool(p["top_driver"]) and p["top_driver"]["department"] == department for p in projects
    )
    board.shot("portfolio-filtered")

    board.page.click("button:has-text('Reset')")
    one = projects[0]["project_id"]
    board.page.fill("input[name=search]", one)
    found = board.rows().evaluate_all("rows => rows.map(r => r.dataset.projectId)")
    assert one in found and all(one.lower() in i.lower() for i in found)


# ---------------------------------------------------------------------------------------------------- a project
@pytest.mark.slow
def test_project_page_shows_drivers_with_departments_and_one_click_to_accuracy(board, portfolio, server):
    project = project_with_milestone(portfolio)
    board.open()
    wait_rows(board)
    board.page.locator(f"tr.project-row[data-project-id='{project['project_id']}'] a.project-link").click()
    page = board.page
    page.wait_for_selector("article.milestone li.driver")
    assert page.locator("h1.project-id").inner_text() == project["project_id"]
    risk = server.post("/v1/risk", {"project_id": project["project_id"], "as_of": portfolio["as_of"], "lang": "en"})
    cards = page.locator("article.milestone")
    assert cards.count() == len(risk["milestones"])
    drivers = page.locator("article.milestone li.driver")
    assert drivers.count() > 0
    for i in range(drivers.count()):
        driver = drivers.nth(i)
        assert driver.locator(".driver-text").inner_text().strip()
        assert driver.locator(".dept").get_attribute("data-department") in DEPARTMENTS
    expected = {d["text"] for m in risk["milestones"] for d in m["defect_risk"]["drivers"]}
    shown = set(page.locator("article.milestone .block-defect .driver-text").all_inner_texts())
    assert shown == expected
    page.wait_for_selector("svg.line-chart path.line")  # the trend over past weeks
    page.wait_for_selector("table.inspections, .facts .tiles")  # the facts behind it
    board.shot("project", full_page=True)

    page.locator("article.milestone .block-defect a.figure").first.click()  # one click from a number
    page.wait_for_selector("article.model[data-model='defect_risk'] svg.reliability circle.bin")
    model = next(m for m in server.get("/v1/models")["models"] if m["name"] == "defect_risk")
    bins = page.locator("svg.reliability circle.bin").count()
    assert bins == len(model["evidence"]["reliability"])
    assert page.locator("table.metrics tr").count() >= len(
        [v for v in model["test_metrics"].values() if isinstance(v, float)]
    )
    board.shot("accuracy")


def whatif_case(server, portfolio) -> tuple[dict, dict, dict]:
    """A milestone where closing its defects and answering its complaints moves some number."""
    changes = {"defects_open": 0, "inspections_open": 0, "complaints_open": 0}
    ranked = sorted(
        (p for p in portfolio["projects"] if p["next"]), key=lambda p: -p["next"]["defect_risk"]["probability"]
    )
    for project in ranked[:20]:
        body = {
            "project_id": project["project_id"],
            "milestone_id": project["next"]["milestone_id"],
            "as_of": portfolio["as_of"],
            "changes": changes,
        }
        answer = server.post("/v1/whatif", body)
        if any(abs(v) > 1e-3 for outputs in answer["difference"].values() for v in outputs.values()):
            return project, body, answer
    pytest.fail("no milestone among the 20 riskiest moves when its defects close and complaints are answered")


@pytest.mark.slow
def test_a_whatif_changes_a_number(board, portfolio, server):
    project, body, answer = whatif_case(server, portfolio)
    board.open(f"#/project/{project['project_id']}")
    page = board.page
    panel = page.locator(f"div.whatif[data-milestone-id='{body['milestone_id']}']")
    panel.wait_for()
    panel.locator("input[name=close_defects]").check()
    panel.locator("input[name=answer_complaints]").check()
    panel.locator("button[type=submit]").click()
    result = panel.locator("table.whatif-result")
    result.wait_for()
    moved = panel.locator("td.difference.better, td.difference.worse")
    assert moved.count() >= 1
    after = answer["after"]["defect_risk"]["probability"]
    shown = panel.locator("tr[data-model='defect_risk'][data-output='probability'] td.after").inner_text()
    assert shown == f"{after * 100:.1f}%"
    before = panel.locator("tr[data-model='defect_risk'][data-output='probability'] td.before").inner_text()
    assert before == f"{answer['before']['defect_risk']['probability'] * 100:.1f}%"
    panel.scroll_into_view_if_needed()
    board.shot("whatif")


@pytest.mark.slow
def test_worklist_tab_lists_a_departments_items(board, server, portfolio):
    answer = server.get(f"/v1/worklist?department=quality&as_of={portfolio['as_of'][:10]}&lang=en&limit=50")
    board.open("#/worklist/quality")
    page = board.page
    if answer["items"]:
        page.wait_for_selector("tr.work-item")
        ids = page.locator("tr.work-item").evaluate_all("rows => rows.map(r => r.dataset.projectId)")
        assert ids == [i["project_id"] for i in answer["items"]]
    else:
        page.wait_for_selector("p.empty")
    board.shot("worklist")
    page.click("nav.segmented a[data-department='cost']")
    page.wait_for_selector("section.view-worklist[data-department='cost']")


# ---------------------------------------------------------------------------------------------------- languages
@pytest.mark.slow
def test_chinese_page_shows_chinese_driver_texts(chromium, server, shots, portfolio):
    page = browser.open_page(chromium, locale="zh-CN")  # the browser's language picks Chinese
    board = Board(page, server.base, shots)
    project = project_with_milestone(portfolio)
    try:
        board.open()
        wait_rows(board)
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        tops = page.locator("td.c-driver .driver-text").all_inner_texts()
        assert tops and all(CJK.search(text) for text in tops)
        assert CJK.search(page.locator("#tabs").inner_text())
        board.shot("portfolio-zh")
        board.open(f"#/project/{project['project_id']}")
        page.wait_for_selector("article.milestone li.driver")
        texts = page.locator("li.driver .driver-text").all_inner_texts()
        assert texts and all(CJK.search(text) for text in texts)
        departments = page.locator("li.driver .dept").all_inner_texts()
        assert all(CJK.search(text) for text in departments)
        board.shot("project-zh", full_page=True)

        with page.expect_navigation():  # the switch: English, remembered over the browser's language
            page.click("#lang button[data-lang='en']")
        page.wait_for_selector("body.ready")
        assert page.locator("html").get_attribute("lang") == "en"
        page.wait_for_selector("article.milestone li.driver")
        texts = page.locator("li.driver .driver-text").all_inner_texts()
        assert texts and not any(CJK.search(text) for text in texts)
        assert page.evaluate("localStorage.getItem('eqsms.lang')") == "en"
    finally:
        page.context.close()
    assert board.errors == []


# ---------------------------------------------------------------------------------------------------- escaping
def world_with_id(source: Path, target: Path, old: str, new: str) -> None:
    """A copy of a data folder with one id renamed in every cell that holds it."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.suffix != ".csv":
            shutil.copy2(path, target / path.name)
            continue
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        with (target / path.name).open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(
                [[new if cell == old else cell for cell in row] for row in rows]
            )


@pytest.mark.slow
def test_a_project_id_with_markup_shows_as_text_and_runs_nothing(chromium, champions, portfolio, shots, tmp_path):

    victim = project_with_milestone(portfolio)["project_id"]
    data = tmp_path / "world"
    world_with_id(Path(champions.data_dir), data, victim, MARKUP_ID)
    marked = serve(champions.env(EQSMS_DATA_DIR=str(data)), tmp_path / "serve.log")
    page = browser.open_page(chromium)
    board = Board(page, marked.base, shots)
    try:
        lines = marked.get("/v1/portfolio?lang=en")["projects"]
        assert MARKUP_ID in {p["project_id"] for p in lines}
        board.open()
        wait_rows(board)
        page.fill("input[name=search]", "<img")
        row = page.locator("tr.project-row").first
        assert row.get_attribute("data-project-id") == MARKUP_ID
        assert row.locator("a.project-link").inner_text() == MARKUP_ID
        assert page.locator("#view img").count() == 0
        board.shot("markup-id-portfolio")
        row.locator("a.project-link").click()
        page.wait_for_selector("article.milestone li.driver")
        assert page.locator("h1.project-id").inner_text() == MARKUP_ID
        assert page.locator("#view img").count() == 0
        board.shot("markup-id-project")
        assert page.evaluate("typeof window.__xss") == "undefined"
    finally:
        page.context.close()
        stop(marked.process)
    assert board.errors == []


# ---------------------------------------------------------------------------------------------------- the files
def test_the_accuracy_view_shows_how_the_predictions_held_up(board, champions):
    """`eqsms monitor`'s figures (GET /v1/monitor/summary) beside the test metrics: each version's judged rows, the
    model and the reference class metric by metric, the verdict's flag; none yet: said so."""
    folder = champions.settings.monitor_page.parent
    summary = folder / "summary.json"
    summary.unlink(missing_ok=True)
    board.open("#/accuracy/defect_risk")
    board.page.wait_for_selector("section.held-up")
    assert "eqsms monitor" in board.page.locator("section.held-up").inner_text()
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"roc_auc": 0.71, "reference.roc_auc": 0.6, "ece": 0.04, "reference.ece": 0.02}
    summary.write_text(
        json.dumps(
            {
                "outcomes_known_by": "2024-01-07 00:00:00",
                "predictions_logged": 900,
                "models": {"defect_risk": [{"version": "3", "rows": 812, "weeks": 9, "metrics": metrics}]},
                "verdict": {"flagged": True, "reasons": ["defect_risk v3: roc_auc worse than the reference class"]},
            }
        )
    )
    try:
        page = board.page
        page.reload()  # the same address: a new load, which asks for the figures again
        page.wait_for_selector("section.held-up table.held-up-metrics")
        rows = page.locator("table.held-up-metrics tbody tr")
        assert rows.count() == 2
        auc = page.locator("table.held-up-metrics tr[data-metric='roc_auc'] td").all_inner_texts()
        assert auc == ["0.710", "0.600"]
        text = page.locator("section.held-up").inner_text()
        assert "812" in text and "roc_auc worse than the reference class" in text
        # and the champion history the gate recorded: the session's first model
        assert page.locator("section.champion-history tr[data-action='first model']").count() == 1
        board.shot("held-up", full_page=True)
    finally:
        summary.unlink()


def test_a_planner_records_a_note_from_the_project_page(board, portfolio, server):
    """The project page's notes card: a note with a corrected level saved from the form is listed at once, as an
    override, and the API holds it."""
    project = project_with_milestone(portfolio)
    board.open(f"#/project/{project['project_id']}")
    page = board.page
    page.wait_for_selector("section.feedback form.feedback-form")
    page.select_option("form.feedback-form select[name='model']", "defect_risk")
    page.select_option("form.feedback-form select[name='milestone_id']", project["next"]["milestone_id"])
    page.select_option("form.feedback-form select[name='corrected_level']", "low")
    note = "We disagree: the <b>subcontractor</b> was replaced"
    page.fill("form.feedback-form textarea", note)
    page.click("form.feedback-form button[type='submit']")
    page.wait_for_selector("li.feedback-item.override")
    assert page.locator("li.feedback-item.override .feedback-note").first.inner_text() == note  # text, not markup
    kept = server.get(f"/v1/notes?project_id={project['project_id']}")["items"][0]
    assert (kept["note"], kept["corrected_level"], kept["milestone_id"]) == (
        note,
        "low",
        project["next"]["milestone_id"],
    )
    board.shot("feedback")


def board_keys() -> set[str]:
    """The words the board's scripts ask for by name (``T("key")``, ``t``, ``tOr``, a column's ``label``), and those
    it builds from the values it knows it meets (levels, departments, horizon bands)."""
    scripts = "\n".join(path.read_text() for path in UI.glob("*.js"))
    named = set(re.findall(r'\b(?:t|T|tOr)\(\s*"([a-z0-9_]+)"', scripts)) | set(
        re.findall(r'label:\s*"([a-z0-9_]+)"', scripts)
    )
    from features.registry import DEPARTMENTS

    built = {f"level_{v}" for v in ("low", "medium", "high")} | {f"band_{b}" for b in ("ahead", "near", "overdue")}
    return named | built | {f"department_{d.replace(' ', '_')}" for d in DEPARTMENTS}


def test_the_boards_words_are_the_catalogs(http):
    """Every word the board shows is in serving.i18n's catalog in both languages, and the English words the page
    imports (/ui/strings.js, written by the service) are the catalog's."""
    from serving.i18n import UI as CATALOG

    words = board_keys()
    assert len(words) > 100
    missing = {lang: sorted(k for k in words if k not in CATALOG[lang]) for lang in ("en", "zh")}
    assert missing == {"en": [], "zh": []}
    module = http.get("/ui/strings.js")
    assert module.headers["content-type"].startswith("text/javascript")
    served = json.loads(module.text.split("export const EN = ", 1)[1].rsplit(";", 1)[0])
    assert served == CATALOG["en"]


def test_the_board_writes_no_markup_and_reaches_nothing_beyond_the_service():
    scripts = {path.name: path.read_text() for path in UI.glob("*.js")}
    assert scripts
    for name, text in scripts.items():
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert banned not in text, f"{name} uses {banned}"
    html = (UI / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script in index.html"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler in index.html"
    assert "style=" not in html
    for path in UI.iterdir():
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", path.read_text()), f"{path.name} names a URL"
