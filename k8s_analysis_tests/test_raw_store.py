"""Tests for the raw store: upsert rules, shards, interrupted writes and release-note files."""

import json
import os
import tarfile
from datetime import UTC, datetime

import pytest
import zstandard

from k8s_analysis.atomic import atomic_path
from k8s_analysis.raw_store import (
    SHARD_SIZE,
    RawIssueStore,
    RawReleaseNotesStore,
    RawStoreError,
    merge_item,
)
from k8s_analysis_tests.shared_data import shared_path

REAL_PRS_ARCHIVE = ("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
SAMPLE_SIZE = 50


@pytest.fixture(scope="module")
def sample_items():
    with tarfile.open(shared_path(*REAL_PRS_ARCHIVE), mode="r:xz") as tar:
        return json.load(tar.extractfile("api.json"))[:SAMPLE_SIZE]


@pytest.fixture
def store(tmp_path):
    return RawIssueStore(tmp_path / "raw" / "issues")


def parse_github_time(value):
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def temporary_files(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith(".tmp-"))


# ---------------------------------------------------------------------------
# merge_item


def test_merge_into_nothing_inserts(sample_items):
    item = sample_items[0]

    assert merge_item(None, item) == (item, "inserted")


def test_merge_newer_replaces(sample_items):
    old = dict(sample_items[0], updated_at="2020-01-01T00:00:00Z", state="open")
    new = dict(sample_items[0], updated_at="2020-01-02T00:00:00Z", state="closed")

    assert merge_item(old, new) == (new, "updated")


def test_merge_older_ignored(sample_items):
    stored = dict(sample_items[0], updated_at="2020-01-02T00:00:00Z", state="closed")
    older = dict(sample_items[0], updated_at="2020-01-01T00:00:00Z", state="open")

    assert merge_item(stored, older) == (stored, "unchanged")


def test_merge_equal_adds_fields(sample_items):
    from_list = {key: value for key, value in sample_items[0].items() if key != "closed_by"}
    from_single = dict(sample_items[0], closed_by={"login": "k8s-ci-robot", "id": 20407524})

    kept, outcome = merge_item(from_list, from_single)

    assert outcome == "updated"
    assert kept == {**from_list, "closed_by": {"login": "k8s-ci-robot", "id": 20407524}}


def test_merge_equal_keeps_stored_fields(sample_items):
    stored = dict(sample_items[0], closed_by={"login": "k8s-ci-robot", "id": 20407524})
    from_list = {key: value for key, value in sample_items[0].items() if key != "closed_by"}

    kept, outcome = merge_item(stored, from_list)

    assert outcome == "unchanged"
    assert kept == stored


def test_merge_equal_identical_unchanged(sample_items):
    item = sample_items[0]

    assert merge_item(item, dict(item)) == (item, "unchanged")


def test_merge_time_beats_missing_time(sample_items):
    undated = dict(sample_items[0], updated_at=None)
    dated = dict(sample_items[0])

    assert merge_item(undated, dated) == (dated, "updated")
    assert merge_item(dated, undated) == (dated, "unchanged")


# ---------------------------------------------------------------------------
# RawIssueStore


def test_upsert_inserts_new_items(store, sample_items):
    stats = store.upsert(sample_items)

    assert stats.inserted == len(sample_items)
    assert stats.updated == 0
    assert stats.unchanged == 0
    assert stats.shards_written == len({item["number"] // SHARD_SIZE for item in sample_items})


def test_upsert_same_items_unchanged(store, sample_items):
    store.upsert(sample_items)
    shards_before = {path: path.read_bytes() for path in store.shard_paths()}

    stats = store.upsert(sample_items)

    assert stats.unchanged == len(sample_items)
    assert stats.inserted == 0
    assert stats.updated == 0
    assert stats.shards_written == 0
    assert {path: path.read_bytes() for path in store.shard_paths()} == shards_before


def test_upsert_newer_and_older(store, sample_items):
    store.upsert(sample_items)
    first, second = sample_items[0], sample_items[1]
    newer = dict(first, updated_at="2099-01-01T00:00:00Z", title="changed")
    older = dict(second, updated_at="2000-01-01T00:00:00Z", title="stale")

    stats = store.upsert([newer, older])
    stored = {item["id"]: item for item in store.iter_items()}

    assert stats.updated == 1
    assert stats.unchanged == 1
    assert stats.shards_written == 1
    assert stored[first["id"]] == newer
    assert stored[second["id"]] == second


def test_upsert_equal_time_merges(store, sample_items):
    from_list = [{key: value for key, value in item.items() if key != "closed_by"} for item in sample_items]
    store.upsert(from_list)
    single = dict(from_list[0], closed_by={"login": "k8s-ci-robot", "id": 20407524})

    stats = store.upsert([single, from_list[1]])
    stored = {item["id"]: item for item in store.iter_items()}

    assert stats.updated == 1
    assert stats.unchanged == 1
    assert stored[single["id"]]["closed_by"] == {"login": "k8s-ci-robot", "id": 20407524}
    assert "closed_by" not in stored[from_list[1]["id"]]


def test_items_land_in_number_shards(store, sample_items):
    store.upsert(sample_items)
    expected_names = sorted({f"{item['number'] // SHARD_SIZE:06d}.jsonl.zst" for item in sample_items})

    assert [path.name for path in store.shard_paths()] == expected_names
    for path in store.shard_paths():
        shard = int(path.name.split(".")[0])
        numbers = [item["number"] for item in store.read_shard(path).values()]
        assert numbers
        assert [number for number in numbers if number // SHARD_SIZE != shard] == []


def test_shard_is_sorted_json_lines(store, sample_items):
    store.upsert(sample_items)

    for path in store.shard_paths():
        lines = zstandard.ZstdDecompressor().decompress(path.read_bytes()).decode("utf-8").splitlines()
        ids = [json.loads(line)["id"] for line in lines]
        assert ids == sorted(ids)


def test_iter_items_yields_each_once(store, sample_items):
    store.upsert(sample_items[:30])
    store.upsert(sample_items[20:])

    items = list(store.iter_items())

    assert len(items) == len(sample_items)
    assert sorted(item["id"] for item in items) == sorted(item["id"] for item in sample_items)
    assert {item["id"]: item for item in items} == {item["id"]: item for item in sample_items}


def test_count_matches_items(store, sample_items):
    store.upsert(sample_items[:10])
    assert store.count() == 10

    store.upsert(sample_items)
    assert store.count() == len(sample_items)


def test_newest_updated_at(store, sample_items):
    store.upsert(sample_items)

    expected = max(parse_github_time(item["updated_at"]) for item in sample_items)

    assert store.newest_updated_at() == expected


def test_empty_store(store):
    assert store.count() == 0
    assert list(store.iter_items()) == []
    assert store.newest_updated_at() is None
    assert store.shard_paths() == []


@pytest.mark.parametrize(
    "change,field",
    [
        ({"id": None}, "'id'"),
        ({"id": "123"}, "'id'"),
        ({"id": True}, "'id'"),
        ({"number": None}, "'number'"),
        ({"number": 12.0}, "'number'"),
    ],
)
def test_item_without_integer_key(store, sample_items, change, field):
    item = {**sample_items[0], **change}

    with pytest.raises(RawStoreError) as caught:
        store.upsert([item])

    assert f"no integer {field}" in str(caught.value)
    assert store.shard_paths() == []


def test_item_missing_id(store, sample_items):
    item = {key: value for key, value in sample_items[0].items() if key != "id"}

    with pytest.raises(RawStoreError) as caught:
        store.upsert([item])

    assert "no integer 'id'" in str(caught.value)


def test_item_not_object(store):
    with pytest.raises(RawStoreError) as caught:
        store.upsert([[1, 2]])

    assert "expected a JSON object" in str(caught.value)
    assert "list" in str(caught.value)


# ---------------------------------------------------------------------------
# Interrupted shard writes


def test_failed_replace_keeps_shard(store, sample_items, monkeypatch):
    store.upsert(sample_items)
    path = store.shard_path(sample_items[0]["number"] // SHARD_SIZE)
    old_bytes = path.read_bytes()
    old_items = store.read_shard(path)
    newer = dict(sample_items[0], updated_at="2099-01-01T00:00:00Z", title="changed")

    def failing_replace(source, target):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        store.upsert([newer])
    monkeypatch.undo()

    assert path.read_bytes() == old_bytes
    assert store.read_shard(path) == old_items
    assert temporary_files(store.directory) == []


def test_failed_writer_keeps_shard(store, sample_items):
    store.upsert(sample_items)
    path = store.shard_path(sample_items[0]["number"] // SHARD_SIZE)
    old_bytes = path.read_bytes()
    old_items = store.read_shard(path)

    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(old_bytes[: len(old_bytes) // 2])
            raise RuntimeError("writer failed midway")

    assert path.read_bytes() == old_bytes
    assert store.read_shard(path) == old_items
    assert temporary_files(store.directory) == []


# ---------------------------------------------------------------------------
# RawReleaseNotesStore


NOTES = json.dumps({"59176": {"text": "Fix a crash.", "kinds": ["bug"]}}).encode("utf-8")


def test_notes_put_stores_bytes(tmp_path):
    notes = RawReleaseNotesStore(tmp_path / "notes")

    assert notes.put("release-notes-1.14.0", NOTES) is True
    assert notes.names() == ["release-notes-1.14.0"]
    assert notes.read("release-notes-1.14.0") == json.loads(NOTES)
    assert zstandard.ZstdDecompressor().decompress(notes.path_for("release-notes-1.14.0").read_bytes()) == NOTES


def test_notes_put_identical_untouched(tmp_path):
    notes = RawReleaseNotesStore(tmp_path / "notes")
    notes.put("release-notes-1.14.0", NOTES)
    path = notes.path_for("release-notes-1.14.0")
    before = (path.read_bytes(), path.stat().st_mtime_ns)

    assert notes.put("release-notes-1.14.0", NOTES) is False
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert temporary_files(path.parent) == []


def test_notes_put_changed_rewrites(tmp_path):
    notes = RawReleaseNotesStore(tmp_path / "notes")
    notes.put("release-notes-1.14.0", NOTES)
    changed = NOTES.replace(b"Fix a crash.", b"Fix a crash on start.")

    assert notes.put("release-notes-1.14.0", changed) is True
    assert notes.read("release-notes-1.14.0") == json.loads(changed)


def test_notes_iter_files(tmp_path):
    notes = RawReleaseNotesStore(tmp_path / "notes")
    notes.put("release-notes-1.15.0", NOTES)
    notes.put("release-notes-1.14.0", NOTES)

    names = [name for name, _ in notes.iter_files()]

    assert names == ["release-notes-1.14.0", "release-notes-1.15.0"]


def test_notes_empty_store(tmp_path):
    assert RawReleaseNotesStore(tmp_path / "missing").names() == []


def test_index_matches_full_scan(tmp_path):
    store = RawIssueStore(tmp_path)
    items = [{"id": n, "number": n, "updated_at": f"2024-01-{n % 28 + 1:02d}T00:00:00Z"} for n in range(1, 2_500)]
    store.upsert(items)
    scanned = list(store.iter_items())
    assert store.count() == len(scanned)
    assert store.newest_updated_at() == max(datetime.fromisoformat(i["updated_at"]) for i in scanned)
    assert (tmp_path / "index.json").exists()


def test_stale_index_entry_recomputed(tmp_path):
    """A shard rewritten without its index entry (a crash between the two) is counted correctly."""
    store = RawIssueStore(tmp_path)
    store.upsert([{"id": 1, "number": 1, "updated_at": "2024-01-01T00:00:00Z"}])
    stale_index = (tmp_path / "index.json").read_bytes()
    store.upsert([{"id": 2, "number": 2, "updated_at": "2025-06-01T00:00:00Z"}])
    (tmp_path / "index.json").write_bytes(stale_index)
    assert store.count() == 2
    assert store.newest_updated_at() == datetime.fromisoformat("2025-06-01T00:00:00Z")
