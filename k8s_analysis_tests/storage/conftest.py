"""A fresh object-storage root per test, on fsspec's in-memory file system."""

import uuid

import pytest
from upath import UPath

from k8s_analysis.storage import STORAGE_OPTIONS_ENV, STORAGE_URL_ENV


@pytest.fixture()
def memory_storage(monkeypatch) -> UPath:
    """Set K8S_ANALYSIS_STORAGE_URL to an empty memory:// root, and delete that root afterwards."""
    url = f"memory://k8s-analysis-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(STORAGE_URL_ENV, url)
    monkeypatch.delenv(STORAGE_OPTIONS_ENV, raising=False)
    root = UPath(url)
    yield root
    if root.fs.exists(root.path):
        root.fs.rm(root.path, recursive=True)
