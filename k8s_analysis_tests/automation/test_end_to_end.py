"""The schedule, the sensors and the redeploy job carried out by a real Dagster daemon.

The module seeds a data directory with `k8s-analysis` commands: published notes, a full export
from the fake GitHub server, and a first promoted model. It then starts a prediction server
and `dagster dev` on 127.0.0.1, turns the schedule and the sensors on with the `dagster` CLI,
and watches what a user would watch:

1. the sensor skips with its counts while nothing changed;
2. a damaged feedback file makes one tick fail, and the cursor stays where it was;
3. 40 pull requests with labelled notes appear on GitHub, and the schedule's delta export
   stores them;
4. the sensor counts them and requests a retrain, which saves a model without promoting it;
5. the promotion sensor requests the redeploy job, which promotes the new version;
6. the running prediction server serves the new version.

The flow runs once in a module fixture; each test checks one part of what it recorded.
The browser tests at the end of this module open the same instance's UI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
import yaml

from k8s_analysis.automation import RETRAIN_DATA_TAG
from k8s_analysis.jobs import EXPORT_TAG, INCREMENTAL_EXPORT_JOB, RETRAIN_JOB
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_store import RawIssueStore
from k8s_analysis.tables.items import build_item_tables
from k8s_analysis.tables.release_notes import github_note_rows, published_note_rows, select_published_files
from k8s_analysis_tests.automation.dagster_dev import REPOSITORY, DagsterDev
from k8s_analysis_tests.fake_github import FakeGitHub
from k8s_analysis_tests.analysis.test_report_browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from k8s_analysis_tests.serving.running import RunningServer
from k8s_analysis_tests.shared_data import shared_path

pytestmark = pytest.mark.slow

TOKEN = "e2e-token"
NEW_NOTES = 40
THRESHOLD = 30
SENSOR_INTERVAL_S = 5
# The published notes of releases 1.20 to 1.32 (the drafts): enough for a model that passes its
# checks, and a third of the full set, so that each training takes about a minute.
PUBLISHED = ("release-notes", "kubernetes-sig-release")
EXPORT_TIMEOUT_S = 300
RETRAIN_TIMEOUT_S = 420
REDEPLOY_TIMEOUT_S = 180


def load_pull_requests() -> list[dict]:
    with tarfile.open(shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")) as tar:
        return json.load(tar.extractfile("api.json"))


def published_numbers(folder: Path) -> set[int]:
    files = [(path.name, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]
    return {row["pr_number"] for row in published_note_rows(select_published_files(files, False))}


def held_back(items: list[dict], published: set[int]) -> list[dict]:
    """The newest pull requests whose labelled note the published files lack, so each is a new note."""
    noted = {row["pr_number"] for row in github_note_rows(build_item_tables(items).pull_requests)}
    candidates = [item for item in items if item["number"] in noted - published]
    return sorted(candidates, key=lambda item: item["updated_at"])[-NEW_NOTES:]


def k8s_analysis(environment: dict[str, str], *arguments: str) -> str:
    result = subprocess.run([sys.executable, "-m", "k8s_analysis.cli", *arguments], cwd=REPOSITORY,
                            env=environment, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"k8s-analysis {arguments[0]} exited with {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result.stdout


def last_run(dagster: DagsterDev, job_name: str, statuses: tuple[str, ...] = ("SUCCESS",)) -> dict | None:
    """The newest run of the job once it reached one of ``statuses``; a failed run fails the wait."""
    runs = dagster.runs(job_name)
    if not runs:
        return None
    run = runs[0]
    if run["status"] in ("FAILURE", "CANCELED") and run["status"] not in statuses:
        raise AssertionError(f"{job_name} run {run['runId']} ended {run['status']}; dagster dev log:\n"
                             f"{dagster.log()}")
    return run if run["status"] in statuses else None


@contextmanager
def automation_flow(root: Path) -> Iterator[dict]:
    """Seed, start everything, carry out the flow, and yield what was recorded on the way.

    Everything started here keeps running until the context ends.
    """
    data_dir = root / "data"
    layout = DataLayout(data_dir)
    items = load_pull_requests()
    published_dir = shared_path("data", *PUBLISHED)
    new_items = held_back(items, published_numbers(published_dir))
    assert len(new_items) == NEW_NOTES
    new_numbers = {item["number"] for item in new_items}

    github = FakeGitHub([item for item in items if item["number"] not in new_numbers], token=TOKEN).start()
    environment = {
        **os.environ, "GITHUB_TOKEN": TOKEN, "K8S_ANALYSIS_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster_home"), "PYTHONUNBUFFERED": "1",
        "K8S_ANALYSIS_EXPORT_CRON": "* * * * *",
        "K8S_ANALYSIS_SENSOR_INTERVAL": str(SENSOR_INTERVAL_S),
        "K8S_ANALYSIS_RETRAIN_THRESHOLD": str(THRESHOLD),
    }
    server = dagster = None
    record: dict = {"layout": layout, "github": github, "new_numbers": new_numbers, "items": len(items),
                    "timings": {}}
    started = time.monotonic()

    def lap(phase: str) -> None:
        record["timings"][phase] = round(time.monotonic() - started, 1)

    try:
        k8s_analysis(environment, "import", str(published_dir))
        k8s_analysis(environment, "export", "--full", "--api-url", github.base_url)
        k8s_analysis(environment, "run")
        record["first_version"] = os.readlink(layout.current_model_dir)
        lap("seeded")

        server = RunningServer(None, root / "serve.log", "--reload-interval", "1")
        server.wait_ready()
        record["served_before"] = server.serving_version()

        dagster = DagsterDev(environment, root / "dagster-dev.log")
        dagster.wait_ready()
        record["dagster"] = dagster
        record["sensor_start_output"] = dagster.cli("sensor", "start", "--start-all")
        lap("dagster_ready")

        def sensor_tick(status: str, after: float = 0.0):
            """The newest new_labels_sensor tick with ``status``, once one exists after ``after``."""
            ticks = dagster.instigator_state("sensor", "new_labels_sensor")["ticks"]
            return next((tick for tick in ticks if tick["status"] == status and tick["timestamp"] > after), None)

        # 1. Nothing changed since the first model was trained.
        record["quiet_tick"] = dagster.wait_until(lambda: sensor_tick("SKIPPED"), 90,
                                                  "a skipped new_labels_sensor tick")
        record["cursor_before_error"] = \
            dagster.instigator_state("sensor", "new_labels_sensor")["typeSpecificData"]["lastCursor"]

        # 2. An evaluation that raises records a tick error and leaves the cursor alone.
        layout.label_feedback_path.parent.mkdir(parents=True, exist_ok=True)
        layout.label_feedback_path.write_bytes(b"not a parquet file")

        record["failed_tick"] = dagster.wait_until(lambda: sensor_tick("FAILURE"), 60,
                                                   "a failed new_labels_sensor tick")
        record["cursor_after_error"] = \
            dagster.instigator_state("sensor", "new_labels_sensor")["typeSpecificData"]["lastCursor"]
        layout.label_feedback_path.unlink()

        record["recovered_tick"] = dagster.wait_until(
            lambda: sensor_tick("SKIPPED", after=record["failed_tick"]["timestamp"]), 60, "a tick after the repair")
        record["ticks_around_error"] = dagster.instigator_state("sensor", "new_labels_sensor")["ticks"]
        lap("tick_error_seen")

        # 3. New labelled pull requests appear; the schedule's export brings them in.
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for item in new_items:
            github.upsert_item({**item, "updated_at": now})
        requests_before = len(github.requests)
        record["schedule_start_output"] = dagster.cli("schedule", "start", "daily_export_schedule")
        record["export_run"] = dagster.wait_until(lambda: last_run(dagster, INCREMENTAL_EXPORT_JOB), EXPORT_TIMEOUT_S,
                                                  "a successful incremental_export_job run", interval=2)
        record["export_requests"] = [request for request in github.requests[requests_before:]
                                     if request.path.endswith("/issues")]
        lap("exported")

        # 4. and 5. The retrain, then the promotion.
        record["retrain_run"] = dagster.wait_until(lambda: last_run(dagster, RETRAIN_JOB), RETRAIN_TIMEOUT_S,
                                                   "a successful retrain_job run", interval=2)
        lap("retrained")
        record["redeploy_run"] = dagster.wait_until(lambda: last_run(dagster, "redeploy_job"), REDEPLOY_TIMEOUT_S,
                                                    "a successful redeploy_job run", interval=2)
        record["promoted_version"] = os.readlink(layout.current_model_dir)
        lap("promoted")

        # 6. The running server reloads the promoted model by itself.
        record["served_after"] = server.wait_until(
            lambda: server.serving_version() if server.serving_version() == record["promoted_version"] else None,
            timeout=30, description="the server answering with the promoted version")
        record["prediction"] = server.request(
            "POST", "/v1/models/kubernetes-analysis:predict",
            {"instances": ["Fixed a panic in the kubelet when a pod has no containers."]})
        record["server_log"] = server.log()
        lap("served")
        # The schedule goes on firing every minute: wait for a second export, to check that
        # the exports stayed one at a time and that the rebuild started no second retrain.
        record["export_runs"] = dagster.wait_until(
            lambda: (runs := [run for run in dagster.runs(INCREMENTAL_EXPORT_JOB) if run["startTime"]])[1:] and runs,
            EXPORT_TIMEOUT_S, "a second incremental_export_job run", interval=2)
        lap("exported_again")
        record["retrain_runs"] = dagster.runs(RETRAIN_JOB)
        record["schedule_ticks"] = dagster.instigator_state("schedule", "daily_export_schedule")["ticks"]
        record["redeploy_runs"] = dagster.runs("redeploy_job")
        yield record
    finally:
        if dagster is not None:
            dagster.stop()
        if server is not None:
            server.stop()
        github.stop()


@pytest.fixture(scope="module")
def automation(tmp_path_factory):
    with automation_flow(tmp_path_factory.mktemp("automation")) as record:
        print("seconds since the start of the flow:", record["timings"])
        yield record


def test_quiet_sensor_tick_gives_counts(automation):
    tick = automation["quiet_tick"]
    assert tick["runIds"] == []
    assert re.fullmatch(rf"0 change\(s\) since model {automation['first_version']}: .*below the threshold of "
                        rf"{THRESHOLD}", tick["skipReason"])
    assert automation["cursor_before_error"].startswith(f"{automation['first_version']}:")


def test_sensor_error_keeps_cursor(automation):
    """The exception shows on the tick, the cursor does not move, and no run is requested."""
    failed = automation["failed_tick"]
    cause = next(message for message in failed["errors"] if "UnreadableTableError" in message)
    assert cause.startswith(f"k8s_analysis.automation.decisions.UnreadableTableError: cannot read "
                            f"{automation['layout'].label_feedback_path}: ")
    assert "move the damaged file away" in cause
    assert failed["runIds"] == []
    assert automation["cursor_after_error"] == automation["cursor_before_error"]
    # One failure per evaluation while the file was damaged, and the next tick after the repair skips again.
    assert automation["recovered_tick"]["skipReason"].startswith("0 change(s)")
    failures = [tick for tick in automation["ticks_around_error"] if tick["status"] == "FAILURE"]
    assert 1 <= len(failures) <= 3


def test_schedule_export_stores_delta(automation):
    run = automation["export_run"]
    assert run["tags"][EXPORT_TAG] == "raw_issues"
    assert run["tags"]["dagster/schedule_name"] == "daily_export_schedule"
    lists = automation["export_requests"]
    assert lists, "the export listed no issues"
    assert all("since" in request.query for request in lists)
    store = RawIssueStore(automation["layout"].raw_issues_dir)
    assert store.count() == automation["items"]
    numbers = pd.read_parquet(automation["layout"].table_path("pull_requests"), columns=["number"])["number"]
    assert numbers.is_unique
    assert automation["new_numbers"] <= set(numbers)


def test_export_runs_never_overlap(automation):
    """The schedule fires every minute here, more often than an export may finish."""
    runs = [run for run in automation["export_runs"] if run["startTime"] is not None]
    assert len(runs) >= 2
    spans = sorted((run["startTime"], run["endTime"] or float("inf")) for run in runs)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end <= next_start
    # A tick that came while an export ran gives that as its reason.
    for tick in automation["schedule_ticks"]:
        if tick["status"] == "SKIPPED":
            assert "two exports never overlap" in tick["skipReason"]


def test_sensor_requests_unpromoted_retrain(automation):
    run = automation["retrain_run"]
    reason = run["tags"]["k8s-analysis/reason"]
    assert reason.startswith(f"{NEW_NOTES} change(s) since model {automation['first_version']}: "
                             f"{NEW_NOTES} new labelled note(s), 0 note(s)")
    assert reason.endswith(f"at or above the threshold of {THRESHOLD}, so retraining")
    assert run["tags"][RETRAIN_DATA_TAG].startswith(f"{automation['first_version']}:")
    assert run["tags"]["dagster/run_key"].endswith("-attempt-1")
    config = yaml.safe_load(run["runConfigYaml"])
    assert config["ops"]["kind_bug_classifier"]["config"]["promote"] is False


def test_promotion_redeploys_new_version(automation):
    first, promoted = automation["first_version"], automation["promoted_version"]
    assert promoted != first
    run = automation["redeploy_run"]
    assert yaml.safe_load(run["runConfigYaml"])["ops"]["promote_model"]["config"]["version"] == promoted
    assert run["tags"]["k8s-analysis/reason"].startswith(f"model {promoted} passed its checks")
    previous = automation["layout"].models_dir / "previous"
    assert os.readlink(previous) == first


def test_repeated_exports_retrain_once(automation):
    """The schedule fires every minute here; the exports after the first change no label."""
    assert len(automation["retrain_runs"]) == 1
    assert len(automation["redeploy_runs"]) == 1


def test_server_serves_promoted_version(automation):
    assert automation["served_before"] == automation["first_version"]
    assert automation["served_after"] == automation["promoted_version"]
    status, body = automation["prediction"]
    assert status == 200
    assert body["model_version"] == automation["promoted_version"]
    assert 0.0 <= body["predictions"][0] <= 1.0



# -- what a user sees in the Dagster UI --------------------------------------------------------

# The browser tests save their screenshots in the folder this variable names, else in a
# temporary folder. The docs' images come from a run with docs/images.
SCREENSHOTS_ENV = "K8S_ANALYSIS_SCREENSHOTS"
VIEWPORT = {"width": 1400, "height": 900}
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def ui(automation, tmp_path_factory):
    """A headless Chromium page on the flow's Dagster UI, and where its screenshots go."""
    require_browser()
    from playwright.sync_api import sync_playwright

    dagster = automation["dagster"]
    # A fresh instance opens a newsletter dialog over every page until this is recorded.
    dagster.graphql("mutation { setNuxSeen }")
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield UiPage(page, f"http://127.0.0.1:{dagster.port}", folder)
        finally:
            browser.close()


class UiPage:
    def __init__(self, page, base_url: str, folder: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.folder = folder

    def open(self, path: str, wait_for_text: str):
        self.page.goto(self.base_url + path, wait_until="domcontentloaded")
        self.page.get_by_text(wait_for_text, exact=True).first.wait_for()
        # The UI fills in tick and metadata rows after its first paint.
        self.page.wait_for_load_state("networkidle")
        return self.page

    def text(self) -> str:
        return self.page.inner_text("body")

    def screenshot(self, name: str) -> Path:
        path = self.folder / name
        self.page.screenshot(path=str(path))
        return path


def test_ui_asset_graph_groups(ui):
    ui.open("/asset-groups", "Global asset lineage")
    ui.page.get_by_text("analysis", exact=True).last.wait_for()
    expected = {"raw": 2, "tables": 4, "model": 2, "analysis": 11}

    def group_counts() -> dict[str, int | None]:
        # Each collapsed group shows its name, then how many of its assets are in each state.
        text = ui.text()
        counts = {}
        for group in expected:
            states = re.findall(rf"\n{group}\n((?:\d+\n)+)", text)
            counts[group] = sum(int(number) for number in states[-1].split()) if states else None
        return counts

    # The graph lays itself out and fills in the counts after the data arrives, which takes
    # longer on a loaded machine, so the counts are read until they settle.
    deadline = time.monotonic() + 30
    while (counts := group_counts()) != expected and time.monotonic() < deadline:
        ui.page.wait_for_timeout(500)
    assert counts == expected
    # Opened, the raw, tables and model groups show their assets and the lines between them.
    opened = ",".join(f"global@global:{group}" for group in ("raw", "tables", "model"))
    ui.open(f"/asset-groups?expanded={quote(opened)}", "Global asset lineage")
    for asset in ("raw_issues", "raw_release_notes", "issues", "pull_requests", "labels", "release_notes"):
        ui.page.get_by_text(asset, exact=True).first.wait_for()
    ui.page.wait_for_timeout(1500)
    assert ui.screenshot("dagster-asset-graph.png").stat().st_size > 10_000


def test_ui_table_row_count(ui, automation):
    ui.open("/assets/pull_requests", "Row count")
    text = ui.text()
    assert re.search(rf"Row count\n+{automation['items']}\n", text)
    assert "release_notes_found" in text


def test_ui_evaluation_metrics_plots(ui, automation):
    ui.open("/assets/classifier_evaluation", "metrics")
    text = ui.text()
    assert automation["promoted_version"] in text
    for figure in ("Precision", "Recall", "F1", "ROC-AUC", "Threshold"):
        assert re.search(rf"\n{re.escape(figure)}\t[01]\.\d{{3}}\t", text), figure
    ui.screenshot("dagster-evaluation.png")
    # A plot is markdown with an embedded PNG, which the UI opens in a dialog.
    row = ui.page.locator("tr", has_text="roc_curve")
    row.get_by_text("Show Markdown").click()
    image = ui.page.locator("[role=dialog] img").first
    image.wait_for()
    width = image.evaluate("node => node.complete ? node.naturalWidth : 0")
    assert width > 200
    # The dialog fades in; a screenshot taken at once shows the table through it.
    ui.page.wait_for_function(
        "() => [...document.querySelectorAll('[role=dialog], [role=dialog] *')]"
        ".every(node => getComputedStyle(node).opacity === '1')")
    ui.page.wait_for_timeout(300)
    ui.screenshot("dagster-roc-curve.png")
    ui.page.keyboard.press("Escape")


def test_ui_automation_all_running(ui):
    ui.open("/automation", "daily_export_schedule")
    for name in ("daily_export_schedule", "new_labels_sensor", "model_promotion_sensor"):
        row = ui.page.locator("div[data-index]", has_text=name)
        # The row's first checkbox selects it; its last one is the on/off switch.
        assert row.locator("input[type=checkbox]").last.is_checked(), f"{name} is not running"
        # The last-tick column fills in after the row appears, later on a loaded machine.
        deadline = time.monotonic() + 30
        while not re.search(r"(seconds?|minutes?) ago", text := row.inner_text()) and time.monotonic() < deadline:
            ui.page.wait_for_timeout(500)
        assert re.search(r"(seconds?|minutes?) ago", text), f"{name} shows no last tick"
    ui.screenshot("dagster-automation.png")


def test_ui_sensor_tick_reasons(ui, automation):
    page = ui.open("/locations/k8s_analysis/sensors/new_labels_sensor", "Latest tick")
    cursor = automation["dagster"].instigator_state("sensor", "new_labels_sensor")["typeSpecificData"]["lastCursor"]
    assert cursor in ui.text()
    ui.screenshot("dagster-new-labels-sensor.png")
    # A skipped tick's reason is in its log. The list re-renders at each new tick, so the click
    # is sent to the element itself, and a row that moved under it (a tick still evaluating,
    # with an empty log) is retried on the next row.
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    reason = re.compile(rf"below the threshold of {THRESHOLD}")
    for row in range(1, 4):
        page.get_by_text("View logs").nth(row).dispatch_event("click")
        try:
            page.get_by_text(reason).first.wait_for(timeout=10_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
    else:
        pytest.fail("no tick log among the newest three shows the threshold reason")
    # A log dialog that opened late, after its Escape, stays over the page and takes the next
    # click, so the page is loaded afresh. The Runs tab lists the retrain the sensor
    # requested, with its reason.
    page = ui.open("/locations/k8s_analysis/sensors/new_labels_sensor", "Latest tick")
    assert page.locator(".bp5-overlay-backdrop").count() == 0
    page.get_by_text("Runs", exact=True).last.click()
    retrain = automation["retrain_run"]
    page.get_by_text(retrain["runId"][:8], exact=True).first.wait_for()
    assert retrain["tags"]["k8s-analysis/reason"] in ui.text()


def test_ui_schedule_page_ticks(ui):
    ui.open("/locations/k8s_analysis/schedules/daily_export_schedule", "Latest tick")
    text = ui.text()
    assert "Every minute" in text or "* * * * *" in text
    # The page's tick list: the tick that requested the first export is among them.
    assert "1 run requested" in text
    ui.screenshot("dagster-export-schedule.png")


def test_ui_runs_page_flow(ui, automation):
    """Export, retrain and redeploy, each launched by its schedule or sensor."""
    ui.open("/runs", "Launched by")
    text = ui.text()
    for run in (automation["export_run"], automation["retrain_run"], automation["redeploy_run"]):
        assert run["runId"][:8] in text, run["jobName"]
    ui.screenshot("dagster-runs.png")
