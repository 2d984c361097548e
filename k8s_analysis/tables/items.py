"""Parse raw issue objects into the ``issues``, ``pull_requests`` and ``labels`` tables.

The parser accepts every shape the issues API has returned since 2009: null users (deleted
accounts), no ``closed_by`` (list responses never carry it), unknown extra fields and old
objects without newer fields. An item is a pull request when ``pull_request`` is present
and not null. Its ``id`` is the issue id from the issues endpoint, not the pull-request id,
which only ``/pulls`` returns. So ``pr_id`` stays null here, and ``number`` is the key to
join with pull-request data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pyarrow as pa

from k8s_analysis.parsing.release_note import extract_release_note

# Key the exporter adds to an object GitHub no longer lists (k8s_analysis.export.exporter.MARK_KEY).
REMOVED_MARK = "_k8s_analysis"
# GitHub shows a deleted account as this user; the REST API returns null instead.
GHOST_LOGIN = "ghost"

TIMESTAMP = pa.timestamp("us", tz="UTC")

COMMON_FIELDS = [
    pa.field("id", pa.int64(), nullable=False),
    pa.field("number", pa.int64(), nullable=False),
    pa.field("repository", pa.string()),
    pa.field("title", pa.string()),
    pa.field("body", pa.string()),
    pa.field("state", pa.string()),
    pa.field("user_login", pa.string()),
    pa.field("user_id", pa.int64()),
    pa.field("author_deleted", pa.bool_()),
    pa.field("author_association", pa.string()),
    pa.field("created_at", TIMESTAMP),
    pa.field("updated_at", TIMESTAMP),
    pa.field("closed_at", TIMESTAMP),
    pa.field("closed_by_login", pa.string()),
    pa.field("labels", pa.list_(pa.string())),
    pa.field("assignee_logins", pa.list_(pa.string())),
    pa.field("milestone", pa.string()),
    pa.field("comments", pa.int64()),
    pa.field("locked", pa.bool_()),
    pa.field("html_url", pa.string()),
    # "deleted" or "transferred" once a full export found the item gone; null otherwise.
    pa.field("removed", pa.string()),
]
ISSUES_SCHEMA = pa.schema(COMMON_FIELDS)
PULL_REQUESTS_SCHEMA = pa.schema(
    COMMON_FIELDS
    + [
        pa.field("pr_id", pa.int64()),
        pa.field("draft", pa.bool_()),
        pa.field("merged_at", TIMESTAMP),
        pa.field("merged", pa.bool_()),
        pa.field("release_note", pa.string()),
        pa.field("release_note_status", pa.string()),
        pa.field("release_note_warnings", pa.list_(pa.string())),
        pa.field("release_note_docs", pa.string()),
    ]
)
LABELS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("number", pa.int64(), nullable=False),
        pa.field("is_pull_request", pa.bool_()),
        pa.field("label", pa.string()),
        pa.field("group", pa.string()),
    ]
)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def is_pull_request(item: dict) -> bool:
    return item.get("pull_request") is not None


def label_names(item: dict) -> list[str]:
    """Label names; very old objects may list labels as plain strings."""
    names = []
    for label in item.get("labels") or []:
        name = label.get("name") if isinstance(label, dict) else label
        if isinstance(name, str):
            names.append(name)
    return names


def label_group(label: str) -> str | None:
    """Return the part before the first ``/`` (``kind/bug`` -> ``kind``), or None without one."""
    group, slash, _ = label.partition("/")
    return group if slash and group else None


def parse_author(user: dict | None) -> tuple[str, int | None, bool]:
    """Return (login, id, deleted); a null user is a deleted account shown as ghost."""
    if not user:
        return GHOST_LOGIN, None, True
    login = user.get("login") or GHOST_LOGIN
    return login, user.get("id"), login == GHOST_LOGIN


def repository_name(item: dict) -> str | None:
    url = item.get("repository_url") or ""
    marker = "/repos/"
    return url.split(marker, 1)[1] if marker in url else None


def parse_common(item: dict) -> dict:
    login, user_id, deleted = parse_author(item.get("user"))
    closed_by = item.get("closed_by")
    milestone = item.get("milestone")
    return {
        "id": item["id"],
        "number": item["number"],
        "repository": repository_name(item),
        "title": item.get("title"),
        "body": item.get("body"),
        "state": item.get("state"),
        "user_login": login,
        "user_id": user_id,
        "author_deleted": deleted,
        "author_association": item.get("author_association"),
        "created_at": parse_time(item.get("created_at")),
        "updated_at": parse_time(item.get("updated_at")),
        "closed_at": parse_time(item.get("closed_at")),
        "closed_by_login": closed_by.get("login") if isinstance(closed_by, dict) else None,
        "labels": label_names(item),
        "assignee_logins": [a["login"] for a in item.get("assignees") or [] if a and a.get("login")],
        "milestone": milestone.get("title") if isinstance(milestone, dict) else None,
        "comments": item.get("comments"),
        "locked": item.get("locked"),
        "html_url": item.get("html_url"),
        "removed": (item.get(REMOVED_MARK) or {}).get("removed"),
    }


def parse_pull_request(item: dict) -> dict:
    row = parse_common(item)
    merged_at = parse_time((item.get("pull_request") or {}).get("merged_at"))
    note = extract_release_note(item.get("body"))
    row.update(
        pr_id=None,
        draft=item.get("draft"),
        merged_at=merged_at,
        merged=merged_at is not None,
        release_note=note.text,
        release_note_status=note.status,
        release_note_warnings=list(note.warnings),
        release_note_docs=note.docs,
    )
    return row


def label_rows(item: dict, pull_request: bool) -> list[dict]:
    return [
        {"item_id": item["id"], "number": item["number"], "is_pull_request": pull_request,
         "label": name, "group": label_group(name)}
        for name in label_names(item)
    ]


@dataclass
class ItemTables:
    issues: pd.DataFrame
    pull_requests: pd.DataFrame
    labels: pd.DataFrame


# NumPy has no null for integers or booleans, so a column with nulls would turn into float64
# or object and be written to Parquet with the wrong type. pandas' nullable dtypes keep it.
NULLABLE_DTYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def to_frame(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    return pa.Table.from_pylist(rows, schema=schema).to_pandas(types_mapper=NULLABLE_DTYPES.get)


def build_item_tables(items: Iterable[dict]) -> ItemTables:
    """Split raw items into issues and pull requests and parse each into a row."""
    issues: list[dict] = []
    pull_requests: list[dict] = []
    labels: list[dict] = []
    for item in items:
        pull_request = is_pull_request(item)
        if pull_request:
            pull_requests.append(parse_pull_request(item))
        else:
            issues.append(parse_common(item))
        labels.extend(label_rows(item, pull_request))
    return ItemTables(
        issues=to_frame(sorted(issues, key=_by_number), ISSUES_SCHEMA),
        pull_requests=to_frame(sorted(pull_requests, key=_by_number), PULL_REQUESTS_SCHEMA),
        labels=to_frame(labels, LABELS_SCHEMA),
    )


def _by_number(row: dict) -> tuple:
    return (row["repository"] or "", row["number"])
