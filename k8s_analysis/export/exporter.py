"""Full and delta exports of a repository's issues and pull requests into the raw store.

A full export lists ``/repos/{owner}/{repo}/issues?state=all&per_page=100`` and follows the
``Link: rel="next"`` cursors to the end: about one request per 100 items. A delta requests only
the items updated since the newest stored ``updated_at`` (minus an overlap, for clock skew
and items updated in the same second), oldest first.

Each page is appended to a journal segment and fsynced, then the checkpoint moves past it.
So a kill at any point loses nothing, and the resumed export fetches again at most the one
page whose checkpoint was not written yet. Every ``flush_items`` items the segment is sealed
and a background thread merges it into the shards while the next pages download. Merging
is an idempotent upsert, so a kill during a merge only repeats it on resume.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from k8s_analysis.export.client import GitHubClient, Page
from k8s_analysis.export.state import Checkpoint, ExportState, exclusive_writer
from k8s_analysis.paths import DataLayout
from k8s_analysis.progress import Progress
from k8s_analysis.raw_store import RawIssueStore, UpsertStats
from k8s_analysis.tables.items import REMOVED_MARK

logger = logging.getLogger(__name__)

FULL = "full"
DELTA = "delta"
AUTO = "auto"
MODES = (AUTO, FULL, DELTA)
JOURNAL_DIR = "export-journal"
SEEN_IDS_FILE = "export-seen-ids.txt"
# Namespaced key added to a stored object that GitHub no longer lists; all other keys are GitHub's.
MARK_KEY = REMOVED_MARK


@dataclass
class ExportResult:
    mode: str
    resumed: bool = False
    not_modified: bool = False
    pages: int = 0
    items: int = 0
    other_repository: int = 0
    stored: UpsertStats = field(default_factory=UpsertStats)
    removed: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def belongs_to(item: dict, repository: str) -> bool:
    """False for items GitHub lists under another repository (moved by a transfer)."""
    url = item.get("repository_url")
    return url is None or url.lower().endswith(f"/repos/{repository.lower()}")


class Journal:
    """Fetched pages not yet merged into the shards: numbered segments of JSON lists, fsynced."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.current: Path | None = None
        self.current_items = 0

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("segment-*.jsonl")) if self.directory.is_dir() else []

    def append(self, items: list[dict]) -> None:
        if self.current is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            existing = self.segments()
            number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
            self.current = self.directory / f"segment-{number:06d}.jsonl"
        with open(self.current, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(items, ensure_ascii=False, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.current_items += len(items)

    def seal(self) -> Path | None:
        """Close the current segment and return it for merging."""
        sealed, self.current, self.current_items = self.current, None, 0
        return sealed

    @staticmethod
    def read(path: Path) -> Iterator[dict]:
        """Yield a segment's items; a torn last line (a kill during the write) is skipped."""
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    page = json.loads(line)
                except json.JSONDecodeError:
                    continue
                yield from page


class SeenIds:
    """Ids listed by the running full export, kept on disk so that a resumed export still has them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, ids: Iterable[int]) -> None:
        with open(self.path, "a") as handle:
            handle.write("".join(f"{i}\n" for i in ids))
            handle.flush()
            os.fsync(handle.fileno())

    def load(self) -> set[int]:
        if not self.path.exists():
            return set()
        return {int(line) for line in self.path.read_text().split() if line.isdigit()}

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def check_same_source(state: ExportState, layout: DataLayout, repository: str, api_url: str) -> None:
    """Refuse to mix two repositories in one raw store, or to resume from another API."""
    if state.repository is None:
        return
    if state.repository.lower() != repository.lower():
        raise ValueError(
            f"{layout.root} holds an export of {state.repository}; export {repository} into another --data-dir"
        )
    if state.checkpoint is not None and state.api_url != api_url:
        raise ValueError(
            f"an unfinished export of {state.repository} from {state.api_url} is in {layout.raw_dir}; "
            "finish it first with the same --api-url"
        )


class Exporter:
    """Runs one export of ``repository`` into the raw store under ``layout``."""

    def __init__(
        self,
        client: GitHubClient,
        layout: DataLayout,
        repository: str,
        log: logging.Logger | object = logger,
        overlap: timedelta = timedelta(minutes=5),
        flush_items: int = 20_000,
        max_reconcile_requests: int = 1_000,
    ) -> None:
        self.client = client
        self.layout = layout
        self.repository = repository
        self.log = log
        self.overlap = overlap
        self.flush_items = flush_items
        self.max_reconcile_requests = max_reconcile_requests
        self.store = RawIssueStore(layout.raw_issues_dir)
        self.journal = Journal(layout.raw_dir / JOURNAL_DIR)
        self.seen = SeenIds(layout.raw_dir / SEEN_IDS_FILE)
        self._merges: list[Future] = []

    def run(self, mode: str = AUTO) -> ExportResult:
        if mode not in MODES:
            raise ValueError(f"unknown export mode {mode!r}; use one of {', '.join(MODES)}")
        self.layout.raw_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_writer(self.layout.raw_lock_path, f"export of {self.repository}"), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-store-merge") as merger:
            self._merger = merger
            return self._run_locked(mode)

    def _run_locked(self, mode: str) -> ExportResult:
        started = time.monotonic()
        requests_before = self.client.requests_made
        state = ExportState.load(self.layout.export_state_path)
        self._check_same_source(state)
        state.repository, state.api_url = self.repository, self.client.api_url
        result = ExportResult(mode=mode)
        for segment in self.journal.segments():
            self.log.info("merging %s, left by an interrupted export", segment.name)
            result.stored.add(self._merge(segment))

        checkpoint = state.checkpoint
        if checkpoint is not None:
            result.resumed = True
            self.log.info("resuming the %s export of %s after page %s (%s items so far)",
                          checkpoint.mode, self.repository, checkpoint.pages, f"{checkpoint.items:,}")
        else:
            checkpoint = self._start(state, self._resolve_mode(mode, state))
        result.mode = checkpoint.mode

        self._fetch(state, checkpoint, result)
        self._seal_and_merge(result, wait=True)
        if result.not_modified:
            state.last_delta_at = checkpoint.started_at
            state.save(self.layout.export_state_path)
        else:
            self._finish(state, checkpoint, result)
        result.requests = self.client.requests_made - requests_before
        result.seconds = time.monotonic() - started
        self.log.info(
            "%s export of %s done: %s page(s), %s item(s) received; stored %s new, %s updated; %s request(s), %.1f s",
            result.mode, self.repository, result.pages, f"{result.items:,}", f"{result.stored.inserted:,}",
            f"{result.stored.updated:,}", result.requests, result.seconds,
        )
        return result

    def _check_same_source(self, state: ExportState) -> None:
        check_same_source(state, self.layout, self.repository, self.client.api_url)

    def _resolve_mode(self, mode: str, state: ExportState) -> str:
        if mode == AUTO:
            mode = DELTA if state.last_full_export_at else FULL
        if mode == DELTA and self.store.newest_updated_at() is None:
            self.log.info("the raw store is empty, so the delta becomes a full export")
            mode = FULL
        return mode

    def delta_url(self) -> str:
        """Return the first page URL of a delta: items updated since the newest stored one, minus the overlap."""
        since = self.store.newest_updated_at() - self.overlap
        query = {"state": "all", "per_page": 100, "sort": "updated", "direction": "asc",
                 "since": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        return f"/repos/{self.repository}/issues?{urlencode(query)}"

    def _start(self, state: ExportState, mode: str) -> Checkpoint:
        if mode == FULL:
            url = f"/repos/{self.repository}/issues?{urlencode({'state': 'all', 'per_page': 100})}"
            self.seen.clear()
        else:
            url = self.delta_url()
        checkpoint = Checkpoint(mode=mode, next_url=url, started_at=utc_now())
        self.log.info("starting a %s export of %s: GET %s", mode, self.repository, url)
        return checkpoint

    def _fetch(self, state: ExportState, checkpoint: Checkpoint, result: ExportResult) -> None:
        etag = state.etags.get(checkpoint.next_url) if checkpoint.pages == 0 else None
        progress = Progress(f"{checkpoint.mode} export of {self.repository}", self.log,
                            total=checkpoint.newest_number, details=lambda: self._details(checkpoint))
        progress.done = checkpoint.items
        url: str | None = checkpoint.next_url
        while url:
            page = self.client.get_page(url, etag)
            etag = None
            if page.not_modified:
                result.not_modified = True
                self.log.info("nothing changed since the last delta (304, not counted by GitHub)")
                break
            self._store_page(page, checkpoint, result)
            if checkpoint.pages == 0 and checkpoint.mode == FULL and page.items:
                # A full export lists the newest issues first, so this bounds the total.
                checkpoint.newest_number = max(item["number"] for item in page.items)
                progress.total = checkpoint.newest_number
            checkpoint.pages += 1
            checkpoint.items += len(page.items)
            checkpoint.next_url = page.next_url or ""
            result.pages += 1
            if page.next_url:
                state.checkpoint = checkpoint
                state.save(self.layout.export_state_path)
            progress.advance(len(page.items))
            url = page.next_url
        progress.finish()

    def _store_page(self, page: Page, checkpoint: Checkpoint, result: ExportResult) -> None:
        """Journal the page's items of this repository; hand full segments to the merger."""
        ours = [item for item in page.items if belongs_to(item, self.repository)]
        skipped = len(page.items) - len(ours)
        if skipped:
            result.other_repository += skipped
            self.log.info("skipped %s items that GitHub lists under another repository", skipped)
        self.journal.append(ours)
        if checkpoint.mode == FULL:
            self.seen.add(item["id"] for item in ours)
        result.items += len(ours)
        if self.journal.current_items >= self.flush_items:
            self._seal_and_merge(result, wait=False)

    def _seal_and_merge(self, result: ExportResult, wait: bool) -> None:
        """Merge the sealed segment in the background; collect finished merges (all when ``wait``)."""
        sealed = self.journal.seal()
        if sealed is not None:
            self._merges.append(self._merger.submit(self._merge, sealed))
        pending = []
        for merge in self._merges:
            if wait or merge.done():
                result.stored.add(merge.result())
            else:
                pending.append(merge)
        self._merges = pending

    def _merge(self, segment: Path) -> UpsertStats:
        stats = self.store.upsert(Journal.read(segment), log=self.log)
        segment.unlink()
        return stats

    def _finish(self, state: ExportState, checkpoint: Checkpoint, result: ExportResult) -> None:
        if checkpoint.mode == FULL:
            result.removed = self._reconcile()
            state.last_full_export_at = checkpoint.started_at
            self.seen.clear()
        else:
            state.last_delta_at = checkpoint.started_at
        state.checkpoint = None
        state.etags = self._prime_next_delta(result)
        state.save(self.layout.export_state_path)

    def _prime_next_delta(self, result: ExportResult) -> dict[str, str]:
        """Fetch the next delta's first page now and keep its ETag.

        The newest ``updated_at`` moved, so the next delta requests a new URL, and without an
        ETag for it even an unchanged repository would cost a counted request. One request
        here makes every later unchanged delta a free 304. The page's items are stored,
        because a 304 later means "nothing beyond this page", so this page must be kept.
        """
        if self.store.newest_updated_at() is None:
            return {}
        url = self.delta_url()
        page = self.client.get_page(url)
        result.stored.add(self.store.upsert([i for i in page.items if belongs_to(i, self.repository)], log=self.log))
        if page.next_url or not page.etag:
            return {}
        return {url: page.etag}

    def _reconcile(self) -> dict[str, int]:
        """Ask GitHub about stored items that the full listing no longer shows.

        A 404 or 410 marks the stored object deleted, a response from another repository
        marks it transferred, and a normal response refreshes it. Each costs one request,
        up to ``max_reconcile_requests``.
        """
        seen = self.seen.load()
        missing = [item for item in self.store.iter_items()
                   if item["id"] not in seen and belongs_to(item, self.repository) and MARK_KEY not in item]
        counts = {"deleted": 0, "transferred": 0, "still_listed": 0, "unchecked": 0}
        if not missing:
            return counts
        self.log.info("%s stored items are missing from the full listing; checking them one by one", len(missing))
        updates = []
        for index, item in enumerate(missing):
            if index >= self.max_reconcile_requests:
                counts["unchecked"] = len(missing) - index
                self.log.warning("left %s missing items unchecked (limit %s requests)",
                                 counts["unchecked"], self.max_reconcile_requests)
                break
            status, data = self.client.get_item(f"/repos/{self.repository}/issues/{item['number']}")
            if status in (404, 410):
                updates.append({**item, MARK_KEY: {"removed": "deleted", "status": status, "detected_at": utc_now()}})
                counts["deleted"] += 1
            elif isinstance(data, dict) and not belongs_to(data, self.repository):
                updates.append({**item, MARK_KEY: {"removed": "transferred", "moved_to": data.get("repository_url"),
                                                   "detected_at": utc_now()}})
                counts["transferred"] += 1
            elif isinstance(data, dict):
                updates.append(data)
                counts["still_listed"] += 1
        self.store.upsert(updates, log=self.log)
        return counts

    def _details(self, checkpoint: Checkpoint) -> str:
        budget = self.client.budget
        left = "unknown" if budget.remaining is None else f"{budget.remaining:,}"
        return f"page {checkpoint.pages}, {left} requests left in the rate budget"
