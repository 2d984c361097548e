"""Locate the shared test data that sits beside the repository, in ../shared."""

import os
from pathlib import Path

import pytest

SHARED_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared"

# With this variable set to "1", missing shared data fails the test instead of skipping it.
REQUIRE_ENV_VAR = "K8S_ANALYSIS_REQUIRE_SHARED_DATA"


def shared_path(*parts: str) -> Path:
    """Return the resolved path of ../shared/<parts>, or skip the test when it is missing.

    The test fails instead of skipping when K8S_ANALYSIS_REQUIRE_SHARED_DATA=1.
    """
    path = SHARED_ROOT.joinpath(*parts).resolve()
    if path.exists():
        return path

    kind = "folder" if len(parts) == 1 else "file"
    name = parts[0] if parts else "data"
    message = f"shared {name} {kind} not found at {path}"
    if os.environ.get(REQUIRE_ENV_VAR) == "1":
        pytest.fail(message)
    pytest.skip(message)
