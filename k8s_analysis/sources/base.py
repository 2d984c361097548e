"""The interface every issue source implements, so ``raw_issues`` does not care where items come from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import dagster as dg


class IssueSource(dg.ConfigurableResource):
    """A source of raw issue objects in the shape of ``GET /repos/{owner}/{repo}/issues``.

    Subclasses yield each item's JSON exactly as GitHub returned it. The recorded-export
    source reads files; the live GitHub source (same interface) pages through the REST API.
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
