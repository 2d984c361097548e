"""The ``release_notes`` table: one labelled note per pull request, from two sources.

``github`` rows come from exported pull requests whose body holds a real release note;
their ``kinds``, ``sigs`` and ``areas`` come from the PR's labels. ``release-notes`` rows
come from the published release-notes files. When both sources have a PR, the published
row is kept: the release team edited its text and its labels are those at release time.
The ``sources`` column lists every source that had the PR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from k8s_analysis.parsing.release_note import is_none_like
from k8s_analysis.sources.release_notes import ReleaseVersion, version_from_name
from k8s_analysis.tables.items import TIMESTAMP

SOURCE_GITHUB = "github"
SOURCE_PUBLISHED = "release-notes"
BUG_KIND = "bug"

RELEASE_NOTES_SCHEMA = pa.schema(
    [
        pa.field("pr_number", pa.int64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("kinds", pa.list_(pa.string())),
        pa.field("sigs", pa.list_(pa.string())),
        pa.field("areas", pa.list_(pa.string())),
        pa.field("is_bug", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("sources", pa.list_(pa.string())),
        pa.field("created_at", TIMESTAMP),
        pa.field("merged_at", TIMESTAMP),
        pa.field("release_version", pa.string()),
        pa.field("author", pa.string()),
    ]
)


def labels_in_group(labels: Iterable[str], group: str) -> list[str]:
    prefix = f"{group}/"
    return sorted(label[len(prefix):] for label in labels if label.startswith(prefix))


def github_note_rows(pull_requests: pd.DataFrame) -> list[dict]:
    """Rows for exported pull requests whose body holds a real release note."""
    rows = []
    with_note = pull_requests[pull_requests["release_note_status"] == "note"]
    for pr in with_note.itertuples(index=False):
        labels = list(pr.labels)
        kinds = labels_in_group(labels, "kind")
        rows.append({
            "pr_number": pr.number,
            "text": pr.release_note,
            "kinds": kinds,
            "sigs": labels_in_group(labels, "sig"),
            "areas": labels_in_group(labels, "area"),
            "is_bug": BUG_KIND in kinds,
            "source": SOURCE_GITHUB,
            "created_at": _python_time(pr.created_at),
            "merged_at": _python_time(pr.merged_at),
            "release_version": None,
            "author": pr.user_login,
        })
    return rows


@dataclass(frozen=True)
class PublishedFile:
    name: str
    version: ReleaseVersion | None
    entries: dict


def select_published_files(files: Iterable[tuple[str, dict]], include_all_releases: bool) -> list[PublishedFile]:
    """Sort files by release, keeping only x.y.0 releases and drafts unless ``include_all_releases``.

    A minor release lists each change once. Patch releases repeat cherry-picked notes under
    new PR numbers and pre-releases repeat notes that the minor release lists again, so both
    would only add duplicate texts. Files without a version in their name sort last.
    """
    chosen = []
    for name, entries in files:
        version = version_from_name(name)
        if include_all_releases or version is None or version.is_minor_release:
            chosen.append(PublishedFile(name, version, entries))
    return sorted(chosen, key=lambda f: (f.version is None, f.version or ReleaseVersion(0, 0, 0, True, ""), f.name))


def published_note_rows(files: list[PublishedFile]) -> list[dict]:
    """Build one row per PR from the first release that lists it, skipping do_not_publish entries."""
    rows: dict[int, dict] = {}
    for file in files:
        for key, entry in file.entries.items():
            number = int(entry.get("pr_number") or key)
            text = (entry.get("text") or "").replace("\r\n", "\n").strip()
            if number in rows or entry.get("do_not_publish") or not text or is_none_like(text):
                continue
            kinds = sorted(entry.get("kinds") or [])
            version = file.version or entry.get("release_version")
            rows[number] = {
                "pr_number": number,
                "text": text,
                "kinds": kinds,
                "sigs": sorted(entry.get("sigs") or []),
                "areas": sorted(entry.get("areas") or []),
                "is_bug": BUG_KIND in kinds,
                "source": SOURCE_PUBLISHED,
                "created_at": None,
                "merged_at": None,
                "release_version": str(version) if version else None,
                "author": entry.get("author"),
            }
    return list(rows.values())


def build_release_notes(
    pull_requests: pd.DataFrame,
    published_files: Iterable[tuple[str, dict]],
    include_all_releases: bool = False,
) -> pd.DataFrame:
    github = {row["pr_number"]: row for row in github_note_rows(pull_requests)}
    published = {row["pr_number"]: row for row in published_note_rows(
        select_published_files(published_files, include_all_releases))}
    rows = []
    for number in sorted(github.keys() | published.keys()):
        row = dict(published.get(number) or github[number])
        sources = [name for name, table in ((SOURCE_GITHUB, github), (SOURCE_PUBLISHED, published)) if number in table]
        row["sources"] = sources
        if number in github and number in published:
            row["created_at"] = github[number]["created_at"]
            row["merged_at"] = github[number]["merged_at"]
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=RELEASE_NOTES_SCHEMA).to_pandas()


def _python_time(value: object) -> object:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()
