"""A GitHub REST client for paging through issue lists, built on PyGithub's requester.

PyGithub supplies authentication, the base URL (github.com, GitHub Enterprise or a test
server), connections and token masking in its debug log. This module adds what a long
export needs beyond that. Responses are read as raw JSON pages, so PyGithub never completes
an object with a single-item request. ``Link`` cursors are followed as given, requests can
be conditional, and a rate-limit reserve is kept for other users of the token. One retry
policy covers every fault and logs each wait; PyGithub's own retry is switched off so that
the two never stack.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import github
import requests

logger = logging.getLogger(__name__)

# <https://api.github.com/repositories/1/issues?after=abc>; rel="next"
NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
SECONDARY_LIMIT_TEXT = "secondary rate limit"
PRIMARY_LIMIT_TEXT = "rate limit exceeded"
CONNECTION_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)


def check_api_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"invalid API URL {url!r}: include the scheme, for example https://api.github.com")
    return url.rstrip("/")


class GitHubError(RuntimeError):
    """A request failed for good; the message names the request, the cause and the next step."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubAuthError(GitHubError):
    pass


class GitHubNotFoundError(GitHubError):
    pass


class GitHubWaitLimitError(GitHubError):
    """Waiting for GitHub would exceed the configured maximum."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait, and how often to try, when GitHub or the network fails."""

    max_attempts: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 120.0
    secondary_wait_s: float = 60.0
    max_secondary_wait_s: float = 900.0
    rate_limit_reserve: int = 500
    max_sleep_s: float = 3_700.0
    max_total_wait_s: float = 6 * 3_600.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff, capped at ``max_backoff_s``, jittered between half and all of it."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class RateBudget:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    def update(self, headers: dict) -> None:
        for attribute, header in (("limit", "x-ratelimit-limit"), ("remaining", "x-ratelimit-remaining"),
                                  ("reset_at", "x-ratelimit-reset")):
            value = headers.get(header)
            if value is not None and str(value).isdigit():
                setattr(self, attribute, int(value))


@dataclass
class Page:
    """One list response: its items, the next cursor URL, and its ETag."""

    status: int
    items: list[dict] = field(default_factory=list)
    next_url: str | None = None
    etag: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def next_link(headers: dict) -> str | None:
    match = NEXT_LINK.search(headers.get("link", ""))
    return match.group(1) if match else None


def error_message(body: str) -> str:
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return message or body[:200]


class GitHubClient:
    """GET requests against one API base URL, with waits and retries per ``RetryPolicy``."""

    def __init__(
        self,
        api_url: str,
        token: str | None,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        log: logging.Logger | object = logger,
        timeout_s: int = 60,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.policy = policy
        self.sleep = sleep
        self.log = log
        self.budget = RateBudget()
        self.requests_made = 0
        self.waited_s = 0.0
        auth = github.Auth.Token(token) if token else None
        self._github = github.Github(
            base_url=self.api_url, auth=auth, retry=None, seconds_between_requests=0, timeout=timeout_s,
            per_page=100, user_agent="k8s-analysis",
        )

    def check_api(self) -> dict:
        """Probe ``GET /rate_limit``: the base URL must return JSON, not a redirect or HTML."""
        try:
            status, headers, body = self._send("/rate_limit", {})
        except CONNECTION_ERRORS as error:
            raise GitHubError(
                f"cannot connect to {self.api_url} ({type(error).__name__}); check the API URL and the network"
            ) from None
        content_type = headers.get("content-type", "")
        if status in (401, 403) and "json" in content_type:
            raise self._final_error("/rate_limit", status, error_message(body))
        if status != 200 or "json" not in content_type:
            raise GitHubError(
                f"{self.api_url} is not a GitHub API: GET /rate_limit returned {status} ({content_type or 'no type'}); "
                "use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise"
            )
        self.budget.update(headers)
        return json.loads(body)

    def get_json(self, url: str, etag: str | None = None) -> tuple[int, dict, object]:
        """GET ``url`` (a path or a next link as given); return status, headers and JSON.

        Returns 304 with no JSON when ``etag`` still matches. Raises GitHubError for
        responses that retrying cannot fix.
        """
        headers = {"If-None-Match": etag} if etag else {}
        status, reason = None, "max_attempts is 0"
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                status, response_headers, body = self._send(url, headers)
            except CONNECTION_ERRORS as error:
                status = None
                wait, reason = self.policy.backoff(attempt), f"connection error on {url} ({type(error).__name__})"
            else:
                self.budget.update(response_headers)
                if status == 304:
                    return status, response_headers, None
                if status == 200:
                    self._keep_reserve()
                    return status, response_headers, self._parse(url, response_headers, body)
                wait, reason = self._retry_wait(url, status, response_headers, body, attempt)
            # Skip the wait after the last attempt, because no request follows it.
            if attempt < self.policy.max_attempts:
                self._wait(wait, reason, attempt)
        raise GitHubError(
            f"GET {url} failed {self.policy.max_attempts} times (last: {reason}), "
            "so the export stopped and can be resumed",
            status,
        )

    def get_page(self, url: str, etag: str | None = None) -> Page:
        status, headers, data = self.get_json(url, etag)
        if status == 304:
            return Page(status, etag=etag)
        if not isinstance(data, list):
            raise GitHubError(f"GET {url} returned a JSON {type(data).__name__}, expected a list of issues")
        return Page(status, data, next_link(headers), headers.get("etag"))

    def get_item(self, url: str) -> tuple[int, object]:
        """GET one issue; a 404 or 410 status (a deleted item) is returned, not raised."""
        try:
            return 200, self.get_json(url)[2]
        except GitHubError as error:
            if error.status in (404, 410):
                return error.status, None
            raise

    def _send(self, url: str, headers: dict) -> tuple[int, dict, str]:
        self.requests_made += 1
        return self._github.requester.requestJson("GET", url, headers=headers)

    def _parse(self, url: str, headers: dict, body: str) -> object:
        if "json" not in headers.get("content-type", "json"):
            raise GitHubError(f"GET {url} returned {headers.get('content-type')}, not JSON; check the API URL")
        try:
            return json.loads(body)
        except ValueError as error:
            raise GitHubError(f"GET {url} returned invalid JSON ({error})") from error

    def _retry_wait(self, url: str, status: int, headers: dict, body: str, attempt: int) -> tuple[float, str]:
        """Return the wait in seconds before the next attempt and its reason, or raise when retrying cannot help."""
        message = error_message(body)
        if status in (403, 429):
            wait = self._rate_limit_wait(status, headers, message, attempt)
            if wait is not None:
                return wait, f"{status} {message.split('.')[0]} on {url}"
        if status >= 500:
            return self.policy.backoff(attempt), f"{status} from GitHub on {url}"
        raise self._final_error(url, status, message)

    def _rate_limit_wait(self, status: int, headers: dict, message: str, attempt: int) -> float | None:
        """Seconds to wait for a rate limit, or None when a 403 is a permission error."""
        retry_after = headers.get("retry-after")
        if retry_after is not None and str(retry_after).isdigit():
            return float(retry_after)
        text = message.lower()
        # An exhausted budget waits for its reset, whether GitHub responds with 403 or 429.
        if headers.get("x-ratelimit-remaining") == "0":
            return self._seconds_until_reset(headers) + random.uniform(1, 5)
        if SECONDARY_LIMIT_TEXT in text or status == 429:
            return min(self.policy.secondary_wait_s * 2 ** (attempt - 1), self.policy.max_secondary_wait_s)
        if PRIMARY_LIMIT_TEXT in text:
            return self._seconds_until_reset(headers) + random.uniform(1, 5)
        return None

    def _seconds_until_reset(self, headers: dict) -> float:
        reset = headers.get("x-ratelimit-reset")
        if reset is None or not str(reset).isdigit():
            return self.policy.secondary_wait_s
        return max(int(reset) - time.time(), 0.0)

    def _keep_reserve(self) -> None:
        """Sleep until the reset when the budget has reached the reserve kept for other users."""
        remaining, reset_at = self.budget.remaining, self.budget.reset_at
        if remaining is None or reset_at is None or remaining > self.policy.rate_limit_reserve:
            return
        wait = max(reset_at - time.time(), 0.0) + 1.0
        self._wait(wait, f"{remaining} requests left, at the reserve of {self.policy.rate_limit_reserve}", attempt=1)

    def _wait(self, seconds: float, reason: str, attempt: int) -> None:
        if seconds > self.policy.max_sleep_s:
            raise GitHubWaitLimitError(
                f"{reason}: GitHub asks for a {seconds:,.0f} s wait, over the limit of "
                f"{self.policy.max_sleep_s:,.0f} s; the export stopped and can be resumed later"
            )
        if self.waited_s + seconds > self.policy.max_total_wait_s:
            raise GitHubWaitLimitError(
                f"{reason}: waiting {seconds:,.0f} s more would exceed the total wait limit of "
                f"{self.policy.max_total_wait_s:,.0f} s; the export stopped and can be resumed later"
            )
        self.log.warning("waiting %.1f s (attempt %s): %s", seconds, attempt, reason)
        self.waited_s += seconds
        self.sleep(seconds)

    def _final_error(self, url: str, status: int, message: str) -> GitHubError:
        if status == 401:
            return GitHubAuthError(
                f"GitHub rejected the token for {self.api_url} (401 {message}): GITHUB_TOKEN is missing or invalid; "
                "set it to a token that is valid, not expired and not revoked",
                status,
            )
        if status == 404:
            return GitHubNotFoundError(
                f"GET {url} returned 404: the repository does not exist or this token cannot see it", status
            )
        if status == 403:
            return GitHubAuthError(f"GET {url} returned 403 ({message}): the token lacks permission for it", status)
        if 300 <= status < 400:
            return GitHubError(f"GET {url} returned a {status} redirect; check the API URL {self.api_url}", status)
        return GitHubError(f"GET {url} failed with {status}: {message}", status)
