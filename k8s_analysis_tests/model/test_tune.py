"""Tests for the configuration search behind `k8s-analysis train --tune`."""

import pytest

from k8s_analysis.model.dataset import build_dataset
from k8s_analysis.model.train import ModelConfig
from k8s_analysis.model.tune import LAYERS, UNITS, WORD_NGRAM_MAX, candidates, hidden_layers, tune
from k8s_analysis_tests.model.test_train import load_release_notes


@pytest.mark.parametrize(
    ("layers", "units", "expected"),
    [(1, 64, (64,)), (2, 64, (64, 32)), (3, 128, (128, 64, 32)), (3, 8, (8, 8, 8)), (2, 16, (16, 8))],
)
def test_hidden_layers_halve(layers, units, expected):
    assert hidden_layers(layers, units) == expected


def test_candidates_start_with_base():
    base = ModelConfig()

    configs = candidates(base, trials=12, seed=0)

    assert configs[0] == base
    assert len(configs) == len(set(configs)) == 12


def test_candidates_stay_in_search_space():
    configs = candidates(ModelConfig(), trials=200, seed=1)[1:]

    assert {len(config.hidden_units) for config in configs} == set(LAYERS)
    assert {config.hidden_units[0] for config in configs} == set(UNITS)
    assert {config.word_ngram_max for config in configs} == set(WORD_NGRAM_MAX)
    assert all(min(config.hidden_units) >= 8 and max(config.hidden_units) <= 128 for config in configs)


def test_candidates_seeded():
    assert candidates(ModelConfig(), 8, seed=5) == candidates(ModelConfig(), 8, seed=5)
    assert candidates(ModelConfig(), 8, seed=5) != candidates(ModelConfig(), 8, seed=6)


@pytest.mark.slow
def test_tune_sorted_by_f1():
    dataset = build_dataset(load_release_notes().sample(1500, random_state=0))
    base = ModelConfig(epochs=3, k_best=2000, label_features="never")

    trials = tune(dataset, base, trials=3, seed=0)

    assert len(trials) == 3
    assert base in [trial.config for trial in trials]
    assert [trial.f1 for trial in trials] == sorted((trial.f1 for trial in trials), reverse=True)
    assert all(0.0 < trial.f1 <= 1.0 and 0.5 < trial.roc_auc <= 1.0 for trial in trials)
    assert trials[0].row()["layers"] == len(trials[0].config.hidden_units)
