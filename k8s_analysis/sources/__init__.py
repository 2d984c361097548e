"""Where raw data comes from: recorded exports, published release notes, and (later) GitHub."""

from k8s_analysis.sources.archive import ArchiveIssueSource, ExportReadError
from k8s_analysis.sources.base import IssueSource
from k8s_analysis.sources.release_notes import ReleaseNotesSource

__all__ = ["ArchiveIssueSource", "ExportReadError", "IssueSource", "ReleaseNotesSource"]
