"""Fixtures shared by several test packages."""

from dataclasses import replace

import pytest

from k8s_analysis.model.bundle import save_bundle
from k8s_analysis.model.dataset import build_dataset
from k8s_analysis.model.train import ModelConfig, train_classifier
from k8s_analysis_tests.model.test_train import load_release_notes

# Enough to give real, distinct probabilities in a few seconds; not a model to judge.
SERVED_CONFIG = ModelConfig(epochs=3, k_best=5_000, label_features="never", refit=False)
SERVED_VERSION = "20250101T000000Z-5e7e0001"


@pytest.fixture(scope="session")
def served_model_dir(tmp_path_factory):
    """A version folder of a small model trained on the published release notes, shared read-only."""
    trained = train_classifier(build_dataset(load_release_notes()), SERVED_CONFIG, with_baseline=False)
    models_dir = tmp_path_factory.mktemp("served-models")
    return save_bundle(trained, models_dir, SERVED_VERSION, {"data": {"notes": len(trained.validation)},
                                                             "split": {"method": "release"}})


@pytest.fixture(scope="session")
def labelled_model_dir(tmp_path_factory):
    """A small model trained with sig/area label columns, for the label paths."""
    config = replace(SERVED_CONFIG, label_features="always")
    trained = train_classifier(build_dataset(load_release_notes()), config, with_baseline=False)
    models_dir = tmp_path_factory.mktemp("labelled-models")
    return save_bundle(trained, models_dir, "20250101T000000Z-1abe1001", {"data": {}, "split": {}})
