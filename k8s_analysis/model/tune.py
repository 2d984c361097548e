"""``k8s-analysis train --tune``: search network depth and width, n-grams and k on the split.

Every trial trains on the training split and is scored by validation F1 at its best
threshold (ROC-AUC breaks ties). The search samples the grid below with a fixed seed and always
tries the current configuration first, so the winner is never worse than what runs today.
Trials that share n-grams and k share one fitted feature set.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from dataclasses import dataclass, replace

from k8s_analysis.model.dataset import SPLIT_VALIDATION, Dataset
from k8s_analysis.model.metrics import best_f1_threshold, evaluate
from k8s_analysis.model.train import ModelConfig, check_splits, fit_split_features, fit_split_model

logger = logging.getLogger(__name__)

LAYERS = (1, 2, 3)
UNITS = (8, 16, 32, 64, 128)
WORD_NGRAM_MAX = (1, 2, 3)
K_BEST = (10_000, 20_000, 40_000, 80_000)


@dataclass(frozen=True)
class Trial:
    config: ModelConfig
    f1: float
    precision: float
    recall: float
    roc_auc: float
    epochs: int
    features: int

    def row(self) -> dict:
        return {
            "layers": len(self.config.hidden_units),
            "hidden_units": "-".join(str(units) for units in self.config.hidden_units),
            "word_ngrams": f"1-{self.config.word_ngram_max}",
            "k_best": self.config.k_best,
            "features": self.features,
            "epochs": self.epochs,
            "f1": round(self.f1, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "roc_auc": round(self.roc_auc, 4),
        }


def hidden_layers(layers: int, units: int) -> tuple[int, ...]:
    """``layers`` Dense layers starting at ``units`` and halving, never below 8 units."""
    return tuple(max(units >> depth, 8) for depth in range(layers))


def candidates(base: ModelConfig, trials: int, seed: int) -> list[ModelConfig]:
    """``base`` first, then up to ``trials - 1`` distinct grid points in a seeded random order."""
    grid = [
        replace(base, hidden_units=hidden_layers(layers, units), word_ngram_max=ngram, k_best=k)
        for layers, units, ngram, k in itertools.product(LAYERS, UNITS, WORD_NGRAM_MAX, K_BEST)
    ]
    grid = [config for config in grid if config != base]
    random.Random(seed).shuffle(grid)
    return [base, *grid[: max(trials - 1, 0)]]


def tune(dataset: Dataset, base: ModelConfig, trials: int = 20, seed: int = 0, log=logger) -> list[Trial]:
    """Run the trials and return them sorted best first."""
    check_splits(dataset)
    labels = dataset.labels(SPLIT_VALIDATION)
    configs = candidates(base, trials, seed)
    use_labels = base.label_features == "always"
    # Group by feature settings so each feature set is fitted once and dropped when done.
    configs.sort(key=lambda config: (config != base, config.word_ngram_max, config.k_best))
    started = time.monotonic()
    results: list[Trial] = []
    for _, group in itertools.groupby(configs, key=lambda config: (config.word_ngram_max, config.k_best)):
        group = list(group)
        prepared = fit_split_features(dataset, group[0].feature_config(use_labels), log)
        for config in group:
            model = fit_split_model(dataset, config, use_labels, log, prepared=prepared)
            figures = evaluate(labels, model.validation_scores, best_f1_threshold(labels, model.validation_scores))
            trial = Trial(config, figures["f1"], figures["precision"], figures["recall"], figures["roc_auc"],
                          model.best_epoch, prepared.features.n_features)
            results.append(trial)
            elapsed = time.monotonic() - started
            eta = elapsed / len(results) * (len(configs) - len(results))
            row = trial.row()
            log.info("trial %s/%s: units %s, words %s, k %s -> F1 %.3f, ROC-AUC %.3f (%.0f s so far, ETA %.0f s)",
                     len(results), len(configs), row["hidden_units"], row["word_ngrams"], config.k_best,
                     trial.f1, trial.roc_auc, elapsed, eta)
    return sorted(results, key=lambda trial: (-trial.f1, -trial.roc_auc))
