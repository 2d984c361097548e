"""Tests for the fake GitHub server: generated items, routes, pagination, limits and faults."""

import json
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import github
import psutil
import pytest
import requests

from k8s_analysis_tests.fake_github import (
    PAGE_LIMIT_MESSAGE,
    SECONDARY_RATE_LIMIT_MESSAGE,
    FakeGitHub,
    make_item_bytes,
    make_item_index,
    make_items,
)
from k8s_analysis_tests.shared_data import shared_path

TOKEN = "test-token"
AUTH = {"Authorization": f"token {TOKEN}"}
REPOSITORY = "kubernetes/kubernetes"
REPOSITORY_ID = 20580498
ITEM_COUNT = 250
ISSUES = "/repos/kubernetes/kubernetes/issues"
REAL_PRS_ARCHIVE = ("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")


@pytest.fixture(scope="module")
def item_index():
    return make_item_index(ITEM_COUNT)


@pytest.fixture
def server(item_index):
    with FakeGitHub(item_index) as running:
        yield running


def get(server, path, headers=AUTH, **params):
    url = server.base_url + path
    params = params or None
    return requests.get(url, params=params, headers=headers, allow_redirects=False, timeout=10)


def walk(server, path, **params):
    """Return the first page's response and those of every rel="next" link after it."""
    responses = [get(server, path, **params)]
    while "next" in responses[-1].links:
        next_url = responses[-1].links["next"]["url"]
        responses.append(requests.get(next_url, headers=AUTH, timeout=10))
    return responses


def numbers_of(responses):
    return [item["number"] for response in responses for item in response.json()]


def expected_numbers(item_index, state="all", sort="created", direction="desc", since=None):
    metas = [meta for meta in item_index if state == "all" or meta.state == state]
    if since:
        metas = [meta for meta in metas if meta.updated_at >= since]
    sort_field = {"created": "created_at", "updated": "updated_at", "comments": "comments"}[sort]
    metas.sort(key=lambda meta: (getattr(meta, sort_field), meta.id), reverse=direction == "desc")
    return [meta.number for meta in metas]


def bump_updated_at(server, number, updated_at):
    item = server.item(number)
    item["updated_at"] = updated_at
    server.upsert_item(item)


# ---------------------------------------------------------------------------
# make_items


@pytest.fixture(scope="module")
def all_sources_items():
    """One generated item for each of the 1,132 real source objects."""
    return make_items(1132)


@pytest.fixture(scope="module")
def source_objects():
    with tarfile.open(shared_path(*REAL_PRS_ARCHIVE), mode="r:xz") as tar:
        pull_requests = json.load(tar.extractfile("api.json"))
    replay_path = shared_path("data", "pygithub-replaydata", "issues_from_replaydata.json")
    return pull_requests + json.loads(replay_path.read_text(encoding="utf-8"))


def test_make_items_numbers_and_ids():
    items = make_items(40, start_number=7)

    assert [item["number"] for item in items] == list(range(7, 47))
    assert len({item["id"] for item in items}) == 40


def test_make_items_times_ordered(all_sources_items):
    created = [item["created_at"] for item in all_sources_items]

    assert all(earlier < later for earlier, later in zip(created, created[1:]))
    assert all(item["updated_at"] >= item["created_at"] for item in all_sources_items)


def test_make_items_repository_rewritten(all_sources_items):
    items = make_items(1132, repository="example/project")

    api_root = "https://api.github.com/repos/example/project"

    assert {item["repository_url"] for item in items} == {api_root}
    assert all(item["url"] == f"{api_root}/issues/{item['number']}" for item in items)
    assert all(item["html_url"].startswith("https://github.com/example/project/") for item in items)
    assert all(item["html_url"].endswith(f"/{item['number']}") for item in items)


def test_make_items_no_closed_by(all_sources_items, source_objects):
    assert sum("closed_by" in source for source in source_objects) > 0
    assert sum("closed_by" in item for item in all_sources_items) == 0


def test_make_items_uses_both_sources(all_sources_items, source_objects):
    plain_sources = sum("pull_request" not in source for source in source_objects)
    plain_items = sum("pull_request" not in item for item in all_sources_items)

    assert plain_sources == 64
    assert plain_items == plain_sources
    source_titles = {source["title"] for source in source_objects}
    assert {item["title"] for item in all_sources_items} == source_titles


def test_make_items_start_number_continues():
    assert make_items(3, start_number=11) == make_items(13)[10:]


def test_make_items_seed_changes_order():
    titles = [item["title"] for item in make_items(20)]
    other_titles = [item["title"] for item in make_items(20, seed=1)]

    assert titles != other_titles


def test_make_item_bytes_match_items():
    pairs = make_item_bytes(5)

    assert [json.loads(data) for _, data in pairs] == make_items(5)
    assert [meta.number for meta, _ in pairs] == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------
# Authentication, /rate_limit, /user and the repository


def test_wrong_token_is_401(server):
    response = get(server, "/user", headers={"Authorization": "token wrong"})

    assert response.status_code == 401
    assert response.json()["message"] == "Bad credentials"
    assert response.json()["documentation_url"].startswith("https://docs.github.com/")


def test_bearer_token_accepted(server):
    response = get(server, "/user", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200


def test_anonymous_budget_is_60(server):
    anonymous = get(server, "/repos/kubernetes/kubernetes", headers={})
    authenticated = get(server, "/rate_limit")

    assert anonymous.status_code == 200
    assert anonymous.headers["X-RateLimit-Limit"] == "60"
    assert anonymous.headers["X-RateLimit-Remaining"] == "59"
    assert authenticated.json()["resources"]["core"]["remaining"] == 5000


def test_rate_limit_route_not_counted(server):
    get(server, "/rate_limit")
    body = get(server, "/rate_limit").json()

    core = body["resources"]["core"]
    assert core["limit"] == 5000
    assert core["remaining"] == 5000
    assert core["used"] == 0
    assert core["reset"] >= int(time.time())
    assert body["rate"] == core


def test_user_route_returns_bot(server):
    response = get(server, "/user")

    assert response.json() == {"login": "k8s-analysis-bot", "id": 1, "type": "Bot"}


def test_repository_object(server):
    body = get(server, "/repos/kubernetes/kubernetes").json()

    assert body["id"] == REPOSITORY_ID
    assert body["full_name"] == REPOSITORY
    assert body["name"] == "kubernetes"
    assert body["owner"]["login"] == "kubernetes"
    assert body["url"] == f"{server.base_url}/repos/{REPOSITORY}"


def test_unknown_repository_404(server):
    response = get(server, "/repos/kubernetes/no-such-repo")

    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"


# ---------------------------------------------------------------------------
# Issue lists


def test_list_defaults_open_30_desc(server, item_index):
    response = get(server, ISSUES)
    expected = expected_numbers(item_index, state="open")[:30]

    assert [item["number"] for item in response.json()] == expected
    assert {item["state"] for item in response.json()} == {"open"}


def test_list_closed_state(server, item_index):
    responses = walk(server, ISSUES, state="closed", per_page=100)

    assert numbers_of(responses) == expected_numbers(item_index, state="closed")


def test_list_per_page_capped_at_100(server):
    response = get(server, ISSUES, state="all", per_page=500)

    assert len(response.json()) == 100


@pytest.mark.parametrize(
    ("sort", "direction"),
    [("updated", "asc"), ("updated", "desc"), ("comments", "desc"), ("created", "asc")],
)
def test_list_sort_orders(server, item_index, sort, direction):
    responses = walk(server, ISSUES, state="all", sort=sort, direction=direction, per_page=100)

    assert numbers_of(responses) == expected_numbers(item_index, sort=sort, direction=direction)


@pytest.mark.parametrize("sort", ["created", "updated"])
def test_list_since_filters(server, item_index, sort):
    since = sorted(meta.updated_at for meta in item_index)[ITEM_COUNT // 2]
    responses = walk(server, ISSUES, state="all", since=since, sort=sort, per_page=40)

    assert numbers_of(responses) == expected_numbers(item_index, sort=sort, since=since)
    assert len(numbers_of(responses)) >= ITEM_COUNT // 2


def test_list_since_accepts_offset(server, item_index):
    since = sorted(meta.updated_at for meta in item_index)[ITEM_COUNT // 2]
    with_offset = since.replace("Z", "+00:00")
    responses = walk(server, ISSUES, state="all", since=with_offset, per_page=100)

    assert numbers_of(responses) == expected_numbers(item_index, since=since)


def test_list_page_two(server, item_index):
    response = get(server, ISSUES, state="all", per_page=10, page=2)

    assert [item["number"] for item in response.json()] == expected_numbers(item_index)[10:20]


def test_page_over_100_is_422(server):
    response = get(server, ISSUES, state="all", per_page=1, page=101)

    assert response.status_code == 422
    assert response.json()["message"] == PAGE_LIMIT_MESSAGE


def test_invalid_state_is_422(server):
    response = get(server, ISSUES, state="merged")

    assert response.status_code == 422


def test_invalid_cursor_is_422(server):
    response = get(server, ISSUES, state="all", after="not-a-cursor")

    assert response.status_code == 422


def test_cursor_walk_covers_all(server, item_index):
    responses = walk(server, ISSUES, state="all", per_page=100)

    assert [len(response.json()) for response in responses] == [100, 100, 50]
    assert numbers_of(responses) == expected_numbers(item_index)


def test_next_link_format(server):
    response = get(server, ISSUES, state="all", per_page=100, sort="created")
    next_url = response.links["next"]["url"]
    next_query = parse_qs(urlsplit(next_url).query)

    assert next_url.startswith(f"{server.base_url}/repositories/{REPOSITORY_ID}/issues?")
    assert next_query["state"] == ["all"]
    assert next_query["per_page"] == ["100"]
    assert next_query["sort"] == ["created"]
    assert len(next_query["after"]) == 1
    assert "last" not in response.links
    assert response.headers["Link"].endswith('; rel="next"')


def test_next_link_drops_page(server):
    response = get(server, ISSUES, state="all", per_page=10, page=3)
    next_query = parse_qs(urlsplit(response.links["next"]["url"]).query)

    assert "page" not in next_query


def test_last_page_has_no_link(server):
    responses = walk(server, ISSUES, state="all", per_page=100)

    assert "Link" not in responses[-1].headers


def test_repository_id_route(server):
    by_name = get(server, ISSUES, state="all")
    by_id = get(server, f"/repositories/{REPOSITORY_ID}/issues", state="all")

    assert by_id.status_code == 200
    assert by_id.content == by_name.content


def test_page_body_is_stored_bytes(server):
    response = get(server, ISSUES, state="all", per_page=5)
    numbers = [item["number"] for item in response.json()]

    stored = [server.item_bytes(number) for number in numbers]

    assert response.content == b"[" + b",".join(stored) + b"]"
    assert server.item(numbers[0])["url"] == f"{server.base_url}{ISSUES}/{numbers[0]}"


def test_transferred_item_leaves_list(server):
    server.transfer_item(17, "kubernetes/website")
    old_list = numbers_of(walk(server, ISSUES, state="all", per_page=100))
    new_list = numbers_of(walk(server, "/repos/kubernetes/website/issues", state="all"))

    assert 17 not in old_list
    assert len(old_list) == ITEM_COUNT - 1
    assert new_list == [17]


def test_deleted_item_leaves_list(server):
    server.delete_item(21)
    numbers = numbers_of(walk(server, ISSUES, state="all", per_page=100))

    assert 21 not in numbers
    assert len(numbers) == ITEM_COUNT - 1


# ---------------------------------------------------------------------------
# Cursor stability under edits


def test_cursor_stable_after_edit_created(server, item_index):
    expected = expected_numbers(item_index)
    first = get(server, ISSUES, state="all", per_page=10)
    bump_updated_at(server, expected[3], "2030-01-01T00:00:00Z")
    bump_updated_at(server, expected[15], "2030-01-01T00:00:01Z")
    server.delete_item(expected[5])
    second = requests.get(first.links["next"]["url"], headers=AUTH, timeout=10)

    assert [item["number"] for item in first.json()] == expected[:10]
    assert [item["number"] for item in second.json()] == expected[10:20]


def test_cursor_stable_after_edit_updated(server, item_index):
    expected = expected_numbers(item_index, sort="updated", direction="asc")
    params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 10}
    first = get(server, ISSUES, **params)
    bump_updated_at(server, expected[2], "2030-01-01T00:00:00Z")
    rest = [requests.get(first.links["next"]["url"], headers=AUTH, timeout=10)]
    while "next" in rest[-1].links:
        rest.append(requests.get(rest[-1].links["next"]["url"], headers=AUTH, timeout=10))
    later_numbers = numbers_of(rest)

    assert [item["number"] for item in first.json()] == expected[:10]
    assert later_numbers[:10] == expected[10:20]
    assert later_numbers == expected[10:] + [expected[2]]


# ---------------------------------------------------------------------------
# Single issues


def test_single_issue_returns_item(server):
    response = get(server, f"{ISSUES}/42")

    assert response.status_code == 200
    assert response.content == server.item_bytes(42)
    assert response.json()["number"] == 42
    assert server.count("/issues/42", status=200) == 1
    assert response.headers["X-RateLimit-Remaining"] == "4999"


@pytest.mark.parametrize("status", [404, 410])
def test_deleted_item_status(server, status):
    server.delete_item(42, status=status)
    response = get(server, f"{ISSUES}/42")

    assert response.status_code == status


def test_unknown_issue_404(server):
    response = get(server, f"{ISSUES}/{ITEM_COUNT + 1}")

    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"


def test_transferred_issue_301(server):
    server.transfer_item(42, "kubernetes/website")
    moved = get(server, f"{ISSUES}/42")
    location = moved.headers["Location"]
    followed = requests.get(location, headers=AUTH, timeout=10)

    assert moved.status_code == 301
    assert location == f"{server.base_url}/repos/kubernetes/website/issues/42"
    assert followed.status_code == 200
    assert followed.json()["repository_url"] == f"{server.base_url}/repos/kubernetes/website"
    assert followed.json()["url"] == f"{server.base_url}/repos/kubernetes/website/issues/42"


def test_upserted_item_is_served(server):
    item = server.item(5)
    item["title"] = "A new title"
    item["updated_at"] = "2030-01-01T00:00:00Z"
    item["closed_by"] = {"login": "someone"}
    server.upsert_item(item)
    served = get(server, f"{ISSUES}/5").json()

    assert served["title"] == "A new title"
    assert served["updated_at"] == "2030-01-01T00:00:00Z"
    assert "closed_by" not in served


# ---------------------------------------------------------------------------
# ETags and the rate limit


def test_etag_304_not_counted(server):
    first = get(server, f"{ISSUES}/7")
    etag = first.headers["ETag"]
    second = get(server, f"{ISSUES}/7", headers={**AUTH, "If-None-Match": etag})

    assert etag.startswith('W/"')
    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["ETag"] == etag
    assert second.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"]


def test_etag_changes_after_edit(server):
    first = get(server, f"{ISSUES}/7")
    bump_updated_at(server, 7, "2030-01-01T00:00:00Z")
    second = get(server, f"{ISSUES}/7", headers={**AUTH, "If-None-Match": first.headers["ETag"]})

    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]


def test_rate_headers_count_down(server):
    first = get(server, "/user")
    second = get(server, ISSUES)

    assert first.headers["X-RateLimit-Remaining"] == "4999"
    assert second.headers["X-RateLimit-Remaining"] == "4998"
    assert second.headers["X-RateLimit-Used"] == "2"
    assert second.headers["X-RateLimit-Limit"] == "5000"
    assert second.headers["X-RateLimit-Resource"] == "core"
    assert int(second.headers["X-RateLimit-Reset"]) > time.time() + 3000


def test_exhausted_budget_403(server):
    server.exhaust_rate_limit(reset_in_s=60)
    response = get(server, ISSUES)

    assert response.status_code == 403
    assert response.json()["message"].startswith("API rate limit exceeded for user ID 1.")
    assert "documentation_url" in response.json()
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert abs(int(response.headers["X-RateLimit-Reset"]) - (time.time() + 60)) <= 2


def test_budget_refills_after_reset(server):
    server.exhaust_rate_limit(reset_in_s=0.3)
    blocked = get(server, "/user")
    time.sleep(0.4)
    allowed = get(server, "/user")

    assert blocked.status_code == 403
    assert allowed.status_code == 200
    assert allowed.headers["X-RateLimit-Remaining"] == "4999"


def test_window_renews_each_reset(item_index):
    with FakeGitHub(item_index, rate_limit=2, reset_after_s=0.5) as small:
        statuses = [get(small, "/user").status_code for _ in range(3)]
        time.sleep(0.6)
        renewed = get(small, "/user")

    assert statuses == [200, 200, 403]
    assert renewed.status_code == 200
    assert renewed.headers["X-RateLimit-Remaining"] == "1"


def test_reset_rate_limit_refills(server):
    server.exhaust_rate_limit(reset_in_s=600)
    server.reset_rate_limit()
    response = get(server, "/user")

    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "4999"


# ---------------------------------------------------------------------------
# Fault injection


FAULTS = [
    (502, None, None),
    (403, {"message": SECONDARY_RATE_LIMIT_MESSAGE}, None),
    (429, None, {"Retry-After": "1"}),
    (429, None, None),
    (403, {"message": "Resource not accessible by integration"}, {"X-RateLimit-Remaining": "4000"}),
    (500, None, None),
]


@pytest.mark.parametrize(("status", "body", "headers"), FAULTS)
def test_injected_fault_then_normal(server, status, body, headers):
    server.inject(status, body, headers)
    faulty = get(server, ISSUES)
    normal = get(server, ISSUES)

    assert faulty.status_code == status
    assert normal.status_code == 200
    if body is not None:
        assert faulty.json()["message"] == body["message"]
    for name, value in (headers or {}).items():
        assert faulty.headers[name] == value
    if headers is None:
        assert "Retry-After" not in faulty.headers


def test_inject_zero_drops_connection(server):
    server.inject(0)

    with pytest.raises(requests.exceptions.ConnectionError):
        get(server, ISSUES)
    assert get(server, ISSUES).status_code == 200
    assert server.count("/issues", status=0) == 1


def test_fault_matches_path_only(server):
    server.inject(500, path_contains="/issues/9")
    other = get(server, f"{ISSUES}/8")
    matching = get(server, f"{ISSUES}/9")

    assert other.status_code == 200
    assert matching.status_code == 500


def test_fault_repeats_times(server):
    server.inject(502, times=2)
    statuses = [get(server, ISSUES).status_code for _ in range(3)]

    assert statuses == [502, 502, 200]


# ---------------------------------------------------------------------------
# Latency, API prefix, shutdown and counters


def test_latency_overlaps(item_index):
    durations = []

    def timed_request(server):
        started = time.monotonic()
        get(server, "/user")
        durations.append(time.monotonic() - started)

    with FakeGitHub(item_index, latency_s=0.3) as slow:
        started = time.monotonic()
        threads = [threading.Thread(target=timed_request, args=(slow,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = time.monotonic() - started

    assert min(durations) >= 0.3
    assert total < 0.9


def test_prefix_routes_work(item_index):
    with FakeGitHub(item_index, api_prefix="/api/v3") as enterprise:
        response = get(enterprise, ISSUES, state="all")

        assert enterprise.base_url.endswith("/api/v3")
        assert response.status_code == 200
        assert response.links["next"]["url"].startswith(f"{enterprise.base_url}/repositories/")


def test_unprefixed_path_redirects_login(item_index):
    with FakeGitHub(item_index, api_prefix="/api/v3") as enterprise:
        origin = enterprise.base_url.removesuffix("/api/v3")
        url = f"{origin}/repos/kubernetes/kubernetes"
        response = requests.get(url, headers=AUTH, allow_redirects=False, timeout=10)

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert response.headers["Content-Type"].startswith("text/html")


def test_stop_leaves_no_threads(item_index):
    threads_before = threading.active_count()
    with FakeGitHub(item_index, latency_s=0.05) as running, requests.Session() as session:
        port = urlsplit(running.base_url).port
        session.get(f"{running.base_url}/user", headers=AUTH, timeout=10)
        threads_while_open = threading.active_count()

    assert threads_while_open > threads_before
    assert threading.active_count() == threads_before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_stats_route_counts(server):
    get(server, ISSUES)
    get(server, ISSUES)
    get(server, "/repos/kubernetes/nothing")
    requests.get(f"{server.base_url}/_fake/stats", timeout=10)
    stats = requests.get(f"{server.base_url}/_fake/stats", timeout=10).json()

    assert stats["requests"] == 3
    assert stats["by_route"] == {
        "GET /repos/{owner}/{name}/issues": 2,
        "GET /repos/{owner}/{name}": 1,
    }
    assert stats["status_counts"] == {"200": 2, "404": 1}
    assert get(server, "/rate_limit").json()["rate"]["used"] == 3


def test_recorded_request_fields(server):
    get(server, ISSUES, headers={**AUTH, "If-None-Match": 'W/"x"'}, state="all")
    recorded = server.requests[-1]

    assert recorded.method == "GET"
    assert recorded.path == ISSUES
    assert recorded.query == {"state": ["all"]}
    assert recorded.headers["if-none-match"] == 'W/"x"'
    assert recorded.headers["If-None-Match"] == 'W/"x"'
    assert recorded.status == 200


# ---------------------------------------------------------------------------
# PyGithub against the server


def test_pygithub_iterates_in_three_lists(server):
    client = github.Github(
        base_url=server.base_url,
        auth=github.Auth.Token(TOKEN),
        per_page=100,
        seconds_between_requests=0,
        retry=None,
    )
    issues = client.get_repo(REPOSITORY).get_issues(state="all")
    numbers = sorted(issue.number for issue in issues)
    client.close()
    list_requests = [request for request in server.requests if request.path.endswith("/issues")]

    assert numbers == list(range(1, ITEM_COUNT + 1))
    assert len(list_requests) == 3


def test_requester_follows_absolute_next(item_index):
    with FakeGitHub(item_index, api_prefix="/api/v3") as enterprise:
        client = github.Github(
            base_url=enterprise.base_url,
            auth=github.Auth.Token(TOKEN),
            seconds_between_requests=0,
            retry=None,
        )
        status, headers, _ = client.requester.requestJson(
            "GET", f"/repos/{REPOSITORY}/issues", parameters={"state": "all", "per_page": 100}
        )
        next_url = requests.utils.parse_header_links(headers["link"])[0]["url"]
        next_status, _, next_body = client.requester.requestJson("GET", next_url)
        client.close()

    assert status == 200
    assert next_url.startswith("http://127.0.0.1:")
    assert next_status == 200
    next_numbers = [item["number"] for item in json.loads(next_body)]
    assert next_numbers == expected_numbers(item_index)[100:200]


# ---------------------------------------------------------------------------
# Scale and the command line


def test_135k_items_start_fast(capsys):
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.monotonic()
    items = make_item_index(135_000)
    with FakeGitHub(items) as large:
        elapsed = time.monotonic() - started
        first = get(large, ISSUES, state="all", per_page=100)
        second = requests.get(first.links["next"]["url"], headers=AUTH, timeout=30)
        rss_delta_mb = (process.memory_info().rss - rss_before) / 2**20
    with capsys.disabled():
        print(f"\n135,000 items: built and started in {elapsed:.1f} s, RSS +{rss_delta_mb:.0f} MB")

    assert elapsed < 15
    assert [item["number"] for item in first.json()] == list(range(135_000, 134_900, -1))
    assert [item["number"] for item in second.json()] == list(range(134_900, 134_800, -1))


def test_cli_serves_until_sigterm():
    command = [sys.executable, "-m", "k8s_analysis_tests.fake_github", "--items", "50"]
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        ready_line = process.stdout.readline().strip()
        base_url = ready_line.removeprefix("READY ")
        params = {"state": "all", "per_page": 100}
        response = requests.get(f"{base_url}{ISSUES}", params=params, headers=AUTH, timeout=10)
        stats = requests.get(f"{base_url}/_fake/stats", timeout=10).json()
    finally:
        process.send_signal(signal.SIGTERM)
        return_code = process.wait(timeout=10)

    assert ready_line.startswith("READY http://127.0.0.1:")
    assert len(response.json()) == 50
    assert stats["requests"] == 1
    assert return_code == 0
