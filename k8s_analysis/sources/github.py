"""The live GitHub source: full and delta exports through the REST API (see ``k8s_analysis.export``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from k8s_analysis.export.client import GitHubClient, RetryPolicy, check_api_url
from k8s_analysis.export.exporter import Exporter
from k8s_analysis.export.state import ExportState
from k8s_analysis.paths import DataLayout
from k8s_analysis.sources.base import ExportRequest, IssueSource

DEFAULT_REPOSITORY = "kubernetes/kubernetes"
DEFAULT_API_URL = "https://api.github.com"
TOKEN_ENV = "GITHUB_TOKEN"

logger = logging.getLogger(__name__)


def check_repository(name: str) -> str:
    owner, slash, repo = name.strip().partition("/")
    if not slash or not owner or not repo or "/" in repo:
        raise ValueError(f"invalid repository {name!r}: write it as OWNER/NAME, for example kubernetes/kubernetes")
    return f"{owner}/{repo}"


class GitHubIssueSource(IssueSource):
    """Issues and pull requests of one repository, read live from the GitHub REST API.

    ``repository`` and ``api_url`` left unset mean the ones the data directory remembers
    from its last export, else kubernetes/kubernetes on github.com. Set ``token`` with
    ``EnvVar("GITHUB_TOKEN")`` so that it never appears in configuration or logs.
    """

    repository: str | None = None
    api_url: str | None = None
    token: str | None = None
    rate_limit_reserve: int = 500
    secondary_wait_s: float = 60.0
    max_sleep_s: float = 3_700.0
    max_total_wait_s: float = 6 * 3_600.0
    max_attempts: int = 8
    backoff_s: float = 1.0
    overlap_minutes: float = 5.0
    max_reconcile_requests: int = 1_000

    def resolve(self, layout: DataLayout, request: ExportRequest = ExportRequest()) -> tuple[str, str]:
        """Pick the repository and API URL: the request, this resource, the data directory, the defaults."""
        remembered = ExportState.load(layout.export_state_path)
        repository = request.repository or self.repository or remembered.repository or DEFAULT_REPOSITORY
        api_url = request.api_url or self.api_url or remembered.api_url or DEFAULT_API_URL
        return check_repository(repository), check_api_url(api_url)

    def client(self, api_url: str, log: object = logger) -> GitHubClient:
        policy = RetryPolicy(
            max_attempts=self.max_attempts, backoff_s=self.backoff_s, secondary_wait_s=self.secondary_wait_s,
            rate_limit_reserve=self.rate_limit_reserve, max_sleep_s=self.max_sleep_s,
            max_total_wait_s=self.max_total_wait_s,
        )
        return GitHubClient(api_url, self.token, policy, log=log)

    def update_store(self, layout: DataLayout, request: ExportRequest, log: object) -> dict[str, object]:
        repository, api_url = self.resolve(layout, request)
        client = self.client(api_url, log)
        client.check_api()
        exporter = Exporter(client, layout, repository, log=log,
                            overlap=timedelta(minutes=self.overlap_minutes),
                            max_reconcile_requests=self.max_reconcile_requests)
        result = exporter.run(request.mode)
        return {
            "repository": repository,
            "api_url": api_url,
            "mode": result.mode,
            "resumed": result.resumed,
            "not_modified": result.not_modified,
            "pages": result.pages,
            "items_received": result.items,
            "inserted": result.stored.inserted,
            "updated": result.stored.updated,
            "unchanged": result.stored.unchanged,
            "other_repository_items": result.other_repository,
            "requests": result.requests,
            "seconds": round(result.seconds, 1),
            **{f"removed_{kind}": count for kind, count in result.removed.items()},
        }

    def iter_items(self, since: datetime | None = None, log: object | None = None) -> Iterator[dict]:
        """Yield items straight from the list endpoint, without checkpoints or the raw store."""
        repository = check_repository(self.repository or DEFAULT_REPOSITORY)
        client = self.client((self.api_url or DEFAULT_API_URL).rstrip("/"), log or logger)
        query = {"state": "all", "per_page": 100}
        if since is not None:
            query.update(sort="updated", direction="asc", since=since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        url: str | None = f"/repos/{repository}/issues?{urlencode(query)}"
        while url:
            page = client.get_page(url)
            yield from page.items
            url = page.next_url

    def describe(self) -> str:
        return f"GitHub API {self.api_url or 'remembered or ' + DEFAULT_API_URL}, repository {self.repository or 'remembered or ' + DEFAULT_REPOSITORY}"

    def is_configured(self) -> bool:
        return bool(self.token)
