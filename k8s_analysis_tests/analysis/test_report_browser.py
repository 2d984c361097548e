"""The analysis report opens offline in headless Chromium, with every chart decoded."""

import importlib.util
import json
import os
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from k8s_analysis.analysis.charts import draw, save, subtitle
from k8s_analysis.analysis.registry import ANALYSES, SCOPE_TITLES, AnalysisInput, date_range
from k8s_analysis.analysis.report import ReportSection, write_report
from k8s_analysis.analysis.series import NameFilter
from k8s_analysis.tables.items import build_item_tables
from k8s_analysis_tests.shared_data import shared_path

# Debian's chromium package. Playwright's own browser download is not used.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# With this variable set to "1", a missing browser or playwright module fails the test instead of skipping it.
REQUIRE_ENV_VAR = "K8S_ANALYSIS_REQUIRE_BROWSER"
PAGE_TIMEOUT_MS = 15_000
SECTION_COUNT = sum(len(analysis.scopes) for analysis in ANALYSES.values())


def require_browser() -> None:
    """Skip the test when Chromium or Playwright is missing, or fail when K8S_ANALYSIS_REQUIRE_BROWSER=1."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (install it with apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright module (install it with pip install 'playwright>=1.45')")
    if not missing:
        return
    message = "headless Chromium test: missing " + " and ".join(missing)
    if os.environ.get(REQUIRE_ENV_VAR) == "1":
        pytest.fail(message)
    pytest.skip(message)


def build_report(folder: Path) -> Path:
    """Write every analysis chart for the real shared objects and the report page, as analysis_report does."""
    with tarfile.open(shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")) as tar:
        items = json.load(tar.extractfile("api.json"))
    tables = build_item_tables(items)
    data = AnalysisInput(tables.issues, tables.pull_requests, tables.labels)

    sections = []
    for analysis in ANALYSES.values():
        for scope in analysis.scopes:
            series = analysis.compute(data, scope, NameFilter(), 25)
            title = f"{analysis.title} ({SCOPE_TITLES[scope]})"
            chart_subtitle = subtitle(SCOPE_TITLES[scope], date_range(data, scope))
            figure = draw(analysis.chart, series, analysis.title, chart_subtitle)
            png, _ = save(figure, folder / f"{analysis.name}-{scope}")
            sections.append(ReportSection(f"{analysis.name}-{scope}", title, png, series))

    newest = pd.concat([tables.issues["updated_at"], tables.pull_requests["updated_at"]]).max()
    return write_report(sections, f"{newest:%Y-%m-%d %H:%M} UTC", folder / "index.html", "k8s-analysis report")


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    """Load the report in headless Chromium with every request other than file:// aborted.

    Returns what the tests check: load status, title, images, console errors and aborted URLs.
    """
    require_browser()
    from playwright.sync_api import sync_playwright

    report = build_report(tmp_path_factory.mktemp("analysis"))
    errors: list[str] = []
    aborted: list[str] = []

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith("file://"):
            request_route.continue_()
        else:
            aborted.append(url)
            request_route.abort()

    def record_console(message) -> None:
        if message.type == "error":
            errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", route)
            page.on("console", record_console)
            page.on("pageerror", lambda error: errors.append(str(error)))
            response = page.goto(report.as_uri(), wait_until="load", timeout=PAGE_TIMEOUT_MS)
            images = page.eval_on_selector_all(
                "img", "nodes => nodes.map(n => ({complete: n.complete, width: n.naturalWidth, alt: n.alt}))")
            loaded = {"ok": response is not None and response.ok, "title": page.title(), "images": images}
        finally:
            browser.close()
    return {**loaded, "errors": errors, "aborted": aborted}


def test_report_page_loads(report_page):
    assert report_page["ok"]
    assert report_page["title"] == "k8s-analysis report"


def test_report_one_image_per_section(report_page):
    assert SECTION_COUNT == 28
    assert len(report_page["images"]) == SECTION_COUNT


def test_report_images_all_decoded(report_page):
    incomplete = [image["alt"] for image in report_page["images"] if not image["complete"]]
    empty = [image["alt"] for image in report_page["images"] if image["width"] <= 0]
    assert incomplete == []
    assert empty == []


def test_report_no_console_errors(report_page):
    assert report_page["errors"] == []


def test_report_makes_no_requests(report_page):
    assert report_page["aborted"] == []
