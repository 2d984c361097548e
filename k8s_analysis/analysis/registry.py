"""Every analysis by name: how to compute its series, how to chart it, and what to call it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from k8s_analysis.analysis import series as s


@dataclass(frozen=True)
class AnalysisInput:
    issues: pd.DataFrame
    pull_requests: pd.DataFrame
    labels: pd.DataFrame

    def items(self, scope: str) -> pd.DataFrame:
        return s.select_items(self.issues, self.pull_requests, scope)


Compute = Callable[[AnalysisInput, str, s.NameFilter, int], pd.DataFrame]


@dataclass(frozen=True)
class Analysis:
    name: str
    title: str
    chart: str  # cumulative, backlog, ranking, quarterly or monthly
    compute: Compute
    ranked: bool = False  # takes --include/--exclude/--count
    scopes: tuple[str, ...] = s.SCOPES
    uses_labels: bool = False
    default_exclude: str | None = None  # used by the asset when its config sets no exclude


# Prow puts these labels on nearly every merged Kubernetes PR, so they tell little about the project.
PROCESS_LABELS = r"^(lgtm|approved|cncf-cla: yes)$|^size/"


ANALYSES = {
    analysis.name: analysis
    for analysis in [
        Analysis("created", "Items created over time", "cumulative",
                 lambda data, scope, f, n: s.created_over_time(data.items(scope))),
        Analysis("closed", "Items closed over time", "cumulative",
                 lambda data, scope, f, n: s.closed_over_time(data.items(scope))),
        Analysis("created_vs_closed", "Open backlog (created minus closed)", "backlog",
                 lambda data, scope, f, n: s.created_vs_closed(data.items(scope))),
        Analysis("labels_by_name", "Labels by name", "ranking",
                 lambda data, scope, f, n: s.labels_by_name(data.labels, scope, f, n), ranked=True, uses_labels=True,
                 default_exclude=PROCESS_LABELS),
        Analysis("labels_by_group", "Labels by group", "ranking",
                 lambda data, scope, f, n: s.labels_by_group(data.labels, scope, f, n), ranked=True, uses_labels=True,
                 default_exclude=PROCESS_LABELS),
        Analysis("users_by_created", "Users by items created", "ranking",
                 lambda data, scope, f, n: s.users_by_created(data.items(scope), f, n), ranked=True),
        Analysis("users_by_closed", "Users by items closed", "ranking",
                 lambda data, scope, f, n: s.users_by_closed(data.items(scope), f, n), ranked=True),
        Analysis("release_notes_stats", "kind/* labels of pull requests with a release note", "ranking",
                 lambda data, scope, f, n: s.release_note_stats(data.pull_requests), scopes=("pull_requests",)),
        Analysis("time_to_close", "Days to close, by quarter of closing", "quarterly",
                 lambda data, scope, f, n: s.time_to_close(data.items(scope))),
        Analysis("monthly_throughput", "Items opened and closed per month", "monthly",
                 lambda data, scope, f, n: s.monthly_throughput(data.items(scope))),
    ]
}

SCOPE_TITLES = {"all": "issues and pull requests", "issues": "issues", "pull_requests": "pull requests"}


def date_range(data: AnalysisInput, scope: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First creation and last update of the items in ``scope``: the period the data covers."""
    items = data.items(scope)
    if items.empty:
        return None
    return items["created_at"].min(), items[["created_at", "closed_at"]].max().max()
