"""The bot's state per pull request, in SQLite beside the delivery ids.

For each item: the id of its comment, whether the bot added ``kind/bug``, a person's override
of that label, and the last prediction. Also every write the bot made (for the per-item
budget) and every human ``kind/*`` change after a prediction (the feedback that training
reads). The feedback table is exported to ``tables/label_feedback.parquet`` (in the data
directory or in object storage) after each new row, written atomically.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from k8s_analysis.storage import TablePath, write_parquet

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    repository TEXT NOT NULL,
    number INTEGER NOT NULL,
    comment_id INTEGER,
    comment_digest TEXT,
    bot_added INTEGER NOT NULL DEFAULT 0,
    override TEXT,
    override_by TEXT,
    note TEXT,
    probability REAL,
    threshold REAL,
    model_version TEXT,
    predicted_at REAL,
    PRIMARY KEY (repository, number)
);
CREATE TABLE IF NOT EXISTS writes (repository TEXT NOT NULL, number INTEGER NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS writes_by_item ON writes (repository, number, at);
CREATE TABLE IF NOT EXISTS feedback (
    repository TEXT NOT NULL,
    pr_number INTEGER NOT NULL,
    text TEXT,
    probability REAL,
    threshold REAL,
    predicted_bug INTEGER,
    model_version TEXT,
    label TEXT NOT NULL,
    action TEXT NOT NULL,
    is_bug INTEGER,
    sender TEXT,
    at REAL NOT NULL,
    delivery_id TEXT
);
"""
ITEM_FIELDS = ("comment_id", "comment_digest", "bot_added", "override", "override_by", "note",
               "probability", "threshold", "model_version", "predicted_at")
FEEDBACK_COLUMNS = ("repository", "pr_number", "text", "probability", "threshold", "predicted_bug",
                    "model_version", "label", "action", "is_bug", "sender", "at", "delivery_id")

# Values of ``ItemState.override``: a person removed kind/bug (never re-add it) or added it
# (never remove it).
OVERRIDE_REMOVED = "removed"
OVERRIDE_ADDED = "added"


@dataclass
class ItemState:
    comment_id: int | None = None
    comment_digest: str | None = None
    bot_added: bool = False
    override: str | None = None
    override_by: str | None = None
    note: str | None = None
    probability: float | None = None
    threshold: float | None = None
    model_version: str | None = None
    predicted_at: float | None = None

    @property
    def predicted(self) -> bool:
        return self.probability is not None


@dataclass(frozen=True)
class FeedbackRow:
    repository: str
    pr_number: int
    text: str | None
    probability: float | None
    threshold: float | None
    predicted_bug: bool | None
    model_version: str | None
    label: str
    action: str
    is_bug: bool | None
    sender: str
    at: float
    delivery_id: str


class BotState:
    """Per-item state, write log and feedback, in one SQLite file shared by the bot's threads."""

    def __init__(self, path: Path, feedback_path: TablePath | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.feedback_path = feedback_path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(SCHEMA)

    def item(self, repository: str, number: int) -> ItemState:
        with self._lock:
            row = self._connection.execute(
                f"SELECT {', '.join(ITEM_FIELDS)} FROM items WHERE repository = ? AND number = ?",
                (repository, number)).fetchone()
        if row is None:
            return ItemState()
        state = ItemState(**dict(zip(ITEM_FIELDS, row, strict=True)))
        state.bot_added = bool(state.bot_added)
        return state

    def save_item(self, repository: str, number: int, state: ItemState) -> None:
        values = [getattr(state, name) for name in ITEM_FIELDS]
        values[ITEM_FIELDS.index("bot_added")] = int(state.bot_added)
        placeholders = ", ".join("?" for _ in ITEM_FIELDS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in ITEM_FIELDS)
        with self._lock:
            self._connection.execute(
                f"INSERT INTO items (repository, number, {', '.join(ITEM_FIELDS)}) VALUES (?, ?, {placeholders}) "
                f"ON CONFLICT (repository, number) DO UPDATE SET {updates}",
                (repository, number, *values))

    def record_write(self, repository: str, number: int, now: float | None = None) -> None:
        with self._lock:
            self._connection.execute("INSERT INTO writes (repository, number, at) VALUES (?, ?, ?)",
                                     (repository, number, time.time() if now is None else now))

    def writes_since(self, repository: str, number: int, since: float) -> int:
        with self._lock:
            return self._connection.execute(
                "SELECT COUNT(*) FROM writes WHERE repository = ? AND number = ? AND at >= ?",
                (repository, number, since)).fetchone()[0]

    def forget_writes_before(self, cutoff: float) -> None:
        with self._lock:
            self._connection.execute("DELETE FROM writes WHERE at < ?", (cutoff,))

    def add_feedback(self, row: FeedbackRow) -> None:
        """Store one human label change and rewrite the Parquet export."""
        values = [getattr(row, name) for name in FEEDBACK_COLUMNS]
        with self._lock:
            self._connection.execute(
                f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' for _ in values)})",
                values)
            if self.feedback_path is not None:
                write_parquet(self._feedback_frame(), self.feedback_path)

    def feedback(self) -> pd.DataFrame:
        with self._lock:
            return self._feedback_frame()

    def _feedback_frame(self) -> pd.DataFrame:
        rows = self._connection.execute(f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM feedback ORDER BY at, rowid")
        frame = pd.DataFrame(rows.fetchall(), columns=list(FEEDBACK_COLUMNS))
        frame["pr_number"] = frame["pr_number"].astype("int64")
        for column in ("probability", "threshold"):
            frame[column] = frame[column].astype("float64")
        for column in ("predicted_bug", "is_bug"):
            frame[column] = frame[column].map(lambda value: None if value is None else bool(value)).astype("boolean")
        frame["at"] = pd.to_datetime(frame["at"].astype("float64"), unit="s", utc=True)
        return frame

    def close(self) -> None:
        with self._lock:
            self._connection.close()
