"""Analysis series on a small fixture whose expected values were worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from k8s_analysis.analysis.series import (
    NO_KIND,
    AnalysisError,
    NameFilter,
    closed_over_time,
    created_over_time,
    created_vs_closed,
    labels_by_group,
    labels_by_name,
    monthly_throughput,
    release_note_stats,
    select_items,
    time_to_close,
    users_by_closed,
    users_by_created,
)
from k8s_analysis.tables.items import build_item_tables


def when(text):
    return pd.Timestamp(text, tz="UTC")


def item(number, created, closed=None, user="alice", closer=None, labels=(), pull=False, body=None):
    raw = {
        "id": 1000 + number, "number": number, "title": f"item {number}", "body": body,
        "state": "closed" if closed else "open",
        "user": {"login": user, "id": 1} if user else None,
        "created_at": created, "updated_at": closed or created, "closed_at": closed,
        "closed_by": {"login": closer} if closer else None,
        "labels": [{"name": name} for name in labels],
    }
    if pull:
        raw["pull_request"] = {"merged_at": closed}
    return raw


NOTE = "```release-note\nFixed a crash.\n```"
# Issues 1-3 and pull requests 4-6. Item 2 is never closed, and item 3 has a deleted author.
FIXTURE = [
    item(1, "2024-01-01T10:00:00Z", "2024-01-03T10:00:00Z", "alice", "bob", ["kind/bug", "sig/node"]),
    item(2, "2024-01-01T12:00:00Z", None, "bob", None, ["triage/accepted", "lgtm"]),
    item(3, "2024-02-10T00:00:00Z", "2024-04-10T00:00:00Z", None, "bob", ["kind/bug"]),
    item(4, "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", "carol", "dave", ["kind/bug", "kind/regression"],
         pull=True, body=NOTE),
    item(5, "2024-01-03T00:00:00Z", "2024-01-05T00:00:00Z", "alice", "dave", ["size/XS", "lgtm"],
         pull=True, body=NOTE),
    item(6, "2024-03-01T00:00:00Z", "2024-03-11T00:00:00Z", "carol", None, ["kind/feature"],
         pull=True, body="```release-note\nNONE\n```"),
]


@pytest.fixture(scope="module")
def tables():
    return build_item_tables(FIXTURE)


@pytest.fixture(scope="module")
def items(tables):
    return select_items(tables.issues, tables.pull_requests, "all")


def test_select_items_scopes(tables):
    assert sorted(select_items(tables.issues, tables.pull_requests, "issues")["number"]) == [1, 2, 3]
    assert sorted(select_items(tables.issues, tables.pull_requests, "pull_requests")["number"]) == [4, 5, 6]
    assert len(select_items(tables.issues, tables.pull_requests, "all")) == 6


def test_unknown_scope_rejected(tables):
    with pytest.raises(AnalysisError, match="unknown scope 'prs'"):
        select_items(tables.issues, tables.pull_requests, "prs")


def test_created_cumulative(items):
    series = created_over_time(items)
    assert list(series["date"]) == [when(d) for d in ["2024-01-01", "2024-01-02", "2024-01-03", "2024-02-10",
                                                      "2024-03-01"]]
    assert list(series["created"]) == [2, 3, 4, 5, 6]


def test_closed_skips_open_items(items):
    series = closed_over_time(items)
    assert list(series["closed"]) == [2, 3, 4, 5]
    assert series["date"].iloc[-1] == when("2024-04-10")


def test_backlog_by_hand(items):
    """Day by day: +2, +1 -2, +1, -1, +1, +1, -1, -1 gives 2, 1, 2, 1, 2, 3, 2, 1."""
    backlog = created_vs_closed(items)
    assert list(backlog["date"].dt.strftime("%Y-%m-%d")) == [
        "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05", "2024-02-10", "2024-03-01", "2024-03-11",
        "2024-04-10",
    ]
    assert list(backlog["created_that_day"]) == [2, 1, 1, 0, 1, 1, 0, 0]
    assert list(backlog["closed_that_day"]) == [0, 0, 2, 1, 0, 0, 1, 1]
    assert list(backlog["open"]) == [2, 3, 2, 1, 2, 3, 2, 1]


def test_backlog_ends_at_open_count(items):
    assert created_vs_closed(items)["open"].iloc[-1] == items["closed_at"].isna().sum()


def test_labels_by_name(tables):
    top = labels_by_name(tables.labels, count=3)
    assert list(top["label"][:2]) == ["kind/bug", "lgtm"]
    assert list(top["count"]) == [3, 2, 1]


def test_labels_exclude_regex(tables):
    top = labels_by_name(tables.labels, name_filter=NameFilter(exclude="^(lgtm|approved)$|^size/"), count=50)
    assert "lgtm" not in set(top["label"])
    assert "size/XS" not in set(top["label"])
    assert int(top["count"].sum()) == 10 - 3  # ten labels in all, two lgtm and one size/XS dropped


def test_labels_include_regex_scope(tables):
    top = labels_by_name(tables.labels, "pull_requests", NameFilter(include="^kind/"), count=50)
    assert dict(zip(top["label"], top["count"])) == {"kind/bug": 1, "kind/regression": 1, "kind/feature": 1}


def test_labels_by_group(tables):
    groups = labels_by_group(tables.labels, count=50)
    assert dict(zip(groups["group"], groups["count"])) == {"kind": 5, "sig": 1, "triage": 1, "size": 1}


def test_label_without_slash_has_no_group(tables):
    groups = labels_by_group(tables.labels, name_filter=NameFilter(include="lgtm"), count=50)
    assert groups.empty


def test_users_by_created_with_ghost(items):
    users = users_by_created(items, count=10)
    assert dict(zip(users["user"], users["count"])) == {"alice": 2, "carol": 2, "bob": 1, "ghost": 1}


def test_users_by_closed(items):
    users = users_by_closed(items, NameFilter(exclude="bot$"), count=10)
    assert dict(zip(users["user"], users["count"])) == {"bob": 2, "dave": 2}


def test_top_count_limit(items):
    assert len(users_by_created(items, count=1)) == 1


def test_bad_count_rejected(items):
    with pytest.raises(AnalysisError, match="invalid --count 0"):
        users_by_created(items, count=0)


def test_bad_regex_rejected():
    with pytest.raises(AnalysisError, match=r"invalid regular expression for --include '\['"):
        NameFilter(include="[")


def test_release_note_stats(tables):
    """PRs 4 and 5 have real notes: 4 is bug and regression, 5 has no kind; 6's note is NONE."""
    stats = release_note_stats(tables.pull_requests)
    assert dict(zip(stats["kind"], stats["count"])) == {"bug": 1, "regression": 1, NO_KIND: 1}


def test_time_to_close(items):
    result = time_to_close(items).set_index(["quarter", "type"])
    assert result.loc[("2024Q1", "issue"), "closed"] == 1
    assert result.loc[("2024Q1", "issue"), "median_days"] == pytest.approx(2.0)
    assert result.loc[("2024Q2", "issue"), "median_days"] == pytest.approx(60.0)
    assert result.loc[("2024Q1", "pull request"), "closed"] == 3
    assert result.loc[("2024Q1", "pull request"), "median_days"] == pytest.approx(2.0)
    assert result.loc[("2024Q1", "pull request"), "p90_days"] == pytest.approx(np.quantile([1, 2, 10], 0.9))


def test_monthly_throughput(items):
    result = monthly_throughput(items).set_index("month")
    assert result.loc["2024-01"].tolist() == [4, 3]
    assert result.loc["2024-02"].tolist() == [1, 0]
    assert result.loc["2024-03"].tolist() == [1, 1]
    assert result.loc["2024-04"].tolist() == [0, 1]
    assert list(result.index) == ["2024-01", "2024-02", "2024-03", "2024-04"]


def test_monthly_throughput_fills_gaps(tables):
    sparse = select_items(tables.issues[tables.issues["number"] == 3], tables.pull_requests.iloc[0:0], "all")
    result = monthly_throughput(sparse).set_index("month")
    assert list(result.index) == ["2024-02", "2024-03", "2024-04"]
    assert result.loc["2024-03"].tolist() == [0, 0]


def test_empty_scope_gives_empty_series(tables):
    issues_only = select_items(tables.issues.iloc[0:0], tables.pull_requests.iloc[0:0], "all")
    assert created_vs_closed(issues_only).empty
    assert users_by_created(issues_only).empty
