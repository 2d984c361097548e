"""The interface every issue source implements, so ``raw_issues`` does not care where items come from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from k8s_analysis.export.state import exclusive_writer
from k8s_analysis.paths import DataLayout
from k8s_analysis.raw_store import RawIssueStore


@dataclass(frozen=True)
class ExportRequest:
    """The export a run requests from the source: ``auto``, ``full`` or ``delta``, and optionally another repository."""

    mode: str = "auto"
    repository: str | None = None
    api_url: str | None = None


class IssueSource(dg.ConfigurableResource):
    """A source of raw issue objects in the shape of ``GET /repos/{owner}/{repo}/issues``.

    Subclasses yield each item's JSON exactly as GitHub returned it. The recorded-export
    source reads files; the live GitHub source pages through the REST API.
    """

    def iter_items(self, since: datetime | None = None, log: object | None = None) -> Iterator[dict]:
        """Yield raw issue objects updated at or after ``since`` (all of them when None)."""
        raise NotImplementedError

    def describe(self) -> str:
        """Return one line for logs and metadata that names where the items come from."""
        raise NotImplementedError

    def is_configured(self) -> bool:
        """False when the source has nothing to read, so the run works on the raw store alone."""
        return True

    def update_store(self, layout: DataLayout, request: ExportRequest, log: object) -> dict[str, object]:
        """Upsert every item into the raw store; return counts for the asset's metadata."""
        with exclusive_writer(layout.raw_lock_path, f"import from {self.describe()}"):
            stats = RawIssueStore(layout.raw_issues_dir).upsert(self.iter_items(log=log), log=log)
        log.info("upserted %s items: %s new, %s updated, %s unchanged",
                 stats.received, stats.inserted, stats.updated, stats.unchanged)
        return {"inserted": stats.inserted, "updated": stats.updated, "unchanged": stats.unchanged,
                "shards_written": stats.shards_written}
