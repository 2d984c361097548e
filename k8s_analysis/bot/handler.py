"""Carry out one queued decision: predict, then change the label and the comment, or store feedback.

The rules for ``kind/bug``:
- add it at or above the threshold when it is absent, unless a person removed it;
- remove it below the threshold only when the bot added it, and never when a person added it;
- when the model disagrees with a label a person set, say so in the comment and the log;
- a note whose words the model never saw changes no label.

Writes go label first, then comment, so the comment never claims a label change that failed.
Each item has a write budget per hour. When a loop or a label fight spends it, the bot stops
writing to that item, logs an error and counts it in ``k8s_analysis_bot_write_budget_trips_total``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from k8s_analysis.bot import comment as comments
from k8s_analysis.bot.comment import BUG_LABEL, Prediction
from k8s_analysis.bot.events import Classify, Feedback, Item
from k8s_analysis.bot.github import GitHubCallError, GitHubWriter
from k8s_analysis.bot.metrics import BotMetrics
from k8s_analysis.bot.predict import PredictionError
from k8s_analysis.bot.state import OVERRIDE_ADDED, OVERRIDE_REMOVED, BotState, FeedbackRow, ItemState
from k8s_analysis.parsing.release_note import extract_release_note

logger = logging.getLogger(__name__)

BUDGET_WINDOW_S = 3600.0


class WriteBudgetExceeded(RuntimeError):
    pass


@dataclass(frozen=True)
class Work:
    decision: Classify | Feedback
    delivery_id: str


class Handler:
    """Applies decisions to GitHub and to the bot's state, one at a time per item."""

    def __init__(self, github: GitHubWriter, predictions, state: BotState, metrics: BotMetrics, bot_login: str,
                 writes_per_item_per_hour: int = 10) -> None:
        self.github = github
        self.predictions = predictions
        self.state = state
        self.metrics = metrics
        self.bot_login = bot_login
        self.writes_per_item_per_hour = writes_per_item_per_hour

    def handle(self, work: Work) -> str:
        """Carry out ``work`` and return a one-line summary of what was done."""
        decision = work.decision
        try:
            if isinstance(decision, Feedback):
                return self.feedback(decision, work.delivery_id)
            return self.classify(decision, work.delivery_id)
        except WriteBudgetExceeded as error:
            self.metrics.budget_trips.inc()
            logger.error("%s (delivery %s)", error, work.delivery_id)
            return str(error)
        except GitHubCallError as error:
            # Retries are spent; the next event of this item starts from the state stored so far.
            logger.error("%s: delivery %s not carried out: %s; its id is released, so GitHub's Redeliver retries it",
                         decision.item.key, work.delivery_id, error)
            raise

    # -- classification ---------------------------------------------------------

    def classify(self, decision: Classify, delivery_id: str) -> str:
        item = decision.item
        state = self.state.item(item.repository, item.number)
        note = extract_release_note(item.body)
        if not note.has_note:
            summary = f"{item.key}: no release note ({note.status})"
            if state.comment_id is not None:
                self._write(item, lambda: self.github.delete_comment(item.repository, item.number,
                                                                     state.comment_id))
                summary += "; deleted the bot's comment"
                state.comment_id, state.comment_digest = None, None
            state.note = None
            self.state.save_item(item.repository, item.number, state)
            return summary

        try:
            prediction = self.predictions.predict(note.text, item.labels_with_prefix("sig/"),
                                                  item.labels_with_prefix("area/"))
        except PredictionError as error:
            self.metrics.prediction_failures.inc()
            logger.error("prediction for %s failed (delivery %s): %s", item.key, delivery_id, error)
            self._put_comment(item, state, comments.render_failure("the model could not be reached"))
            self.state.save_item(item.repository, item.number, state)
            return f"{item.key}: prediction failed; commented so, labels untouched"

        outcome = self._apply_label(item, state, prediction)
        self._put_comment(item, state, comments.render(prediction, outcome, state.override_by))
        state.note = note.text
        state.probability = prediction.probability
        state.threshold = prediction.threshold
        state.model_version = prediction.version
        state.predicted_at = time.time()
        self.state.save_item(item.repository, item.number, state)
        return (f"{item.key}: {decision.reason}: probability {prediction.probability:.3f} "
                f"(threshold {prediction.threshold:.3f}, model {prediction.version}), label {outcome}")

    def _apply_label(self, item: Item, state: ItemState, prediction: Prediction) -> str:
        # The state also records the label the bot added: a payload without labels (or a dry run, which
        # adds none on GitHub) must not make it add the label again. A person's removal clears bot_added.
        present = BUG_LABEL in item.labels or state.bot_added
        if prediction.low_information:
            return comments.UNCHANGED
        if prediction.is_bug:
            if state.override == OVERRIDE_REMOVED:
                self._disagree(item, state, prediction, "removed")
                return comments.LEFT_OFF_BY_HUMAN
            if present:
                # The bot's own label stays as the comment reports it, so the comment needs no edit.
                return comments.ADDED_EARLIER if state.bot_added else comments.KEPT
            self._write(item, lambda: self.github.add_label(item.repository, item.number, BUG_LABEL))
            state.bot_added = True
            self._count_label_change("added")
            return comments.ADDED
        if state.override == OVERRIDE_ADDED:
            self._disagree(item, state, prediction, "added")
            return comments.KEPT_BY_HUMAN
        if present and state.bot_added:
            self._write(item, lambda: self.github.remove_label(item.repository, item.number, BUG_LABEL))
            state.bot_added = False
            self._count_label_change("removed")
            return comments.REMOVED
        if present:
            self._disagree(item, state, prediction, "set before the bot")
            return comments.NOT_ADDED
        return comments.LEFT_OFF

    def _count_label_change(self, change: str) -> None:
        if not self.github.dry_run:
            self.metrics.label_changes.labels(change).inc()

    def _disagree(self, item: Item, state: ItemState, prediction: Prediction, person_action: str) -> None:
        self.metrics.disagreements.inc()
        logger.info("%s: the model predicts %.3f against the threshold %.3f, but %s %s %s; the label stays as people "
                    "set it", item.key, prediction.probability, prediction.threshold,
                    state.override_by or "a person", person_action, BUG_LABEL)

    def _put_comment(self, item: Item, state: ItemState, body: str) -> None:
        """Create the bot's comment, or edit it in place when its text changed."""
        new_digest = comments.digest(body)
        if state.comment_id is None and not self.github.dry_run:
            # The state may have been lost (a new volume): look on GitHub before creating a second comment.
            found = self.github.find_comment(item.repository, item.number, self.bot_login)
            if found is not None:
                state.comment_id, state.comment_digest = found[0], comments.digest(found[1])
        if state.comment_id is not None and state.comment_digest == new_digest:
            return
        if state.comment_id is not None:
            edited = self._write(item, lambda: self.github.edit_comment(item.repository, item.number,
                                                                        state.comment_id, body))
            if edited:
                state.comment_digest = new_digest
                return
            logger.info("%s: comment %d was deleted on GitHub; writing a new one", item.key, state.comment_id)
        comment_id = self._write(item, lambda: self.github.create_comment(item.repository, item.number, body,
                                                                          self.bot_login))
        state.comment_id, state.comment_digest = comment_id, new_digest

    def _write(self, item: Item, call):
        """Run one write call within the item's hourly budget."""
        now = time.time()
        spent = self.state.writes_since(item.repository, item.number, now - BUDGET_WINDOW_S)
        if spent >= self.writes_per_item_per_hour:
            raise WriteBudgetExceeded(
                f"{item.key}: write budget spent ({spent} writes in the last hour, at most "
                f"{self.writes_per_item_per_hour}); no more writes to it this hour. Look for another bot or "
                "person undoing this bot's changes")
        result = call()
        self.state.record_write(item.repository, item.number, now)
        if not self.github.dry_run:
            self.metrics.writes.inc()
        return result

    # -- feedback -----------------------------------------------------------------

    def feedback(self, decision: Feedback, delivery_id: str) -> str:
        item = decision.item
        state = self.state.item(item.repository, item.number)
        summary = f"{item.key}: {decision.sender} {decision.action} {decision.label}"
        if decision.label == BUG_LABEL:
            state.override = OVERRIDE_ADDED if decision.action == "labeled" else OVERRIDE_REMOVED
            state.override_by = decision.sender
            if decision.action == "unlabeled":
                state.bot_added = False
            self.state.save_item(item.repository, item.number, state)
            summary += f"; recorded as a person's override ({state.override})"
        if not state.predicted:
            return summary + "; the bot has not predicted for it, so no feedback row"
        is_bug = (decision.action == "labeled") if decision.label == BUG_LABEL else None
        self.state.add_feedback(FeedbackRow(
            repository=item.repository, pr_number=item.number, text=state.note, probability=state.probability,
            threshold=state.threshold,
            predicted_bug=None if state.probability is None else state.probability >= (state.threshold or 0.5),
            model_version=state.model_version, label=decision.label, action=decision.action, is_bug=is_bug,
            sender=decision.sender, at=time.time(), delivery_id=delivery_id))
        if self.github.dry_run:
            return summary + "; feedback row kept in the dry-run state only, not in the training table"
        self.metrics.feedback.labels(decision.action).inc()
        return summary + "; feedback row stored"
