"""`dagster dev` with workspace.yaml serves the asset graph, in its groups, on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 90
ASSET_GROUPS_QUERY = "{ assetNodes { assetKey { path } groupName } }"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def dagster_dev(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "K8S_ANALYSIS_DATA_DIR": str(tmp_path / "data")}
    dagster = Path(sys.executable).with_name("dagster")
    # A new session with default SIGINT lets terminate() stop dagster dev and its children.
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPOSITORY, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_assets(port: int) -> list[dict]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            nodes = graphql(port, ASSET_GROUPS_QUERY)["data"]["assetNodes"]
            if nodes:
                return nodes
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster dev did not serve the asset graph within {STARTUP_TIMEOUT_S} s")


@pytest.mark.slow
def test_ui_shows_asset_groups(dagster_dev):
    nodes = wait_for_assets(dagster_dev)
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
