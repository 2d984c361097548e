"""Decide what the bot does with a webhook delivery, from its event name and payload alone.

``route`` reads no network and no state: it turns a delivery into a ``Classify`` (predict
and update the comment and label), a ``Feedback`` (a person changed a ``kind/*`` label) or
an ``Ignore`` with the reason. Every nested key is read defensively, because GitHub sends
only the fields that changed (``changes.title``, ``changes.body`` or ``changes.base``) and
omits ``pull_request`` on plain issues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KIND_PREFIX = "kind/"
PULL_REQUEST_ACTIONS = ("opened", "edited", "synchronize", "reopened")
ISSUE_ACTIONS = ("opened", "edited")
LABEL_ACTIONS = ("labeled", "unlabeled")
# The fields of an item that the prediction reads: the note comes from the body, and the title
# names the change. An edit of anything else (the base branch) changes no prediction.
MODEL_INPUTS = ("title", "body")


@dataclass(frozen=True)
class Item:
    """The pull request (or issue) an event is about, as the payload describes it."""

    repository: str
    number: int
    title: str
    body: str | None
    labels: tuple[str, ...]
    is_pull_request: bool

    @property
    def key(self) -> str:
        """The name used in logs and as the ordering key: ``owner/name#number``."""
        return f"{self.repository}#{self.number}"

    def labels_with_prefix(self, prefix: str) -> list[str]:
        return [label[len(prefix):] for label in self.labels if label.startswith(prefix)]


@dataclass(frozen=True)
class Classify:
    item: Item
    reason: str


@dataclass(frozen=True)
class Feedback:
    item: Item
    action: str
    """``labeled`` or ``unlabeled``."""
    label: str
    sender: str


@dataclass(frozen=True)
class Ignore:
    reason: str
    key: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery after its signature was checked."""

    id: str
    event: str
    payload: dict[str, Any] = field(repr=False)


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _login(user) -> str:
    login = _mapping(user).get("login")
    return login if isinstance(login, str) else ""


def is_own_event(payload: dict, bot_login: str) -> bool:
    """Return True when the bot itself sent the event: its login, with or without an app's ``[bot]`` suffix."""
    sender = _login(payload.get("sender"))
    if not sender or not bot_login:
        return False
    own = {bot_login.lower(), bot_login.lower().removesuffix("[bot]")}
    return sender.lower() in own or sender.lower().removesuffix("[bot]") in own


def read_item(payload: dict, kind: str) -> Item | None:
    """Read the item under ``payload[kind]`` (``pull_request`` or ``issue``); None when it is unusable."""
    source = _mapping(payload.get(kind))
    repository = _mapping(payload.get("repository")).get("full_name")
    number = source.get("number", payload.get("number"))
    if not isinstance(repository, str) or "/" not in repository or not isinstance(number, int):
        return None
    labels = tuple(label["name"] for label in source.get("labels") or []
                   if isinstance(label, dict) and isinstance(label.get("name"), str))
    body = source.get("body")
    title = source.get("title")
    return Item(repository=repository, number=number, title=title if isinstance(title, str) else "",
                body=body if isinstance(body, str) else None, labels=labels, is_pull_request=kind == "pull_request")


def changed_inputs(payload: dict, item: Item) -> list[str]:
    """Return the model inputs that an ``edited`` event really changed.

    ``changes`` contains the old value of each changed field. A body "changed" to the same text,
    apart from surrounding whitespace, counts as unchanged.
    """
    changes = _mapping(payload.get("changes"))
    changed = []
    for name in MODEL_INPUTS:
        old = _mapping(changes.get(name)).get("from")
        if name not in changes:
            continue
        new = item.title if name == "title" else item.body
        if old is None or (old or "").strip() != (new or "").strip():
            changed.append(name)
    return changed


def route(delivery: Delivery, bot_login: str) -> Classify | Feedback | Ignore:
    """Return what the bot should do with ``delivery``."""
    event, payload = delivery.event, delivery.payload
    action = payload.get("action")
    if event == "ping":
        return Ignore("ping: the webhook is set up")
    if is_own_event(payload, bot_login):
        # The bot's own comments and labels come back as events, and handling them would start a loop.
        return Ignore(f"sent by the bot itself ({_login(payload.get('sender'))})")
    if event == "pull_request":
        return _route_item(payload, action, "pull_request", PULL_REQUEST_ACTIONS, delivery)
    if event == "issues":
        if "pull_request" in _mapping(payload.get("issue")):
            return Ignore("an issues event about a pull request; its pull_request event is handled")
        return _route_item(payload, action, "issue", ISSUE_ACTIONS, delivery)
    return Ignore(f"event {event!r} is not one the bot handles")


def _route_item(payload: dict, action, kind: str, actions: tuple[str, ...], delivery: Delivery):
    item = read_item(payload, kind)
    if item is None:
        return Ignore(f"{delivery.event} {action}: the payload has no repository or {kind} number")
    if kind == "pull_request" and _mapping(payload.get(kind)).get("merged") is True:
        return Ignore(f"{item.key} is merged", item.key)
    if action in LABEL_ACTIONS:
        label = _mapping(payload.get("label")).get("name")
        if not isinstance(label, str) or not label.startswith(KIND_PREFIX):
            # One event arrives per label, and a PR opened with labels sends a burst of them:
            # only kind/* labels matter to the bot.
            return Ignore(f"{item.key}: {action} {label!r}, not a {KIND_PREFIX}* label", item.key)
        return Feedback(item, action, label, _login(payload.get("sender")))
    if action not in actions:
        return Ignore(f"{delivery.event} {action!r} is not handled", item.key)
    if action == "edited":
        changed = changed_inputs(payload, item)
        if not changed:
            return Ignore(f"{item.key}: the edit changed neither title nor body", item.key)
        return Classify(item, f"{' and '.join(changed)} edited")
    return Classify(item, str(action))
