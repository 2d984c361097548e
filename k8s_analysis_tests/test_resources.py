"""The issue source the code location picks from the environment."""

import pytest

from k8s_analysis.resources import API_URL_ENV, REPOSITORY_ENV, issue_source_from_environment
from k8s_analysis.sources import ArchiveIssueSource
from k8s_analysis.sources.github import GitHubIssueSource


def test_no_token_uses_recorded_exports(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv(REPOSITORY_ENV, "kubernetes/enhancements")
    assert isinstance(issue_source_from_environment(), ArchiveIssueSource)


def test_repository_and_api_from_environment(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "not-a-real-token")
    monkeypatch.setenv(REPOSITORY_ENV, " kubernetes/enhancements ")
    monkeypatch.setenv(API_URL_ENV, "https://github.example.com/api/v3/")
    source = issue_source_from_environment()
    assert isinstance(source, GitHubIssueSource)
    assert source.repository == "kubernetes/enhancements"
    assert source.api_url == "https://github.example.com/api/v3"


def test_unset_repository_left_to_state(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "not-a-real-token")
    monkeypatch.delenv(REPOSITORY_ENV, raising=False)
    monkeypatch.setenv(API_URL_ENV, "")
    source = issue_source_from_environment()
    assert source.repository is None
    assert source.api_url is None


@pytest.mark.parametrize(("name", "value", "message"), [
    (REPOSITORY_ENV, "kubernetes", "K8S_ANALYSIS_REPOSITORY: invalid repository 'kubernetes'"),
    (API_URL_ENV, "api.github.com", "K8S_ANALYSIS_GITHUB_API_URL: invalid API URL 'api.github.com'"),
])
def test_invalid_setting_names_variable(monkeypatch, name, value, message):
    monkeypatch.setenv("GITHUB_TOKEN", "not-a-real-token")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        issue_source_from_environment()
