"""Tests for the GitHub REST client: cursor paging, retries, rate limits and errors.

Every test runs against FakeGitHub on 127.0.0.1. The client's sleep is a recorder, so
waits of a minute or an hour are checked by their requested length without waiting.
"""

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from k8s_analysis.export.client import (
    GitHubAuthError,
    GitHubClient,
    GitHubError,
    GitHubNotFoundError,
    GitHubWaitLimitError,
    RetryPolicy,
)
from k8s_analysis_tests.fake_github import SECONDARY_RATE_LIMIT_MESSAGE, FakeGitHub, make_item_index

TOKEN = "test-token"
REPOSITORY = "kubernetes/kubernetes"
FIRST_PAGE = "/repos/kubernetes/kubernetes/issues?state=all&per_page=100&direction=asc"
LIST_ROUTES = ("GET /repos/{owner}/{name}/issues", "GET /repositories/{id}/issues")
ITEM_ROUTES = ("GET /repos/{owner}/{name}/issues/{number}", "GET /repositories/{id}/issues/{number}")
SECOND_PAGE_PATH = "/repositories/"
SERVER_ERROR_BODY = {"message": "Server Error"}


class SleepRecorder:
    """A stand-in for time.sleep that stores each requested wait and returns at once."""

    def __init__(self, on_sleep=None):
        self.seconds = []
        self.on_sleep = on_sleep

    def __call__(self, seconds):
        self.seconds.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep()


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def messages(self):
        return [record.getMessage() for record in self.records]


@pytest.fixture(scope="module")
def index_250():
    return make_item_index(250)


@pytest.fixture(scope="module")
def index_137():
    return make_item_index(137)


@pytest.fixture
def server(index_137):
    with FakeGitHub(index_137) as running:
        yield running


@pytest.fixture
def wait_log():
    """A logger of its own, which keeps its records in a list."""
    handler = ListHandler()
    log = logging.Logger("test_client", logging.DEBUG)
    log.addHandler(handler)
    return log, handler


def make_client(api_url, wait_log, policy=RetryPolicy(), sleep=None, token=TOKEN):
    sleep = sleep if sleep is not None else SleepRecorder()
    return GitHubClient(api_url, token, policy, sleep=sleep, log=wait_log[0])


def fetch_all(client, url=FIRST_PAGE):
    """Follow next_url from `url` until the last page and return every page."""
    pages = [client.get_page(url)]
    while pages[-1].next_url:
        pages.append(client.get_page(pages[-1].next_url))
    return pages


def items_of(pages):
    return [item for page in pages for item in page.items]


def routes_of(server):
    return [request.route for request in server.requests]


def statuses_of(server):
    return [request.status for request in server.requests]


def wait_logged(handler, seconds):
    return any(f"waiting {seconds:.1f} s" in message for message in handler.messages())


# -- paging ------------------------------------------------------------------


def test_paging_follows_next_links(index_250, wait_log):
    with FakeGitHub(index_250) as server:
        pages = fetch_all(make_client(server.base_url, wait_log))
        expected = [server.item(number) for number in range(1, 251)]

    assert len(pages) == 3
    assert routes_of(server).count(LIST_ROUTES[0]) == 1
    assert routes_of(server).count(LIST_ROUTES[1]) == 2
    assert [route for route in routes_of(server) if route in ITEM_ROUTES] == []
    assert items_of(pages) == expected


def test_paging_builds_no_page_numbers(index_250, wait_log):
    with FakeGitHub(index_250) as server:
        pages = fetch_all(make_client(server.base_url, wait_log))

    later_requests = server.requests[1:]
    assert len(later_requests) == 2
    for page, request in zip(pages, later_requests):
        next_link = urlsplit(page.next_url)
        assert request.path == next_link.path
        assert request.query == parse_qs(next_link.query)
        assert "after" in request.query
        assert "page" not in request.query


def test_paging_list_payload_only(wait_log):
    """Two pages of 100 cost two list requests and the probe, with no per-item GET."""
    with FakeGitHub(make_item_index(200)) as server:
        client = make_client(server.base_url, wait_log)
        client.check_api()
        pages = fetch_all(client)
        expected = [server.item(number) for number in range(1, 201)]

    first_page = pages[0].items
    assert len(server.requests) == 3
    assert len(pages) == 2
    assert [route for route in routes_of(server) if route in ITEM_ROUTES] == []
    assert any("pull_request" in item for item in first_page)
    assert any("pull_request" not in item for item in first_page)
    assert all("closed_by" not in item for item in items_of(pages))
    assert items_of(pages) == expected


# -- server errors (502) ------------------------------------------------------


def test_502_twice_then_success(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, RetryPolicy(backoff_s=1.0), sleep)
    server.inject(502, SERVER_ERROR_BODY, times=2, path_contains=SECOND_PAGE_PATH)
    pages = fetch_all(client)
    ids = [item["id"] for item in items_of(pages)]

    assert statuses_of(server) == [200, 502, 502, 200]
    assert len(sleep.seconds) == 2
    assert 0.5 <= sleep.seconds[0] <= 1.0
    assert 1.0 <= sleep.seconds[1] <= 2.0
    assert len(ids) == 137
    assert len(set(ids)) == 137
    assert [len(page.items) for page in pages] == [100, 37]
    assert all("page" not in request.query for request in server.requests[1:])


def test_502_exhausts_attempts(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, RetryPolicy(max_attempts=3), sleep)
    first = client.get_page(FIRST_PAGE)
    server.inject(502, SERVER_ERROR_BODY, times=3, path_contains=SECOND_PAGE_PATH)

    with pytest.raises(GitHubError) as raised:
        client.get_page(first.next_url)

    message = str(raised.value)
    assert server.count(SECOND_PAGE_PATH, status=502) == 3
    assert server.count(SECOND_PAGE_PATH) == 3
    # Two waits between three attempts: no wait after the last one.
    assert len(sleep.seconds) == 2
    assert "failed 3 times" in message
    assert "502 from GitHub" in message
    assert raised.value.status == 502
    assert "export stopped" in message
    assert "can be resumed" in message


# -- rate limits (403 and 429) --------------------------------------------------


def test_secondary_403_waits_exponentially(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)
    server.inject(403, {"message": SECONDARY_RATE_LIMIT_MESSAGE}, times=2)
    page = client.get_page(FIRST_PAGE)

    assert statuses_of(server) == [403, 403, 200]
    assert len(page.items) == 100
    assert sleep.seconds == [60.0, 120.0]
    assert sleep.seconds[0] >= RetryPolicy().secondary_wait_s
    assert sleep.seconds[1] > sleep.seconds[0]


def test_secondary_403_wait_logged(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)
    server.inject(403, {"message": SECONDARY_RATE_LIMIT_MESSAGE})
    client.get_page(FIRST_PAGE)

    messages = wait_log[1].messages()
    assert len(messages) == 1
    assert "waiting 60.0 s" in messages[0]
    assert "403 You have exceeded a secondary rate limit" in messages[0]
    assert "/repos/kubernetes/kubernetes/issues" in messages[0]
    assert wait_log[1].records[0].levelno == logging.WARNING


def test_429_honours_retry_after(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)
    body = {"message": "You have exceeded a secondary rate limit."}
    server.inject(429, body, headers={"Retry-After": "30"})
    page = client.get_page(FIRST_PAGE)

    assert statuses_of(server) == [429, 200]
    assert len(page.items) == 100
    assert sleep.seconds == [30.0]
    assert wait_logged(wait_log[1], 30.0)
    assert "429" in wait_log[1].messages()[0]


def test_primary_403_waits_until_reset(server, wait_log):
    sleep = SleepRecorder(on_sleep=server.reset_rate_limit)
    client = make_client(server.base_url, wait_log, sleep=sleep)
    server.exhaust_rate_limit(120)
    page = client.get_page(FIRST_PAGE)

    assert statuses_of(server) == [403, 200]
    assert len(page.items) == 100
    assert len(sleep.seconds) == 1
    # The reset header contains whole seconds, and the client adds 1 to 5 s of jitter.
    assert 118.0 <= sleep.seconds[0] <= 125.5
    assert wait_logged(wait_log[1], sleep.seconds[0])
    assert "API rate limit exceeded" in wait_log[1].messages()[0]


def test_429_exhausted_waits_until_reset(server, wait_log):
    """A 429 with X-RateLimit-Remaining 0 waits for X-RateLimit-Reset, not the 60 s default."""
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 300)}
    server.inject(429, {"message": "API rate limit exceeded for user ID 1."}, headers=headers)
    client.get_page(FIRST_PAGE)

    assert statuses_of(server) == [429, 200]
    assert len(sleep.seconds) == 1
    assert 298.0 <= sleep.seconds[0] <= 305.5


def test_permission_403_not_retried(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)
    body = {"message": "Resource not accessible by integration"}
    server.inject(403, body, headers={"X-RateLimit-Remaining": "4000"})

    with pytest.raises(GitHubAuthError) as raised:
        client.get_page(FIRST_PAGE)

    assert raised.value.status == 403
    assert "permission" in str(raised.value)
    assert "Resource not accessible by integration" in str(raised.value)
    assert len(server.requests) == 1
    assert sleep.seconds == []
    assert wait_log[1].records == []


def test_429_without_headers_waits(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)
    server.inject(429, {"message": "Too Many Requests"})
    page = client.get_page(FIRST_PAGE)

    assert statuses_of(server) == [429, 200]
    assert len(page.items) == 100
    assert len(sleep.seconds) == 1
    assert sleep.seconds[0] >= 60.0
    assert wait_logged(wait_log[1], sleep.seconds[0])
    assert "429 Too Many Requests" in wait_log[1].messages()[0]


def test_wait_over_max_sleep(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, RetryPolicy(max_sleep_s=10), sleep)
    server.inject(429, {"message": "Too Many Requests"}, headers={"Retry-After": "30"})

    with pytest.raises(GitHubWaitLimitError) as raised:
        client.get_page(FIRST_PAGE)

    message = str(raised.value)
    assert sleep.seconds == []
    assert len(server.requests) == 1
    assert "30 s wait" in message
    assert "limit of 10 s" in message
    assert "can be resumed" in message


def test_wait_over_total_limit(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, RetryPolicy(max_total_wait_s=100), sleep)
    server.inject(403, {"message": SECONDARY_RATE_LIMIT_MESSAGE}, times=2)

    with pytest.raises(GitHubWaitLimitError) as raised:
        client.get_page(FIRST_PAGE)

    message = str(raised.value)
    assert sleep.seconds == [60.0]
    assert client.waited_s == 60.0
    assert len(server.requests) == 2
    assert "120 s more" in message
    assert "total wait limit of 100 s" in message


def test_reserve_sleeps_until_reset(index_137, wait_log):
    with FakeGitHub(index_137, rate_limit=10, reset_after_s=600) as server:
        sleep = SleepRecorder(on_sleep=server.reset_rate_limit)
        client = make_client(server.base_url, wait_log, RetryPolicy(rate_limit_reserve=8), sleep)
        first = client.get_page(FIRST_PAGE)
        remaining_after_first = client.budget.remaining
        second = client.get_page(first.next_url)

    assert remaining_after_first == 9
    assert len(sleep.seconds) == 1
    # The wait runs to the reset (600 s, whole seconds) plus 1 s.
    assert 599.0 <= sleep.seconds[0] <= 601.5
    assert len(second.items) == 37
    assert statuses_of(server) == [200, 200]
    message = wait_log[1].messages()[0]
    assert f"waiting {sleep.seconds[0]:.1f} s" in message
    assert "8 requests left" in message
    assert "reserve of 8" in message


# -- conditional requests -------------------------------------------------------


def test_304_not_charged(server, wait_log):
    client = make_client(server.base_url, wait_log)
    first = client.get_page(FIRST_PAGE)
    remaining_after_first = client.budget.remaining
    again = client.get_page(FIRST_PAGE, first.etag)
    rate = client.check_api()["rate"]

    assert first.etag is not None
    assert statuses_of(server) == [200, 304, 200]
    assert again.not_modified
    assert again.items == []
    assert again.etag == first.etag
    assert client.budget.remaining == remaining_after_first
    assert rate["remaining"] == remaining_after_first
    assert rate["used"] == 1


# -- authentication and missing repositories ------------------------------------


def test_401_wrong_token(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep, token="wrong-token-5d0e")

    with pytest.raises(GitHubAuthError) as raised:
        client.get_page(FIRST_PAGE)

    assert raised.value.status == 401
    assert "GITHUB_TOKEN is missing or invalid" in str(raised.value)
    assert statuses_of(server) == [401]
    assert sleep.seconds == []


def test_token_never_in_messages(index_137, wait_log, caplog):
    """Neither a rejected nor an accepted token shows up in errors or log records."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="github")
    secret = "secret-token-8c41f2"
    wrong = "wrong-token-3b9a77"
    with FakeGitHub(index_137, token=secret) as server:
        server.inject(502, SERVER_ERROR_BODY)
        make_client(server.base_url, wait_log, token=secret).get_page(FIRST_PAGE)
        with pytest.raises(GitHubAuthError) as raised:
            make_client(server.base_url, wait_log, token=wrong).get_page(FIRST_PAGE)

    texts = [str(raised.value), *map(str, raised.value.args)]
    texts += [record.getMessage() for record in caplog.records]
    texts += wait_log[1].messages()
    github_records = [record for record in caplog.records if record.name.startswith("github")]
    assert statuses_of(server) == [502, 200, 401]
    assert github_records != []
    assert wait_log[1].records != []
    assert [text for text in texts if secret in text] == []
    assert [text for text in texts if wrong in text] == []


def test_404_unknown_repository(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)

    with pytest.raises(GitHubNotFoundError) as raised:
        client.get_page("/repos/kubernetes/no-such-repository/issues?state=all")

    message = str(raised.value)
    assert raised.value.status == 404
    assert "does not exist" in message
    assert "token cannot see it" in message
    assert statuses_of(server) == [404]
    assert sleep.seconds == []


# -- dropped connections ----------------------------------------------------------


def test_dropped_connection_retried(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, RetryPolicy(backoff_s=2.0), sleep)
    server.inject(0, times=2)
    page = client.get_page(FIRST_PAGE)

    assert statuses_of(server) == [0, 0, 200]
    assert len(page.items) == 100
    assert len(sleep.seconds) == 2
    assert 1.0 <= sleep.seconds[0] <= 2.0
    assert 2.0 <= sleep.seconds[1] <= 4.0
    assert all("connection error" in message for message in wait_log[1].messages())
    assert len(wait_log[1].messages()) == 2


def test_dropped_connection_exhausts_attempts(server, wait_log):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, RetryPolicy(max_attempts=2), sleep)
    server.inject(0, times=2)

    with pytest.raises(GitHubError) as raised:
        client.get_page(FIRST_PAGE)

    message = str(raised.value)
    assert statuses_of(server) == [0, 0]
    assert len(sleep.seconds) == 1
    assert raised.value.status is None
    assert "connection error" in message
    assert "can be resumed" in message


# -- GitHub Enterprise base URL ------------------------------------------------------


@pytest.fixture
def enterprise(index_137):
    with FakeGitHub(index_137, api_prefix="/api/v3") as running:
        yield running


def test_enterprise_without_prefix_rejected(enterprise, wait_log):
    host_url = enterprise.base_url.removesuffix("/api/v3")
    client = make_client(host_url, wait_log)

    with pytest.raises(GitHubError) as raised:
        client.check_api()

    message = str(raised.value)
    assert host_url in message
    assert "302" in message
    assert "text/html" in message
    assert statuses_of(enterprise) == [302]
    assert enterprise.count("/issues") == 0


def test_enterprise_redirect_not_data(enterprise, wait_log):
    host_url = enterprise.base_url.removesuffix("/api/v3")
    client = make_client(host_url, wait_log)

    with pytest.raises(GitHubError) as raised:
        client.get_page(FIRST_PAGE)

    assert raised.value.status == 302
    assert "check the API URL" in str(raised.value)
    assert statuses_of(enterprise) == [302]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_enterprise_with_prefix_accepted(enterprise, wait_log, suffix):
    client = make_client(enterprise.base_url + suffix, wait_log)
    rate = client.check_api()["rate"]

    assert client.api_url == enterprise.base_url
    assert rate["limit"] == 5000
    assert statuses_of(enterprise) == [200]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_enterprise_paging_paths(enterprise, wait_log, suffix):
    client = make_client(enterprise.base_url + suffix, wait_log)
    client.check_api()
    pages = fetch_all(client)
    paths = [request.path for request in enterprise.requests]
    second_request = enterprise.requests[2]
    next_link = urlsplit(pages[0].next_url)

    assert len(items_of(pages)) == 137
    assert statuses_of(enterprise) == [200, 200, 200]
    assert all(path.startswith("/api/v3/") for path in paths)
    assert [path for path in paths if "/api/v3/api/v3" in path] == []
    assert [path for path in paths if "//" in path] == []
    assert second_request.path == next_link.path
    assert second_request.query == parse_qs(next_link.query)


# -- single items ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_get_item_deleted(server, wait_log, status):
    sleep = SleepRecorder()
    client = make_client(server.base_url, wait_log, sleep=sleep)
    server.delete_item(5, status)

    assert client.get_item("/repos/kubernetes/kubernetes/issues/5") == (status, None)
    assert statuses_of(server) == [status]
    assert sleep.seconds == []


def test_get_item_follows_transfer(server, wait_log):
    client = make_client(server.base_url, wait_log)
    server.transfer_item(7, "kubernetes/website")
    status, item = client.get_item("/repos/kubernetes/kubernetes/issues/7")

    assert status == 200
    assert item["number"] == 7
    assert item["repository_url"] == f"{server.base_url}/repos/kubernetes/website"
    assert item == server.item(7)
    assert statuses_of(server) == [301, 200]
    assert server.requests[1].path == "/repos/kubernetes/website/issues/7"
