"""A real ``k8s-analysis bot`` process, and signed webhook deliveries built from the shared real PRs."""

from __future__ import annotations

import functools
import json
import os
import sys
import tarfile
import time
import uuid
from pathlib import Path

from k8s_analysis.bot.signature import sign
from k8s_analysis.parsing.release_note import extract_release_note
from k8s_analysis_tests.processes import ServiceProcess
from k8s_analysis_tests.shared_data import shared_path

SECRET = "whsec-9f1c2e7a-for-tests"
TOKEN = "ghp-token-5b8d03c4-for-tests"
REPOSITORY = "kubernetes/kubernetes"
HUMAN = {"login": "maintainer-b", "id": 7001, "type": "User"}
AUTHOR = {"login": "user-a", "id": 7002, "type": "User"}


@functools.lru_cache(maxsize=1)
def real_pull_requests() -> tuple[dict, ...]:
    """The shared kubernetes/kubernetes pull requests, as the issues API returns them."""
    archive = shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
    with tarfile.open(archive, mode="r:xz") as tar:
        return tuple(json.load(tar.extractfile("api.json")))


def with_notes() -> list[dict]:
    """The shared pull requests whose body holds a real release note."""
    return [item for item in real_pull_requests() if extract_release_note(item.get("body")).has_note]


def pull_request_payload(item: dict, action: str, sender: dict = AUTHOR, **extra) -> dict:
    """A ``pull_request`` delivery for an issues-API item, shaped as GitHub sends it."""
    pull_request = {
        "number": item["number"], "title": item["title"], "body": item.get("body"), "state": item["state"],
        "labels": item.get("labels") or [], "user": item.get("user") or AUTHOR, "merged": False,
        "html_url": item.get("html_url"),
    }
    return {"action": action, "number": item["number"], "pull_request": pull_request,
            "repository": {"full_name": REPOSITORY, "name": "kubernetes", "owner": {"login": "kubernetes"}},
            "sender": sender, **extra}


def with_labels(item: dict, names: list[str]) -> dict:
    return {**item, "labels": [{"name": name} for name in names]}


class RunningBot(ServiceProcess):
    """A bot process started for a test; ``stop`` ends it with SIGTERM."""

    name = "the bot"
    # Longer than the bot's default shutdown timeout of 30 s, which finishes queued work first.
    stop_timeout_s = 40.0

    def __init__(self, data_dir: Path, api_url: str, *options: str, model_dir: Path | None = None,
                 secret: str | None = SECRET, token: str | None = TOKEN) -> None:
        self.secret = secret
        self.queued = 0
        command = [sys.executable, "-m", "k8s_analysis.cli", "--data-dir", str(data_dir), "bot",
                   "--host", "127.0.0.1", "--port", "0", "--api-url", api_url, *options]
        if model_dir is not None:
            command += ["--model-dir", str(model_dir)]
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("GITHUB_TOKEN", "GITHUB_WEBHOOK_SECRET")}
        if secret is not None:
            environment["GITHUB_WEBHOOK_SECRET"] = secret
        if token is not None:
            environment["GITHUB_TOKEN"] = token
        super().__init__(command, data_dir.parent / f"bot-{data_dir.name}.log", environment)

    def deliver(self, event: str, payload: dict, delivery_id: str | None = None, secret: str | None = None,
                path: str = "/") -> tuple[int, object]:
        """POST one delivery, signed with the bot's secret (or ``secret``), as GitHub sends it."""
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()), "User-Agent": "GitHub-Hookshot/test"}
        key = secret or self.secret
        if key is not None:
            headers["X-Hub-Signature-256"] = sign(key, body)
        status, answer = self.request("POST", path, raw=body, headers=headers)
        if status == 202:
            self.queued += 1
        return status, answer

    def wait_until_logged(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"the bot did not log {text!r} within {timeout} s; log:\n{self.log()}")

    def health(self) -> dict:
        return self.request("GET", "/healthz")[1]

    def wait_idle(self, timeout: float = 30.0) -> dict:
        """Wait until the bot has carried out every delivery it queued and has none pending."""
        deadline = time.monotonic() + timeout
        health = {}
        while time.monotonic() < deadline:
            health = self.health()
            if health["handled"] >= self.queued and health["pending"] == 0:
                return health
            time.sleep(0.05)
        raise AssertionError(f"the bot did not finish {self.queued} decision(s) within {timeout} s ({health}); "
                             f"log:\n{self.log()}")
