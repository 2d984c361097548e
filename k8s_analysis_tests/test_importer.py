"""Tests for the import command's core: detecting, checking and storing recorded exports."""

import gzip
import json
import lzma
import tarfile

import pytest

from k8s_analysis.importer import import_paths
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_store import RawIssueStore, RawReleaseNotesStore
from k8s_analysis.sources.archive import ExportReadError
from k8s_analysis_tests.shared_data import shared_path

REAL_PRS_ARCHIVE = ("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
RELEASE_NOTES = ("data", "release-notes")
SMALL_NOTES_FOLDER = ("data", "release-notes", "kubernetes-sig-release")
SAMPLE_SIZE = 50


def count_json_files(folder):
    return sum(1 for path in folder.rglob("*.json") if path.is_file())


def count_archive_items(path):
    with tarfile.open(path, mode="r:xz") as tar:
        return len(json.load(tar.extractfile("api.json")))


def snapshot_files(root):
    """Map each file under ``root`` to its bytes and modification time in nanoseconds."""
    return {
        path.relative_to(root): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def stored_files(layout):
    raw = layout.root / "raw"
    return sorted(path for path in raw.rglob("*") if path.is_file()) if raw.exists() else []


@pytest.fixture(scope="module")
def sample_items():
    with tarfile.open(shared_path(*REAL_PRS_ARCHIVE), mode="r:xz") as tar:
        return json.load(tar.extractfile("api.json"))[:SAMPLE_SIZE]


@pytest.fixture
def small_export(tmp_path, sample_items):
    path = tmp_path / "exports" / "issues.json"
    path.parent.mkdir()
    path.write_text(json.dumps(sample_items), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Full import of the real data.


@pytest.fixture(scope="module")
def real_import(tmp_path_factory):
    """Import the real archive and release notes twice, snapshotting the store in between."""
    archive = shared_path(*REAL_PRS_ARCHIVE)
    notes_folder = shared_path(*RELEASE_NOTES)
    layout = DataLayout(tmp_path_factory.mktemp("data"))

    first = import_paths([archive, notes_folder], layout)
    before = snapshot_files(layout.raw_dir)
    second = import_paths([archive, notes_folder], layout)
    after = snapshot_files(layout.raw_dir)
    return {
        "layout": layout,
        "first": first,
        "second": second,
        "before": before,
        "after": after,
        "item_count": count_archive_items(archive),
        "notes_count": count_json_files(notes_folder),
    }


def test_import_stores_all_items(real_import):
    report = real_import["first"]
    store = RawIssueStore(real_import["layout"].raw_issues_dir)

    assert real_import["item_count"] == 744
    assert report.issues.inserted == 744
    assert report.issues.updated == 0
    assert report.issues.unchanged == 0
    assert store.count() == 744
    assert len({item["id"] for item in store.iter_items()}) == 744


def test_import_stores_all_notes(real_import):
    report = real_import["first"]
    store = RawReleaseNotesStore(real_import["layout"].raw_release_notes_dir)

    assert real_import["notes_count"] == 190
    assert report.release_note_files_written == 190
    assert report.release_note_files_unchanged == 0
    assert len(store.names()) == 190


def test_import_keeps_note_bytes(real_import):
    path = shared_path(*RELEASE_NOTES, "kubernetes-sigs-release-notes", "release-notes-1.14.0.json")
    store = RawReleaseNotesStore(real_import["layout"].raw_release_notes_dir)

    assert store.read("release-notes-1.14.0") == json.loads(path.read_bytes())


def test_reimport_reports_no_change(real_import):
    report = real_import["second"]

    assert report.issues.inserted == 0
    assert report.issues.updated == 0
    assert report.issues.unchanged == 744
    assert report.issues.shards_written == 0
    assert report.release_note_files_written == 0
    assert report.release_note_files_unchanged == 190


def test_reimport_leaves_files_untouched(real_import):
    before = real_import["before"]
    after = real_import["after"]

    # The shards, the shard index and the 190 release-notes files.
    assert len(before) == real_import["first"].issues.shards_written + 1 + 190
    assert sorted(after) == sorted(before)
    assert [name for name in before if after[name][0] != before[name][0]] == []
    assert [name for name in before if after[name][1] != before[name][1]] == []


# ---------------------------------------------------------------------------
# A bad path stops the import before anything is written.


def make_missing(folder, sample_items):
    return folder / "no-such-export.json"


def make_garbage(folder, sample_items):
    path = folder / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def make_truncated_xz(folder, sample_items):
    data = lzma.compress(json.dumps(sample_items).encode("utf-8"))
    path = folder / "truncated.json.xz"
    path.write_bytes(data[: len(data) // 2])
    return path


def make_short_xz(folder, sample_items):
    path = folder / "short.json.xz"
    path.write_bytes(lzma.compress(json.dumps(sample_items).encode("utf-8"))[:40])
    return path


def make_text_id(folder, sample_items):
    path = folder / "text-id.json"
    path.write_text(json.dumps([*sample_items[:2], dict(sample_items[2], id="abc")]), encoding="utf-8")
    return path


def make_bad_notes_folder(folder, sample_items):
    notes = folder / "notes"
    notes.mkdir()
    (notes / "release-notes-1.14.0.json").write_text(json.dumps(["not", "notes"]), encoding="utf-8")
    return notes


BAD_PATH_MAKERS = [
    make_missing,
    make_garbage,
    make_truncated_xz,
    make_short_xz,
    make_text_id,
    make_bad_notes_folder,
]


@pytest.mark.parametrize("bad_first", [False, True], ids=["good-first", "bad-first"])
@pytest.mark.parametrize("make_bad", BAD_PATH_MAKERS, ids=lambda maker: maker.__name__.removeprefix("make_"))
def test_bad_path_imports_nothing(tmp_path, small_export, sample_items, make_bad, bad_first):
    bad = make_bad(tmp_path, sample_items)
    notes_folder = shared_path(*SMALL_NOTES_FOLDER)
    paths = [bad, small_export, notes_folder] if bad_first else [small_export, notes_folder, bad]
    layout = DataLayout(tmp_path / "data")

    with pytest.raises(ExportReadError) as caught:
        import_paths(paths, layout)

    assert str(bad) in str(caught.value)
    assert stored_files(layout) == []


def test_text_id_names_item(tmp_path, sample_items):
    bad = make_text_id(tmp_path, sample_items)

    with pytest.raises(ExportReadError) as caught:
        import_paths([bad], DataLayout(tmp_path / "data"))

    assert "item 3" in str(caught.value)
    assert "'id'" in str(caught.value)


# ---------------------------------------------------------------------------
# What each file is detected as.


@pytest.mark.parametrize("compress", [None, gzip.compress], ids=["plain", "gzip"])
def test_json_lines_detected_as_issues(tmp_path, sample_items, compress):
    data = "".join(json.dumps(item) + "\n" for item in sample_items).encode("utf-8")
    path = tmp_path / "issues.jsonl"
    path.write_bytes(compress(data) if compress else data)
    layout = DataLayout(tmp_path / "data")

    report = import_paths([path], layout)

    assert report.issues.inserted == len(sample_items)
    assert report.release_note_files_written == 0
    assert RawIssueStore(layout.raw_issues_dir).count() == len(sample_items)
    assert RawReleaseNotesStore(layout.raw_release_notes_dir).names() == []


def test_json_list_detected_as_issues(tmp_path, small_export, sample_items):
    layout = DataLayout(tmp_path / "data")

    report = import_paths([small_export], layout)

    assert report.issues.inserted == len(sample_items)
    assert report.release_note_files_written == 0


@pytest.mark.parametrize("file_name", ["release-notes-1.14.0.json", "release-notes-1.16.10.json"])
def test_notes_file_detected_as_notes(tmp_path, file_name):
    path = shared_path(*RELEASE_NOTES, "kubernetes-sigs-release-notes", file_name)
    layout = DataLayout(tmp_path / "data")

    report = import_paths([path], layout)
    store = RawReleaseNotesStore(layout.raw_release_notes_dir)

    assert report.release_note_files_written == 1
    assert report.issues.received == 0
    assert store.names() == [path.name.removesuffix(".json")]
    assert store.read(path.name.removesuffix(".json")) == json.loads(path.read_bytes())
    assert not layout.raw_issues_dir.exists()


def test_one_line_notes_file_detected_as_notes(tmp_path):
    source = shared_path(*RELEASE_NOTES, "kubernetes-sigs-release-notes", "release-notes-1.14.0.json")
    path = tmp_path / source.name
    path.write_text(json.dumps(json.loads(source.read_bytes())), encoding="utf-8")
    layout = DataLayout(tmp_path / "data")

    report = import_paths([path], layout)

    assert report.release_note_files_written == 1
    assert report.issues.received == 0
