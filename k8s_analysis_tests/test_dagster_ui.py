"""`dagster dev` with workspace.yaml serves the asset graph, in its groups, on 127.0.0.1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_analysis_tests.automation.dagster_dev import DagsterDev

REPOSITORY = Path(__file__).resolve().parents[1]
ASSET_GROUPS_QUERY = "{ assetNodes { assetKey { path } groupName } }"


@pytest.fixture
def dagster_dev(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    environment = {**os.environ, "DAGSTER_HOME": str(home), "K8S_ANALYSIS_DATA_DIR": str(tmp_path / "data")}
    dagster = DagsterDev(environment, tmp_path / "dagster-dev.log")
    try:
        dagster.wait_ready()
        yield dagster
    finally:
        dagster.stop()


@pytest.mark.slow
def test_ui_shows_asset_groups(dagster_dev):
    nodes = dagster_dev.graphql(ASSET_GROUPS_QUERY)["assetNodes"]
    groups = {node["assetKey"]["path"][-1]: node["groupName"] for node in nodes}
    assert groups["raw_issues"] == "raw"
    assert groups["pull_requests"] == "tables"
    assert groups["release_notes"] == "tables"
    assert groups["kind_bug_classifier"] == "model"


def test_definitions_validate(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "k8s_analysis.definitions"],
        cwd=REPOSITORY, env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Validation successful" in result.stderr + result.stdout
