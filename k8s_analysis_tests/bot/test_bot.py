"""End-to-end tests of the bot: a real ``k8s-analysis bot`` process, signed deliveries built from
the shared real pull requests, and the fake GitHub server that stores the comments and labels.

One bot and one fake server serve the whole module, and each test takes pull requests that no
other test uses. Tests that need other options start their own bot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from k8s_analysis.bot.comment import MARKER
from k8s_analysis.model.bundle import Predictor, promote
from k8s_analysis.parsing.release_note import extract_release_note
from k8s_analysis_tests.bot.running import (AUTHOR, HUMAN, REPOSITORY, SECRET, TOKEN, RunningBot,
                                            pull_request_payload, with_labels, with_notes)
from k8s_analysis_tests.conftest import SERVED_VERSION
from k8s_analysis_tests.fake_github import BOT_USER, FakeGitHub
from k8s_analysis_tests.serving.running import RunningServer, copy_version, promoted_copy

BUG = "kind/bug"
NONE_BODY = "This changes nothing users see.\n\n```release-note\nNONE\n```\n"
BOT_SENDER = {"login": BOT_USER["login"], "id": BOT_USER["id"], "type": "Bot"}


@dataclass
class Example:
    item: dict
    probability: float

    @property
    def number(self) -> int:
        return self.item["number"]


class Examples:
    """Real pull requests, without their kind/* labels, that the served model scores clearly above or below
    its threshold; each is handed out once."""

    def __init__(self, model_dir):
        predictor = Predictor(model_dir)
        self.threshold = predictor.threshold
        items = [with_labels(item, [label["name"] for label in item.get("labels") or []
                                    if not label["name"].startswith("kind/")]) for item in with_notes()]
        texts = [extract_release_note(item["body"]).text for item in items]
        probabilities, informative = predictor.score(texts)
        self.items = items
        self._bugs = iter([Example(item, float(p)) for item, p, known in zip(items, probabilities, informative)
                           if known and p >= self.threshold + 0.15])
        self._others = iter([Example(item, float(p)) for item, p, known in zip(items, probabilities, informative)
                             if known and p <= self.threshold - 0.15])

    def bug(self) -> Example:
        return next(self._bugs)

    def other(self) -> Example:
        return next(self._others)


@pytest.fixture(scope="module")
def examples(served_model_dir):
    return Examples(served_model_dir)


@pytest.fixture(scope="module")
def fake(examples):
    with FakeGitHub(examples.items, token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def bot(tmp_path_factory, fake, served_model_dir):
    running = RunningBot(tmp_path_factory.mktemp("bot") / "data", fake.base_url, model_dir=served_model_dir)
    yield running
    running.stop()
    log = running.log()
    # Neither secret may reach the log, whatever the tests sent.
    assert TOKEN not in log
    assert SECRET not in log


def edited(example: Example, new_body: str, sender: dict = AUTHOR) -> dict:
    """An ``edited`` delivery that replaces the body of ``example`` with ``new_body``."""
    item = {**example.item, "body": new_body}
    return pull_request_payload(item, "edited", sender, changes={"body": {"from": example.item["body"]}})


def requests_for(fake: FakeGitHub, number: int) -> list[tuple[str, str]]:
    return [(request.method, request.route) for request in list(fake.requests) if f"/{number}/" in request.path
            or request.path.endswith(f"/{number}")]


def writes_for(fake: FakeGitHub, number: int, comment_ids=()) -> list[tuple[str, str]]:
    return [(request.method, request.route) for request in fake.writes()
            if f"/issues/{number}/" in request.path
            or any(request.path.endswith(f"/comments/{comment_id}") for comment_id in comment_ids)]


def only_comment(fake: FakeGitHub, number: int) -> dict:
    comments = fake.comments(number)
    assert len(comments) == 1, comments
    assert comments[0]["user"]["login"] == BOT_USER["login"]
    assert MARKER in comments[0]["body"]
    return comments[0]


LABEL_POST = ("POST", "POST /repos/{owner}/{name}/issues/{number}/labels")
LABEL_DELETE = ("DELETE", "DELETE /repos/{owner}/{name}/issues/{number}/labels/{label}")
COMMENT_POST = ("POST", "POST /repos/{owner}/{name}/issues/{number}/comments")
COMMENT_PATCH = ("PATCH", "PATCH /repos/{owner}/{name}/issues/comments/{id}")
COMMENT_DELETE = ("DELETE", "DELETE /repos/{owner}/{name}/issues/comments/{id}")


# -- the main flow -------------------------------------------------------------------------------


def test_opened_bug_gets_label_and_comment(bot, fake, examples):
    example = examples.bug()

    status, response = bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    bot.wait_idle()

    assert (status, response) == (202, {"status": "queued", "item": f"{REPOSITORY}#{example.number}"})
    assert BUG in fake.labels(example.number)
    body = only_comment(fake, example.number)["body"]
    assert f"to **{example.probability:.0%}**" in body
    assert f"threshold is {examples.threshold:.0%}" in body
    assert f"model `{SERVED_VERSION}`" in body
    assert "I added the `kind/bug` label." in body
    assert "`/kind bug`" in body
    assert "`/remove-kind bug`" in body
    assert re.search(r"towards a bug fix: `[^`]+` \(\+\d\.\d\d\)", body)
    # The label goes first, so the comment never reports a label change that failed.
    comment_id = only_comment(fake, example.number)["id"]
    assert writes_for(fake, example.number, [comment_id]) == [LABEL_POST, COMMENT_POST]

    # A push changes neither the note nor the prediction, so nothing is written again.
    bot.deliver("pull_request", pull_request_payload(with_example_labels(example, fake).item, "synchronize"))
    bot.wait_idle()

    assert writes_for(fake, example.number, [comment_id]) == [LABEL_POST, COMMENT_POST]


def test_edit_to_non_bug_removes_label(bot, fake, examples):
    example, other = examples.bug(), examples.other()
    bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    bot.wait_idle()
    first = only_comment(fake, example.number)

    bot.deliver("pull_request", edited(with_example_labels(example, fake), other.item["body"]))
    bot.wait_idle()

    second = only_comment(fake, example.number)
    assert second["id"] == first["id"]
    assert f"to **{other.probability:.0%}**" in second["body"]
    assert "I removed the `kind/bug` label that I had added earlier." in second["body"]
    assert BUG not in fake.labels(example.number)
    assert writes_for(fake, example.number, [first["id"]]) == [LABEL_POST, COMMENT_POST, LABEL_DELETE,
                                                                 COMMENT_PATCH]


def test_edit_to_bug_adds_label(bot, fake, examples):
    example, bug = examples.other(), examples.bug()
    bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    bot.wait_idle()
    first = only_comment(fake, example.number)
    assert "I did not add the `kind/bug` label." in first["body"]
    assert BUG not in fake.labels(example.number)

    bot.deliver("pull_request", edited(example, bug.item["body"]))
    bot.wait_idle()

    second = only_comment(fake, example.number)
    assert second["id"] == first["id"]
    assert "I added the `kind/bug` label." in second["body"]
    assert BUG in fake.labels(example.number)


def test_edit_to_none_deletes_comment(bot, fake, examples):
    example = examples.bug()
    bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    bot.wait_idle()
    comment_id = only_comment(fake, example.number)["id"]

    bot.deliver("pull_request", edited(with_example_labels(example, fake), NONE_BODY))
    bot.wait_idle()

    assert fake.comments(example.number) == []
    assert BUG in fake.labels(example.number)
    assert writes_for(fake, example.number, [comment_id]) == [LABEL_POST, COMMENT_POST, COMMENT_DELETE]


def test_no_note_makes_no_github_call(bot, fake, examples):
    example = examples.other()
    before = len(fake.requests)

    bot.deliver("pull_request", pull_request_payload({**example.item, "body": NONE_BODY}, "opened"))
    bot.deliver("pull_request", pull_request_payload({**example.item, "body": None}, "reopened"))
    bot.wait_idle()

    assert len(fake.requests) == before


def with_example_labels(example: Example, fake: FakeGitHub) -> Example:
    """The example as GitHub would now send it: with the labels the fake holds."""
    return Example(with_labels(example.item, fake.labels(example.number)), example.probability)


# -- people's labels ------------------------------------------------------------------------------


def test_human_removal_is_never_undone(bot, fake, examples):
    example, another_bug = examples.bug(), examples.bug()
    number = example.number
    # seq 1: opened, predicted a bug: the label and the comment.
    bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    bot.wait_idle()
    comment_id = only_comment(fake, number)["id"]
    # seq 2 and 3: GitHub reports the bot's own label and comment back to it.
    labelled = with_example_labels(example, fake)
    assert bot.deliver("pull_request", pull_request_payload(labelled.item, "labeled", BOT_SENDER,
                                                            label={"name": BUG}))[1]["status"] == "ignored"
    own_comment = {"action": "created", "issue": {"number": number, "pull_request": {}},
                   "comment": {"id": comment_id}, "repository": {"full_name": REPOSITORY}, "sender": BOT_SENDER}
    assert bot.deliver("issue_comment", own_comment)[1]["status"] == "ignored"
    # seq 4: a maintainer removes kind/bug.
    fake.set_labels(number, [label for label in fake.labels(number) if label != BUG])
    unlabeled = pull_request_payload(with_example_labels(example, fake).item, "unlabeled", HUMAN,
                                     label={"name": BUG})
    assert bot.deliver("pull_request", unlabeled)[0] == 202
    # seq 5: the author edits the note, and the model still predicts a bug fix.
    bot.deliver("pull_request", edited(with_example_labels(example, fake), another_bug.item["body"]))
    bot.wait_idle()
    # seq 6: the edit of the bot's comment comes back.
    assert bot.deliver("issue_comment", {**own_comment, "action": "edited"})[1]["status"] == "ignored"
    bot.wait_idle()

    assert BUG not in fake.labels(number)
    body = only_comment(fake, number)["body"]
    assert "@maintainer-b removed `kind/bug`, so I never add it again." in body
    # Two writes for the prediction, one edit of the comment, and never a second label write.
    assert writes_for(fake, number, [comment_id]) == [LABEL_POST, COMMENT_POST, COMMENT_PATCH]

    feedback = pd.read_parquet(bot_data(bot) / "tables" / "label_feedback.parquet")
    row = feedback[feedback["pr_number"] == number].iloc[0]
    assert (row["label"], row["action"], row["sender"], bool(row["is_bug"])) == (BUG, "unlabeled", "maintainer-b",
                                                                               False)
    assert row["text"] == extract_release_note(example.item["body"]).text
    assert row["probability"] == pytest.approx(example.probability, abs=1e-5)
    assert bool(row["predicted_bug"]) is True
    assert row["model_version"] == SERVED_VERSION


def test_human_label_is_never_removed(bot, fake, examples):
    example = examples.other()
    fake.set_labels(example.number, [*fake.labels(example.number), BUG])
    item = with_example_labels(example, fake).item

    bot.deliver("pull_request", pull_request_payload(item, "opened"))
    bot.wait_idle()

    assert BUG in fake.labels(example.number)
    body = only_comment(fake, example.number)["body"]
    assert "was set before my prediction, so I leave it to the people on this pull request" in body
    assert writes_for(fake, example.number, [only_comment(fake, example.number)["id"]]) == [COMMENT_POST]
    assert metric(bot, "k8s_analysis_bot_disagreements_total") >= 1


def test_human_added_label_sticks(bot, fake, examples):
    example, other = examples.bug(), examples.other()
    bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    bot.wait_idle()
    # A maintainer confirms the bot's label by adding it again after removing it.
    labelled = with_example_labels(example, fake).item
    bot.deliver("pull_request", pull_request_payload(labelled, "labeled", HUMAN, label={"name": BUG}))
    bot.deliver("pull_request", edited(with_example_labels(example, fake), other.item["body"]))
    bot.wait_idle()

    assert BUG in fake.labels(example.number)
    assert "@maintainer-b added `kind/bug`, so I never remove it." in only_comment(fake, example.number)["body"]


def test_feedback_before_prediction_stores_no_row(bot, fake, examples):
    example = examples.other()
    data_dir = bot_data(bot)
    before = feedback_rows(data_dir)

    bot.deliver("pull_request", pull_request_payload(example.item, "labeled", HUMAN, label={"name": "kind/feature"}))
    bot.wait_idle()

    assert feedback_rows(data_dir) == before
    assert "the bot has not predicted for it, so no feedback row" in bot.log()


# -- deliveries -----------------------------------------------------------------------------------


def test_redelivery_is_handled_once(bot, fake, examples):
    example = examples.bug()
    payload = pull_request_payload(example.item, "opened")
    delivery = str(uuid.uuid4())

    first = bot.deliver("pull_request", payload, delivery_id=delivery)
    second = bot.deliver("pull_request", payload, delivery_id=delivery)
    bot.wait_idle()

    assert first[0] == 202
    assert second == (200, {"status": "duplicate"})
    only_comment(fake, example.number)


def signed_body(payload: dict) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize("how", ["wrong secret", "no signature", "sha1 only", "body changed after signing",
                                 "re-serialised JSON", "no sha256= prefix"])
def test_bad_signature_gets_401(bot, fake, examples, how):
    example = examples.bug()
    payload = pull_request_payload({**example.item, "title": "Fix “quoted” crash – é"}, "opened")
    body = signed_body(payload)
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
               "Content-Type": "application/json", "X-Hub-Signature-256": signature}
    if how == "wrong secret":
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
    elif how == "no signature":
        del headers["X-Hub-Signature-256"]
    elif how == "sha1 only":
        del headers["X-Hub-Signature-256"]
        headers["X-Hub-Signature"] = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    elif how == "body changed after signing":
        body = body.replace(b'"opened"', b'"edited"')
    elif how == "re-serialised JSON":
        body = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()
    else:
        headers["X-Hub-Signature-256"] = signature.removeprefix("sha256=")
    before = len(fake.requests)

    status, response = bot.request("POST", "/", raw=body, headers=headers)

    assert status == 401
    assert "signature" in response["error"].lower()
    assert len(fake.requests) == before


def test_own_event_is_ignored(bot, fake, examples):
    example = examples.bug()
    before = len(fake.requests)

    status, response = bot.deliver("pull_request", pull_request_payload(example.item, "opened", BOT_SENDER))

    assert status == 200
    assert response["reason"] == f"sent by the bot itself ({BOT_USER['login']})"
    assert len(fake.requests) == before


def test_github_502_then_200_one_comment(bot, fake, examples):
    example = examples.bug()
    fake.inject(502, path_contains=f"/issues/{example.number}/comments", method="POST")

    bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    bot.wait_idle()

    only_comment(fake, example.number)
    statuses = [request.status for request in fake.writes() if f"/issues/{example.number}/comments" in request.path]
    assert statuses == [502, 201]


def test_labeled_burst_classified_once(bot, fake, examples):
    example = examples.bug()
    number = example.number
    burst = [pull_request_payload(example.item, "opened")]
    for name in ("sig/node", "area/kubelet", "needs-triage"):
        burst.append(pull_request_payload(example.item, "labeled", AUTHOR, label={"name": name}))

    responses = [bot.deliver("pull_request", payload) for payload in burst]
    bot.wait_idle()

    assert [status for status, _ in responses] == [202, 200, 200, 200]
    assert len(re.findall(rf"#{number}: opened: probability", bot.log())) == 1
    assert writes_for(fake, number, [only_comment(fake, number)["id"]]) == [LABEL_POST, COMMENT_POST]


def test_plain_issue_makes_no_github_call(bot, fake, examples):
    before = len(fake.requests)
    comment = {"action": "created", "issue": {"number": 120021, "title": "question"},
               "repository": {"full_name": REPOSITORY}, "sender": AUTHOR}
    issue = {"action": "opened", "issue": {"number": 120022, "title": "kubelet crash", "body": None},
             "repository": {"full_name": REPOSITORY}, "sender": AUTHOR}

    assert bot.deliver("issue_comment", comment)[0] == 200
    assert bot.deliver("issues", issue)[0] == 202
    bot.wait_idle()

    assert len(fake.requests) == before
    assert "kubernetes/kubernetes#120022: no release note (no-body)" in bot.log()


def test_events_of_one_pr_in_order(bot, fake, examples):
    example, bug, other = examples.other(), examples.bug(), examples.other()
    bodies = [bug.item["body"], NONE_BODY, bug.item["body"], other.item["body"]]

    bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
    previous = example
    for body in bodies:
        bot.deliver("pull_request", edited(previous, body))
        previous = Example({**example.item, "body": body}, 0.0)
    bot.wait_idle()

    # Whatever ran in between, the last body decides: a non-bug note, one comment, no label.
    body = only_comment(fake, example.number)["body"]
    assert f"to **{other.probability:.0%}**" in body
    assert BUG not in fake.labels(example.number)


# -- other routes ---------------------------------------------------------------------------------


def test_health_ping_and_client_errors(bot):
    assert bot.health()["status"] == "ok"
    assert SERVED_VERSION in bot.health()["model"]
    assert bot.deliver("ping", {"zen": "Design for failure.", "hook_id": 1})[1]["status"] == "ignored"
    assert bot.deliver("pull_request", {"action": "opened"}, path="/hook")[0] == 200

    status, response = bot.request("GET", "/")
    assert status == 405
    assert response["error"] == "GET is not allowed on /"
    body = b"not json"
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-1",
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
    status, response = bot.request("POST", "/", raw=body, headers=headers)
    assert status == 400
    assert "not a JSON object" in response["error"]
    body = b"{}"
    headers = {"X-GitHub-Delivery": "d-2",
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
    status, response = bot.request("POST", "/", raw=body, headers=headers)
    assert status == 400
    assert "X-GitHub-Event header is missing" in response["error"]
    metrics_text = bot.request("GET", "/metrics")[1]
    assert 'k8s_analysis_bot_deliveries_total{event="ping",outcome="ignored"} 1.0' in metrics_text


def metric(bot: RunningBot, name: str) -> float:
    text = bot.request("GET", "/metrics")[1]
    match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def bot_data(bot: RunningBot):
    return bot.log_path.parent / bot.log_path.stem.removeprefix("bot-")


def feedback_rows(data_dir) -> int:
    path = data_dir / "tables" / "label_feedback.parquet"
    return len(pd.read_parquet(path)) if path.exists() else 0


# -- bots with other options --------------------------------------------------------------------


def test_restart_keeps_deliveries_and_comment(tmp_path, fake, examples, served_model_dir):
    example, other = examples.bug(), examples.other()
    payload = pull_request_payload(example.item, "opened")
    first = RunningBot(tmp_path / "data", fake.base_url, model_dir=served_model_dir)
    try:
        first.deliver("pull_request", payload, delivery_id="delivery-before-restart")
        first.wait_idle()
    finally:
        first.stop()
    comment_id = only_comment(fake, example.number)["id"]

    second = RunningBot(tmp_path / "data", fake.base_url, model_dir=served_model_dir)
    try:
        assert second.deliver("pull_request", payload, delivery_id="delivery-before-restart")[1] == {
            "status": "duplicate"}
        second.deliver("pull_request", edited(with_example_labels(example, fake), other.item["body"]))
        second.wait_idle()
    finally:
        second.stop()

    assert only_comment(fake, example.number)["id"] == comment_id
    assert BUG not in fake.labels(example.number)


def test_dry_run_writes_nothing(tmp_path, fake, examples, served_model_dir):
    example = examples.bug()
    data_dir = tmp_path / "data"
    bot = RunningBot(data_dir, fake.base_url, "--dry-run", "--bot-login", BOT_USER["login"],
                     model_dir=served_model_dir, token=None)
    before = len(fake.writes())
    try:
        bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
        bot.deliver("pull_request", pull_request_payload(example.item, "synchronize"))
        bot.deliver("pull_request", pull_request_payload(example.item, "unlabeled", HUMAN, label={"name": BUG}))
        bot.wait_idle()
        health = bot.health()
    finally:
        bot.stop()

    assert health["dry_run"] is True
    assert len(fake.writes()) == before
    log = bot.log()
    # The second event would change nothing, so it logs no second comment or label.
    assert log.count(f"dry run: would add kind/bug to {REPOSITORY}#{example.number}") == 1
    assert log.count(f"dry run: would comment on {REPOSITORY}#{example.number}") == 1
    assert "dry run: would edit" not in log
    # Nothing a real run reads was written: no feedback table and no state of the real bot.
    assert not (data_dir / "tables" / "label_feedback.parquet").exists()
    assert not (data_dir / "bot" / "state.sqlite").exists()
    assert (data_dir / "bot" / "dry-run.sqlite").exists()
    assert "feedback row kept in the dry-run state only, not in the training table" in log


def test_write_budget_stops_writes(tmp_path, fake, examples, served_model_dir):
    example, other = examples.bug(), examples.other()
    bot = RunningBot(tmp_path / "data", fake.base_url, "--writes-per-item", "2", model_dir=served_model_dir)
    try:
        bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
        bot.wait_idle()
        bot.deliver("pull_request", edited(with_example_labels(example, fake), other.item["body"]))
        bot.wait_idle()
        trips = metric(bot, "k8s_analysis_bot_write_budget_trips_total")
    finally:
        bot.stop()

    assert trips == 1
    assert len(writes_for(fake, example.number, [only_comment(fake, example.number)["id"]])) == 2
    assert f"{REPOSITORY}#{example.number}: write budget spent (2 writes in the last hour, at most 2)" in bot.log()


def test_predict_url_and_failed_prediction(tmp_path, fake, examples, served_model_dir):
    example, other = examples.bug(), examples.other()
    server = RunningServer(served_model_dir, tmp_path / "serve.log")
    server.wait_ready()
    url = f"http://127.0.0.1:{server.port}/v1/models/kubernetes-analysis"
    bot = RunningBot(tmp_path / "data", fake.base_url, "--predict-url", url)
    try:
        bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
        bot.wait_idle()
        through_server = only_comment(fake, example.number)["body"]
        server.stop()
        bot.deliver("pull_request", edited(with_example_labels(example, fake), other.item["body"]))
        bot.wait_idle()
    finally:
        server.stop()
        bot.stop()

    assert f"to **{example.probability:.0%}**" in through_server
    assert "I added the `kind/bug` label." in through_server
    failed = only_comment(fake, example.number)["body"]
    assert "I could not make a prediction for this release note" in failed
    # The failure changes no label: the bot's kind/bug stays although the new note is not a bug fix.
    assert BUG in fake.labels(example.number)
    assert re.search(rf"prediction for {REPOSITORY}#{example.number} failed \(delivery [0-9a-f-]+\): the "
                     r"prediction server at http://127\.0\.0\.1:\d+/v1/models/kubernetes-analysis did not respond",
                     bot.log())


def test_promoted_model_used_without_restart(tmp_path, fake, examples, served_model_dir):
    example = examples.bug()
    data_dir = tmp_path / "data"
    promoted_copy(served_model_dir, data_dir / "models", "20250102T000000Z-0000aaaa")
    bot = RunningBot(data_dir, fake.base_url)
    try:
        bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
        bot.wait_idle()
        copy_version(served_model_dir, data_dir / "models", "20250103T000000Z-0000bbbb", bias_shift=-0.5)
        promote(data_dir / "models", "20250103T000000Z-0000bbbb")
        bot_health = None
        for _ in range(200):
            bot_health = bot.health()
            if "0000bbbb" in bot_health["model"]:
                break
            time.sleep(0.05)
        assert "0000bbbb" in bot_health["model"]
        bot.deliver("pull_request", pull_request_payload(with_example_labels(example, fake).item, "synchronize"))
        bot.wait_idle()
    finally:
        bot.stop()

    assert "model `20250103T000000Z-0000bbbb`" in only_comment(fake, example.number)["body"]


def run_bot_command(tmp_path, *options, env=None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("GITHUB_TOKEN", "GITHUB_WEBHOOK_SECRET")}
    return subprocess.run([sys.executable, "-m", "k8s_analysis.cli", "--data-dir", str(tmp_path / "data"), "bot",
                           "--port", "0", *options], capture_output=True, text=True, timeout=60,
                          env={**environment, **(env or {})})


def test_start_fails_without_secrets(tmp_path, fake):
    no_secret = run_bot_command(tmp_path, "--api-url", fake.base_url, env={"GITHUB_TOKEN": TOKEN})
    no_token = run_bot_command(tmp_path, "--api-url", fake.base_url, env={"GITHUB_WEBHOOK_SECRET": SECRET})
    neither = run_bot_command(tmp_path, "--api-url", fake.base_url)
    dry_run_without_login = run_bot_command(tmp_path, "--dry-run", env={"GITHUB_WEBHOOK_SECRET": SECRET})
    bad_token = run_bot_command(tmp_path, "--api-url", fake.base_url,
                                env={"GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "ghp-wrong-7d1e"})
    bad_url = run_bot_command(tmp_path, "--predict-url", "127.0.0.1:8080", env={"GITHUB_TOKEN": TOKEN})
    bad_token_with_login = run_bot_command(tmp_path, "--api-url", fake.base_url, "--bot-login", "k8s-analysis-bot",
                                           env={"GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "ghp-wrong-7d1e"})

    assert no_secret.returncode == 2
    assert "the bot needs the webhook secret in GITHUB_WEBHOOK_SECRET" in no_secret.stderr
    assert "--insecure-no-signature" in no_secret.stderr
    assert no_token.returncode == 2
    assert "the bot needs a GitHub token in GITHUB_TOKEN" in no_token.stderr
    assert neither.returncode == 2
    assert "GITHUB_WEBHOOK_SECRET" in neither.stderr
    assert "GITHUB_TOKEN" in neither.stderr
    # Without a token a dry run cannot read its login, so it stops at once instead of calling GitHub.
    assert dry_run_without_login.returncode == 2
    assert "--bot-login NAME, because without GITHUB_TOKEN" in dry_run_without_login.stderr
    assert bad_token.returncode == 2
    assert ("could not read the bot's login (GET /user): GitHub returned 401: Bad credentials; check GITHUB_TOKEN"
            in bad_token.stderr)
    assert "--bot-login" in bad_token.stderr
    assert "ghp-wrong-7d1e" not in bad_token.stderr + bad_token.stdout
    assert bad_token_with_login.returncode == 2
    assert "could not check the token (GET /rate_limit): GitHub returned 401" in bad_token_with_login.stderr
    assert bad_url.returncode == 2
    assert "invalid --predict-url '127.0.0.1:8080'" in bad_url.stderr


def test_insecure_mode_accepts_unsigned(tmp_path, fake, examples, served_model_dir):
    example = examples.bug()
    bot = RunningBot(tmp_path / "data", fake.base_url, "--insecure-no-signature", model_dir=served_model_dir,
                     secret=None)
    try:
        status, _ = bot.deliver("pull_request", pull_request_payload(example.item, "opened"))
        bot.wait_idle()
    finally:
        bot.stop()

    assert status == 202
    only_comment(fake, example.number)
    assert "signature checks are OFF" in bot.log()


def test_healthz_503_without_model(tmp_path, fake):
    bot = RunningBot(tmp_path / "data", fake.base_url)
    try:
        status, health = bot.request("GET", "/healthz")
    finally:
        bot.stop()

    assert status == 503
    assert health["status"] == "no model"
    assert "train one with `k8s-analysis run`" in health["model"]


def test_feedback_rows_reach_training(bot, examples):
    """The Parquet file the bot wrote is what ``apply_feedback`` reads before training."""
    from k8s_analysis.model.dataset import apply_feedback

    feedback = pd.read_parquet(bot_data(bot) / "tables" / "label_feedback.parquet")
    corrected = feedback[(feedback["label"] == BUG) & feedback["is_bug"].notna()]
    number = int(corrected.iloc[0]["pr_number"])
    latest = bool(corrected[corrected["pr_number"] == number].iloc[-1]["is_bug"])
    notes = pd.DataFrame({"pr_number": np.array([number, 1], dtype="int64"),
                          "text": ["the exported note", "another note"], "is_bug": [not latest, True]})

    updated, counts = apply_feedback(notes, feedback)

    assert counts["relabelled"] == 1
    assert bool(updated.loc[0, "is_bug"]) is latest
    assert bool(updated.loc[1, "is_bug"]) is True
    assert updated.loc[0, "text"] == "the exported note"


def test_failed_github_call_is_logged(bot, fake, examples):
    example, next_example = examples.bug(), examples.bug()
    fake.inject(422, body={"message": "Validation Failed"}, path_contains=f"/issues/{example.number}/labels",
                method="POST")
    failed_before = bot.health()["failed"]

    bot.deliver("pull_request", pull_request_payload(example.item, "opened"), delivery_id="fails-once")
    bot.deliver("pull_request", pull_request_payload(next_example.item, "opened"))
    bot.wait_idle()
    health = bot.health()

    # The label failed, so no comment claims it was added; the next pull request is handled as usual.
    assert fake.comments(example.number) == []
    assert BUG not in fake.labels(example.number)
    assert re.search(rf"#{example.number}: delivery fails-once not carried out: could not add kind/bug to "
                     rf"{REPOSITORY}#{example.number}: GitHub returned 422: Validation Failed", bot.log())
    assert "Traceback" not in bot.log()
    assert BUG in fake.labels(next_example.number)
    assert health["failed"] == failed_before + 1
    assert health["last_failure"].startswith(f"delivery fails-once for {REPOSITORY}#{example.number}: could not")

    # The failed delivery's id was forgotten, so GitHub's "Redeliver" carries it out.
    status, _ = bot.deliver("pull_request", pull_request_payload(example.item, "opened"), delivery_id="fails-once")
    bot.wait_idle()

    assert status == 202
    assert BUG in fake.labels(example.number)
    only_comment(fake, example.number)


def test_shutdown_releases_waiting_deliveries(tmp_path, fake, examples, served_model_dir):
    example, other = examples.bug(), examples.other()
    # GitHub requests a 10-minute pause before the comment, so the bot is still waiting when it stops.
    fake.inject(403, body={"message": "You have exceeded a secondary rate limit."}, headers={"Retry-After": "600"},
                path_contains=f"/issues/{example.number}/comments", method="POST")
    first = RunningBot(tmp_path / "data", fake.base_url, "--shutdown-timeout", "1", model_dir=served_model_dir)
    try:
        first.deliver("pull_request", pull_request_payload(example.item, "opened"), delivery_id="waiting-delivery")
        first.deliver("pull_request", edited(example, other.item["body"]), delivery_id="queued-delivery")
        first.wait_until_logged("retrying in")
        started = time.monotonic()
    finally:
        first.stop()
    stopped_in = time.monotonic() - started

    assert stopped_in < 15
    assert ("stopped with 2 delivery(ies) not carried out: waiting-delivery, queued-delivery; redeliver them"
            in first.log())
    assert fake.comments(example.number) == []

    second = RunningBot(tmp_path / "data", fake.base_url, model_dir=served_model_dir)
    try:
        status, _ = second.deliver("pull_request", pull_request_payload(example.item, "opened"),
                                   delivery_id="waiting-delivery")
        second.wait_idle()
    finally:
        second.stop()

    assert status == 202
    assert f"to **{example.probability:.0%}**" in only_comment(fake, example.number)["body"]
