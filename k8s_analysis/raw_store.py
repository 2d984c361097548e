"""The raw store: every field GitHub returned, compressed, upserted by ``id``.

Issues live in shards of 1,000 issue numbers (``data/raw/issues/000119.jsonl.zst`` contains
numbers 119000-119999), one JSON object per line, sorted by ``id``. An upsert rewrites only
the shards it changes, each atomically, so a daily delta touches a few files and an
interrupted import leaves every shard either old or new. Published release-note files are
kept byte for byte, one compressed file per source file.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import zstandard

from k8s_analysis.atomic import write_bytes
from k8s_analysis.progress import Progress

logger = logging.getLogger(__name__)

SHARD_SIZE = 1000
SHARD_SUFFIX = ".jsonl.zst"
# Per-shard item count and newest updated_at, so a delta's start costs no full scan.
INDEX_FILE = "index.json"
# Items are grouped in memory per batch before the touched shards are rewritten.
UPSERT_BATCH = 20_000
ZSTD_LEVEL = 3


class RawStoreError(ValueError):
    """An item cannot be stored: it lacks the fields the store is keyed on."""


@dataclass
class UpsertStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    shards_written: int = 0

    @property
    def received(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def add(self, other: UpsertStats) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.shards_written += other.shards_written


def _compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)


def _decompress(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(data)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value)


def merge_item(existing: dict | None, incoming: dict) -> tuple[dict, str]:
    """Return the item to keep and what happened: ``inserted``, ``updated`` or ``unchanged``.

    The newer ``updated_at`` wins. At an equal ``updated_at`` the two objects describe the
    same state, so their fields are combined (a single-issue response carries ``closed_by``,
    a list response does not) with the incoming values taking precedence.
    """
    if existing is None:
        return incoming, "inserted"
    old_time = _parse_time(existing.get("updated_at"))
    new_time = _parse_time(incoming.get("updated_at"))
    if old_time != new_time:
        incoming_is_newer = old_time is None or (new_time is not None and new_time > old_time)
        return (incoming, "updated") if incoming_is_newer else (existing, "unchanged")
    combined = {**existing, **incoming}
    return (existing, "unchanged") if combined == existing else (combined, "updated")


def check_item(item: object) -> dict:
    """Return ``item`` when the store can key it, else raise RawStoreError naming the missing field."""
    if not isinstance(item, dict):
        raise RawStoreError(f"expected a JSON object per issue, got {type(item).__name__}")
    for key in ("id", "number"):
        if not isinstance(item.get(key), int) or isinstance(item.get(key), bool):
            shown = json.dumps(item)[:120]
            raise RawStoreError(
                f"issue object has no integer {key!r}: {shown}; "
                "the export must hold objects from the GitHub issues API"
            )
    return item


def summarize_shard(items: dict[int, dict], path: Path) -> dict:
    times = [item.get("updated_at") for item in items.values() if item.get("updated_at")]
    newest = max(times, key=_parse_time) if times else None
    return {"count": len(items), "newest_updated_at": newest, "size": path.stat().st_size}


class RawIssueStore:
    """Sharded, compressed JSON Lines store of raw issue objects, keyed by ``id``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def shard_path(self, shard: int) -> Path:
        return self.directory / f"{shard:06d}{SHARD_SUFFIX}"

    def shard_paths(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{SHARD_SUFFIX}"))

    def read_shard(self, path: Path) -> dict[int, dict]:
        if not path.exists():
            return {}
        lines = _decompress(path.read_bytes()).splitlines()
        items = (json.loads(line) for line in lines if line)
        return {item["id"]: item for item in items}

    def write_shard(self, path: Path, items: dict[int, dict]) -> None:
        lines = (json.dumps(items[key], ensure_ascii=False, separators=(",", ":")) for key in sorted(items))
        write_bytes(path, _compress(("\n".join(lines) + "\n").encode("utf-8")))

    def iter_items(self) -> Iterator[dict]:
        """Yield every stored item, shard by shard (ascending issue numbers, roughly)."""
        for path in self.shard_paths():
            yield from self.read_shard(path).values()

    def shard_summaries(self) -> dict[str, dict]:
        """Count and newest ``updated_at`` of every shard, from the index where it is current.

        An entry whose recorded file size differs from the shard's (a crash between the shard
        and the index write, or an older store without an index) is recomputed from the shard.
        """
        index_path = self.directory / INDEX_FILE
        index = json.loads(index_path.read_text()) if index_path.exists() else {}
        summaries = {}
        for path in self.shard_paths():
            entry = index.get(path.name)
            if entry is None or entry.get("size") != path.stat().st_size:
                entry = summarize_shard(self.read_shard(path), path)
            summaries[path.name] = entry
        return summaries

    def count(self) -> int:
        return sum(entry["count"] for entry in self.shard_summaries().values())

    def newest_updated_at(self) -> datetime | None:
        """Return the latest ``updated_at`` stored, where a delta export starts."""
        times = [_parse_time(entry["newest_updated_at"]) for entry in self.shard_summaries().values()]
        return max((t for t in times if t is not None), default=None)

    def upsert(self, items: Iterable[dict], log: logging.Logger | object = logger) -> UpsertStats:
        """Insert new items and replace older versions; rewrite only the shards that change."""
        total = UpsertStats()
        progress = Progress("raw store upsert", log, quiet_below=1_000)
        batch: list[dict] = []
        for item in items:
            batch.append(check_item(item))
            if len(batch) >= UPSERT_BATCH:
                total.add(self._upsert_batch(batch))
                progress.advance(len(batch))
                batch = []
        if batch:
            total.add(self._upsert_batch(batch))
            progress.advance(len(batch))
        progress.finish()
        return total

    def _upsert_batch(self, batch: list[dict]) -> UpsertStats:
        stats = UpsertStats()
        written: dict[str, dict] = {}
        by_shard: dict[int, list[dict]] = defaultdict(list)
        for item in batch:
            by_shard[item["number"] // SHARD_SIZE].append(item)
        for shard, incoming in sorted(by_shard.items()):
            path = self.shard_path(shard)
            stored = self.read_shard(path)
            changed = False
            for item in incoming:
                kept, outcome = merge_item(stored.get(item["id"]), item)
                setattr(stats, outcome, getattr(stats, outcome) + 1)
                if outcome != "unchanged":
                    stored[item["id"]] = kept
                    changed = True
            if changed:
                self.write_shard(path, stored)
                stats.shards_written += 1
                written[path.name] = summarize_shard(stored, path)
        if written:
            index = self.shard_summaries()
            index.update(written)
            write_bytes(self.directory / INDEX_FILE, json.dumps(index, sort_keys=True).encode())
        return stats


class RawReleaseNotesStore:
    """Published release-note files, kept byte for byte as ``<name>.json.zst``."""

    suffix = ".json.zst"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, name: str) -> Path:
        return self.directory / f"{name}{self.suffix}"

    def put(self, name: str, content: bytes) -> bool:
        """Store one file's bytes; return False when an identical copy is already stored."""
        path = self.path_for(name)
        if path.exists() and _decompress(path.read_bytes()) == content:
            return False
        write_bytes(path, _compress(content))
        return True

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name[: -len(self.suffix)] for p in self.directory.glob(f"*{self.suffix}"))

    def read(self, name: str) -> dict:
        return json.loads(_decompress(self.path_for(name).read_bytes()))

    def iter_files(self) -> Iterator[tuple[str, dict]]:
        for name in self.names():
            yield name, self.read(name)
