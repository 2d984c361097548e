"""`k8s-analysis export` and the raw_issues asset against the fake GitHub server."""

import json
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from k8s_analysis.assets import all_assets
from k8s_analysis.export.state import ExportState, exclusive_writer
from k8s_analysis.io_manager import TableIOManager
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_store import RawIssueStore
from k8s_analysis.resources import DataDirResource
from k8s_analysis.sources import ReleaseNotesSource
from k8s_analysis.sources.github import GitHubIssueSource
from k8s_analysis_tests.fake_github import FakeGitHub, make_items

TOKEN = "test-token"


def cli(data_dir, *args, token: str | None = TOKEN, wait: bool = True):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "GITHUB_TOKEN")}
    if token is not None:
        env["GITHUB_TOKEN"] = token
    command = [sys.executable, "-m", "k8s_analysis.cli", "--data-dir", str(data_dir), *args]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def list_requests(server: FakeGitHub) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/issues"))


@pytest.mark.slow
def test_export_full_then_update(tmp_path):
    data = tmp_path / "data"
    with FakeGitHub(make_items(450)) as server:
        full = cli(data, "export", "--full", "--repo", "kubernetes/kubernetes", "--api-url", server.base_url)
        item = server.item(7)
        item.update(title="edited", updated_at="2031-01-01T00:00:00Z")
        server.upsert_item(item)
        update = cli(data, "export", "--update")
        unchanged_first = cli(data, "export", "--update")
        unchanged = cli(data, "export", "--update")
    assert full.returncode == 0, full.stdout + full.stderr
    assert "full export of kubernetes/kubernetes" in full.stdout
    assert "450 items received in 5 page(s); stored 450 new" in full.stdout
    assert update.returncode == 0, update.stdout + update.stderr
    assert "delta export" in update.stdout
    assert "1 updated" in update.stdout
    assert unchanged_first.returncode == 0
    assert "nothing changed (304)" in unchanged.stdout
    assert TOKEN not in full.stdout + full.stderr + update.stdout + update.stderr


@pytest.mark.slow
def test_export_killed_then_resumed(tmp_path):
    """SIGKILL in the middle of a full export; the next export loses and repeats nothing."""
    data = tmp_path / "data"
    layout = DataLayout(data)
    with FakeGitHub(make_items(3_000), latency_s=0.05) as server:
        process = cli(data, "export", "--api-url", server.base_url, wait=False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = ExportState.load(layout.export_state_path) if layout.export_state_path.exists() else None
            if state and state.checkpoint and state.checkpoint.pages >= 8:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        killed_at = ExportState.load(layout.export_state_path).checkpoint.pages
        resumed = cli(data, "export")
        requests = list_requests(server)
    stored = [item["number"] for item in RawIssueStore(layout.raw_issues_dir).iter_items()]
    assert 8 <= killed_at < 30
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "(resumed)" in resumed.stdout
    assert sorted(stored) == list(range(1, 3_001))
    # 30 pages, at most one fetched twice, and the next delta's first page.
    assert requests <= 30 + 1 + 1


def one_line_error(result) -> str:
    """The stderr of a command that failed before its Dagster run: one line, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Dagster run" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("k8s-analysis export: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_export_bad_token(tmp_path):
    with FakeGitHub(make_items(5)) as server:
        result = cli(tmp_path, "export", "--api-url", server.base_url, token="wrong-token")
    message = one_line_error(result)
    assert "GITHUB_TOKEN is missing or invalid" in message
    assert "wrong-token" not in result.stdout + result.stderr


def test_export_unknown_repository(tmp_path):
    with FakeGitHub(make_items(5)) as server:
        result = cli(tmp_path, "export", "--repo", "nobody/nothing", "--api-url", server.base_url)
    assert "does not exist or this token cannot see it" in one_line_error(result)


def test_export_needs_token(tmp_path):
    result = cli(tmp_path, "export", token=None)
    assert "export needs a GitHub token: set GITHUB_TOKEN" in one_line_error(result)


def test_export_invalid_repository_name(tmp_path):
    with FakeGitHub(make_items(5)) as server:
        result = cli(tmp_path, "export", "--repo", "kubernetes", "--api-url", server.base_url)
    assert "invalid repository 'kubernetes': write it as OWNER/NAME" in one_line_error(result)


def test_export_unreachable_api(tmp_path):
    result = cli(tmp_path, "export", "--api-url", "http://127.0.0.1:9")
    assert "cannot connect to http://127.0.0.1:9" in one_line_error(result)


def test_export_other_repository_refused(tmp_path):
    with FakeGitHub(make_items(5)) as server:
        first = cli(tmp_path, "export", "--api-url", server.base_url)
        second = cli(tmp_path, "export", "--repo", "kubernetes/website")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "holds an export of kubernetes/kubernetes" in one_line_error(second)


def test_export_refused_while_busy(tmp_path):
    layout = DataLayout(tmp_path)
    with FakeGitHub(make_items(5)) as server, exclusive_writer(layout.raw_lock_path, "another export"):
        result = cli(tmp_path, "export", "--api-url", server.base_url)
    assert "the raw store is busy (another export" in one_line_error(result)
    assert not layout.raw_issues_dir.exists()


def test_export_plan(tmp_path):
    with FakeGitHub(make_items(1_234)) as server:
        result = cli(tmp_path, "export", "--plan", "--api-url", server.base_url)
        requests = len(server.requests)
    assert result.returncode == 0, result.stderr
    assert "newest number 1,234" in result.stdout
    assert "about 14 requests" in result.stdout
    assert "about 1,234 requests" in result.stdout
    assert "the raw store is empty" in result.stdout
    assert requests <= 3
    assert ExportState.load(DataLayout(tmp_path).export_state_path).api_url == server.base_url


def test_export_plan_without_token(tmp_path):
    with FakeGitHub(make_items(300)) as server:
        result = cli(tmp_path, "export", "--plan", "--api-url", server.base_url, token=None)
    assert result.returncode == 0, result.stderr
    assert "GITHUB_TOKEN is not set" in result.stdout
    assert "waiting" not in result.stderr


def github_resources(root, server, **options) -> dict:
    return {
        "data_dir": DataDirResource(root=str(root)),
        "issue_source": GitHubIssueSource(token=TOKEN, api_url=server.base_url, **options),
        "release_notes_source": ReleaseNotesSource(),
        "table_io_manager": TableIOManager(root=str(root)),
    }


def raw_issues_metadata(result) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "raw_issues"]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_raw_issues_asset_exports(tmp_path):
    with FakeGitHub(make_items(230)) as server:
        result = dg.materialize(all_assets, selection=["raw_issues"], resources=github_resources(tmp_path, server))
    metadata = raw_issues_metadata(result)
    assert result.success
    assert metadata["mode"] == "full"
    assert metadata["pages"] == 3
    assert metadata["stored_items"] == 230
    assert TOKEN not in json.dumps(metadata)


def test_raw_issues_waits_for_rate_limit(tmp_path):
    """A budget that is spent: the run waits for the reset, logs the wait, and completes."""
    with FakeGitHub(make_items(500)) as server, dg.instance_for_test() as instance:
        server.exhaust_rate_limit(reset_in_s=1.5)
        resources = github_resources(tmp_path, server, rate_limit_reserve=0)
        result = dg.materialize(all_assets, selection=["raw_issues"], resources=resources, instance=instance)
        limited = server.count("/issues", status=403)
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success
    assert raw_issues_metadata(result)["stored_items"] == 500
    assert limited == 1
    assert any(message.startswith("waiting") and "rate limit exceeded" in message.lower() for message in messages)


def test_raw_issues_keeps_reserve(tmp_path):
    """With the budget at the reserve, the export sleeps until the reset instead of spending it."""
    with FakeGitHub(make_items(500), rate_limit=3, reset_after_s=2) as server, dg.instance_for_test() as instance:
        resources = github_resources(tmp_path, server, rate_limit_reserve=1)
        result = dg.materialize(all_assets, selection=["raw_issues"], resources=resources, instance=instance)
        limited = server.count("/issues", status=403)
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success
    assert limited == 0
    assert any("at the reserve of 1" in message for message in messages)


def test_raw_issues_survives_every_fault(tmp_path):
    """502, 500, secondary-limit 403, 429 with and without Retry-After, a dropped connection."""
    faults = [
        (502, None, None),
        (500, None, None),
        (403, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}, None),
        (429, {"message": "Too Many Requests"}, {"Retry-After": "0"}),
        (429, {"message": "Too Many Requests"}, None),
        (0, None, None),
    ]
    with FakeGitHub(make_items(400)) as server, dg.instance_for_test() as instance:
        for status, body, headers in faults:
            server.inject(status, body=body, headers=headers, path_contains="/repositories/")
        resources = github_resources(tmp_path, server, secondary_wait_s=0.05, backoff_s=0.05)
        result = dg.materialize(all_assets, selection=["raw_issues"], resources=resources, instance=instance)
        waits = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("waiting")]
    stored = sorted(item["number"] for item in RawIssueStore(DataLayout(tmp_path).raw_issues_dir).iter_items())
    assert result.success
    assert stored == list(range(1, 401))
    assert len(waits) == len(faults)


def test_export_api_url_without_scheme(tmp_path):
    result = cli(tmp_path, "export", "--api-url", "127.0.0.1:9")
    assert "invalid API URL '127.0.0.1:9': include the scheme" in one_line_error(result)
