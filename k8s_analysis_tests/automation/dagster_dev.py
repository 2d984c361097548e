"""A real ``dagster dev`` (webserver and daemon) on 127.0.0.1, and what the tests ask it over GraphQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
LOCATION = "k8s_analysis"
# The name Dagster gives the one repository of a Definitions object.
REPOSITORY_NAME = "__repository__"
STARTUP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30

TICKS_QUERY = """
query Ticks($selector: %(type)sSelector!, $limit: Int!) {
  %(field)s(%(argument)s: $selector) {
    __typename
    ... on %(type)s {
      %(state)s {
        status
        typeSpecificData { ... on SensorData { lastCursor } }
        ticks(limit: $limit) {
          tickId status timestamp cursor skipReason runIds runKeys
          error { message errorChain { error { message } } }
          logEvents { events { message level } }
        }
      }
    }
  }
}
"""
RUNS_QUERY = """
query Runs($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime runConfigYaml tags { key value } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dagster_command(name: str) -> str:
    """The path of a Dagster console script installed beside this interpreter."""
    return str(Path(sys.executable).with_name(name))


class DagsterDev:
    """``dagster dev -w workspace.yaml`` in its own process group; ``stop`` ends the whole group."""

    def __init__(self, environment: dict[str, str], log_path: Path) -> None:
        self.environment = environment
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        # A new session with the default SIGINT lets SIGTERM reach dagster dev and its children
        # (stack-notes: dagster copies an ignored SIGINT to SIGTERM).
        self.process = subprocess.Popen(
            [dagster_command("dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPOSITORY, env=environment, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            result = json.loads(response.read())
        if result.get("errors"):
            raise AssertionError(f"GraphQL errors: {result['errors']}")
        return result["data"]

    def wait_ready(self) -> None:
        """Wait until the webserver serves the code location's asset graph."""
        def ready() -> bool:
            try:
                return bool(self.graphql("{ assetNodes { id } }")["assetNodes"])
            except (OSError, ValueError, AssertionError):
                return False

        self.wait_until(ready, STARTUP_TIMEOUT_S, "the Dagster webserver answering with the asset graph")

    def wait_until(self, condition, timeout: float, description: str, interval: float = 1.0):
        """Poll ``condition()`` until it returns a true value, and return that value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.process.returncode}:\n{self.log()}")
            value = condition()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"{description} did not happen within {timeout} s; dagster dev log:\n{self.log()}")

    def cli(self, *arguments: str) -> str:
        """Run a ``dagster`` command against the same instance and workspace; return its output."""
        result = subprocess.run([dagster_command("dagster"), *arguments, "-w", "workspace.yaml"], cwd=REPOSITORY,
                                env=self.environment, capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            raise AssertionError(f"dagster {' '.join(arguments)} exited with {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def instigator_state(self, kind: str, name: str, limit: int = 50) -> dict:
        """The state of a sensor or schedule: status, cursor and its newest ticks first."""
        field, argument, type_name, state = {
            "sensor": ("sensorOrError", "sensorSelector", "Sensor", "sensorState"),
            "schedule": ("scheduleOrError", "scheduleSelector", "Schedule", "scheduleState"),
        }[kind]
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY_NAME, f"{kind}Name": name}
        query = TICKS_QUERY % {"field": field, "argument": argument, "type": type_name, "state": state}
        result = self.graphql(query, {"selector": selector, "limit": limit})[field]
        if result["__typename"] != type_name:
            raise AssertionError(f"no {kind} {name}: {result}")
        for tick in result[state]["ticks"]:
            error = tick.pop("error")
            # The error and its causes, outermost first, as the tick's page lists them.
            tick["errors"] = [error["message"], *(link["error"]["message"] for link in error["errorChain"])] \
                if error else []
        return result[state]

    def runs(self, job_name: str) -> list[dict]:
        """The job's runs, newest first, each with its tags as a dict."""
        result = self.graphql(RUNS_QUERY, {"filter": {"pipelineName": job_name}})["runsOrError"]
        runs = result["results"]
        for run in runs:
            run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
        return runs

    def stop(self) -> None:
        """End dagster dev, then kill whatever of its process group outlived it (a run still going)."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        except ProcessLookupError:
            pass
        finally:
            self._log.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
