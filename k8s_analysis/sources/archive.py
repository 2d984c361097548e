"""Recorded exports: JSON lists, JSON Lines, compressed files and ``api.json`` tar archives.

The original kubernetes-analysis tool stored its export as ``data/api.tar.xz`` holding one
``api.json`` list. This module reads that layout and the plainer forms beside it: a JSON
list or JSON Lines, each optionally compressed with gzip, xz or zstd. The compression is
detected from the file's first bytes, not its suffix.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import lzma
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import zstandard

from k8s_analysis.sources.base import IssueSource

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
TAR_MEMBER = "api.json"
# Enough to recognise a tar header ("ustar" at offset 257) and the first JSON token.
HEAD_BYTES = 4096


class ExportReadError(ValueError):
    """A path given as an export cannot be read; the message names the path and the fix."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        super().__init__(f"cannot read {path}: {problem}. {fix}")
        self.path = path
        self.problem = problem


@contextlib.contextmanager
def open_decompressed(path: Path) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading, decompressing gzip, xz or zstd by its magic bytes."""
    with open(path, "rb") as raw:
        magic = raw.read(6)
        raw.seek(0)
        if magic.startswith(GZIP_MAGIC):
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw)
        elif magic.startswith(XZ_MAGIC):
            stream = lzma.LZMAFile(raw)
        elif magic.startswith(ZSTD_MAGIC):
            stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
        else:
            stream = raw
        with stream:
            yield stream


@contextlib.contextmanager
def export_read_errors(path: Path) -> Iterator[None]:
    """Raise ExportReadError naming ``path`` for a damaged, truncated or non-UTF-8 file."""
    try:
        yield
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, tarfile.TarError) as error:
        raise ExportReadError(path, f"the file is damaged or truncated ({error})",
                              "Export it again or copy it anew.") from error
    except UnicodeDecodeError as error:
        raise ExportReadError(path, f"the content is not UTF-8 ({error})",
                              "Exports must be UTF-8 JSON.") from error


def read_head(path: Path) -> bytes:
    with open_decompressed(path) as stream:
        return stream.read(HEAD_BYTES)


def is_tar(head: bytes) -> bool:
    return head[257:262] == b"ustar"


def first_json_char(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return chr(text[0]) if text else ""


@dataclass(frozen=True)
class IssueExport:
    """One recorded export of issue objects."""

    path: Path

    def iter_items(self) -> Iterator[dict]:
        with export_read_errors(self.path):
            yield from self._iter_items()

    def _iter_items(self) -> Iterator[dict]:
        head = read_head(self.path)
        if is_tar(head):
            yield from self._iter_tar()
            return
        with open_decompressed(self.path) as stream:
            yield from iter_json_items(stream, self.path)

    def _iter_tar(self) -> Iterator[dict]:
        with open_decompressed(self.path) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            seen = []
            for member in tar:
                seen.append(member.name)
                if member.isfile() and Path(member.name).name == TAR_MEMBER:
                    handle = tar.extractfile(member)
                    assert handle is not None  # a regular file always has content
                    yield from iter_json_items(handle, self.path)
                    return
        raise ExportReadError(
            self.path,
            f"the tar archive holds no {TAR_MEMBER} (members: {', '.join(seen[:10]) or 'none'})",
            f"Pack the export as a JSON list named {TAR_MEMBER}.",
        )


def iter_json_items(stream: IO[bytes], path: Path) -> Iterator[dict]:
    """Yield the objects of a JSON list or of JSON Lines read from ``stream``."""
    buffered = io.BufferedReader(stream) if not hasattr(stream, "peek") else stream
    first = first_json_char(buffered.peek(HEAD_BYTES))
    if first == "[":
        try:
            items = json.load(buffered)
        except json.JSONDecodeError as error:
            raise ExportReadError(path, f"invalid JSON ({error})", "Check that the export is complete.") from error
        for index, item in enumerate(items):
            yield _require_object(item, path, f"list element {index}")
    elif first == "{":
        # utf-8-sig drops a leading byte-order mark, as json.load does for the list form.
        for line_number, line in enumerate(io.TextIOWrapper(buffered, encoding="utf-8-sig"), start=1):
            if line.strip():
                yield _require_object(_loads_line(line, path, line_number), path, f"line {line_number}")
    else:
        raise ExportReadError(
            path,
            f"expected a JSON list or JSON Lines, but the content starts with {first!r}",
            "Give a file from an issues export (JSON list, JSON Lines or an api.json tar archive).",
        )


def _loads_line(line: str, path: Path, line_number: int) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ExportReadError(
            path, f"line {line_number} is not valid JSON ({error})",
            "JSON Lines files need one complete object per line.",
        ) from error


def _require_object(item: object, path: Path, where: str) -> dict:
    if not isinstance(item, dict) or "number" not in item or "id" not in item:
        raise ExportReadError(
            path, f"{where} is not an issue object with 'id' and 'number'",
            "Give an export of GET /repos/{owner}/{repo}/issues objects.",
        )
    return item


class ArchiveIssueSource(IssueSource):
    """Issue objects read from recorded exports on disk (no network)."""

    paths: list[str] = []

    def iter_items(self, since: datetime | None = None, log: object | None = None) -> Iterator[dict]:
        # A recorded export is small next to a live one, so `since` filters in memory.
        for path in self.paths:
            for item in IssueExport(Path(path)).iter_items():
                if since is None or _updated_after(item, since):
                    yield item

    def describe(self) -> str:
        return "recorded exports: " + (", ".join(self.paths) or "none")

    def is_configured(self) -> bool:
        return bool(self.paths)


def _updated_after(item: dict, since: datetime) -> bool:
    updated = item.get("updated_at")
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # GitHub's times are UTC
    return updated is None or datetime.fromisoformat(updated) >= since
