"""A real ``k8s-analysis serve`` process on a free 127.0.0.1 port, and model folders to serve."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from k8s_analysis.model.bundle import MANIFEST_FILE, WEIGHTS_FILE, promote
from k8s_analysis_tests.processes import ServiceProcess

MODEL = "kubernetes-analysis"
PREDICT = f"/v1/models/{MODEL}:predict"
INFER = f"/v2/models/{MODEL}/infer"


class RunningServer(ServiceProcess):
    """A server process started for one test module; ``stop`` ends it with SIGTERM."""

    name = "the server"

    def __init__(self, model_dir: Path | None, log_path: Path, *options: str, port: int = 0) -> None:
        """Start the server; without ``model_dir`` it serves the default model of a new data directory."""
        command = [sys.executable, "-m", "k8s_analysis.cli", "--data-dir", str(log_path.parent / "data"), "serve",
                   "--host", "127.0.0.1", "--port", str(port), *options]
        if model_dir is not None:
            command += ["--model-dir", str(model_dir)]
        super().__init__(command, log_path, dict(os.environ), port)

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
