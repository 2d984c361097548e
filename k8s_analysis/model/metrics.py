"""Figures that describe a classifier on labelled notes, and the choice of its threshold."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
)

logger = logging.getLogger(__name__)


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the score threshold with the highest F1 on these notes."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    if not len(thresholds):
        return 0.5
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def precision_threshold(labels: np.ndarray, scores: np.ndarray, target: float, log=logger) -> float:
    """Return the lowest threshold whose precision reaches ``target``, so recall is as high as it can be.

    When no threshold reaches it, the F1 threshold is used and the fact logged.
    """
    precision, _, thresholds = precision_recall_curve(labels, scores)
    reaching = np.flatnonzero(precision[:-1] >= target)
    if not len(reaching):
        log.warning("no threshold reaches precision %.2f on validation (best %.3f); using the best-F1 threshold",
                    target, float(precision[:-1].max()) if len(thresholds) else 0.0)
        return best_f1_threshold(labels, scores)
    return float(thresholds[reaching[0]])


def choose_threshold(labels: np.ndarray, scores: np.ndarray, target_precision: float | None, log=logger) -> float:
    if target_precision is None:
        return best_f1_threshold(labels, scores)
    return precision_threshold(labels, scores, target_precision, log)


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Precision, recall, F1, ROC-AUC, PR-AUC, Brier score and confusion matrix at ``threshold``.

    Threshold-free figures (ROC-AUC, PR-AUC) are NaN when the notes hold one class only; the
    Brier score assumes ``scores`` are probabilities.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = scores >= threshold
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[False, True]).ravel()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    both = 0 < labels.sum() < len(labels)
    return {
        "rows": int(len(labels)),
        "bug_share": float(labels.mean()) if len(labels) else 0.0,
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "roc_auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "pr_auc": float(average_precision_score(labels, scores)) if both else float("nan"),
        "brier": float(brier_score_loss(labels, np.clip(scores, 0.0, 1.0))) if len(labels) else float("nan"),
        "confusion": {"true_negative": int(tn), "false_positive": int(fp),
                      "false_negative": int(fn), "true_positive": int(tp)},
    }


def evaluate_by_group(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """``evaluate`` for each group (for example each validation release), in sorted order."""
    groups = np.asarray(groups, dtype=object)
    return {str(name): evaluate(labels[groups == name], scores[groups == name], threshold)
            for name in sorted(set(groups.tolist()), key=str)}
