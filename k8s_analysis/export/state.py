"""The export's saved state: the source it reads, its checkpoint, ETags, and a writer lock.

The state file (``data/raw/export-state.json``) is rewritten atomically after every page,
so an export stopped at any point resumes from its last checkpoint. It also remembers the
repository and API URL, so a later ``export --update`` or ``run`` needs neither again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from k8s_analysis.atomic import write_text



@dataclass
class Checkpoint:
    """Progress of an unfinished export: the next page to fetch and what it has stored so far."""

    mode: str
    next_url: str
    started_at: str
    pages: int = 0
    items: int = 0
    newest_number: int | None = None


@dataclass
class ExportState:
    repository: str | None = None
    api_url: str | None = None
    checkpoint: Checkpoint | None = None
    last_full_export_at: str | None = None
    last_delta_at: str | None = None
    # ETag of the next delta's first page, by URL: GitHub returns 304 while nothing changed.
    etags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ExportState:
        if not path.exists():
            return cls()
        values = json.loads(path.read_text())
        checkpoint = values.pop("checkpoint", None)
        return cls(checkpoint=Checkpoint(**checkpoint) if checkpoint else None, **values)

    def save(self, path: Path) -> None:
        write_text(path, json.dumps(asdict(self), indent=2, sort_keys=True))


class ExportBusyError(RuntimeError):
    """Another export or import is writing to the same raw store."""


@contextlib.contextmanager
def exclusive_writer(path: Path, purpose: str) -> Iterator[None]:
    """Hold the raw store's writer lock file ``path``, or raise ExportBusyError naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ExportBusyError(
                f"the raw store is busy ({holder} holds {path}); wait until that process ends and run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{purpose}, pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
