"""The bot's GitHub calls through PyGithub: find, write and delete its comment, add and remove a label.

PyGithub's own retry is off. ``GitHubWriter`` retries 5xx responses, dropped connections and
rate limits itself, so that a comment whose creation failed half-way is looked for before it
is sent again (GitHub may have stored it before the 502 came back). Content-creating calls
pass a ``WriteLimiter`` first: GitHub's secondary limits allow about 80 of them a minute and
500 an hour. In dry-run mode the writes are logged instead of sent.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import requests
from github import Auth, Github, GithubException
from github.IssueComment import IssueComment

from k8s_analysis.bot.comment import is_own_comment

logger = logging.getLogger(__name__)

CONNECTION_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
                     TimeoutError)
RATE_LIMIT_TEXT = "rate limit"
FIXES = {
    401: "; check GITHUB_TOKEN",
    403: "; check that the token may write to issues and pull requests of this repository",
    404: "; check the repository and --api-url, and that the token can see the repository",
}


class GitHubCallError(RuntimeError):
    """A GitHub call that failed for good: not retryable, or still failing after the retries."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BotRetry:
    """How often and how long the bot retries one GitHub call."""

    attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    secondary_wait_s: float = 60.0
    max_wait_s: float = 900.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class Stopping(RuntimeError):
    """The bot is stopping, so a wait for GitHub was cut short."""


class WriteLimiter:
    """Blocks before a content-creating call until every (count, seconds) window has room."""

    def __init__(self, windows: tuple[tuple[int, float], ...] = ((80, 60.0), (500, 3600.0)),
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None) -> None:
        self.windows = windows
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self._lock = threading.Lock()
        longest = max(count for count, _ in windows)
        self._times: collections.deque[float] = collections.deque(maxlen=longest)

    def _wait_needed(self, now: float) -> float:
        wait = 0.0
        for count, seconds in self.windows:
            if len(self._times) >= count:
                oldest_in_window = self._times[-count]
                wait = max(wait, oldest_in_window + seconds - now)
        return wait

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise Stopping("the bot is stopping")

    def stop(self) -> None:
        """End every wait now: a waiting ``acquire`` raises ``Stopping``."""
        self._stopping.set()

    def acquire(self) -> float:
        """Wait for room, take it and return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._times.append(now)
                    return waited
            logger.info("holding a GitHub write for %.1f s to stay under the secondary rate limits", wait)
            self._sleep(wait)
            waited += wait


class GitHubWriter:
    """The comment and label calls of the bot, against ``api_url``."""

    def __init__(self, api_url: str, token: str | None, *, dry_run: bool = False,
                 limiter: WriteLimiter | None = None, retry: BotRetry = BotRetry(), timeout_s: int = 15) -> None:
        self.api_url = api_url.rstrip("/")
        self.dry_run = dry_run
        self.limiter = limiter or WriteLimiter()
        self.retry = retry
        self._stopping = threading.Event()
        self._dry_run_comments = 0
        self._github = Github(base_url=self.api_url, auth=Auth.Token(token) if token else None, retry=None,
                              timeout=timeout_s, per_page=100, seconds_between_requests=0,
                              seconds_between_writes=0, lazy=True)
        self._requester = self._github.requester

    def stop(self) -> None:
        """Cut every retry wait and write-limit wait short; the calls waiting fail with GitHubCallError."""
        self._stopping.set()
        self.limiter.stop()

    # -- reads ------------------------------------------------------------

    def check_token(self) -> None:
        """Make one cheap authenticated call (``GET /rate_limit``), so that a wrong token fails at start."""
        self._call("check the token (GET /rate_limit)", self._github.get_rate_limit)

    def login(self) -> str:
        """Return the login of the token's user (``GET /user``)."""
        return self._call("read the bot's login (GET /user)", lambda: self._github.get_user().login)

    def find_comment(self, repository: str, number: int, bot_login: str) -> tuple[int, str] | None:
        """Return the id and body of the bot's marked comment on an item, or None."""
        def find():
            issue = self._github.get_repo(repository).get_issue(number)
            for comment in issue.get_comments():
                # raw_data would fetch each comment again, although the list contains every field.
                data = comment._rawData
                if is_own_comment(data, bot_login):
                    return int(data["id"]), str(data.get("body") or "")
            return None
        return self._call(f"list the comments of {repository}#{number}", find)

    # -- writes -----------------------------------------------------------

    def create_comment(self, repository: str, number: int, body: str, bot_login: str) -> int | None:
        """Create the comment and return its id (a negative stand-in id in dry-run mode)."""
        if self.dry_run:
            logger.info("dry run: would comment on %s#%d:\n%s", repository, number, body)
            # Negative ids stand for comments a dry run did not create.
            self._dry_run_comments += 1
            return -self._dry_run_comments
        issue = self._github.get_repo(repository).get_issue(number)
        sent = False

        def create():
            nonlocal sent
            if sent:
                # The previous attempt may have reached GitHub before it failed: look before sending again.
                found = self.find_comment(repository, number, bot_login)
                if found is not None:
                    return found[0]
            sent = True
            return issue.create_comment(body).id
        return self._call(f"comment on {repository}#{number}", create, write=True)

    def edit_comment(self, repository: str, number: int, comment_id: int, body: str) -> bool:
        """Replace the comment's text; False when the comment no longer exists."""
        if self.dry_run:
            logger.info("dry run: would edit %s on %s#%d:\n%s", _comment_name(comment_id), repository, number, body)
            return True
        comment = IssueComment(self._requester, url=f"{self._repo_url(repository)}/issues/comments/{comment_id}")
        return self._call(f"edit comment {comment_id} on {repository}#{number}", lambda: comment.edit(body),
                          write=True, missing_ok=True) is not _MISSING

    def delete_comment(self, repository: str, number: int, comment_id: int) -> None:
        if self.dry_run:
            logger.info("dry run: would delete %s on %s#%d", _comment_name(comment_id), repository, number)
            return
        comment = IssueComment(self._requester, url=f"{self._repo_url(repository)}/issues/comments/{comment_id}")
        self._call(f"delete comment {comment_id} on {repository}#{number}", comment.delete, write=True,
                   missing_ok=True)

    def add_label(self, repository: str, number: int, label: str) -> None:
        if self.dry_run:
            logger.info("dry run: would add %s to %s#%d", label, repository, number)
            return
        issue = self._github.get_repo(repository).get_issue(number)
        self._call(f"add {label} to {repository}#{number}", lambda: issue.add_to_labels(label), write=True)

    def remove_label(self, repository: str, number: int, label: str) -> None:
        if self.dry_run:
            logger.info("dry run: would remove %s from %s#%d", label, repository, number)
            return
        # PyGithub's remove_from_labels quotes the name with "/" left as is, so kind/bug would reach
        # .../labels/kind/bug, a path GitHub does not know. The slash has to be encoded too.
        url = f"{self._repo_url(repository)}/issues/{number}/labels/{quote(label, safe='')}"
        self._call(f"remove {label} from {repository}#{number}",
                   lambda: self._requester.requestJsonAndCheck("DELETE", url), write=True, missing_ok=True)

    # -- plumbing ---------------------------------------------------------

    def _repo_url(self, repository: str) -> str:
        owner, name = repository.split("/", 1)
        return f"{self.api_url}/repos/{quote(owner)}/{quote(name)}"

    def _call(self, action: str, function: Callable, *, write: bool = False, missing_ok: bool = False):
        """Run one PyGithub call with the retry policy; ``missing_ok`` turns a 404 into ``_MISSING``."""
        waited = 0.0
        for attempt in range(1, self.retry.attempts + 1):
            if self._stopping.is_set():
                raise GitHubCallError(f"could not {action}: the bot is stopping")
            if write:
                try:
                    self.limiter.acquire()
                except Stopping:
                    raise GitHubCallError(f"could not {action}: the bot is stopping") from None
            try:
                return function()
            except GithubException as error:
                status = error.status
                if missing_ok and status in (404, 410):
                    logger.info("%s: already gone (%d)", action, status)
                    return _MISSING
                wait, reason = self._retry_wait(error, attempt)
                if wait is None:
                    raise GitHubCallError(f"could not {action}: GitHub returned {status}: {_message(error)}"
                                          f"{FIXES.get(status, '')}", status) from None
            except CONNECTION_ERRORS as error:
                wait, reason = self.retry.backoff(attempt), f"connection to {self.api_url} failed ({type(error).__name__})"
            if waited + wait > self.retry.max_wait_s:
                raise GitHubCallError(f"could not {action}: {reason}, and waiting {wait:.0f} s more would pass the "
                                      f"bot's limit of {self.retry.max_wait_s:.0f} s per call")
            if attempt == self.retry.attempts:
                raise GitHubCallError(f"could not {action}: {reason}, still failing after {attempt} attempt(s)")
            logger.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", action, reason, wait, attempt + 1,
                           self.retry.attempts)
            if self._stopping.wait(wait):
                raise GitHubCallError(f"could not {action}: the bot is stopping")
            waited += wait
        raise AssertionError("unreachable")

    def _retry_wait(self, error: GithubException, attempt: int) -> tuple[float | None, str]:
        status = error.status
        headers = {key.lower(): value for key, value in (error.headers or {}).items()}
        message = _message(error)
        if status >= 500:
            return self.retry.backoff(attempt), f"GitHub returned {status}"
        limited = status == 429 or (status == 403 and (RATE_LIMIT_TEXT in message.lower() or "retry-after" in headers))
        if not limited:
            return None, ""
        if "retry-after" in headers:
            return _seconds(headers["retry-after"], self.retry.secondary_wait_s), f"rate limited ({status}, Retry-After)"
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            until_reset = _seconds(headers["x-ratelimit-reset"], time.time()) - time.time()
            return max(until_reset, 1.0), f"primary rate limit exhausted ({status})"
        return self.retry.secondary_wait_s * 2 ** (attempt - 1), f"secondary rate limit ({status})"


_MISSING = object()


def _comment_name(comment_id: int) -> str:
    """Name a comment in a dry-run log; negative ids stand for comments the dry run did not create."""
    return f"comment {comment_id}" if comment_id > 0 else "the comment it would have created"


def _message(error: GithubException) -> str:
    data = error.data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return str(data)[:200]


def _seconds(value: str, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
