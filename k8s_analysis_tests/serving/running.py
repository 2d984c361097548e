"""A real ``k8s-analysis serve`` process on a free 127.0.0.1 port, and model folders to serve."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from k8s_analysis.model.bundle import MANIFEST_FILE, WEIGHTS_FILE, promote

LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
MODEL = "kubernetes-analysis"
PREDICT = f"/v1/models/{MODEL}:predict"
INFER = f"/v2/models/{MODEL}/infer"


class RunningServer:
    """A server process started for one test module; ``stop`` ends it with SIGTERM."""

    def __init__(self, model_dir: Path | None, log_path: Path, *options: str, port: int = 0) -> None:
        """Start the server; without ``model_dir`` it serves the default model of a new data directory."""
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        command = [sys.executable, "-m", "k8s_analysis.cli", "--data-dir", str(log_path.parent / "data"), "serve",
                   "--host", "127.0.0.1", "--port", str(port), *options]
        if model_dir is not None:
            command += ["--model-dir", str(model_dir)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.port = port or self._wait_for_port()

    def _wait_for_port(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"the server did not start listening within {timeout} s:\n{self.log()}")

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

    def wait_until(self, condition, timeout: float = 30.0, description: str = "the condition"):
        """Poll ``condition()`` until it returns a true value, and return that value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"{description} did not happen within {timeout} s; server log:\n{self.log()}")

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return self.request("GET", "/v2/health/ready")[0] == 200
            except ConnectionRefusedError:  # not listening yet (a fixed port is known before the bind)
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()}") from None
                return False

        self.wait_until(ready, timeout=60.0, description="readiness")

    def serving_version(self) -> str | None:
        status, body = self.request("GET", f"/v1/models/{MODEL}")
        return body["model_version"] if status == 200 else None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def copy_version(source: Path, models_dir: Path, version: str, bias_shift: float = 0.0) -> Path:
    """Copy a version folder under a new version name; a bias shift makes its probabilities differ.

    The shift moves the output layer's bias in ``weights.npz``, which is all the server reads.
    """
    target = models_dir / version
    shutil.copytree(source, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["version"] = version
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    if bias_shift:
        with np.load(target / WEIGHTS_FILE) as arrays:
            weights = dict(arrays)
        last = max(int(name.split("_")[1]) for name in weights if name.startswith("bias_"))
        weights[f"bias_{last}"] = weights[f"bias_{last}"] + np.float32(bias_shift)
        np.savez(target / WEIGHTS_FILE, **weights)
    return target


def promoted_copy(source: Path, models_dir: Path, version: str) -> Path:
    """Copy a version folder into ``models_dir``, point ``current`` at it, and return ``models_dir``."""
    copy_version(source, models_dir, version)
    promote(models_dir, version)
    return models_dir


def broken_version(source: Path, models_dir: Path, version: str) -> Path:
    """Copy a version folder and overwrite its weights with bytes that are not an .npz archive."""
    target = copy_version(source, models_dir, version)
    (target / WEIGHTS_FILE).write_bytes(b"not an npz archive")
    return target
