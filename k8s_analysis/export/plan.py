"""``k8s-analysis export --plan``: what a full export and a delta would cost, without exporting."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from urllib.parse import urlencode

from k8s_analysis.export.client import GitHubClient
from k8s_analysis.raw_store import RawIssueStore

PER_PAGE = 100


def format_duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.0f} min"


@dataclass
class ExportPlan:
    repository: str
    newest_number: int
    latency_s: float
    rate_limit: int | None
    rate_remaining: int | None
    reserve: int
    delta_since: str | None
    delta_items_first_page: int | None
    delta_has_more: bool

    @property
    def full_requests(self) -> int:
        """One list request per 100 items, plus the API probe."""
        return math.ceil(self.newest_number / PER_PAGE) + 1

    def lines(self) -> list[str]:
        quota = self.rate_limit or 5_000
        usable = max(quota - self.reserve, 1)
        windows = math.ceil(self.full_requests / usable)
        seconds = self.full_requests * self.latency_s
        lines = [
            f"repository:     {self.repository} (newest number {self.newest_number:,}, "
            "so at most that many issues and pull requests)",
            f"full export:    about {self.full_requests:,} requests, {self.full_requests / quota:.1%} of an hourly "
            f"budget of {quota:,}; about {format_duration(seconds)} at the measured {self.latency_s * 1000:,.0f} ms "
            "per request" + (f", plus about {windows - 1} hour(s) of waiting for the hourly resets"
                             if windows > 1 else ""),
            "                (the per-item way would take one request per item: "
            f"about {self.newest_number:,} requests)",
        ]
        if self.delta_since is None:
            lines.append("delta:          none possible yet: the raw store is empty, so the first export is full")
        elif self.delta_has_more:
            lines.append(f"delta:          items updated since {self.delta_since}: more than {PER_PAGE}, so at least "
                         "2 requests, one per 100 changed items")
        else:
            lines.append(f"delta:          items updated since {self.delta_since}: {self.delta_items_first_page}, "
                         "so 1 request (answered 304 and free when nothing changed since the last delta)")
        if self.rate_remaining is not None:
            kept = f"; {self.reserve:,} are kept for other users of the token" if self.reserve < quota else ""
            lines.append(f"rate budget:    {self.rate_remaining:,} of {quota:,} requests left now{kept}")
        return lines


def plan_export(client: GitHubClient, repository: str, store: RawIssueStore, overlap: timedelta,
                reserve: int) -> ExportPlan:
    client.check_api()
    started = time.monotonic()
    newest = client.get_page(f"/repos/{repository}/issues?{urlencode({'state': 'all', 'per_page': 1})}")
    latency = time.monotonic() - started
    newest_number = newest.items[0]["number"] if newest.items else 0
    since_time = store.newest_updated_at()
    since = delta_items = None
    has_more = False
    if since_time is not None:
        since = (since_time - overlap).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = {"state": "all", "per_page": PER_PAGE, "sort": "updated", "direction": "asc", "since": since}
        page = client.get_page(f"/repos/{repository}/issues?{urlencode(query)}")
        delta_items, has_more = len(page.items), page.next_url is not None
    return ExportPlan(repository, newest_number, latency, client.budget.limit, client.budget.remaining,
                      reserve, since, delta_items, has_more)
