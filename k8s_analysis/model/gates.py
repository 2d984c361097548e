"""The checks a new model must pass before it replaces the promoted one.

A new model is blocked when, on the validation notes,

- its F1 is more than ``max_f1_drop`` below the linear baseline's,
- its F1 is more than ``max_f1_drop`` below the promoted model's, or
- its ROC-AUC is under ``min_roc_auc``.

The promoted model was refit on all notes, validation notes included, so scoring it on them
would flatter it. It is compared instead as its configuration trained on the same training
split: taken from its own figures when it was trained on exactly these splits, taken as the
new model's figures when the configuration is the same (retraining it would give the same
model), and otherwise retrained here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from k8s_analysis.model.bundle import METRICS_FILE, ModelLoadError, read_manifest
from k8s_analysis.model.dataset import SPLIT_VALIDATION, Dataset
from k8s_analysis.model.metrics import choose_threshold, evaluate
from k8s_analysis.model.train import ModelConfig, TrainedModel, fit_split_model

logger = logging.getLogger(__name__)

BEATS_BASELINE = "beats_baseline"
NOT_WORSE_THAN_PROMOTED = "not_worse_than_promoted"
ROC_AUC_HIGH_ENOUGH = "roc_auc_high_enough"
# Settings that change what is learnt; the others (refit, promotion) do not.
LEARNING_SETTINGS = tuple(name for name in ModelConfig.__dataclass_fields__ if name != "refit")


@dataclass(frozen=True)
class GateConfig:
    max_f1_drop: float = 0.01
    min_roc_auc: float = 0.85


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    description: str
    figures: dict

    def as_dict(self) -> dict:
        return {"passed": self.passed, "description": self.description, **self.figures}


def promoted_figures(current_dir: Path, dataset: Dataset, config: ModelConfig, trained: TrainedModel,
                     log=logger) -> dict | None:
    """Return the promoted model's validation figures on this split and how they were obtained.

    Return None when no model is promoted.
    """
    if not current_dir.exists():
        return None
    try:
        manifest = read_manifest(current_dir)
    except (ModelLoadError, json.JSONDecodeError) as error:
        log.warning("the promoted model at %s cannot be read (%s); comparing with the baseline only",
                    current_dir, error)
        return {"version": None, "how": f"unreadable: {error}", "f1": None}
    version = manifest.get("version")
    split = manifest.get("split", {})
    metrics_path = current_dir / METRICS_FILE
    if split.get("fingerprints") == dataset.info["fingerprints"] and metrics_path.is_file():
        figures = json.loads(metrics_path.read_text())["validation"]
        return {"version": version, "how": "its own figures: it was trained on the same split", **_short(figures)}

    promoted_config = ModelConfig.from_dict(manifest.get("config", {}))
    if all(getattr(promoted_config, name) == getattr(config, name) for name in LEARNING_SETTINGS):
        return {"version": version, "how": "same configuration: retrained on this split it is the new model",
                **_short(trained.metrics["validation"])}

    log.info("retraining the promoted model's configuration (%s) on this split to compare", version)
    labels_choice = "always" if manifest.get("label_features") else "never"
    retrained = fit_split_model(dataset, replace(promoted_config, label_features=labels_choice),
                                labels_choice == "always", log)
    validation_labels = dataset.labels(SPLIT_VALIDATION)
    threshold = choose_threshold(validation_labels, retrained.validation_scores, promoted_config.target_precision, log)
    figures = evaluate(validation_labels, retrained.validation_scores, threshold)
    return {"version": version, "how": "its configuration retrained on this split", **_short(figures)}


def _short(figures: dict) -> dict:
    return {name: figures.get(name) for name in ("f1", "precision", "recall", "roc_auc")}


def evaluate_gates(trained: TrainedModel, promoted: dict | None, config: GateConfig = GateConfig()) -> list[Gate]:
    validation = trained.metrics["validation"]
    f1, roc_auc = validation["f1"], validation["roc_auc"]
    gates = []

    baseline = trained.metrics.get("baseline")
    if baseline is None:
        gates.append(Gate(BEATS_BASELINE, False, "no baseline was trained, so the model cannot be compared", {}))
    else:
        gates.append(Gate(
            BEATS_BASELINE, f1 >= baseline["f1"] - config.max_f1_drop,
            f"validation F1 {f1:.3f} against the baseline's {baseline['f1']:.3f} "
            f"(allowed drop {config.max_f1_drop})",
            {"f1": f1, "baseline_f1": baseline["f1"], "baseline_roc_auc": baseline["roc_auc"]},
        ))

    if promoted is None:
        gates.append(Gate(NOT_WORSE_THAN_PROMOTED, True, "no model is promoted yet", {"f1": f1}))
    elif promoted.get("f1") is None:
        gates.append(Gate(NOT_WORSE_THAN_PROMOTED, True,
                          f"the promoted model cannot be compared ({promoted['how']})", {"f1": f1}))
    else:
        gates.append(Gate(
            NOT_WORSE_THAN_PROMOTED, f1 >= promoted["f1"] - config.max_f1_drop,
            f"validation F1 {f1:.3f} against {promoted['f1']:.3f} for promoted model {promoted['version']} "
            f"({promoted['how']}; allowed drop {config.max_f1_drop})",
            {"f1": f1, "promoted_version": promoted["version"], "promoted_f1": promoted["f1"]},
        ))

    auc_ok = bool(np.isfinite(roc_auc) and roc_auc >= config.min_roc_auc)
    gates.append(Gate(ROC_AUC_HIGH_ENOUGH, auc_ok,
                      f"validation ROC-AUC {roc_auc:.3f}, at least {config.min_roc_auc} needed",
                      {"roc_auc": roc_auc, "min_roc_auc": config.min_roc_auc}))
    return gates
