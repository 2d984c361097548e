"""Layout of the data directory; other tools read these paths, so they are a contract.

With object storage configured (``K8S_ANALYSIS_STORAGE_URL``, see ``storage.py``), the tables
live in ``<storage>/tables/`` instead of ``DATA_DIR/tables/``, and the promoted model is read
from ``<storage>/models/current``. Everything else stays in the data directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upath import UPath

DATA_DIR_ENV = "K8S_ANALYSIS_DATA_DIR"
STORAGE_URL_ENV = "K8S_ANALYSIS_STORAGE_URL"
DEFAULT_DATA_DIR = "data"


def resolve_data_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """Pick the data directory: the explicit value, else $K8S_ANALYSIS_DATA_DIR, else ./data."""
    chosen = value or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def storage_from_environment() -> UPath | None:
    """Return the storage root that $K8S_ANALYSIS_STORAGE_URL names, or None when it is unset."""
    if not os.environ.get(STORAGE_URL_ENV, "").strip():
        return None
    # Imported here because it loads pandas and fsspec, which commands without storage never need.
    from k8s_analysis.storage import storage_root

    return storage_root()


@dataclass(frozen=True)
class DataLayout:
    """Every path the pipeline reads or writes under one data directory, and in object storage."""

    root: Path
    storage: UPath | None = field(default_factory=storage_from_environment)
    """The object-storage root for tables and published models; None keeps them all under ``root``."""

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def raw_issues_dir(self) -> Path:
        return self.raw_dir / "issues"

    @property
    def raw_release_notes_dir(self) -> Path:
        return self.raw_dir / "release-notes"

    @property
    def raw_lock_path(self) -> Path:
        """Lock file held by the import or export that writes the raw store."""
        return self.root / ".raw-store.lock"

    @property
    def export_state_path(self) -> Path:
        """The live export's checkpoint, ETags and remembered repository."""
        return self.raw_dir / "export-state.json"

    @property
    def tables_dir(self) -> Path | UPath:
        return (self.storage if self.storage is not None else self.root) / "tables"

    def table_path(self, name: str) -> Path | UPath:
        return self.tables_dir / f"{name}.parquet"

    @property
    def label_feedback_path(self) -> Path | UPath:
        """People's kind/* label changes after a bot prediction, which training reads."""
        return self.table_path("label_feedback")

    @property
    def bot_state_path(self) -> Path:
        """The bot's SQLite file: delivery ids, per-item state, write log and feedback."""
        return self.root / "bot" / "state.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def current_model_dir(self) -> Path:
        """The promoted model: a symbolic link to one version folder."""
        return self.models_dir / "current"

    @property
    def promoted_model(self) -> Path | UPath:
        """Where the server and the bot load the promoted model from by default.

        That is ``<storage>/models/current`` (its pointer ``current.json``) with object storage,
        else the local ``models/current`` link.
        """
        if self.storage is None:
            return self.current_model_dir
        return self.storage / "models" / "current"

    @property
    def tuned_config_path(self) -> Path:
        """The best configuration ``k8s-analysis train --tune`` found; training starts from it."""
        return self.models_dir / "tuned-config.json"

    @property
    def analysis_dir(self) -> Path:
        return self.root / "analysis"

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME used by the CLI when the environment sets none."""
        return self.root / "dagster_home"
