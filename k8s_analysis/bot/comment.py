"""The bot's one comment per pull request: its text, and the hidden marker that finds it again.

The marker is an HTML comment, invisible on GitHub. The bot looks for it only in comments
written by its own login, so a person who quotes the comment does not get theirs edited.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MARKER = "<!-- k8s-analysis-bot: kind/bug prediction -->"
BUG_LABEL = "kind/bug"
# Outcomes for the label, as the log shows them. label_sentence turns each into the comment's
# sentence.
ADDED = "added"
ADDED_EARLIER = "added by the bot earlier"
REMOVED = "removed"
KEPT = "already set"
LEFT_OFF = "not added"
NOT_ADDED = "set before the prediction, left alone"
KEPT_BY_HUMAN = "added by a person, never removed"
LEFT_OFF_BY_HUMAN = "removed by a person, never added again"
UNCHANGED = "left alone (low information)"


@dataclass(frozen=True)
class Prediction:
    probability: float
    threshold: float
    version: str
    low_information: bool = False
    explanation: dict | None = None

    @property
    def is_bug(self) -> bool:
        return not self.low_information and self.probability >= self.threshold


def label_sentence(outcome: str, override_by: str | None) -> str:
    person = f"@{override_by}" if override_by else "a person"
    return {
        ADDED: f"I added the `{BUG_LABEL}` label.",
        ADDED_EARLIER: f"I added the `{BUG_LABEL}` label.",
        REMOVED: f"I removed the `{BUG_LABEL}` label that I had added earlier.",
        KEPT: f"The `{BUG_LABEL}` label was already set.",
        LEFT_OFF: f"I did not add the `{BUG_LABEL}` label.",
        NOT_ADDED: f"The `{BUG_LABEL}` label was set before my prediction, so I leave it to the people on this "
                   "pull request.",
        KEPT_BY_HUMAN: f"{person} added `{BUG_LABEL}`, so I never remove it.",
        LEFT_OFF_BY_HUMAN: f"{person} removed `{BUG_LABEL}`, so I never add it again.",
        UNCHANGED: f"I did not change the `{BUG_LABEL}` label.",
    }[outcome]


def _phrases(explanation: dict | None) -> str:
    if not explanation:
        return ""
    lines = []
    for direction, title in (("up", "towards a bug fix"), ("down", "against")):
        # A word whose effect rounds to 0.00 is left out, because it carries no information.
        entries = [entry for entry in explanation.get(direction) or [] if abs(entry["log_odds"]) >= 0.005]
        if entries:
            listed = ", ".join(f"`{entry['ngram']}` ({entry['log_odds']:+.2f})" for entry in entries[:3])
            lines.append(f"- {title}: {listed}")
    if not lines:
        return ""
    return "\nThe words that weighed most (change in log-odds):\n" + "\n".join(lines) + "\n"


def render(prediction: Prediction, outcome: str, override_by: str | None = None) -> str:
    """Return the comment for a prediction and what the bot did with the label."""
    if prediction.low_information:
        verdict = ("I could not judge whether this release note is a bug fix: none of its words was seen in "
                   "training, so I leave the labels alone.")
    else:
        verdict = (f"I predicted that this release note qualifies as `{BUG_LABEL}` to "
                   f"**{prediction.probability:.0%}** (the label's threshold is {prediction.threshold:.0%}).")
    return (
        f"{MARKER}\n"
        f"{verdict} {label_sentence(outcome, override_by)}\n"
        f"{_phrases(prediction.explanation)}\n"
        f"If that is wrong, comment `/kind bug` or `/remove-kind bug` (or change the label by hand). I never undo "
        f"a label change that a person made, and the correction becomes training data.\n\n"
        f"<sub>model `{prediction.version}`</sub>\n"
    )


def render_failure(reason: str) -> str:
    """Return the comment for a prediction that could not be made; labels stay as they are."""
    return (
        f"{MARKER}\n"
        f"I could not make a prediction for this release note ({reason}), so I did not change any label. "
        f"The next edit of the pull request's description tries again.\n"
    )


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_own_comment(comment: dict, bot_login: str) -> bool:
    user = comment.get("user") or {}
    return (str(user.get("login", "")).lower() == bot_login.lower()
            and MARKER in str(comment.get("body") or ""))
