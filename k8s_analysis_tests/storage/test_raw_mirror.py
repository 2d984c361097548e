"""The raw store's mirror in object storage, on fsspec's memory:// file system and real pull requests."""

import hashlib
import json
import logging
import shutil

import dagster as dg
import pytest

from k8s_analysis.assets.raw import raw_issues, raw_release_notes
from k8s_analysis.export.state import ExportBusyError, exclusive_writer
from k8s_analysis.importer import import_paths
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_mirror import (ISSUES, MANIFEST_FILE, OBJECTS_FOLDER, RELEASE_NOTES, RawMirrorError,
                                     mirror_part, part_files, part_root, read_manifest, restore_part)
from k8s_analysis.raw_store import RawIssueStore
from k8s_analysis_tests.assets.test_definitions import materialization_metadata, resources_for
from k8s_analysis_tests.shared_data import shared_path

EXPORT_STATE = {"repository": "kubernetes/kubernetes", "checkpoint": {"mode": "delta", "page": 3}}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A data directory with the 744 pull requests and the published release notes imported."""
    root = tmp_path_factory.mktemp("imported")
    layout = DataLayout(root, storage=None)
    import_paths([shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz"),
                  shared_path("data", "release-notes")], layout)
    layout.export_state_path.write_text(json.dumps(EXPORT_STATE))
    return root


@pytest.fixture
def source(imported, tmp_path, memory_storage):
    """A copy of the imported data directory that mirrors to the test's memory:// root."""
    root = tmp_path / "source"
    shutil.copytree(imported, root)
    return DataLayout(root)


def local_files(layout: DataLayout, part: str) -> dict[str, bytes]:
    return {path.relative_to(layout.raw_dir).as_posix(): path.read_bytes() for path in part_files(layout, part)}


def stored_objects(layout: DataLayout, part: str) -> set[str]:
    objects = part_root(layout.storage, part) / OBJECTS_FOLDER
    objects.fs.invalidate_cache()
    return {path.rsplit("/", 1)[1] for path in objects.fs.ls(objects.path, detail=False)}


def test_mirror_without_storage(imported):
    layout = DataLayout(imported, storage=None)

    assert mirror_part(layout, ISSUES) is None
    assert restore_part(layout, ISSUES) is None


def test_mirror_restores_both_parts(source, tmp_path):
    for part in (ISSUES, RELEASE_NOTES):
        stats = mirror_part(source, part)
        assert stats.files == len(part_files(source, part))
        assert stats.uploaded == len({hashlib.sha256(data).digest() for data in local_files(source, part).values()})
        assert stats.deleted == 0
    target = DataLayout(tmp_path / "new-volume")

    restored = {part: restore_part(target, part) for part in (ISSUES, RELEASE_NOTES)}

    for part in (ISSUES, RELEASE_NOTES):
        assert restored[part] == len(part_files(source, part))
        assert local_files(target, part) == local_files(source, part)
    assert RawIssueStore(target.raw_issues_dir).count() == 744
    assert json.loads(target.export_state_path.read_text()) == EXPORT_STATE
    # A second restore finds the files in place and leaves them alone.
    assert restore_part(target, ISSUES) is None


def test_mirror_manifest_lists_digests(source):
    mirror_part(source, ISSUES)

    manifest = read_manifest(part_root(source.storage, ISSUES))

    assert manifest["part"] == ISSUES
    assert set(manifest["files"]) == set(local_files(source, ISSUES))
    assert "export-state.json" in manifest["files"]
    assert "issues/index.json" in manifest["files"]
    for relative, data in local_files(source, ISSUES).items():
        assert manifest["files"][relative] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_mirror_uploads_only_changes(source):
    first = mirror_part(source, ISSUES)
    assert mirror_part(source, ISSUES).uploaded == 0
    store = RawIssueStore(source.raw_issues_dir)
    item = next(store.iter_items())
    old_objects = stored_objects(source, ISSUES)

    store.upsert([{**item, "title": item["title"] + " (edited)", "updated_at": "2099-01-01T00:00:00Z"}])
    stats = mirror_part(source, ISSUES)

    # The edited item's shard and the store's index changed; the objects of their old contents go.
    assert (stats.files, stats.uploaded, stats.deleted) == (first.files, 2, 2)
    assert len(stored_objects(source, ISSUES) - old_objects) == 2
    assert len(stored_objects(source, ISSUES)) == len(old_objects)


def test_mirror_interrupted_keeps_previous(source, tmp_path, monkeypatch):
    mirror_part(source, ISSUES)
    before = local_files(source, ISSUES)
    store = RawIssueStore(source.raw_issues_dir)
    store.upsert([{**item, "body": "rewritten", "updated_at": "2099-01-01T00:00:00Z"}
                  for item in list(store.iter_items())[::50]])
    fs = part_root(source.storage, ISSUES).fs
    real_pipe = fs.pipe_file
    calls = []

    def failing_pipe(path, data, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise ConnectionError("connection reset by the storage server")
        return real_pipe(path, data, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(ConnectionError):
        patch.setattr(fs, "pipe_file", failing_pipe)
        mirror_part(source, ISSUES)
    assert len(calls) == 3

    # The manifest and its objects are still the first mirror's: a restore gives those files.
    target = DataLayout(tmp_path / "new-volume")
    restore_part(target, ISSUES)
    assert local_files(target, ISSUES) == before
    assert local_files(source, ISSUES) != before


def test_mirror_refuses_to_drop_files(source, tmp_path):
    mirror_part(source, ISSUES)
    manifest_before = read_manifest(part_root(source.storage, ISSUES))
    shards = sorted(source.raw_issues_dir.glob("*.jsonl.zst"))
    for shard in shards[:4]:
        shard.unlink()

    with pytest.raises(RawMirrorError) as raised:
        mirror_part(source, ISSUES)

    message = str(raised.value)
    assert "the local raw store lacks 4 file(s)" in message
    assert f"issues/{shards[0].name}" in message
    assert "and 1 more" in message
    assert f"empty {source.raw_issues_dir} and run again" in message
    assert read_manifest(part_root(source.storage, ISSUES)) == manifest_before


def test_mirror_shrinks_without_manifest(source):
    # Deleting the manifest is how a user accepts a smaller store on purpose.
    mirror_part(source, ISSUES)
    removed = sorted(source.raw_issues_dir.glob("*.jsonl.zst"))[:2]
    removed_digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in removed}
    for shard in removed:
        shard.unlink()
    manifest = part_root(source.storage, ISSUES) / MANIFEST_FILE
    manifest.fs.rm_file(manifest.path)

    stats = mirror_part(source, ISSUES)

    assert stats.files == len(part_files(source, ISSUES))
    assert set(read_manifest(part_root(source.storage, ISSUES))["files"]) == set(local_files(source, ISSUES))
    assert not removed_digests & stored_objects(source, ISSUES)


def test_mirror_follows_export_journal(source, tmp_path):
    # An interrupted export leaves journal pages and seen ids, which travel with the shards.
    # A later mirror drops them once the export has merged and deleted them.
    journal = source.raw_dir / "export-journal" / "segment-000001.jsonl"
    journal.parent.mkdir()
    journal.write_text('{"id": 1, "number": 1}\n')
    seen = source.raw_dir / "export-seen-ids.txt"
    seen.write_text("1\n2\n")
    mirror_part(source, ISSUES)
    target = DataLayout(tmp_path / "new-volume")
    restore_part(target, ISSUES)
    assert (target.raw_dir / "export-journal" / "segment-000001.jsonl").read_text() == journal.read_text()
    assert (target.raw_dir / "export-seen-ids.txt").read_text() == "1\n2\n"

    journal.unlink()
    seen.unlink()
    stats = mirror_part(source, ISSUES)

    files = read_manifest(part_root(source.storage, ISSUES))["files"]
    assert "export-journal/segment-000001.jsonl" not in files
    assert "export-seen-ids.txt" not in files
    assert stats.deleted == 2


def test_restore_skips_filled_folder(source, tmp_path):
    mirror_part(source, RELEASE_NOTES)
    target = DataLayout(tmp_path / "volume")
    target.raw_release_notes_dir.mkdir(parents=True)
    (target.raw_release_notes_dir / "local.md.zst").write_bytes(b"local")

    assert restore_part(target, RELEASE_NOTES) is None
    assert [path.name for path in target.raw_release_notes_dir.iterdir()] == ["local.md.zst"]


def test_restore_ignores_export_state_alone(source, tmp_path):
    # A checkpoint without shards is no raw store: the shards come back from the mirror.
    mirror_part(source, ISSUES)
    target = DataLayout(tmp_path / "volume")
    target.raw_dir.mkdir(parents=True)
    target.export_state_path.write_text("{}")
    # An interrupted write leaves a hidden temporary file, which contains no data.
    target.raw_issues_dir.mkdir()
    (target.raw_issues_dir / ".tmp-000001.jsonl.zst.abc").write_bytes(b"partial")

    assert restore_part(target, ISSUES) == len(part_files(source, ISSUES))
    assert json.loads(target.export_state_path.read_text()) == EXPORT_STATE
    assert local_files(target, ISSUES) == local_files(source, ISSUES)
    assert not list(target.raw_issues_dir.glob(".tmp-*"))


def test_restore_without_mirror(memory_storage, tmp_path):
    assert restore_part(DataLayout(tmp_path), ISSUES) is None


def test_restore_corrupt_object(source, tmp_path):
    mirror_part(source, RELEASE_NOTES)
    root = part_root(source.storage, RELEASE_NOTES)
    name, entry = sorted(read_manifest(root)["files"].items())[0]
    damaged = root / OBJECTS_FOLDER / entry["sha256"]
    damaged.fs.pipe_file(damaged.path, b"damaged")

    target = DataLayout(tmp_path / "volume")

    with pytest.raises(RawMirrorError) as raised:
        restore_part(target, RELEASE_NOTES)

    assert f"{damaged} does not match its digest" in str(raised.value)
    assert f"(for {name})" in str(raised.value)
    # Nothing half restored: no data file and no staging folder is left.
    assert part_files(target, RELEASE_NOTES) == []
    assert list(target.raw_dir.iterdir()) == []
    # Once the object is right again, the next restore writes every file.
    release_notes = local_files(source, RELEASE_NOTES)
    damaged.fs.pipe_file(damaged.path, release_notes[name])
    assert restore_part(target, RELEASE_NOTES) == len(release_notes)
    assert local_files(target, RELEASE_NOTES) == release_notes


def test_restore_missing_object(source, tmp_path):
    mirror_part(source, RELEASE_NOTES)
    root = part_root(source.storage, RELEASE_NOTES)
    entry = sorted(read_manifest(root)["files"].values(), key=lambda entry: entry["sha256"])[0]
    missing = root / OBJECTS_FOLDER / entry["sha256"]
    missing.fs.rm_file(missing.path)

    with pytest.raises(RawMirrorError) as raised:
        restore_part(DataLayout(tmp_path / "volume"), RELEASE_NOTES)

    assert f"{missing} (for " in str(raised.value)
    assert "is missing from the raw mirror" in str(raised.value)


@pytest.mark.parametrize(("manifest", "expected"), [
    (b"{not json", "is not valid JSON"),
    (b'{"format": 1, "files": []}', 'is not a format-1 raw mirror manifest with a "files" object'),
    (b'{"format": 2, "files": {}}', "is not a format-1 raw mirror manifest"),
    (b'["issues/000001.jsonl.zst"]', "is not a format-1 raw mirror manifest"),
    (b'{"format": 1, "files": {"../../etc/cron.d/job": {"sha256": "00"}}}', "which is not a path under data/raw/"),
    (b'{"format": 1, "files": {"/etc/passwd": {"sha256": "00"}}}', "which is not a path under data/raw/"),
])
def test_restore_rejects_bad_manifest(memory_storage, tmp_path, manifest, expected):
    layout = DataLayout(tmp_path / "volume")
    path = part_root(layout.storage, ISSUES) / MANIFEST_FILE
    path.fs.pipe_file(path.path, manifest)

    with pytest.raises(RawMirrorError) as raised:
        restore_part(layout, ISSUES)

    assert expected in str(raised.value)
    assert part_files(layout, ISSUES) == []


def test_mirror_busy_store(source):
    with exclusive_writer(source.raw_lock_path, "export of kubernetes/kubernetes"):
        with pytest.raises(ExportBusyError) as raised:
            mirror_part(source, ISSUES)
    assert "export of kubernetes/kubernetes" in str(raised.value)
    # Release-notes files are written atomically one by one, so their mirror takes no lock.
    with exclusive_writer(source.raw_lock_path, "export of kubernetes/kubernetes"):
        assert mirror_part(source, RELEASE_NOTES).files > 0


def test_mirror_logs_progress(source, caplog):
    caplog.set_level(logging.INFO, logger="k8s_analysis.raw_mirror")

    stats = mirror_part(source, ISSUES)

    assert f"mirrored raw/issues to {part_root(source.storage, ISSUES)}: {stats.files} files" in caplog.text


# -- through the assets -------------------------------------------------------------------------


def test_assets_restore_then_mirror(source, tmp_path):
    mirror_part(source, ISSUES)
    mirror_part(source, RELEASE_NOTES)
    volume = tmp_path / "new-volume"

    # No source is configured, so the assets only restore, report and mirror what they find.
    result = dg.materialize([raw_issues, raw_release_notes], resources=resources_for(volume))

    issues = materialization_metadata(result, "raw_issues")
    notes = materialization_metadata(result, "raw_release_notes")
    assert issues["restored_files"] == len(part_files(source, ISSUES))
    assert issues["stored_items"] == 744
    assert (issues["mirror_files"], issues["mirror_uploaded"], issues["mirror_deleted"]) == (
        len(part_files(source, ISSUES)), 0, 0)
    assert issues["mirror"] == str(part_root(source.storage, ISSUES))
    assert notes["restored_files"] == notes["stored_files"] == len(part_files(source, RELEASE_NOTES))
    assert local_files(DataLayout(volume), ISSUES) == local_files(source, ISSUES)


def test_asset_skips_busy_mirror(source):
    with exclusive_writer(source.raw_lock_path, "k8s-analysis import"):
        result = dg.materialize([raw_issues], resources=resources_for(source.root))

    metadata = materialization_metadata(result, "raw_issues")
    assert metadata["mirror"] == "skipped: another writer held the raw store"
    assert metadata["stored_items"] == 744
    assert read_manifest(part_root(source.storage, ISSUES)) is None
