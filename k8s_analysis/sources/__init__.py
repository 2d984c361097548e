"""Sources of raw data: recorded exports and published release notes; the live GitHub source comes next."""

from k8s_analysis.sources.archive import ArchiveIssueSource, ExportReadError
from k8s_analysis.sources.base import IssueSource
from k8s_analysis.sources.release_notes import ReleaseNotesSource

__all__ = ["ArchiveIssueSource", "ExportReadError", "IssueSource", "ReleaseNotesSource"]
