"""Tests for the release_notes table built from exported PRs and published release-notes files."""

import json
import re
import tarfile
from collections.abc import Iterable

import pandas as pd
import pytest

from k8s_analysis.parsing.release_note import STATUS_NOTE, is_none_like
from k8s_analysis.tables.items import build_item_tables
from k8s_analysis.tables.release_notes import (
    RELEASE_NOTES_SCHEMA,
    SOURCE_GITHUB,
    SOURCE_PUBLISHED,
    build_release_notes,
)
from k8s_analysis_tests.shared_data import shared_path

REAL_PRS_ARCHIVE = ("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
REAL_PRS_MEMBER = "api.json"
RELEASE_NOTES_FOLDER = ("data", "release-notes")

# Notes kept when only do_not_publish entries are dropped, counted on the published files
# from 1.14.0 to the 1.32 draft. The table also drops empty and NONE-like texts, so it has fewer.
PUBLISHED_AFTER_DO_NOT_PUBLISH = 5_569
# Share of kind/bug among the published notes, about 40% over 1.14-1.32.
BUG_SHARE_RANGE = (0.38, 0.43)

# release-notes-1.14.0, release-notes-1.22.0-alpha.1, release-notes-draft-1.32
FILE_VERSION = re.compile(r"release-notes-(draft-)?(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z.]+))?$")


def release_of(name: str) -> tuple[int, int, int, str] | None:
    """Return (major, minor, patch, pre-release) from a file name, or None without a version."""
    match = FILE_VERSION.search(name)
    if match is None:
        return None
    return int(match[2]), int(match[3]), int(match[4] or 0), match[5] or ""


def is_minor_file(name: str) -> bool:
    release = release_of(name)
    return release is not None and release[2] == 0 and release[3] == ""


def minor_files_in_order(files: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Keep x.y.0 and draft files, oldest release first, the x.y.0 file before the same draft."""
    chosen = [(name, entries) for name, entries in files if is_minor_file(name)]
    return sorted(chosen, key=lambda file: (release_of(file[0])[:3], file[0]))


def first_publishable_entries(files: Iterable[tuple[str, dict]], drop_text) -> dict[int, dict]:
    """Map each PR number to its first entry that is not do_not_publish and not dropped by text."""
    first_entries: dict[int, dict] = {}
    for _, entries in files:
        for key, entry in entries.items():
            number = int(entry.get("pr_number") or key)
            if number in first_entries or entry.get("do_not_publish"):
                continue
            if drop_text((entry.get("text") or "").strip()):
                continue
            first_entries[number] = entry
    return first_entries


def unusable_text(text: str) -> bool:
    return not text or is_none_like(text)


def keep_any_text(text: str) -> bool:
    return False


def strip_prefix(labels: Iterable[str], group: str) -> list[str]:
    prefix = f"{group}/"
    return sorted(label[len(prefix):] for label in labels if label.startswith(prefix))


def pull_request_item(number: int, body: str | None, labels: list[str]) -> dict:
    """Build an issues-endpoint object for a merged pull request."""
    return {
        "id": 7_000_000 + number,
        "number": number,
        "title": f"PR {number}",
        "state": "closed",
        "user": {"login": "author-a", "id": 42},
        "labels": [{"name": label} for label in labels],
        "body": body,
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-05T00:00:00Z",
        "closed_at": "2024-01-04T00:00:00Z",
        "pull_request": {"merged_at": "2024-01-04T00:00:00Z"},
    }


def published_entry(number: int, text: str, kinds: list[str], **flags) -> dict:
    return {"pr_number": number, "text": text, "kinds": kinds, "sigs": ["node"], "areas": [],
            "author": "author-b", **flags}


def note_body(text: str) -> str:
    return f"#### Release note\r\n```release-note\r\n{text}\r\n```\r\n"


@pytest.fixture(scope="module")
def real_pull_requests() -> pd.DataFrame:
    with tarfile.open(shared_path(*REAL_PRS_ARCHIVE)) as archive:
        member = archive.extractfile(REAL_PRS_MEMBER)
        assert member is not None, f"{REAL_PRS_MEMBER} is not a file in the archive"
        return build_item_tables(json.load(member)).pull_requests


@pytest.fixture(scope="module")
def published_files() -> list[tuple[str, dict]]:
    folder = shared_path(*RELEASE_NOTES_FOLDER)
    paths = sorted(path for path in folder.rglob("*.json") if path.name != "LICENSE")
    return [(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in paths]


@pytest.fixture(scope="module")
def notes(real_pull_requests, published_files) -> pd.DataFrame:
    return build_release_notes(real_pull_requests, published_files)


@pytest.fixture(scope="module")
def expected_published(published_files) -> dict[int, dict]:
    return first_publishable_entries(minor_files_in_order(published_files), unusable_text)


@pytest.fixture(scope="module")
def github_numbers(real_pull_requests) -> set[int]:
    with_note = real_pull_requests["release_note_status"] == STATUS_NOTE
    return set(real_pull_requests.loc[with_note, "number"].tolist())


# ---------------------------------------------------------------------------
# Real data: counts derived from the rules.


def test_published_count_after_do_not_publish(published_files):
    after_do_not_publish = first_publishable_entries(minor_files_in_order(published_files), keep_any_text)

    assert len(after_do_not_publish) == PUBLISHED_AFTER_DO_NOT_PUBLISH


def test_published_rows_match_rule(notes, expected_published):
    published = notes[notes["source"] == SOURCE_PUBLISHED]

    assert set(published["pr_number"]) == set(expected_published)
    assert len(published) == len(expected_published)


def test_published_texts_match_rule(notes, expected_published):
    published = notes[notes["source"] == SOURCE_PUBLISHED]

    found = dict(zip(published["pr_number"], published["text"], strict=True))

    assert found == {number: entry["text"].strip() for number, entry in expected_published.items()}


def test_published_kinds_match_rule(notes, expected_published):
    published = notes[notes["source"] == SOURCE_PUBLISHED]

    found = {number: list(kinds) for number, kinds in zip(published["pr_number"], published["kinds"], strict=True)}

    assert found == {number: sorted(entry.get("kinds") or []) for number, entry in expected_published.items()}


def test_dropped_texts_explain_difference(published_files, expected_published):
    after_do_not_publish = first_publishable_entries(minor_files_in_order(published_files), keep_any_text)

    dropped = {number: entry["text"] for number, entry in after_do_not_publish.items() if number not in expected_published}

    assert len(after_do_not_publish) - len(expected_published) == len(dropped)
    assert len(dropped) > 0
    for number, text in dropped.items():
        assert unusable_text(text.strip()), f"#{number} was dropped with text {text!r}"


def test_github_only_rows_match_rule(notes, github_numbers, expected_published):
    github_only = notes[notes["source"] == SOURCE_GITHUB]

    assert set(github_only["pr_number"]) == github_numbers - set(expected_published)


def test_total_rows_match_rule(notes, github_numbers, expected_published):
    assert len(notes) == len(github_numbers | set(expected_published))


def test_both_sources_rows(notes, github_numbers, expected_published):
    in_both = github_numbers & set(expected_published)

    both = notes[notes["pr_number"].isin(in_both)]

    assert len(both) == len(in_both)
    assert len(both) > 0
    assert (both["source"] == SOURCE_PUBLISHED).all()
    assert all(list(sources) == [SOURCE_GITHUB, SOURCE_PUBLISHED] for sources in both["sources"])
    assert both["created_at"].notna().all()
    assert both["merged_at"].notna().all()


def test_single_source_rows_list_one(notes):
    one_source = notes[notes["sources"].map(len) == 1]

    assert len(one_source) > 0
    for sources, source in zip(one_source["sources"], one_source["source"], strict=True):
        assert list(sources) == [source]


def test_bug_share_in_range(notes):
    published = notes[notes["source"] == SOURCE_PUBLISHED]

    share = published["is_bug"].mean()

    assert BUG_SHARE_RANGE[0] <= share <= BUG_SHARE_RANGE[1]


# ---------------------------------------------------------------------------
# Real data: properties of every row.


def test_pr_numbers_unique(notes):
    assert not notes["pr_number"].duplicated().any()


def test_texts_usable(notes):
    for number, text in zip(notes["pr_number"], notes["text"], strict=True):
        assert text.strip(), f"#{number} has an empty text"
        assert not is_none_like(text), f"#{number} has a NONE-like text {text!r}"


def test_is_bug_matches_kinds(notes):
    expected = [("bug" in kinds) for kinds in notes["kinds"]]

    assert notes["is_bug"].tolist() == expected


def test_source_values(notes):
    assert set(notes["source"]) == {SOURCE_GITHUB, SOURCE_PUBLISHED}


def test_columns_match_schema(notes):
    assert notes.columns.tolist() == RELEASE_NOTES_SCHEMA.names


def test_github_labels_from_pr(notes, real_pull_requests):
    labels_by_number = {number: list(labels) for number, labels in
                        zip(real_pull_requests["number"], real_pull_requests["labels"], strict=True)}
    github_rows = notes[notes["source"] == SOURCE_GITHUB]

    assert len(github_rows) > 0
    for row in github_rows.itertuples(index=False):
        labels = labels_by_number[row.pr_number]
        assert list(row.kinds) == strip_prefix(labels, "kind"), f"kinds of #{row.pr_number}"
        assert list(row.sigs) == strip_prefix(labels, "sig"), f"sigs of #{row.pr_number}"
        assert list(row.areas) == strip_prefix(labels, "area"), f"areas of #{row.pr_number}"


def test_github_rows_keep_pr_dates(notes, real_pull_requests):
    created_by_number = dict(zip(real_pull_requests["number"], real_pull_requests["created_at"], strict=True))
    github_rows = notes[notes["source"] == SOURCE_GITHUB]

    for number, created_at in zip(github_rows["pr_number"], github_rows["created_at"], strict=True):
        assert created_at == created_by_number[number], f"created_at of #{number}"


def test_all_releases_add_rows(notes, real_pull_requests, published_files):
    every_release = build_release_notes(real_pull_requests, published_files, include_all_releases=True)

    assert len(every_release) >= len(notes)
    assert set(notes["pr_number"]) <= set(every_release["pr_number"])
    assert not every_release["pr_number"].duplicated().any()


def test_all_releases_read_patch_files(notes, real_pull_requests, published_files):
    patch_files = [(name, entries) for name, entries in published_files if not is_minor_file(name)]
    every_release = build_release_notes(real_pull_requests, published_files, include_all_releases=True)
    only_in_patches = set(first_publishable_entries(patch_files, unusable_text)) - set(notes["pr_number"])

    assert len(patch_files) > 0
    assert len(only_in_patches) > 0
    assert only_in_patches <= set(every_release["pr_number"])


# ---------------------------------------------------------------------------
# Small hand-built cases.


def test_both_sources_keep_published():
    pull_requests = build_item_tables([pull_request_item(500, note_body("Text from the PR body."), ["kind/bug"])])
    files = [("release-notes-1.30.0", {"500": published_entry(500, "Edited text.", ["feature"])})]

    notes = build_release_notes(pull_requests.pull_requests, files)

    assert len(notes) == 1
    row = notes.iloc[0]
    assert row["text"] == "Edited text."
    assert row["source"] == SOURCE_PUBLISHED
    assert list(row["sources"]) == [SOURCE_GITHUB, SOURCE_PUBLISHED]
    assert list(row["kinds"]) == ["feature"]
    assert not row["is_bug"]
    assert row["created_at"] == pd.Timestamp("2024-01-02T03:04:05Z")
    assert row["merged_at"] == pd.Timestamp("2024-01-04T00:00:00Z")
    assert row["release_version"] == "1.30.0"


def test_github_row_from_labels():
    labels = ["kind/bug", "kind/regression", "sig/node", "area/kubelet", "lgtm"]
    pull_requests = build_item_tables([pull_request_item(501, note_body("Fixed a crash."), labels)])

    notes = build_release_notes(pull_requests.pull_requests, [])

    row = notes.iloc[0]
    assert row["text"] == "Fixed a crash."
    assert list(row["kinds"]) == ["bug", "regression"]
    assert list(row["sigs"]) == ["node"]
    assert list(row["areas"]) == ["kubelet"]
    assert row["is_bug"]
    assert list(row["sources"]) == [SOURCE_GITHUB]
    assert row["author"] == "author-a"
    assert pd.isna(row["release_version"])


def test_github_none_note_dropped():
    pull_requests = build_item_tables([pull_request_item(502, note_body("NONE"), ["kind/bug"])])

    notes = build_release_notes(pull_requests.pull_requests, [])

    assert len(notes) == 0


def test_do_not_publish_dropped():
    entries = {
        "600": published_entry(600, "Internal cleanup.", ["cleanup"], do_not_publish=True),
        "601": published_entry(601, "Fixed a leak.", ["bug"]),
    }

    notes = build_release_notes(build_item_tables([]).pull_requests, [("release-notes-1.30.0", entries)])

    assert notes["pr_number"].tolist() == [601]


@pytest.mark.parametrize("text", ["NONE", "None.", "n/a", "", "   ", None])
def test_unusable_text_dropped(text):
    entries = {"700": published_entry(700, text, ["bug"]), "701": published_entry(701, "Real note.", ["bug"])}

    notes = build_release_notes(build_item_tables([]).pull_requests, [("release-notes-1.30.0", entries)])

    assert notes["pr_number"].tolist() == [701]


def test_first_minor_release_wins():
    files = [
        ("release-notes-1.15.0", {"800": published_entry(800, "Text in 1.15.", ["bug"])}),
        ("release-notes-1.14.1", {"800": published_entry(800, "Text in the patch.", ["bug"])}),
        ("release-notes-1.14.0-beta.1", {"800": published_entry(800, "Text in the beta.", ["bug"])}),
        ("release-notes-1.14.0", {"800": published_entry(800, "Text in 1.14.", ["bug"])}),
    ]

    notes = build_release_notes(build_item_tables([]).pull_requests, files)

    assert notes["text"].tolist() == ["Text in 1.14."]
    assert notes["release_version"].tolist() == ["1.14.0"]


def test_patch_files_read_when_asked():
    files = [("release-notes-1.14.1", {"801": published_entry(801, "Patch-only note.", ["bug"])})]
    pull_requests = build_item_tables([]).pull_requests

    default = build_release_notes(pull_requests, files)
    every_release = build_release_notes(pull_requests, files, include_all_releases=True)

    assert len(default) == 0
    assert every_release["pr_number"].tolist() == [801]
    assert every_release["release_version"].tolist() == ["1.14.1"]


def test_file_without_version_read():
    entry = published_entry(900, "Note from an unnamed file.", ["bug"], release_version="1.31.0")
    files = [("my-exported-notes", {"900": entry})]

    notes = build_release_notes(build_item_tables([]).pull_requests, files)

    assert notes["pr_number"].tolist() == [900]
    assert notes["release_version"].tolist() == ["1.31.0"]


def test_versioned_file_before_unversioned():
    files = [
        ("my-exported-notes", {"901": published_entry(901, "Unversioned text.", ["bug"])}),
        ("release-notes-1.20.0", {"901": published_entry(901, "Versioned text.", ["bug"])}),
    ]

    notes = build_release_notes(build_item_tables([]).pull_requests, files)

    assert notes["text"].tolist() == ["Versioned text."]


def test_crlf_text_normalised():
    files = [("release-notes-1.30.0", {"902": published_entry(902, "First line.\r\nSecond line.\r\n", ["bug"])})]

    notes = build_release_notes(build_item_tables([]).pull_requests, files)

    assert notes["text"].tolist() == ["First line.\nSecond line."]


def test_pr_number_field_over_key():
    files = [("release-notes-1.32.0", {"12908": published_entry(129083, "Key and number differ.", ["bug"])})]

    notes = build_release_notes(build_item_tables([]).pull_requests, files)

    assert notes["pr_number"].tolist() == [129083]
