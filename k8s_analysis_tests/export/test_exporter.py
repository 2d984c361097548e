"""Full, delta and resumed exports against the fake GitHub server, into a real raw store."""

import logging

import pytest

from k8s_analysis.export.client import GitHubClient, GitHubError, RetryPolicy
from k8s_analysis.export.exporter import MARK_KEY, Exporter, Journal, belongs_to
from k8s_analysis.export.state import ExportBusyError, ExportState, exclusive_writer
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_store import RawIssueStore
from k8s_analysis_tests.fake_github import FakeGitHub, make_items

REPOSITORY = "kubernetes/kubernetes"


class NoSleep:
    """Records requested waits instead of sleeping."""

    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def layout(tmp_path):
    return DataLayout(tmp_path / "data")


def make_client(server: FakeGitHub, **policy) -> GitHubClient:
    return GitHubClient(server.base_url, "test-token", RetryPolicy(**policy), sleep=NoSleep())


def stored_items(layout: DataLayout) -> dict[int, dict]:
    return {item["number"]: item for item in RawIssueStore(layout.raw_issues_dir).iter_items()}


def list_requests(server: FakeGitHub) -> list:
    return [r for r in server.requests if r.path.endswith("/issues")]


def test_full_export_stores_every_item(layout):
    with FakeGitHub(make_items(250)) as server:
        result = Exporter(make_client(server), layout, REPOSITORY).run("full")
        served = {n: server.item(n) for n in range(1, 251)}
    stored = stored_items(layout)
    assert result.mode == "full"
    assert result.pages == 3
    assert result.stored.inserted == 250
    assert stored == served


def test_full_export_request_budget(layout):
    """At most 10.2 requests per 1,000 items, and never one request per item."""
    with FakeGitHub(make_items(5_000)) as server:
        Exporter(make_client(server), layout, REPOSITORY).run("full")
        lists = len(list_requests(server))
        singles = server.count("/issues/")
    assert lists <= 5_000 * 10.2 / 1_000
    assert singles == 0


def test_full_export_follows_cursor_links(layout):
    with FakeGitHub(make_items(350)) as server:
        Exporter(make_client(server), layout, REPOSITORY).run("full")
        requests = [r for r in list_requests(server) if "since" not in r.query]
    assert len(requests) == 4
    assert all("page" not in request.query for request in requests)
    assert all("after" in request.query for request in requests[1:])


def test_export_remembers_source(layout):
    with FakeGitHub(make_items(10)) as server:
        Exporter(make_client(server), layout, REPOSITORY).run()
        state = ExportState.load(layout.export_state_path)
    assert state.repository == REPOSITORY
    assert state.api_url == server.base_url
    assert state.last_full_export_at is not None
    assert state.checkpoint is None


def test_delta_fetches_changes_only(layout):
    with FakeGitHub(make_items(300)) as server:
        client = make_client(server)
        Exporter(client, layout, REPOSITORY).run()
        for number in (3, 150, 299):
            item = server.item(number)
            item.update(title=f"edited {number}", updated_at="2030-01-01T00:00:00Z")
            server.upsert_item(item)
        for number in (301, 302):
            new = make_items(1, start_number=number)[0]
            new["updated_at"] = "2030-01-02T00:00:00Z"
            server.upsert_item(new)
        before = len(list_requests(server))
        result = Exporter(client, layout, REPOSITORY).run()
        delta_requests = list_requests(server)[before:]
    stored = stored_items(layout)
    assert result.mode == "delta"
    assert len(delta_requests) == 2  # the changes, then the next delta's first page for its ETag
    assert delta_requests[0].query["sort"] in ("updated", ["updated"])
    assert result.stored.inserted == 2
    assert result.stored.updated == 3
    assert stored[150]["title"] == "edited 150"
    assert len(stored) == 302


def test_delta_since_is_utc_with_overlap(layout):
    with FakeGitHub(make_items(20)) as server:
        client = make_client(server)
        Exporter(client, layout, REPOSITORY).run()
        newest = RawIssueStore(layout.raw_issues_dir).newest_updated_at()
        before = len(list_requests(server))
        Exporter(client, layout, REPOSITORY).run()
        since = list_requests(server)[before].query["since"]
    since = since[0] if isinstance(since, list) else since
    assert since.endswith("Z")
    from datetime import datetime, timedelta

    assert newest - datetime.fromisoformat(since) == timedelta(minutes=5)


def test_unchanged_delta_costs_one_free_request(layout):
    """Right after a full export, a delta with nothing new is one request that returns 304."""
    with FakeGitHub(make_items(120)) as server:
        client = make_client(server)
        Exporter(client, layout, REPOSITORY).run()
        remaining = client.budget.remaining
        before = len(server.requests)
        result = Exporter(client, layout, REPOSITORY).run()
        requests = server.requests[before:]
    assert result.not_modified
    assert [r.status for r in requests] == [304]
    assert client.budget.remaining == remaining


def test_interrupted_export_resumes(layout):
    """A failure mid-export keeps the checkpoint; the next run continues without duplicates."""
    with FakeGitHub(make_items(1_000)) as server:
        client = make_client(server, max_attempts=2)
        server.inject(502, times=2, path_contains="/repositories/")
        with pytest.raises(GitHubError):
            Exporter(client, layout, REPOSITORY, flush_items=300).run("full")
        state = ExportState.load(layout.export_state_path)
        assert state.checkpoint is not None
        assert state.checkpoint.pages == 1
        before = len(list_requests(server))
        result = Exporter(client, layout, REPOSITORY, flush_items=300).run()
        resumed_requests = len(list_requests(server)) - before
    stored = stored_items(layout)
    assert result.resumed
    assert sorted(stored) == list(range(1, 1_001))
    assert resumed_requests == 9 + 1  # pages 2-10, then the next delta's first page
    assert ExportState.load(layout.export_state_path).checkpoint is None


def test_journal_skips_torn_line(tmp_path):
    journal = Journal(tmp_path)
    journal.append([{"id": 1, "number": 1}])
    segment = journal.seal()
    with open(segment, "a") as handle:
        handle.write('[{"id": 2, "numb')
    assert [item["id"] for item in Journal.read(segment)] == [1]


def test_interrupted_journal_is_merged(layout):
    """Items journalled by a killed export reach the store when the next export starts."""
    journal = Journal(layout.raw_dir / "export-journal")
    journal.append(make_items(3, start_number=500))
    journal.seal()
    with FakeGitHub(make_items(5)) as server:
        Exporter(make_client(server), layout, REPOSITORY).run()
    assert set(stored_items(layout)) == {1, 2, 3, 4, 5, 500, 501, 502}
    assert journal.segments() == []


def test_deleted_and_transferred_are_marked(layout):
    with FakeGitHub(make_items(150)) as server:
        client = make_client(server)
        Exporter(client, layout, REPOSITORY).run()
        server.delete_item(10, status=410)
        server.delete_item(11, status=404)
        server.transfer_item(12, "kubernetes/website")
        result = Exporter(client, layout, REPOSITORY).run("full")
    stored = stored_items(layout)
    assert result.removed == {"deleted": 2, "transferred": 1, "still_listed": 0, "unchecked": 0}
    assert stored[10][MARK_KEY]["removed"] == "deleted"
    assert stored[10][MARK_KEY]["status"] == 410
    assert stored[11][MARK_KEY]["status"] == 404
    assert stored[12][MARK_KEY]["removed"] == "transferred"
    assert stored[12]["repository_url"].endswith("/repos/kubernetes/kubernetes")
    assert MARK_KEY not in stored[13]


def test_other_repository_items_skipped():
    assert belongs_to({"repository_url": "https://api.github.com/repos/Kubernetes/Kubernetes"}, REPOSITORY)
    assert not belongs_to({"repository_url": "https://api.github.com/repos/kubernetes/website"}, REPOSITORY)
    assert belongs_to({}, REPOSITORY)


def test_second_export_refused_while_busy(layout):
    with FakeGitHub(make_items(5)) as server, exclusive_writer(layout.raw_lock_path, "test holder"):
        with pytest.raises(ExportBusyError, match="test holder"):
            Exporter(make_client(server), layout, REPOSITORY).run()
    assert not layout.raw_issues_dir.exists()


def test_other_repository_rejected(layout):
    with FakeGitHub(make_items(30)) as server:
        Exporter(make_client(server), layout, REPOSITORY).run()
        with pytest.raises(ValueError, match="holds an export of kubernetes/kubernetes; export kubernetes/website"):
            Exporter(make_client(server), layout, "kubernetes/website").run()


def test_checkpoint_from_other_api_rejected(layout):
    with FakeGitHub(make_items(300)) as server, FakeGitHub(make_items(300)) as other:
        server.inject(502, times=8, path_contains="/repositories/")
        with pytest.raises(GitHubError):
            Exporter(make_client(server, max_attempts=1), layout, REPOSITORY).run()
        with pytest.raises(ValueError, match="unfinished export of kubernetes/kubernetes from http"):
            Exporter(make_client(other), layout, REPOSITORY).run()


def test_progress_logged(layout, caplog):
    caplog.set_level(logging.INFO)
    with FakeGitHub(make_items(200)) as server:
        Exporter(make_client(server), layout, REPOSITORY).run()
    messages = [record.getMessage() for record in caplog.records]
    assert any("full export of kubernetes/kubernetes: 200 items" in m and "requests left" in m for m in messages)
    assert any("100% of 200" in m for m in messages)


def test_removed_items_flagged_in_tables(layout):
    from k8s_analysis.tables.items import build_item_tables

    with FakeGitHub(make_items(120)) as server:
        client = make_client(server)
        Exporter(client, layout, REPOSITORY).run()
        server.delete_item(4)
        Exporter(client, layout, REPOSITORY).run("full")
    tables = build_item_tables(RawIssueStore(layout.raw_issues_dir).iter_items())
    rows = {**tables.issues.set_index("number")["removed"].to_dict(),
            **tables.pull_requests.set_index("number")["removed"].to_dict()}
    assert rows[4] == "deleted"
    assert sum(value == "deleted" for value in rows.values()) == 1
    assert len(rows) == 120
