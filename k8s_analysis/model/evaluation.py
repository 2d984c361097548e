"""Plots and tables that show how a saved model does on its validation notes.

They are drawn from the version folder's ``validation.parquet`` (each validation note's label
and the probabilities of the model and of the baseline) and ``metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from k8s_analysis.analysis.charts import plt, save_as
from k8s_analysis.model.bundle import METRICS_FILE, VALIDATION_FILE

EVALUATION_DIR = "evaluation"
# (probability column, legend name, colour, section of metrics.json)
MODEL = ("probability", "MLP", "#1f77b4", "validation")
BASELINE = ("baseline_probability", "baseline", "#ff7f0e", "baseline")
METRIC_ROWS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"), ("roc_auc", "ROC-AUC"),
               ("pr_auc", "PR-AUC (average precision)"), ("brier", "Brier score (lower is better)"),
               ("accuracy", "Accuracy"), ("threshold", "Threshold"))


def load(model_dir: Path) -> tuple[dict, pd.DataFrame]:
    metrics = json.loads((model_dir / METRICS_FILE).read_text())
    return metrics, pd.read_parquet(model_dir / VALIDATION_FILE)


def metrics_table(metrics: dict) -> str:
    """Markdown: one row per figure, the model beside the baseline."""
    model, baseline = metrics["validation"], metrics.get("baseline", {})
    lines = ["| Figure | MLP | Baseline |", "|---|---:|---:|"]
    for key, title in METRIC_ROWS:
        lines.append(f"| {title} | {_number(model.get(key))} | {_number(baseline.get(key))} |")
    lines.append(f"| Notes | {model['rows']:,} | {baseline.get('rows', 0):,} |")
    return "\n".join(lines)


def confusion_table(figures: dict) -> str:
    confusion = figures["confusion"]
    return "\n".join([
        "| | predicted not a bug | predicted kind/bug |",
        "|---|---:|---:|",
        f"| labelled not a bug | {confusion['true_negative']:,} | {confusion['false_positive']:,} |",
        f"| labelled kind/bug | {confusion['false_negative']:,} | {confusion['true_positive']:,} |",
    ])


def per_release_table(metrics: dict) -> str:
    releases = metrics.get("per_release") or {}
    if not releases:
        return "The validation notes carry no release."
    lines = ["| Release | Notes | Bug share | Precision | Recall | F1 | ROC-AUC |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, figures in releases.items():
        lines.append(f"| {name} | {figures['rows']:,} | {figures['bug_share']:.1%} | {_number(figures['precision'])} "
                     f"| {_number(figures['recall'])} | {_number(figures['f1'])} | {_number(figures['roc_auc'])} |")
    return "\n".join(lines)


def _number(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.3f}"


def _series(validation: pd.DataFrame):
    for column, name, colour, key in (MODEL, BASELINE):
        if column in validation:
            yield validation[column].to_numpy(dtype=float), name, colour, key


def draw_roc(validation: pd.DataFrame, metrics: dict):
    figure, axes = plt.subplots(figsize=(5.5, 5))
    labels = validation["is_bug"].to_numpy()
    for scores, name, colour, key in _series(validation):
        fpr, tpr, _ = roc_curve(labels, scores)
        axes.plot(fpr, tpr, color=colour, label=f"{name} (AUC {metrics[key]['roc_auc']:.3f})")
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="chance")
    axes.set(xlabel="False positive rate", ylabel="True positive rate (recall)", title="ROC curve")
    axes.legend(loc="lower right")
    return figure


def draw_precision_recall(validation: pd.DataFrame, metrics: dict):
    figure, axes = plt.subplots(figsize=(5.5, 5))
    labels = validation["is_bug"].to_numpy()
    for scores, name, colour, key in _series(validation):
        precision, recall, _ = precision_recall_curve(labels, scores)
        axes.plot(recall, precision, color=colour, label=f"{name} (PR-AUC {metrics[key]['pr_auc']:.3f})")
        chosen = metrics[key]
        axes.scatter([chosen["recall"]], [chosen["precision"]], color=colour, zorder=3)
    axes.axhline(labels.mean(), color="#999999", linestyle="--", label=f"chance ({labels.mean():.0%} bugs)")
    axes.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve (dots: chosen thresholds)",
             xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower left")
    return figure


def draw_calibration(validation: pd.DataFrame, metrics: dict):
    figure, axes = plt.subplots(figsize=(5.5, 5))
    labels = validation["is_bug"].to_numpy()
    for scores, name, colour, key in _series(validation):
        observed, predicted = calibration_curve(labels, np.clip(scores, 0, 1), n_bins=10, strategy="quantile")
        axes.plot(predicted, observed, marker="o", color=colour, label=f"{name} (Brier {metrics[key]['brier']:.3f})")
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="perfectly calibrated")
    axes.set(xlabel="Predicted probability (decile mean)", ylabel="Share labelled kind/bug",
             title="Calibration", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="upper left")
    return figure


def draw_confusion(metrics: dict):
    confusion = metrics["validation"]["confusion"]
    cells = np.array([[confusion["true_negative"], confusion["false_positive"]],
                      [confusion["false_negative"], confusion["true_positive"]]])
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(cells, cmap="Blues")
    for (row, column), value in np.ndenumerate(cells):
        axes.text(column, row, f"{value:,}", ha="center", va="center",
                  color="white" if value > cells.max() / 2 else "black", fontsize=14)
    axes.set_xticks([0, 1], ["not a bug", "kind/bug"])
    axes.set_yticks([0, 1], ["not a bug", "kind/bug"])
    axes.set(xlabel="Predicted", ylabel="Labelled",
             title=f"Confusion at threshold {metrics['threshold']:.3f}")
    return figure


PLOTS = {"confusion": None, "roc": draw_roc, "precision_recall": draw_precision_recall,
         "calibration": draw_calibration}


def write_plots(model_dir: Path, metrics: dict, validation: pd.DataFrame) -> dict[str, Path]:
    """Draw every plot into ``model_dir/evaluation/`` (PNG, written atomically)."""
    folder = model_dir / EVALUATION_DIR
    folder.mkdir(exist_ok=True)
    paths = {}
    for name, drawer in PLOTS.items():
        figure = draw_confusion(metrics) if drawer is None else drawer(validation, metrics)
        figure.tight_layout()
        paths[name] = save_as(figure, folder / f"{name}.png", "png")
    return paths
