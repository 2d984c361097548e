"""The decisions behind the schedule and the sensors, as plain functions of the data directory.

Each returns what to do and a sentence with the reason, which the tick in the Dagster UI shows.
They read files only (tables possibly in object storage), so tests call them without a Dagster instance.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from k8s_analysis.model.bundle import (METRICS_FILE, TRAINING_LABELS_FILE, ModelLoadError, read_manifest,
                                       rolled_back_versions)
from k8s_analysis.model.gates import NOT_WORSE_THAN_PROMOTED
from k8s_analysis.paths import DataLayout
from k8s_analysis.storage import TablePath, read_parquet, table_exists


class UnreadableTableError(ValueError):
    """A Parquet file that a decision needs exists but cannot be read."""


def read_table(path: TablePath, fix: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file, or raise UnreadableTableError naming the file, the cause and ``fix``.

    A missing file raises FileNotFoundError, which callers check for first.
    """
    try:
        return read_parquet(path, columns=columns)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pa.ArrowException) as error:
        raise UnreadableTableError(f"cannot read {path}: {str(error).rstrip('.')}. {fix}") from error


@dataclass(frozen=True)
class LabelChanges:
    """Changes to the training data since the promoted model was trained."""

    model_version: str | None
    new_notes: int
    relabelled_notes: int
    feedback_rows: int
    labels_digest: str
    """A hash of the labelled notes' (PR number, is_bug) pairs, which a table rebuilt unchanged keeps."""

    @property
    def total(self) -> int:
        return self.new_notes + self.relabelled_notes + self.feedback_rows

    @property
    def key(self) -> str:
        """Names the training data that these changes describe: model, labels and feedback rows.

        It depends on the tables' content, not on when they were written, so an export that
        rebuilds them without changing a label keeps the key, and the retrain that already ran
        on it is found again.
        """
        return f"{self.model_version}:{self.labels_digest}:{self.feedback_rows}"

    def describe(self) -> str:
        against = f"model {self.model_version}" if self.model_version else "no promoted model"
        return (f"{self.total} change(s) since {against}: {self.new_notes} new labelled note(s), "
                f"{self.relabelled_notes} note(s) whose kind/bug label changed, {self.feedback_rows} bot "
                "feedback row(s)")


def count_label_changes(layout: DataLayout) -> LabelChanges:
    """Compare the release_notes table and the bot's feedback with what the promoted model learnt from.

    Without a promoted model every labelled note counts as new. A model trained before the
    training labels were recorded counts only its newer feedback, because its notes are unknown.
    Raises FileNotFoundError when the release_notes table does not exist yet.
    """
    notes = read_table(layout.table_path("release_notes"),
                       "Rebuild it: materialize release_notes in the UI, or run `k8s-analysis run`.",
                       ["pr_number", "text", "is_bug"])
    notes = notes[notes["text"].notna() & (notes["text"].astype(str).str.strip() != "")]
    current = layout.current_model_dir
    version, trained_at, known = None, None, None
    if (current / "manifest.json").is_file():
        try:
            manifest = read_manifest(current)
        except (ModelLoadError, ValueError):
            manifest = {}
        version = manifest.get("version")
        trained_at = manifest.get("created_at")
        labels_path = current / TRAINING_LABELS_FILE
        if labels_path.is_file():
            known = read_table(labels_path, "It is written with the model; retrain with retrain_job, or roll back "
                                            "with `k8s-analysis rollback`.")
    if version is None:
        new, relabelled = len(notes), 0
    elif known is None:
        new, relabelled = 0, 0
    else:
        merged = notes.merge(known, on="pr_number", how="left", suffixes=("", "_trained"))
        new = int(merged["is_bug_trained"].isna().sum())
        seen = merged[merged["is_bug_trained"].notna()]
        relabelled = int((seen["is_bug"].astype(bool) != seen["is_bug_trained"].astype(bool)).sum())
    return LabelChanges(version, new, relabelled, _feedback_since(layout.label_feedback_path, trained_at),
                        labels_digest(notes))


def labels_digest(notes: pd.DataFrame) -> str:
    """Hash the (PR number, is_bug) pairs in PR order: 12 hex digits."""
    pairs = notes[["pr_number", "is_bug"]].astype({"pr_number": "int64", "is_bug": bool}).sort_values("pr_number")
    digest = hashlib.sha256()
    digest.update(pairs["pr_number"].to_numpy().tobytes())
    digest.update(pairs["is_bug"].to_numpy().tobytes())
    return digest.hexdigest()[:12]


def _feedback_since(path: TablePath, trained_at: str | None) -> int:
    if not table_exists(path):
        return 0
    feedback = read_table(path, "The bot rebuilds it in full from its state file at each feedback row: move "
                                "the damaged file away, and the next row brings it back.", ["at"])
    if trained_at is None:
        return len(feedback)
    return int((pd.to_datetime(feedback["at"], utc=True) > pd.Timestamp(datetime.fromisoformat(trained_at))).sum())


@dataclass(frozen=True)
class Promotion:
    promote: bool
    reason: str


def promotion_decision(models_dir: Path, version: str) -> Promotion:
    """Decide whether ``version`` replaces the promoted model.

    It must have passed every check, and its validation F1 must be at least the promoted
    model's on the same validation notes, as its training measured it. A comparison with a
    version that is no longer the promoted one is stale, so it does not count.
    """
    folder = models_dir / version
    if not (folder / METRICS_FILE).is_file():
        return Promotion(False, f"model {version} has no {METRICS_FILE} in {folder}; it was not trained to the end")
    metrics = json.loads((folder / METRICS_FILE).read_text())
    checks = metrics.get("checks") or {}
    if not checks:
        return Promotion(False, f"model {version} records no checks, so it cannot be judged")
    failed = [name for name, gate in checks.items() if not gate.get("passed")]
    if failed:
        return Promotion(False, f"model {version} failed its checks: {', '.join(sorted(failed))}")
    if version in rolled_back_versions(models_dir):
        return Promotion(False, f"model {version} was rolled back by hand, so it is not promoted again "
                                "automatically; launch redeploy_job for it to promote it anyway")
    current_link = models_dir / "current"
    current = os.readlink(current_link) if current_link.is_symlink() else None
    if current == version:
        return Promotion(False, f"model {version} is already promoted")
    f1 = float(metrics["validation"]["f1"])
    gate = checks.get(NOT_WORSE_THAN_PROMOTED, {})
    compared_with, promoted_f1 = gate.get("promoted_version"), gate.get("promoted_f1")
    if current is None:
        return Promotion(True, f"model {version} passed its checks (F1 {f1:.3f}) and no model is promoted")
    if compared_with != current or promoted_f1 is None:
        return Promotion(False, f"model {version} was compared with {compared_with or 'no model'}, but {current} "
                                "is promoted now; retrain to compare them on the same notes")
    if f1 < float(promoted_f1):
        return Promotion(False, f"model {version} has validation F1 {f1:.3f}, below the promoted {current}'s "
                                f"{float(promoted_f1):.3f} on the same notes")
    return Promotion(True, f"model {version} passed its checks with validation F1 {f1:.3f}, at least the promoted "
                           f"{current}'s {float(promoted_f1):.3f} on the same notes")
