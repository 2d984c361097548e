"""``k8s-analysis import``: load recorded exports and release-notes folders into the raw store.

Every path is read and checked in full before anything is written, so a path that cannot
be read stops the import with nothing half-imported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from k8s_analysis.export.state import exclusive_writer
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_store import RawIssueStore, RawReleaseNotesStore, RawStoreError, UpsertStats, check_item
from k8s_analysis.sources.archive import (
    ExportReadError,
    IssueExport,
    export_read_errors,
    first_json_char,
    is_tar,
    open_decompressed,
    read_head,
)
from k8s_analysis.sources.release_notes import ReleaseNotesFile, find_release_note_files

logger = logging.getLogger(__name__)


@dataclass
class ImportPlan:
    """The exports and release-notes files an import writes, each read once and checked first."""

    exports: list[tuple[IssueExport, int]] = field(default_factory=list)
    release_note_files: list[ReleaseNotesFile] = field(default_factory=list)


@dataclass
class ImportReport:
    issues: UpsertStats = field(default_factory=UpsertStats)
    release_note_files_written: int = 0
    release_note_files_unchanged: int = 0


def is_jsonl_issue_line(line: bytes) -> bool:
    try:
        item = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(item, dict) and "id" in item and "number" in item


def holds_issue_export(path: Path) -> bool:
    """True for a tar archive, a JSON list, or JSON Lines whose first line is an issue object."""
    with export_read_errors(path):
        head = read_head(path)
        if is_tar(head) or first_json_char(head) == "[":
            return True
        if first_json_char(head) != "{":
            return False
        # One issue object often exceeds the head's few kilobytes, so read the whole line.
        with open_decompressed(path) as stream:
            return is_jsonl_issue_line(stream.readline())


def count_storable_items(export: IssueExport) -> int:
    """Read every item of ``export`` and check that the raw store can key it."""
    count = 0
    for count, item in enumerate(export.iter_items(), start=1):
        try:
            check_item(item)
        except RawStoreError as error:
            raise ExportReadError(export.path, f"item {count} cannot be stored ({error})",
                                  "Fix or drop that item and import again.") from error
    return count


def plan_path(path: Path, plan: ImportPlan) -> None:
    """Detect what ``path`` holds, read it in full, and add it to ``plan``."""
    if not path.exists():
        raise ExportReadError(path, "no such file or folder", "Check the path.")
    if path.is_dir():
        files = find_release_note_files(path)
        if not files:
            raise ExportReadError(path, "the folder contains no .json files",
                                  "Give a folder of published release-notes JSON files.")
        plan.release_note_files.extend(ReleaseNotesFile.read(file) for file in files)
        return
    if holds_issue_export(path):
        export = IssueExport(path)
        plan.exports.append((export, count_storable_items(export)))
        return
    try:
        plan.release_note_files.append(ReleaseNotesFile.read(path))
    except ExportReadError as error:
        raise ExportReadError(
            path,
            "it is neither an issues export (a JSON list or JSON Lines of issue objects, or a tar "
            f"holding api.json) nor a release-notes file ({error.problem})",
            "Give an export of the GitHub issues API or a published release-notes JSON file.",
        ) from error


def plan_import(paths: Iterable[Path]) -> ImportPlan:
    plan = ImportPlan()
    for path in paths:
        plan_path(Path(path), plan)
    return plan


def store_release_note_files(files: Iterable[ReleaseNotesFile], store: RawReleaseNotesStore) -> tuple[int, int]:
    """Store each file; return how many were written and how many were already stored."""
    written = unchanged = 0
    for file in files:
        if store.put(file.name, file.content):
            written += 1
        else:
            unchanged += 1
    return written, unchanged


def import_paths(paths: Iterable[Path], layout: DataLayout, log: logging.Logger = logger) -> ImportReport:
    plan = plan_import(paths)
    with exclusive_writer(layout.raw_lock_path, "k8s-analysis import"):
        return write_plan(plan, layout, log)


def write_plan(plan: ImportPlan, layout: DataLayout, log: logging.Logger) -> ImportReport:
    report = ImportReport()
    issue_store = RawIssueStore(layout.raw_issues_dir)
    for export, count in plan.exports:
        log.info("importing %s issue objects from %s", f"{count:,}", export.path)
        report.issues.add(issue_store.upsert(export.iter_items(), log=log))
    notes_store = RawReleaseNotesStore(layout.raw_release_notes_dir)
    written, unchanged = store_release_note_files(plan.release_note_files, notes_store)
    report.release_note_files_written = written
    report.release_note_files_unchanged = unchanged
    return report
