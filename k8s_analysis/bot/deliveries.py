"""Remember which webhook deliveries were handled, in SQLite, so a redelivery is not handled twice.

GitHub does not redeliver on its own, but a person or a script can redeliver any delivery of
the past 3 days (7 on GitHub Enterprise Server, per GitHub's "Redelivering webhooks" page),
and it keeps its ``X-GitHub-Delivery`` id. The ids live in a SQLite file, so a restarted bot
still recognises them. ``claim`` inserts the id in one statement, so of two concurrent claims of one id
exactly one wins.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, event TEXT, received_at REAL NOT NULL)"
# Deliveries older than this are forgotten: four times GitHub Enterprise Server's 7-day window.
KEEP_SECONDS = 28 * 24 * 3600


class DeliveryStore:
    """Delivery ids already handled, kept in a SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(SCHEMA)

    def claim(self, delivery_id: str, event: str = "", now: float | None = None) -> bool:
        """Record ``delivery_id``; return False when it was recorded before (a redelivery)."""
        if not delivery_id:
            raise ValueError("a delivery without an X-GitHub-Delivery id cannot be deduplicated")
        with self._lock:
            cursor = self._connection.execute(
                "INSERT OR IGNORE INTO deliveries (id, event, received_at) VALUES (?, ?, ?)",
                (delivery_id, event, time.time() if now is None else now))
            return cursor.rowcount == 1

    def release(self, delivery_id: str) -> None:
        """Forget one claimed delivery that was not carried out, so that its redelivery is accepted."""
        with self._lock:
            self._connection.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def forget_older_than(self, seconds: float = KEEP_SECONDS, now: float | None = None) -> int:
        """Delete ids received more than ``seconds`` ago and return how many were deleted."""
        cutoff = (time.time() if now is None else now) - seconds
        with self._lock:
            return self._connection.execute("DELETE FROM deliveries WHERE received_at < ?", (cutoff,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._connection.close()
