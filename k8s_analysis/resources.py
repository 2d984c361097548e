"""Dagster resources shared by the assets: where data lives, and the default sources."""

from __future__ import annotations

import os

import dagster as dg

from k8s_analysis.io_manager import TableIOManager
from k8s_analysis.paths import DataLayout, resolve_data_dir
from k8s_analysis.sources import ArchiveIssueSource, IssueSource, ReleaseNotesSource
from k8s_analysis.sources.github import TOKEN_ENV, GitHubIssueSource, check_api_url, check_repository

# The live export's repository and API URL, for deployments configured by environment (the
# Helm chart). Unset means the ones the data directory remembers, else kubernetes/kubernetes.
REPOSITORY_ENV = "K8S_ANALYSIS_REPOSITORY"
API_URL_ENV = "K8S_ANALYSIS_GITHUB_API_URL"


class DataDirResource(dg.ConfigurableResource):
    """The data directory; unset means $K8S_ANALYSIS_DATA_DIR, else ./data (resolved at run time)."""

    root: str | None = None

    def layout(self) -> DataLayout:
        return DataLayout(resolve_data_dir(self.root))


def issue_source_from_environment() -> IssueSource:
    """Return the live GitHub source when GITHUB_TOKEN is set, else the recorded-export source.

    Only the variable's presence is read here. Its value reaches the resource through
    ``EnvVar`` at run time, so it never appears in the definitions or the run configuration.
    """
    if os.environ.get(TOKEN_ENV):
        return GitHubIssueSource(
            token=dg.EnvVar(TOKEN_ENV),
            repository=_checked_setting(REPOSITORY_ENV, check_repository),
            api_url=_checked_setting(API_URL_ENV, check_api_url),
        )
    return ArchiveIssueSource()


def _checked_setting(name: str, check) -> str | None:
    """Return the variable's value after ``check``, or None when it is unset or empty."""
    value = os.environ.get(name) or None
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def default_resources() -> dict[str, object]:
    """Resources for the code location.

    Without a token the sources have no paths: ``k8s-analysis import`` fills the raw store,
    or a run's configuration points the sources at exports and release-notes folders.
    """
    return {
        "data_dir": DataDirResource(),
        "issue_source": issue_source_from_environment(),
        "release_notes_source": ReleaseNotesSource(),
        "table_io_manager": TableIOManager(),
    }
