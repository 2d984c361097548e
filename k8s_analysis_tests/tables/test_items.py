"""Tests for the issues, pull_requests and labels tables built from raw issue objects."""

import copy
import json
import tarfile
from collections import Counter

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from k8s_analysis.atomic import write_parquet
from k8s_analysis.parsing.release_note import STATUS_NO_BODY, STATUS_NOTE
from k8s_analysis.tables.items import (
    GHOST_LOGIN,
    ISSUES_SCHEMA,
    LABELS_SCHEMA,
    PULL_REQUESTS_SCHEMA,
    build_item_tables,
    label_group,
    parse_common,
    parse_pull_request,
)
from k8s_analysis_tests.shared_data import shared_path

# Real merged kubernetes/kubernetes pull requests in the issues-endpoint layout, and the
# counts published with that export.
REAL_PRS_ARCHIVE = ("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
REAL_PRS_MEMBER = "api.json"
REAL_PRS_TOTAL = 744
REAL_PRS_WITH_NOTE = 210
REAL_PRS_AUTHORS = 338
REAL_PRS_LABELS = 78
REAL_PRS_FIRST_MONTH = "2014-06"
REAL_PRS_LAST_MONTH = "2023-07"

# Issue-endpoint objects from PyGithub's recordings, 2009-2026, and their stated split.
REPLAY_FILE = ("data", "pygithub-replaydata", "issues_from_replaydata.json")
REPLAY_TOTAL = 388
REPLAY_PULL_REQUESTS = 324
REPLAY_ISSUES = 64

# Fields that GitHub added over the years, so old objects come without them.
NEWER_FIELDS = ("node_id", "reactions", "author_association", "draft", "closed_at", "labels")

SCHEMAS = {"issues": ISSUES_SCHEMA, "pull_requests": PULL_REQUESTS_SCHEMA, "labels": LABELS_SCHEMA}


def load_case(file_name: str) -> dict:
    return json.loads(shared_path("cases", file_name).read_text(encoding="utf-8"))


def month(timestamp: pd.Timestamp) -> str:
    return timestamp.strftime("%Y-%m")


def row_for(frame: pd.DataFrame, number: int) -> pd.Series:
    rows = frame[frame["number"] == number]
    assert len(rows) == 1, f"expected one row for #{number}, found {len(rows)}"
    return rows.iloc[0]


def arrow_type(frame: pd.DataFrame, column: str) -> pa.DataType:
    """Return the Arrow type that Parquet would store for a column, string and large_string alike."""
    found = pa.Table.from_pandas(frame[[column]], preserve_index=False).schema.field(column).type
    if pa.types.is_large_string(found):
        return pa.string()
    if pa.types.is_list(found) and pa.types.is_large_string(found.value_type):
        return pa.list_(pa.string())
    return found


def all_empty_lists(values: pd.Series) -> bool:
    return all(len(value) == 0 for value in values)


@pytest.fixture(scope="module")
def real_items() -> list[dict]:
    with tarfile.open(shared_path(*REAL_PRS_ARCHIVE)) as archive:
        member = archive.extractfile(REAL_PRS_MEMBER)
        assert member is not None, f"{REAL_PRS_MEMBER} is not a file in the archive"
        return json.load(member)


@pytest.fixture(scope="module")
def real_tables(real_items):
    return build_item_tables(real_items)


@pytest.fixture(scope="module")
def replay_items() -> list[dict]:
    return json.loads(shared_path(*REPLAY_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replay_tables(replay_items):
    return build_item_tables(replay_items)


# ---------------------------------------------------------------------------
# Pull requests returned by the issues endpoint.


@pytest.fixture(scope="module")
def mixed_page_case():
    return load_case("case-07-prs-in-issues-endpoint.json")


@pytest.fixture(scope="module")
def mixed_page_tables(mixed_page_case):
    return build_item_tables(mixed_page_case["input"]["page"])


def test_mixed_page_issue_numbers(mixed_page_case, mixed_page_tables):
    assert mixed_page_tables.issues["number"].tolist() == mixed_page_case["expected"]["issues_table_numbers"]


def test_mixed_page_pr_numbers(mixed_page_case, mixed_page_tables):
    expected = mixed_page_case["expected"]["pull_requests_table_numbers"]

    assert mixed_page_tables.pull_requests["number"].tolist() == expected


def test_merged_pr_keeps_issue_id(mixed_page_case, mixed_page_tables):
    expected = mixed_page_case["expected"]["pr_row_120002"]

    row = row_for(mixed_page_tables.pull_requests, 120002)

    assert row["id"] == expected["issue_id"]
    assert expected["pr_id"] is None
    assert pd.isna(row["pr_id"])
    assert row["merged"] == expected["merged"]
    assert row["merged_at"] == pd.Timestamp("2024-05-02T10:00:00Z")


def test_closed_unmerged_pr(mixed_page_case, mixed_page_tables):
    expected = mixed_page_case["expected"]["pr_row_120003"]

    row = row_for(mixed_page_tables.pull_requests, 120003)

    assert row["merged"] == expected["merged"]
    assert expected["closed_unmerged"]
    assert row["state"] == "closed"
    assert pd.isna(row["merged_at"])


def test_mixed_page_note_numbers(mixed_page_case, mixed_page_tables):
    pull_requests = mixed_page_tables.pull_requests

    with_note = pull_requests.loc[pull_requests["release_note_status"] == STATUS_NOTE, "number"]

    assert with_note.tolist() == mixed_page_case["expected"]["release_note_extracted_for"]
    assert row_for(pull_requests, 120002)["release_note"] == "kubelet: no longer panics on an empty config file."
    assert pd.isna(row_for(pull_requests, 120003)["release_note"])
    assert row_for(pull_requests, 120003)["release_note_status"] == STATUS_NO_BODY


def test_issues_lack_note_columns(mixed_page_tables):
    assert "release_note" not in mixed_page_tables.issues.columns


def test_mixed_page_counts_add_up(mixed_page_case, mixed_page_tables):
    total = len(mixed_page_tables.issues) + len(mixed_page_tables.pull_requests)

    assert total == len(mixed_page_case["input"]["page"])


# ---------------------------------------------------------------------------
# Deleted accounts.


@pytest.fixture(scope="module")
def deleted_user_case():
    return load_case("case-08-deleted-user-ghost.json")


def test_null_user_is_ghost(deleted_user_case):
    expected = deleted_user_case["expected"]["rest_issue_parsed"]

    row = parse_common(deleted_user_case["input"]["rest_issue"])

    assert row["user_login"] == expected["author_login"]
    assert row["user_id"] == expected["author_id"]
    assert row["author_deleted"] == expected["author_deleted"]
    assert row["closed_by_login"] == expected["closed_by_login"]
    assert row["assignee_logins"] == []


def test_null_user_row_in_table(deleted_user_case):
    tables = build_item_tables([deleted_user_case["input"]["rest_issue"]])

    row = row_for(tables.issues, deleted_user_case["input"]["rest_issue"]["number"])

    assert row["user_login"] == GHOST_LOGIN
    assert pd.isna(row["user_id"])
    assert row["author_deleted"]
    assert pd.isna(row["closed_by_login"])


def test_webhook_ghost_user(deleted_user_case):
    expected = deleted_user_case["expected"]["webhook_parsed"]
    pull_request = dict(deleted_user_case["input"]["webhook_pull_request_edited"]["pull_request"])
    # The recorded webhook object has no id, and the parser keys every row on it.
    pull_request["id"] = 5100000011

    row = parse_pull_request(pull_request)

    assert row["user_login"] == expected["author_login"]
    assert row["user_id"] == expected["author_id"]
    assert row["author_deleted"] == expected["author_deleted"]
    assert row["number"] == 98766


def test_live_user_not_deleted(mixed_page_case):
    row = parse_common(mixed_page_case["input"]["page"][0])

    assert row["user_login"] == "user-a"
    assert row["user_id"] == 1001
    assert not row["author_deleted"]


# ---------------------------------------------------------------------------
# Objects from every API version (PyGithub recordings).


def test_replay_item_count(replay_items):
    assert len(replay_items) == REPLAY_TOTAL


def test_replay_split_matches(replay_items, replay_tables):
    pull_request_count = sum(1 for item in replay_items if item.get("pull_request") is not None)

    assert pull_request_count == REPLAY_PULL_REQUESTS
    assert len(replay_items) - pull_request_count == REPLAY_ISSUES
    assert len(replay_tables.pull_requests) == pull_request_count
    assert len(replay_tables.issues) == len(replay_items) - pull_request_count


def test_replay_closed_by_login(replay_items, replay_tables):
    # Some objects were recorded more than once, so rows are compared as a multiset.
    expected = Counter(
        (item["id"], item["closed_by"]["login"] if item.get("closed_by") else None) for item in replay_items
    )
    rows = pd.concat([replay_tables.issues, replay_tables.pull_requests])

    found = Counter(
        (item_id, None if pd.isna(login) else login)
        for item_id, login in zip(rows["id"], rows["closed_by_login"], strict=True)
    )

    assert found == expected
    assert sum(1 for item in replay_items if "closed_by" in item) > 0


def test_replay_null_users_are_ghost(replay_items, replay_tables):
    null_user_ids = Counter(item["id"] for item in replay_items if item.get("user") is None)
    rows = pd.concat([replay_tables.issues, replay_tables.pull_requests])

    ghosts = rows[rows["user_id"].isna()]

    assert Counter(ghosts["id"]) == null_user_ids
    assert set(ghosts["user_login"]) <= {GHOST_LOGIN}
    assert ghosts["author_deleted"].all()


def test_replay_logins_match_users(replay_items, replay_tables):
    expected = Counter((item["id"], (item.get("user") or {}).get("login", GHOST_LOGIN)) for item in replay_items)
    rows = pd.concat([replay_tables.issues, replay_tables.pull_requests])

    assert Counter(zip(rows["id"], rows["user_login"], strict=True)) == expected


@pytest.mark.parametrize("table_name", sorted(SCHEMAS))
def test_replay_columns_match_schema(replay_tables, table_name):
    frame = getattr(replay_tables, table_name)
    schema = SCHEMAS[table_name]

    assert frame.columns.tolist() == schema.names
    for field in schema:
        found = arrow_type(frame, field.name)
        if pa.types.is_list(field.type) and found == pa.list_(pa.null()):
            # Arrow cannot tell the item type of a column holding only empty lists.
            assert all_empty_lists(frame[field.name]), f"{table_name}.{field.name} is {found}"
            continue
        assert found == field.type, f"{table_name}.{field.name} is {found}, expected {field.type}"


def test_replay_label_rows_match_counts(replay_items, replay_tables):
    label_count = sum(len(item.get("labels") or []) for item in replay_items)

    assert len(replay_tables.labels) == label_count


def test_replay_label_groups(replay_tables):
    labels = replay_tables.labels

    without_slash = labels[~labels["label"].str.contains("/", regex=False)]

    assert len(without_slash) > 0
    assert without_slash["group"].isna().all()


def test_label_group_kind_bug():
    assert label_group("kind/bug") == "kind"


def test_label_group_without_slash():
    assert label_group("bug") is None


@pytest.mark.parametrize(
    ("label", "group"),
    [("/", None), ("a/", "a"), ("/b", None), ("a/b/c", "a"), ("", None)],
)
def test_label_group_edge_cases(label, group):
    assert label_group(label) == group


def test_labels_table_group_column(mixed_page_tables):
    labels = mixed_page_tables.labels

    groups = dict(zip(labels["label"], labels["group"], strict=True))

    assert groups["kind/bug"] == "kind"
    assert groups["sig/node"] == "sig"
    assert pd.isna(groups["release-note"])


def test_labels_table_marks_pull_requests(mixed_page_tables):
    labels = mixed_page_tables.labels

    flags = labels.groupby("number")["is_pull_request"].agg(set).to_dict()

    assert flags == {120001: {False}, 120002: {True}, 120003: {True}}


def test_plain_string_labels():
    item = {"id": 1, "number": 7, "labels": ["kind/bug", {"name": "sig/node"}, {"name": None}]}

    row = parse_common(item)

    assert row["labels"] == ["kind/bug", "sig/node"]


# ---------------------------------------------------------------------------
# Old and future object shapes.


@pytest.fixture()
def modern_pull_request(replay_items) -> dict:
    item = next(
        item for item in replay_items
        if item.get("pull_request") is not None and all(field in item for field in NEWER_FIELDS)
    )
    return copy.deepcopy(item)


def test_old_object_without_newer_fields(modern_pull_request):
    for field in NEWER_FIELDS:
        modern_pull_request.pop(field)

    tables = build_item_tables([modern_pull_request])

    row = row_for(tables.pull_requests, modern_pull_request["number"])
    assert row["id"] == modern_pull_request["id"]
    assert list(row["labels"]) == []
    assert pd.isna(row["closed_at"])
    assert pd.isna(row["draft"])
    assert pd.isna(row["author_association"])
    assert len(tables.labels) == 0


def test_unknown_extra_fields_ignored(modern_pull_request):
    expected = build_item_tables([modern_pull_request]).pull_requests
    modern_pull_request["field_from_the_future"] = {"nested": [1, 2, 3]}
    modern_pull_request["pull_request"]["new_flag"] = True

    found = build_item_tables([modern_pull_request]).pull_requests

    pd.testing.assert_frame_equal(found, expected)


def test_empty_input_gives_empty_tables():
    tables = build_item_tables([])

    assert len(tables.issues) == 0
    assert len(tables.pull_requests) == 0
    assert len(tables.labels) == 0
    assert tables.pull_requests.columns.tolist() == PULL_REQUESTS_SCHEMA.names


# ---------------------------------------------------------------------------
# Real kubernetes/kubernetes pull requests.


def test_real_prs_split(real_items, real_tables):
    assert len(real_items) == REAL_PRS_TOTAL
    assert len(real_tables.pull_requests) == REAL_PRS_TOTAL
    assert len(real_tables.issues) == 0


def test_real_prs_note_count(real_tables):
    statuses = real_tables.pull_requests["release_note_status"]

    assert int((statuses == STATUS_NOTE).sum()) == REAL_PRS_WITH_NOTE


def test_real_prs_notes_without_cr(real_tables):
    notes = real_tables.pull_requests["release_note"].dropna()

    assert len(notes) == REAL_PRS_WITH_NOTE
    assert not notes.str.contains("\r", regex=False).any()


def test_real_prs_created_range(real_items, real_tables):
    raw_months = sorted(item["created_at"][:7] for item in real_items)
    created = real_tables.pull_requests["created_at"]

    assert month(created.min()) == raw_months[0]
    assert month(created.max()) == raw_months[-1]
    assert month(created.min()) == REAL_PRS_FIRST_MONTH
    assert month(created.max()) == REAL_PRS_LAST_MONTH


def test_real_prs_distinct_authors(real_items, real_tables):
    raw_authors = {item["user"]["login"] for item in real_items}

    assert real_tables.pull_requests["user_login"].nunique() == len(raw_authors)
    assert len(raw_authors) == REAL_PRS_AUTHORS


def test_real_prs_distinct_labels(real_items, real_tables):
    raw_labels = {label["name"] for item in real_items for label in item["labels"]}

    assert real_tables.labels["label"].nunique() == len(raw_labels)
    assert len(raw_labels) == REAL_PRS_LABELS


def test_real_label_groups(real_tables):
    labels = real_tables.labels

    kind_bug = labels[labels["label"] == "kind/bug"]
    without_slash = labels[~labels["label"].str.contains("/", regex=False)]

    assert len(kind_bug) > 0
    assert (kind_bug["group"] == "kind").all()
    assert len(without_slash) > 0
    assert without_slash["group"].isna().all()


def test_real_label_rows_match_counts(real_items, real_tables):
    assert len(real_tables.labels) == sum(len(item["labels"]) for item in real_items)


def test_real_prs_merged_match_raw(real_items, real_tables):
    merged_numbers = sorted(item["number"] for item in real_items if item["pull_request"].get("merged_at"))

    merged = real_tables.pull_requests.loc[real_tables.pull_requests["merged"], "number"]

    assert merged.tolist() == merged_numbers


@pytest.mark.parametrize("table_name", sorted(SCHEMAS))
def test_real_columns_match_schema(real_tables, table_name):
    frame = getattr(real_tables, table_name)
    schema = SCHEMAS[table_name]

    assert frame.columns.tolist() == schema.names
    for field in schema:
        found = arrow_type(frame, field.name)
        if pa.types.is_list(field.type) and found in (pa.list_(pa.null()), pa.null()):
            # An empty table, or one with only empty lists, gives Arrow no item type to infer.
            assert all_empty_lists(frame[field.name]), f"{table_name}.{field.name} is {found}"
            continue
        assert found == field.type, f"{table_name}.{field.name} is {found}, expected {field.type}"


# ---------------------------------------------------------------------------
# Parquet round trip.


@pytest.mark.parametrize("table_name", sorted(SCHEMAS))
def test_parquet_round_trip(real_tables, tmp_path, table_name):
    frame = getattr(real_tables, table_name)
    target = tmp_path / f"{table_name}.parquet"

    write_parquet(frame, target)
    loaded = pd.read_parquet(target)

    assert len(loaded) == len(frame)
    assert loaded.columns.tolist() == frame.columns.tolist()
    if "labels" in frame.columns:
        assert [list(value) for value in loaded["labels"]] == [list(value) for value in frame["labels"]]


def test_parquet_keeps_nullable_types(mixed_page_tables, tmp_path):
    target = tmp_path / "pull_requests.parquet"

    write_parquet(mixed_page_tables.pull_requests, target)
    stored = pq.read_schema(target)

    assert stored.field("pr_id").type == pa.int64()
    assert stored.field("draft").type == pa.bool_()
    assert stored.field("comments").type == pa.int64()
