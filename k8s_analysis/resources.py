"""Dagster resources shared by the assets: where data lives, and the default sources."""

from __future__ import annotations

import dagster as dg

from k8s_analysis.io_manager import TableIOManager
from k8s_analysis.paths import DataLayout, resolve_data_dir
from k8s_analysis.sources import ArchiveIssueSource, ReleaseNotesSource


class DataDirResource(dg.ConfigurableResource):
    """The data directory; unset means $K8S_ANALYSIS_DATA_DIR, else ./data (resolved at run time)."""

    root: str | None = None

    def layout(self) -> DataLayout:
        return DataLayout(resolve_data_dir(self.root))


def default_resources() -> dict[str, object]:
    """Resources for a run that works on what the raw store holds.

    The sources have no paths by default: ``k8s-analysis import`` fills the raw store, or a
    run's configuration points the sources at exports and release-notes folders.
    """
    return {
        "data_dir": DataDirResource(),
        "issue_source": ArchiveIssueSource(),
        "release_notes_source": ReleaseNotesSource(),
        "table_io_manager": TableIOManager(),
    }
