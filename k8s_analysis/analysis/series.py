"""The series behind every chart, computed with vectorised pandas from the Parquet tables.

Each function takes the tables as read from ``data/tables`` and returns a small DataFrame:
a time series (one row per day, month or quarter) or a top-N ranking (one row per name).
``scope`` selects all items, issues only, or pull requests only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

SCOPES = ("all", "issues", "pull_requests")
ITEM_COLUMNS = ["number", "created_at", "closed_at", "user_login", "closed_by_login"]
KIND_PREFIX = "kind/"
NO_KIND = "(no kind label)"


class AnalysisError(ValueError):
    """An analysis cannot run on the given options; the message names the option and the fix."""


@dataclass(frozen=True)
class NameFilter:
    """Regular expressions that keep (``include``) and drop (``exclude``) names, searched anywhere."""

    include: str | None = None
    exclude: str | None = None

    def __post_init__(self) -> None:
        for option, pattern in (("--include", self.include), ("--exclude", self.exclude)):
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as error:
                raise AnalysisError(f"invalid regular expression for {option} {pattern!r}: {error}") from None

    def apply(self, names: pd.Series) -> pd.Series:
        return names[self.mask(names)]

    def mask(self, names: pd.Series) -> pd.Series:
        """Return True for the names to keep; each distinct name is tested once, then rows by isin."""
        distinct = names.dropna().unique()
        kept = set(distinct)
        if self.include:
            pattern = re.compile(self.include)
            kept = {name for name in kept if pattern.search(name)}
        if self.exclude:
            pattern = re.compile(self.exclude)
            kept = {name for name in kept if not pattern.search(name)}
        return names.isin(kept)


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise AnalysisError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
    return scope


def select_items(issues: pd.DataFrame, pull_requests: pd.DataFrame, scope: str = "all") -> pd.DataFrame:
    """Return the issues, the pull requests, or both, with an ``is_pull_request`` column."""
    parts = []
    if check_scope(scope) in ("all", "issues"):
        parts.append(issues[ITEM_COLUMNS].assign(is_pull_request=False))
    if scope in ("all", "pull_requests"):
        parts.append(pull_requests[ITEM_COLUMNS].assign(is_pull_request=True))
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame({column: pd.Series(dtype=issues[column].dtype) for column in ITEM_COLUMNS}
                            ).assign(is_pull_request=pd.Series(dtype=bool))
    return pd.concat(parts, ignore_index=True)


def daily_counts(times: pd.Series) -> pd.Series:
    """Events per UTC day, indexed by day, without days that had none."""
    return times.dropna().dt.floor("D").value_counts().sort_index()


def cumulative_by_day(times: pd.Series, name: str) -> pd.DataFrame:
    counts = daily_counts(times).cumsum()
    return pd.DataFrame({"date": counts.index, name: counts.to_numpy()})


def created_over_time(items: pd.DataFrame) -> pd.DataFrame:
    """Cumulative number of items created, by day."""
    return cumulative_by_day(items["created_at"], "created")


def closed_over_time(items: pd.DataFrame) -> pd.DataFrame:
    """Cumulative number of items closed, by day; items never closed do not count."""
    return cumulative_by_day(items["closed_at"], "closed")


def created_vs_closed(items: pd.DataFrame) -> pd.DataFrame:
    """Count the open backlog by day: +1 when an item is created, -1 when it is closed.

    ``created_that_day`` and ``closed_that_day`` are daily counts; ``open`` is the running total.
    """
    created = daily_counts(items["created_at"])
    closed = daily_counts(items["closed_at"])
    frame = pd.DataFrame({"created_that_day": created, "closed_that_day": closed})
    frame = frame.fillna(0).astype("int64").sort_index()
    frame["open"] = (frame["created_that_day"] - frame["closed_that_day"]).cumsum()
    return frame.rename_axis("date").reset_index()


def top_names(names: pd.Series, name_filter: NameFilter, count: int, column: str) -> pd.DataFrame:
    if count < 1:
        raise AnalysisError(f"invalid --count {count}: give 1 or more")
    counts = name_filter.apply(names.dropna()).value_counts()
    counts = counts.sort_values(ascending=False, kind="stable").head(count)
    return pd.DataFrame({column: counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})


def select_labels(labels: pd.DataFrame, scope: str) -> pd.DataFrame:
    is_pull_request = labels["is_pull_request"].fillna(False).astype(bool)
    if check_scope(scope) == "issues":
        return labels[~is_pull_request]
    if scope == "pull_requests":
        return labels[is_pull_request]
    return labels


def labels_by_name(labels: pd.DataFrame, scope: str = "all", name_filter: NameFilter = NameFilter(),
                   count: int = 25) -> pd.DataFrame:
    """Rank the ``count`` labels on the most items."""
    return top_names(select_labels(labels, scope)["label"], name_filter, count, "label")


def labels_by_group(labels: pd.DataFrame, scope: str = "all", name_filter: NameFilter = NameFilter(),
                    count: int = 25) -> pd.DataFrame:
    """Rank the ``count`` label groups (``kind`` for ``kind/bug``) on the most items.

    The filter applies to the label, so ``--exclude '^size/'`` drops the size group. Labels
    without a ``/`` have no group and are not counted.
    """
    selected = select_labels(labels, scope)
    groups = selected["group"][name_filter.mask(selected["label"])]
    return top_names(groups, NameFilter(), count, "group")


def users_by_created(items: pd.DataFrame, name_filter: NameFilter = NameFilter(), count: int = 25) -> pd.DataFrame:
    """Rank the ``count`` users who opened the most items (deleted accounts appear as ghost)."""
    return top_names(items["user_login"], name_filter, count, "user")


def users_by_closed(items: pd.DataFrame, name_filter: NameFilter = NameFilter(), count: int = 25) -> pd.DataFrame:
    """Rank the ``count`` users who closed the most items.

    List exports carry no ``closed_by``, so only items whose closer is recorded count.
    """
    return top_names(items["closed_by_login"], name_filter, count, "user")


def release_note_stats(pull_requests: pd.DataFrame) -> pd.DataFrame:
    """``kind/*`` labels over pull requests with a real release note, and how many have none.

    A pull request with two kinds counts once for each; the row ``(no kind label)`` counts
    the noted pull requests without any ``kind/*`` label.
    """
    noted = pull_requests[pull_requests["release_note_status"] == "note"]
    labels = noted[["number", "labels"]].explode("labels").dropna(subset=["labels"])
    kinds = labels[labels["labels"].str.startswith(KIND_PREFIX)]
    counts = kinds["labels"].str.removeprefix(KIND_PREFIX).value_counts().sort_values(ascending=False, kind="stable")
    without = int(len(noted) - kinds["number"].nunique())
    frame = pd.DataFrame({"kind": counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})
    return pd.concat([frame, pd.DataFrame({"kind": [NO_KIND], "count": [without]})], ignore_index=True)


def time_to_close(items: pd.DataFrame) -> pd.DataFrame:
    """Median and 90th percentile of days from creation to close, per quarter of closing.

    Issues and pull requests are reported apart, because pull requests close far faster.
    """
    closed = items.dropna(subset=["closed_at"])
    days = (closed["closed_at"] - closed["created_at"]).dt.total_seconds() / 86_400
    frame = pd.DataFrame({
        "quarter": closed["closed_at"].dt.tz_convert(None).dt.to_period("Q").astype(str),
        "type": closed["is_pull_request"].map({True: "pull request", False: "issue"}),
        "days": days,
    })
    grouped = frame.groupby(["quarter", "type"])["days"]
    result = grouped.agg(closed="size", median_days="median")
    result["p90_days"] = grouped.quantile(0.9)
    return result.reset_index()


def monthly_throughput(items: pd.DataFrame) -> pd.DataFrame:
    """Count the items opened and closed in each calendar month (UTC), months without any included."""
    def per_month(times: pd.Series) -> pd.Series:
        return times.dropna().dt.tz_convert(None).dt.to_period("M").value_counts()

    frame = pd.DataFrame({"opened": per_month(items["created_at"]), "closed": per_month(items["closed_at"])})
    if not frame.empty:
        # Months without activity are rows of zeros, so the bars keep a true time axis.
        frame = frame.reindex(pd.period_range(frame.index.min(), frame.index.max(), freq="M"))
    frame = frame.fillna(0).astype("int64").sort_index()
    frame.index = frame.index.astype(str)
    return frame.rename_axis("month").reset_index()
