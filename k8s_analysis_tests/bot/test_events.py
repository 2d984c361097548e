"""Routing of deliveries: the expected values of case-24 and case-25, and payloads with keys missing."""

import itertools
import json

import pytest

from k8s_analysis.bot.events import Classify, Delivery, Feedback, Ignore, is_own_event, route
from k8s_analysis_tests.shared_data import shared_path

BOT = "kindbot[bot]"
REPOSITORY = {"full_name": "kubernetes/kubernetes"}


def load_case(name: str) -> dict:
    return json.loads(shared_path("cases", name).read_text(encoding="utf-8"))


def payload_of(event: dict) -> dict:
    """Turn a case's short event into the payload GitHub would send (the fields the case gives, kept as given)."""
    payload = {key: value for key, value in event.items() if key not in ("event", "seq", "id", "model_prediction")}
    payload["repository"] = REPOSITORY
    if event["event"] == "pull_request":
        pull_request = {"number": event["number"], "title": "Fix a crash", "body": None, "labels": [],
                        "user": {"login": "user-a"}, "merged": False}
        pull_request.update(event.get("pull_request") or {})
        payload["pull_request"] = pull_request
    payload.setdefault("sender", {"login": "user-a", "type": "User"})
    return payload


def decide(event: dict, bot_login: str = BOT):
    return route(Delivery("delivery", event["event"], payload_of(event)), bot_login)


def test_route_case_25_events():
    case = load_case("case-25-webhook-event-filtering.json")
    events = {event["id"]: event for event in case["input"]["events"]}

    title_edit = decide(events["a"])
    base_edit = decide(events["b"])
    same_body = decide(events["c"])
    plain_issue_comment = decide(events["d"])
    plain_issue = decide(events["e"])

    assert isinstance(title_edit, Classify) and title_edit.reason == "title edited"
    assert isinstance(base_edit, Ignore) and "neither title nor body" in base_edit.reason
    assert isinstance(same_body, Ignore) and "neither title nor body" in same_body.reason
    assert isinstance(plain_issue_comment, Ignore) and "issue_comment" in plain_issue_comment.reason
    # The issues event is routed as the original bot routed it. It has no release note, so the
    # handler makes no GitHub call, which test_bot.py checks against the fake server.
    assert isinstance(plain_issue, Classify) and not plain_issue.item.is_pull_request


def test_route_labeled_burst():
    case = load_case("case-25-webhook-event-filtering.json")
    burst = next(event for event in case["input"]["events"] if event["id"] == "f")["burst"]

    decisions = [decide(event) for event in burst]

    assert [type(decision) for decision in decisions] == [Classify, Ignore, Ignore, Ignore]
    assert "not a kind/* label" in decisions[1].reason


def test_route_case_24_events():
    case = load_case("case-24-bot-self-trigger-and-label-fight.json")
    decisions = {event["seq"]: decide(event) for event in case["input"]["events"]}

    assert isinstance(decisions[1], Classify)
    for seq in (2, 3, 6):
        assert isinstance(decisions[seq], Ignore)
        assert decisions[seq].reason == "sent by the bot itself (kindbot[bot])"
    assert isinstance(decisions[4], Feedback)
    assert (decisions[4].action, decisions[4].label, decisions[4].sender) == ("unlabeled", "kind/bug", "maintainer-b")
    assert isinstance(decisions[5], Classify) and decisions[5].reason == "body edited"


@pytest.mark.parametrize(("bot_login", "sender", "own"), [
    ("kindbot[bot]", "kindbot[bot]", True),
    ("kindbot", "kindbot[bot]", True),
    ("kindbot[bot]", "KindBot", True),
    ("k8s-analysis-bot", "k8s-analysis-bot", True),
    ("kindbot", "kindbot2", False),
    ("kindbot", "", False),
])
def test_own_event_by_login(bot_login, sender, own):
    assert is_own_event({"sender": {"login": sender}}, bot_login) is own


# Every way a payload can lack the keys the router reads: absent, null, or of the wrong type.
MISSING = [None, {}, [], "text", 3]


@pytest.mark.parametrize(("changes", "pull_request", "sender"),
                         list(itertools.product([*MISSING, {"body": None}, {"body": {}}, {"title": []},
                                                 {"base": {"ref": None}}],
                                                [*MISSING, {"number": 5}, {"labels": None, "number": 5},
                                                 {"labels": [None, {"name": 3}, "kind/bug"], "number": 5}],
                                                [None, {}, {"login": None}])))
def test_route_malformed_payloads(changes, pull_request, sender):
    payload = {"action": "edited", "changes": changes, "pull_request": pull_request, "sender": sender,
               "repository": REPOSITORY}
    for event in ("pull_request", "issues", "issue_comment"):
        decision = route(Delivery("d", event, payload), BOT)
        assert isinstance(decision, Classify | Ignore)


def test_body_edit_without_old_text():
    payload = payload_of({"event": "pull_request", "action": "edited", "number": 7, "changes": {"body": {}}})

    assert isinstance(route(Delivery("d", "pull_request", payload), BOT), Classify)


@pytest.mark.parametrize(("event", "payload_change", "reason"), [
    ("pull_request", {"action": "closed"}, "'closed' is not handled"),
    ("pull_request", {"action": "synchronize", "merged": True}, "is merged"),
    ("issues", {"action": "opened", "issue_is_pr": True}, "its pull_request event is handled"),
    ("ping", {"zen": "Keep it logically awesome."}, "ping"),
    ("push", {"ref": "refs/heads/master"}, "'push' is not one the bot handles"),
    ("pull_request", {"action": "labeled", "label": {"name": "lgtm"}}, "not a kind/* label"),
    ("pull_request", {"action": "opened", "no_repository": True}, "no repository"),
])
def test_ignored_events_have_reasons(event, payload_change, reason):
    pull_request = {"number": 9, "title": "t", "body": "b", "labels": [], "merged": payload_change.get("merged", False)}
    payload = {"action": payload_change.get("action"), "pull_request": pull_request, "repository": REPOSITORY,
               "sender": {"login": "user-a"}, "label": payload_change.get("label")}
    if payload_change.get("issue_is_pr"):
        payload["issue"] = {"number": 9, "pull_request": {"url": "https://api.github.com/x"}}
    if payload_change.get("no_repository"):
        del payload["repository"]

    decision = route(Delivery("d", event, payload), BOT)

    assert isinstance(decision, Ignore)
    assert reason in decision.reason


def test_route_synchronize_reopened_labeled():
    base = {"pull_request": {"number": 9, "title": "t", "body": "b", "labels": [{"name": "kind/bug"}]},
            "repository": REPOSITORY, "sender": {"login": "maintainer-b"}}

    assert isinstance(route(Delivery("d", "pull_request", {**base, "action": "synchronize"}), BOT), Classify)
    assert isinstance(route(Delivery("d", "pull_request", {**base, "action": "reopened"}), BOT), Classify)
    feedback = route(Delivery("d", "pull_request", {**base, "action": "labeled",
                                                    "label": {"name": "kind/feature"}}), BOT)
    assert isinstance(feedback, Feedback)
    assert feedback.item.labels == ("kind/bug",)
    assert feedback.label == "kind/feature"
