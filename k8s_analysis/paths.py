"""Layout of the data directory; other tools read these paths, so they are a contract."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "K8S_ANALYSIS_DATA_DIR"
DEFAULT_DATA_DIR = "data"


def resolve_data_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """Pick the data directory: the explicit value, else $K8S_ANALYSIS_DATA_DIR, else ./data."""
    chosen = value or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class DataLayout:
    """Every path the pipeline reads or writes under one data directory."""

    root: Path

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
    def tables_dir(self) -> Path:
        return self.root / "tables"

    def table_path(self, name: str) -> Path:
        return self.tables_dir / f"{name}.parquet"

    @property
    def label_feedback_path(self) -> Path:
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
