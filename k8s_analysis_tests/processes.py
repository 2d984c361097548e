"""A command-line service started for a test: its log, its port, requests to it, and its stop."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import time
from pathlib import Path

LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def default_stop_signals() -> None:
    """Give the child the default SIGTERM and SIGINT actions, whatever the test process inherited.

    A child inherits ignored signals (a test run started in the background of a script ignores
    SIGINT). uvicorn restores the inherited action after its graceful stop, so with SIGTERM
    ignored the server would exit 0 instead of ending by SIGTERM, as the tests expect.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServiceProcess:
    """A uvicorn-based ``k8s-analysis`` command listening on 127.0.0.1; ``stop`` ends it with SIGTERM."""

    name = "the service"
    stop_timeout_s = 20.0

    def __init__(self, command: list[str], log_path: Path, environment: dict[str, str], port: int = 0) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**environment, "PYTHONUNBUFFERED": "1"},
                                        preexec_fn=default_stop_signals)
        self.port = port or self._wait_for_port()

    def _wait_for_port(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start listening within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def request(self, method: str, path: str, body: object = None, raw: bytes | None = None,
                headers: dict | None = None) -> tuple[int, object]:
        """Send one request on a new connection; return the status and the JSON (or text) body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = raw
            if data is None and body is not None:
                data = json.dumps(body).encode()
            connection.request(method, path, body=data, headers=headers or {})
            response = connection.getresponse()
            content = response.read().decode("utf-8")
            if response.getheader("content-type", "").startswith("application/json"):
                return response.status, json.loads(content)
            return response.status, content
        finally:
            connection.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
