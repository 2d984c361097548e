"""Published Kubernetes release notes: JSON files of notes keyed by pull-request number.

The files come from the release-notes website data (``release-notes-1.14.0.json``) and the
release team's drafts (``release-notes-draft-1.32.json``). Each entry carries the note
``text`` and the pull request's ``kinds``, ``sigs`` and ``areas``, so these files give a
labelled training set covering every release without exporting a single pull request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from k8s_analysis.sources.archive import ExportReadError, export_read_errors, open_decompressed

# release-notes-1.14.0.json, release-notes-1.22.0-alpha.1.json, release-notes-draft-1.32.json
VERSION_IN_NAME = re.compile(
    r"release-notes-(?P<draft>draft-)?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?:-(?P<pre>[0-9A-Za-z.]+))?$"
)


@dataclass(frozen=True, order=True)
class ReleaseVersion:
    """A release's version, ordered so that 1.22.0-alpha.1 < 1.22.0 < 1.22.1 < 1.23.0."""

    major: int
    minor: int
    patch: int
    is_final: bool
    pre_release: str = field(compare=False)
    # "alpha.10" sorts after "alpha.2": numeric parts compare as numbers.
    pre_release_key: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.pre_release.split("."))
        object.__setattr__(self, "pre_release_key", parts)

    @property
    def is_minor_release(self) -> bool:
        """True for x.y.0 final releases, the ones whose notes list every new change once."""
        return self.patch == 0 and self.is_final

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return text if self.is_final else f"{text}-{self.pre_release}"


def version_from_name(name: str) -> ReleaseVersion | None:
    """Parse the release version from a file name; None when the name carries none."""
    match = VERSION_IN_NAME.search(Path(name).name.removesuffix(".json"))
    if match is None:
        return None
    pre = match["pre"] or ""
    return ReleaseVersion(int(match["major"]), int(match["minor"]), int(match["patch"] or 0), not pre, pre)


def looks_like_release_notes(document: object) -> bool:
    """True for a JSON object of note entries keyed by PR number."""
    if not isinstance(document, dict) or not document:
        return False
    return all(
        str(key).isdigit() and isinstance(entry, dict) and "text" in entry
        for key, entry in document.items()
    )


@dataclass(frozen=True)
class ReleaseNotesFile:
    """One published release-notes file, read and checked, with its bytes kept as they were."""

    path: Path
    content: bytes

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".json")

    @classmethod
    def read(cls, path: Path) -> ReleaseNotesFile:
        with export_read_errors(path), open_decompressed(path) as stream:
            content = stream.read()
        try:
            document = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ExportReadError(path, f"invalid JSON ({error})", "Copy the release-notes file again.") from error
        if not looks_like_release_notes(document):
            raise ExportReadError(
                path,
                "not a release-notes file (expected an object of entries keyed by PR number, each with 'text')",
                "Give the JSON files of kubernetes-sigs/release-notes or kubernetes/sig-release.",
            )
        return cls(path, content)


def find_release_note_files(folder: Path) -> list[Path]:
    """List every ``*.json`` file under ``folder``, sorted by path."""
    return sorted(p for p in folder.rglob("*.json") if p.is_file())


class ReleaseNotesSource(dg.ConfigurableResource):
    """Published release-notes files or folders of them."""

    paths: list[str] = []

    def iter_files(self) -> Iterator[ReleaseNotesFile]:
        for value in self.paths:
            path = Path(value)
            files = find_release_note_files(path) if path.is_dir() else [path]
            for file in files:
                yield ReleaseNotesFile.read(file)

    def describe(self) -> str:
        return "published release notes: " + (", ".join(self.paths) or "none")

    def is_configured(self) -> bool:
        return bool(self.paths)
