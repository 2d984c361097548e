"""Tests for published release-notes files: versions in names, reading, and folder walks."""

import json

import pytest

from k8s_analysis.sources.archive import ExportReadError
from k8s_analysis.sources.release_notes import (
    ReleaseNotesFile,
    ReleaseNotesSource,
    ReleaseVersion,
    version_from_name,
)
from k8s_analysis_tests.shared_data import shared_path

RELEASE_NOTES = ("data", "release-notes")
SIGS_FOLDER = "kubernetes-sigs-release-notes"
SIG_RELEASE_FOLDER = "kubernetes-sig-release"
# The data README lists 177 website files and 13 release-team drafts (1.20 to 1.32).
DOCUMENTED_FILE_COUNTS = {SIGS_FOLDER: 177, SIG_RELEASE_FOLDER: 13}


# ---------------------------------------------------------------------------
# version_from_name


@pytest.mark.parametrize(
    "name,expected",
    [
        ("release-notes-1.14.0", ReleaseVersion(1, 14, 0, True, "")),
        ("release-notes-1.22.0-alpha.1", ReleaseVersion(1, 22, 0, False, "alpha.1")),
        ("release-notes-draft-1.32", ReleaseVersion(1, 32, 0, True, "")),
        ("release-notes-1.16.10", ReleaseVersion(1, 16, 10, True, "")),
        ("release-notes-1.28.0-rc.1.json", ReleaseVersion(1, 28, 0, False, "rc.1")),
        ("notes/release-notes-1.14.0.json", ReleaseVersion(1, 14, 0, True, "")),
    ],
)
def test_version_from_name(name, expected):
    assert version_from_name(name) == expected


@pytest.mark.parametrize("name", ["release-notes", "release-notes.json", "changelog-1.14.0.md", "notes-latest.json"])
def test_version_from_name_without_version(name):
    assert version_from_name(name) is None


def test_version_text_form():
    assert str(version_from_name("release-notes-1.22.0-alpha.1")) == "1.22.0-alpha.1"
    assert str(version_from_name("release-notes-1.16.10")) == "1.16.10"
    assert str(version_from_name("release-notes-draft-1.32")) == "1.32.0"


def test_version_order_alpha_final_patch():
    alpha = version_from_name("release-notes-1.22.0-alpha.1")
    beta = version_from_name("release-notes-1.22.0-beta.0")
    final = version_from_name("release-notes-1.22.0")
    patch = version_from_name("release-notes-1.22.1")
    next_minor = version_from_name("release-notes-1.23.0-alpha.1")

    assert alpha < beta
    assert beta < final
    assert final < patch
    assert patch < next_minor
    assert sorted([patch, next_minor, final, alpha, beta]) == [alpha, beta, final, patch, next_minor]


def test_version_order_minor_numeric():
    assert version_from_name("release-notes-1.9.0") < version_from_name("release-notes-1.14.0")
    assert version_from_name("release-notes-1.16.2") < version_from_name("release-notes-1.16.10")


@pytest.mark.parametrize(
    "name,expected",
    [
        ("release-notes-1.14.0", True),
        ("release-notes-draft-1.32", True),
        ("release-notes-1.22.0-alpha.1", False),
        ("release-notes-1.28.0-rc.1", False),
        ("release-notes-1.16.10", False),
    ],
)
def test_is_minor_release(name, expected):
    assert version_from_name(name).is_minor_release is expected


# ---------------------------------------------------------------------------
# ReleaseNotesFile.read


def test_read_real_file():
    path = shared_path(*RELEASE_NOTES, SIGS_FOLDER, "release-notes-1.14.0.json")

    notes = ReleaseNotesFile.read(path)

    assert notes.path == path
    assert notes.name == "release-notes-1.14.0"
    assert notes.content == path.read_bytes()
    assert json.loads(notes.content) == json.loads(path.read_text(encoding="utf-8"))


def test_read_rejects_json_list(tmp_path):
    path = tmp_path / "release-notes-1.14.0.json"
    path.write_text(json.dumps([{"text": "Fix a crash.", "kinds": ["bug"]}]), encoding="utf-8")

    with pytest.raises(ExportReadError) as caught:
        ReleaseNotesFile.read(path)

    assert str(path) in str(caught.value)
    assert "not a release-notes file" in str(caught.value)


def test_read_rejects_invalid_json(tmp_path):
    path = tmp_path / "release-notes-1.14.0.json"
    path.write_text('{"59176": {"text": "Fix a crash."', encoding="utf-8")

    with pytest.raises(ExportReadError) as caught:
        ReleaseNotesFile.read(path)

    assert str(path) in str(caught.value)
    assert "invalid JSON" in str(caught.value)


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"latest": {"text": "Fix a crash."}},
        {"59176": {"kinds": ["bug"]}},
        {"59176": "Fix a crash."},
    ],
)
def test_read_rejects_other_objects(tmp_path, document):
    path = tmp_path / "release-notes-1.14.0.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(ExportReadError) as caught:
        ReleaseNotesFile.read(path)

    assert str(path) in str(caught.value)


# ---------------------------------------------------------------------------
# ReleaseNotesSource


def test_source_reads_whole_folder():
    folder = shared_path(*RELEASE_NOTES)
    expected = sorted(path for path in folder.rglob("*.json") if path.is_file())

    files = list(ReleaseNotesSource(paths=[str(folder)]).iter_files())

    assert len(expected) == sum(DOCUMENTED_FILE_COUNTS.values())
    assert len(files) == len(expected)
    assert [file.path for file in files] == expected


@pytest.mark.parametrize("subfolder", list(DOCUMENTED_FILE_COUNTS))
def test_source_reads_each_subfolder(subfolder):
    folder = shared_path(*RELEASE_NOTES, subfolder)
    expected = sorted(folder.glob("release-notes-*.json"))

    files = list(ReleaseNotesSource(paths=[str(folder)]).iter_files())

    assert len(expected) == DOCUMENTED_FILE_COUNTS[subfolder]
    assert [file.path for file in files] == expected


def test_source_file_names_have_versions():
    folder = shared_path(*RELEASE_NOTES)

    names = [file.name for file in ReleaseNotesSource(paths=[str(folder)]).iter_files()]

    assert len(set(names)) == len(names)
    assert [name for name in names if version_from_name(name) is None] == []


def test_source_reads_single_file():
    path = shared_path(*RELEASE_NOTES, SIG_RELEASE_FOLDER, "release-notes-draft-1.32.json")
    source = ReleaseNotesSource(paths=[str(path)])

    files = list(source.iter_files())

    assert [file.path for file in files] == [path]
    assert source.is_configured()


def test_source_without_paths():
    source = ReleaseNotesSource()

    assert not source.is_configured()
    assert list(source.iter_files()) == []
