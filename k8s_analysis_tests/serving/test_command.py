"""The ``serve`` command: several workers, and the options it rejects."""

import re
import socket
import subprocess
import sys

import pytest

from k8s_analysis_tests.serving.running import MODEL, PREDICT, RunningServer, promoted_copy
from k8s_analysis_tests.serving.test_server import BUG_NOTE, metric_samples

VERSION = "20250401T000000Z-0000c001"
STARTED = re.compile(r"Started server process \[(\d+)\]")


@pytest.fixture(scope="module")
def models_dir(served_model_dir, tmp_path_factory):
    return promoted_copy(served_model_dir, tmp_path_factory.mktemp("models"), VERSION)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_workers_share_metrics(models_dir, tmp_path):
    server = RunningServer(models_dir / "current", tmp_path / "server.log", "--workers", "2", port=free_port())
    try:
        server.wait_ready()
        workers = server.wait_until(lambda: len(set(STARTED.findall(server.log()))) == 2,
                                    description="two worker processes")
        before = metric_samples(server)
        # A new connection per request lets the kernel hand requests to either worker.
        answers = [server.request("POST", PREDICT, {"text": BUG_NOTE}) for _ in range(40)]
        after = metric_samples(server)
    finally:
        server.stop()

    assert workers
    assert {status for status, _ in answers} == {200}
    assert len({body["result"] for _, body in answers}) == 1
    key = ("k8s_analysis_http_requests_total", (("route", "/v1/models/{name}:predict"), ("status", "200")))
    # Each scrape adds up both workers' counts, whichever worker handles it.
    assert after[key] - before.get(key, 0) == 40
    assert "with 2 workers" in server.log()


def test_new_data_directory_starts_not_ready(tmp_path):
    server = RunningServer(None, tmp_path / "server.log")
    try:
        status, body = server.wait_until(lambda: server.request("GET", f"/v1/models/{MODEL}"), description="a response")
    finally:
        server.stop()

    assert status == 503
    assert f"no model at {tmp_path / 'data' / 'models' / 'current'}" in body["error"]
    assert "WARNING" in server.log()


def run_serve(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k8s_analysis.cli", "serve", *arguments],
                          capture_output=True, text=True, timeout=120)


def test_serve_versions_folder_hints_current(models_dir):
    result = run_serve("--model-dir", str(models_dir))

    assert result.returncode == 2
    assert f"did you mean --model-dir {models_dir / 'current'}?" in result.stderr


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--port", "70000", "invalid --port 70000"),
    ("--max-body-bytes", "0", "invalid max body size 0"),
    ("--reload-interval", "-1", "invalid reload interval -1.0"),
    ("--model-name", "a/b", "invalid model name 'a/b'"),
    ("--workers", "0", "invalid --workers 0"),
    ("--model-dir", "/nonexistent/current", "the folder /nonexistent does not exist"),
])
def test_serve_rejects_invalid_options(models_dir, option, value, message):
    result = run_serve("--model-dir", str(models_dir / "current"), option, value)

    assert result.returncode == 2, result.stderr
    assert message in result.stderr
