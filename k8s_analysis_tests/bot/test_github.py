"""The bot's GitHub calls against the fake GitHub server: retries, the write limiter and the comment lookup."""

import time

import pytest

from k8s_analysis.bot.comment import MARKER
from k8s_analysis.bot.github import BotRetry, GitHubCallError, GitHubWriter, WriteLimiter
from k8s_analysis_tests.bot.running import REPOSITORY, TOKEN, real_pull_requests
from k8s_analysis_tests.fake_github import BOT_USER, FakeGitHub

FAST = BotRetry(attempts=4, backoff_s=0.01, max_backoff_s=0.05, secondary_wait_s=0.05, max_wait_s=5.0)


@pytest.fixture()
def fake():
    items = [item for item in real_pull_requests()][:3]
    with FakeGitHub(items, token=TOKEN) as server:
        yield server


@pytest.fixture()
def number(fake):
    return real_pull_requests()[0]["number"]


def writer(fake, **options) -> GitHubWriter:
    return GitHubWriter(fake.base_url, TOKEN, retry=options.pop("retry", FAST), **options)


def test_login_from_get_user(fake):
    assert writer(fake).login() == BOT_USER["login"]


def test_create_retried_after_502(fake, number):
    fake.inject(502, path_contains="/comments", method="POST")

    comment_id = writer(fake).create_comment(REPOSITORY, number, f"{MARKER}\nhello", BOT_USER["login"])

    comments = fake.comments(number)
    assert [comment["id"] for comment in comments] == [comment_id]
    assert [request.status for request in fake.writes()] == [502, 201]


def test_create_after_stored_502_no_duplicate(fake, number):
    fake.inject(502, path_contains="/comments", method="POST", after=True)

    comment_id = writer(fake).create_comment(REPOSITORY, number, f"{MARKER}\nhello", BOT_USER["login"])

    comments = fake.comments(number)
    assert len(comments) == 1
    assert comments[0]["id"] == comment_id
    # The retry looked for the marker instead of posting again.
    assert [(request.method, request.status) for request in fake.requests if "/comments" in request.path] == [
        ("POST", 502), ("GET", 200)]


def test_find_comment_skips_other_authors(fake, number):
    fake.add_comment(number, f"Quoting the bot:\n{MARKER}\n> 91%", {"login": "maintainer-b", "id": 5})
    own = fake.add_comment(number, f"{MARKER}\nmine", BOT_USER)

    assert writer(fake).find_comment(REPOSITORY, number, BOT_USER["login"]) == (own["id"], own["body"])


def test_find_comment_on_later_page(fake, number):
    for index in range(130):
        fake.add_comment(number, f"comment {index}", {"login": f"user-{index}", "id": 100 + index})
    own = fake.add_comment(number, f"{MARKER}\nmine", BOT_USER)

    assert writer(fake).find_comment(REPOSITORY, number, BOT_USER["login"])[0] == own["id"]
    assert fake.count("/comments") == 2  # 100 per page


def test_secondary_limit_waits_retry_after(fake, number):
    fake.inject(403, body={"message": "You have exceeded a secondary rate limit."}, headers={"Retry-After": "0.2"},
                path_contains="/labels", method="POST")

    writer(fake).add_label(REPOSITORY, number, "kind/bug")

    assert "kind/bug" in fake.labels(number)
    assert [request.status for request in fake.writes()] == [403, 200]


def test_client_error_not_retried(fake, number):
    fake.inject(422, body={"message": "Validation Failed"}, path_contains="/labels", method="POST")

    with pytest.raises(GitHubCallError, match=r"could not add kind/bug to kubernetes/kubernetes#\d+: GitHub "
                                              r"returned 422: Validation Failed"):
        writer(fake).add_label(REPOSITORY, number, "kind/bug")
    assert len(fake.writes()) == 1


def test_persistent_5xx_gives_up(fake, number):
    fake.inject(503, path_contains="/labels", method="POST", times=10)

    with pytest.raises(GitHubCallError, match="GitHub returned 503, still failing after 4 attempt"):
        writer(fake).add_label(REPOSITORY, number, "kind/bug")
    assert len(fake.writes()) == 4


def test_missing_label_or_comment_is_fine(fake, number):
    github = writer(fake)
    github.remove_label(REPOSITORY, number, "kind/not-there")
    github.delete_comment(REPOSITORY, number, 123456)

    assert github.edit_comment(REPOSITORY, number, 123456, "text") is False
    assert [request.status for request in fake.writes()] == [404, 404, 404]


def test_dry_run_sends_no_write(fake, number, caplog):
    caplog.set_level("INFO", logger="k8s_analysis.bot.github")
    github = writer(fake, dry_run=True)

    github.add_label(REPOSITORY, number, "kind/bug")
    assert github.create_comment(REPOSITORY, number, "body text", BOT_USER["login"]) == -1

    assert fake.writes() == []
    assert f"dry run: would add kind/bug to {REPOSITORY}#{number}" in caplog.text
    assert "body text" in caplog.text


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_limiter_minute_window():
    clock = FakeClock()
    limiter = WriteLimiter(((80, 60.0), (500, 3600.0)), clock=clock.time, sleep=clock.sleep)

    for _ in range(80):
        assert limiter.acquire() == 0.0
        clock.now += 0.1
    waited = limiter.acquire()

    # The first write was at t=1000; the 81st may go at t=1060, and it is t=1008 now.
    assert waited == pytest.approx(52.0)
    assert clock.now == pytest.approx(1060.0)


def test_limiter_hour_window():
    clock = FakeClock()
    limiter = WriteLimiter(((80, 60.0), (500, 3600.0)), clock=clock.time, sleep=clock.sleep)

    for _ in range(500):
        limiter.acquire()
        clock.now += 1.0  # 60 a minute: never the minute limit
    limiter.acquire()

    assert clock.now == pytest.approx(1000.0 + 3600.0)


def test_remove_label_with_slash(fake, number):
    fake.set_labels(number, ["kind/bug", "sig/node"])

    writer(fake).remove_label(REPOSITORY, number, "kind/bug")

    assert fake.labels(number) == ["sig/node"]
    assert [request.path for request in fake.writes()] == [
        f"/repos/{REPOSITORY}/issues/{number}/labels/kind%2Fbug"]


def test_long_primary_limit_fails_at_once(fake, number):
    reset = int(time.time()) + 2_000
    fake.inject(403, body={"message": "API rate limit exceeded for user ID 1."},
                headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}, path_contains="/labels",
                method="POST")
    started = time.monotonic()

    with pytest.raises(GitHubCallError, match=r"primary rate limit exhausted \(403\), and waiting \d+ s more would "
                                              r"pass the bot's limit of 5 s per call"):
        writer(fake).add_label(REPOSITORY, number, "kind/bug")
    assert time.monotonic() - started < 2
