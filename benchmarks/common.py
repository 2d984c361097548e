"""Helpers shared by the benchmark scripts: the real objects, peak RSS, and child stages."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tarfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY.parent / "shared" / "data"


def real_objects() -> list[dict]:
    """Return the 744 kubernetes pull requests and the 388 issue objects of other repositories."""
    archive = SHARED_DATA / "kubernetes-prs" / "kubernetes-prs-api.tar.xz"
    with tarfile.open(archive) as tar:
        kubernetes = json.load(tar.extractfile("api.json"))
    replay = json.loads((SHARED_DATA / "pygithub-replaydata" / "issues_from_replaydata.json").read_text())
    return kubernetes + replay


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stage(script: str, *args: str) -> dict:
    """Run ``script --stage ARGS`` in a child process and return the JSON its last line prints."""
    output = subprocess.run(
        [sys.executable, script, "--stage", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])
