"""A copy of the raw store in object storage, so that losing the data volume loses no export.

Each part of the raw store is mirrored: ``issues`` (the shards, their index and the export's
state files) and ``release-notes``. A part goes under
``<storage>/raw/<part>/``: file contents as ``objects/<sha256>``, and ``manifest.json``, which
maps each file's path under ``data/raw/`` to its digest and size. A mirror uploads only the
contents that the last manifest lacks, then replaces the manifest in one PUT, then deletes
the objects that the new manifest does not name. An interrupted mirror therefore leaves the previous
manifest and every object it names in place. The two parts have their own prefixes because
their assets can run at the same time.

A restore runs when a part is missing locally (a new or emptied volume): it downloads the
files its manifest names, checks each digest, and writes each file atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from upath import UPath

from k8s_analysis import atomic
from k8s_analysis.export.state import exclusive_writer
from k8s_analysis.paths import DataLayout
from k8s_analysis.progress import Progress

logger = logging.getLogger(__name__)

RAW_FOLDER = "raw"
MANIFEST_FILE = "manifest.json"
OBJECTS_FOLDER = "objects"
ISSUES = "issues"
RELEASE_NOTES = "release-notes"
PARTS = (ISSUES, RELEASE_NOTES)
MANIFEST_FORMAT = 1


class RawMirrorError(RuntimeError):
    """The mirror in object storage cannot be read or does not match its manifest."""


@dataclass(frozen=True)
class MirrorStats:
    part: str
    files: int
    uploaded: int
    uploaded_bytes: int
    deleted: int

    def as_metadata(self) -> dict[str, int | str]:
        return {"mirror_files": self.files, "mirror_uploaded": self.uploaded,
                "mirror_uploaded_bytes": self.uploaded_bytes, "mirror_deleted": self.deleted}


def part_folder(layout: DataLayout, part: str) -> Path:
    return layout.raw_issues_dir if part == ISSUES else layout.raw_release_notes_dir


def part_files(layout: DataLayout, part: str) -> list[Path]:
    """List the local files of one part of the raw store; temporary files are left out."""
    if part != ISSUES:
        return sorted(_folder_files(part_folder(layout, part)))
    # The export's state (checkpoint, ETags, and the journal and seen ids of an unfinished
    # export) travels with the issues, so a restored store resumes where the lost volume left it.
    release_notes = part_folder(layout, RELEASE_NOTES)
    return sorted(path for path in _folder_files(layout.raw_dir) if release_notes not in path.parents)


def _folder_files(folder: Path) -> list[Path]:
    """List the files under ``folder``, leaving out hidden ones: temporary files and staged restores."""
    return [path for path in folder.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)]


def mirror_part(layout: DataLayout, part: str, log: logging.Logger | object = logger) -> MirrorStats | None:
    """Upload one part of the raw store to object storage; None without object storage.

    For the issues, the raw store's writer lock is held throughout, so that no import or export
    changes a shard half way through. ExportBusyError is raised when another writer has it.
    Release-notes files are each written atomically and need no lock.

    RawMirrorError is raised, and nothing changes, when the local part lacks a shard or
    release-notes file that the mirror has. The raw store never deletes those, so such a
    volume is older than the mirror, and mirroring it would drop data.
    """
    if layout.storage is None:
        return None
    root = part_root(layout.storage, part)
    with _writer_lock(layout, part, "mirror"):
        previous = read_manifest(root)
        files = part_files(layout, part)
        relative_paths = {path.relative_to(layout.raw_dir).as_posix(): path for path in files}
        if previous is not None:
            _check_nothing_lost(previous, relative_paths, root, part_folder(layout, part))
        known = {entry["sha256"] for entry in previous["files"].values()} if previous else set()
        entries: dict[str, dict] = {}
        uploaded = uploaded_bytes = 0
        progress = Progress(f"mirroring raw/{part}", log, total=len(files), quiet_below=100)
        for relative, path in relative_paths.items():
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            entries[relative] = {"sha256": digest, "size": len(data)}
            if digest not in known:
                target = root / OBJECTS_FOLDER / digest
                target.fs.pipe_file(target.path, data)
                known.add(digest)
                uploaded += 1
                uploaded_bytes += len(data)
            progress.advance()
        progress.finish()
        manifest = {"format": MANIFEST_FORMAT, "part": part, "written_at": datetime.now(UTC).isoformat(),
                    "files": entries}
        manifest_path = root / MANIFEST_FILE
        manifest_path.fs.pipe_file(manifest_path.path,
                                   (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        deleted = _delete_unnamed_objects(root, {entry["sha256"] for entry in entries.values()})
    log.info("mirrored raw/%s to %s: %d files, %d uploaded (%d bytes), %d unused objects deleted", part, root,
             len(entries), uploaded, uploaded_bytes, deleted)
    return MirrorStats(part, len(entries), uploaded, uploaded_bytes, deleted)


def restore_part(layout: DataLayout, part: str, log: logging.Logger | object = logger) -> int | None:
    """Download one part of the raw store when it has no local files; return the files written.

    Returns None without object storage, when the part's folder already has files, or with no
    mirror yet. Raises RawMirrorError when an object is missing or its digest differs from the
    manifest. The files are staged in a hidden folder and moved into place only when every one
    is verified, so a failed restore leaves the data folder empty, and the next run tries again.
    """
    if layout.storage is None or _folder_files(part_folder(layout, part)):
        return None
    root = part_root(layout.storage, part)
    manifest = read_manifest(root)
    if manifest is None:
        return None
    with _writer_lock(layout, part, "restore"):
        if _folder_files(part_folder(layout, part)):
            return None  # another process filled the folder while this one read the manifest
        entries = manifest["files"]
        layout.raw_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".restore-{part}-", dir=layout.raw_dir))
        try:
            progress = Progress(f"restoring raw/{part}", log, total=len(entries), quiet_below=100)
            for relative, entry in sorted(entries.items()):
                target = _local_target(staging, relative, root)
                data = _read_object(root / OBJECTS_FOLDER / entry["sha256"], relative)
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise RawMirrorError(
                        f"{root / OBJECTS_FOLDER / entry['sha256']} does not match its digest in "
                        f"{root / MANIFEST_FILE} (for {relative}); mirror the raw store again from a volume "
                        "that has it, or run a full export")
                atomic.write_bytes(target, data)
                progress.advance()
            progress.finish()
            _move_into_place(staging, layout.raw_dir, part_folder(layout, part).name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("restored raw/%s from %s: %d files (mirror written %s)", part, root, len(entries),
             manifest.get("written_at", "at an unknown time"))
    return len(entries)


def _move_into_place(staging: Path, raw_dir: Path, data_folder: str) -> None:
    """Move a verified restore from ``staging`` into ``raw_dir``, its data folder last and whole.

    The state files go first, one rename each. The data folder then replaces the empty one in
    a single rename, so a crash leaves either no data files or all of them, and a restore
    interrupted before that rename starts over at the next run.
    """
    for path in sorted(staging.rglob("*")):
        relative = path.relative_to(staging)
        if relative.parts[0] == data_folder or not path.is_file():
            continue
        target = raw_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    staged = staging / data_folder
    if not staged.is_dir():
        return
    target = raw_dir / data_folder
    # restore_part checked under the lock that this folder has no data files. Only empty
    # folders and temporary files of interrupted writes can be left in it.
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staged, target)


def read_manifest(root: UPath) -> dict | None:
    """Read a part's manifest; None when there is none. Raises RawMirrorError when it is malformed."""
    path = root / MANIFEST_FILE
    try:
        path.fs.invalidate_cache(root.path)
        data = path.fs.cat_file(path.path)
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise RawMirrorError(f"{path} is not valid JSON ({error}); mirror the raw store again") from None
    if not isinstance(manifest, dict):
        manifest = {}
    files = manifest.get("files")
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict) or not all(
            isinstance(entry, dict) and isinstance(entry.get("sha256"), str) for entry in files.values()):
        raise RawMirrorError(f"{path} is not a format-{MANIFEST_FORMAT} raw mirror manifest with a \"files\" "
                             "object; mirror the raw store again")
    return manifest


def _check_nothing_lost(previous: dict, local: dict[str, Path], root: UPath, folder: Path) -> None:
    # Only the part's own folder counts: the export deletes its journal segments and seen ids
    # once they are merged, but never a shard or a release-notes file.
    data_prefix = f"{folder.name}/"
    missing = sorted(name for name in set(previous["files"]) - set(local) if name.startswith(data_prefix))
    if missing:
        examples = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise RawMirrorError(
            f"the local raw store lacks {len(missing)} file(s) that {root / MANIFEST_FILE} names ({examples}), so "
            f"mirroring it would lose them; empty {folder} and run again to restore it from the mirror")


def _writer_lock(layout: DataLayout, part: str, purpose: str) -> contextlib.AbstractContextManager:
    if part != ISSUES:
        return contextlib.nullcontext()
    return exclusive_writer(layout.raw_lock_path, f"{purpose} of raw/{part}")


def part_root(storage: UPath, part: str) -> UPath:
    if part not in PARTS:
        raise ValueError(f"unknown raw store part {part!r}; expected one of {', '.join(PARTS)}")
    return storage / RAW_FOLDER / part


def _local_target(raw_dir: Path, relative: str, root: UPath) -> Path:
    """Map a manifest path to a file under ``raw_dir``, rejecting paths that leave it."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise RawMirrorError(f"{root / MANIFEST_FILE} names {relative!r}, which is not a path under data/raw/; "
                             "mirror the raw store again")
    return raw_dir.joinpath(*parts)


def _read_object(path: UPath, relative: str) -> bytes:
    try:
        return path.fs.cat_file(path.path)
    except FileNotFoundError:
        raise RawMirrorError(f"{path} (for {relative}) is missing from the raw mirror; mirror the raw store again "
                             "from a volume that has it, or run a full export") from None


def _delete_unnamed_objects(root: UPath, named: set[str]) -> int:
    objects = root / OBJECTS_FOLDER
    fs = objects.fs
    fs.invalidate_cache(objects.path)
    try:
        stored = fs.ls(objects.path, detail=False)
    except FileNotFoundError:
        return 0
    unnamed = [path for path in stored if PurePosixPath(path).name not in named]
    for path in unnamed:
        fs.rm_file(path)
    return len(unnamed)
