"""Tests for train_classifier and its helpers, on the published Kubernetes release notes."""

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from k8s_analysis.model.dataset import SPLIT_TRAIN, SPLIT_VALIDATION, build_dataset
from k8s_analysis.model.train import (
    InsufficientDataError,
    InsufficientTextError,
    ModelConfig,
    class_weights,
    fit_features,
    sorted_csr,
    train_classifier,
)
from k8s_analysis.tables.items import build_item_tables
from k8s_analysis.tables.release_notes import build_release_notes
from k8s_analysis_tests.shared_data import shared_path

# Fewer epochs and features than the defaults, so that one training takes seconds on a CPU.
SMALL_CONFIG = ModelConfig(epochs=5, k_best=5000)
PUBLISHED_FOLDERS = ("kubernetes-sigs-release-notes", "kubernetes-sig-release")
# Texts made of one-character tokens only: the default token pattern keeps none of them.
UNUSABLE_TEXTS = [f"{digit} {letter}" for digit in range(10) for letter in "abcd"]


def load_release_notes() -> pd.DataFrame:
    """Build the release_notes table from the published notes only, with no exported PRs."""
    root = shared_path("data", "release-notes")
    files = [
        (path.name, json.loads(path.read_text()))
        for folder in PUBLISHED_FOLDERS
        for path in sorted((root / folder).glob("*.json"))
    ]
    return build_release_notes(build_item_tables([]).pull_requests, files)


def case_training_rows() -> pd.DataFrame:
    case = json.loads(shared_path("cases", "case-18-tfidf-empty-vocabulary.json").read_text())
    rows = case["input"]["training_rows"]
    return pd.DataFrame({
        "pr_number": [row["number"] for row in rows],
        "text": [row["text"] for row in rows],
        "is_bug": [bool(row["label_kind_bug"]) for row in rows],
    })


def unusable_notes() -> pd.DataFrame:
    """Return enough notes for every split and both classes, but no word of two or more characters."""
    return pd.DataFrame({
        "pr_number": range(1, len(UNUSABLE_TEXTS) + 1),
        "text": UNUSABLE_TEXTS,
        "is_bug": [index % 2 == 0 for index in range(len(UNUSABLE_TEXTS))],
    })


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(load_release_notes())


@pytest.fixture(scope="module")
def trained(dataset):
    return train_classifier(dataset, SMALL_CONFIG)


@pytest.mark.slow
def test_test_roc_auc_above_bound(trained):
    # SMALL_CONFIG measured 0.884 (seed 0, CPU, 5,560 notes), so the bound leaves a margin.
    assert trained.metrics["test"]["roc_auc"] > 0.8


@pytest.mark.slow
def test_test_f1_above_bound(trained):
    # SMALL_CONFIG measured 0.734 (seed 0, CPU, 5,560 notes), so the bound leaves a margin.
    assert trained.metrics["test"]["f1"] > 0.6


@pytest.mark.slow
def test_threshold_inside_unit_interval(trained):
    assert 0.0 < trained.threshold < 1.0
    assert trained.metrics["threshold"] == trained.threshold


@pytest.mark.slow
def test_threshold_maximises_validation_f1(trained, dataset):
    labels = dataset.labels(SPLIT_VALIDATION)
    matrix = sorted_csr(trained.features.transform(dataset.texts(SPLIT_VALIDATION)))
    scores = trained.network.predict(matrix, verbose=0).ravel()

    best_f1 = max(f1_score(labels, scores >= candidate) for candidate in np.unique(scores))
    f1_at_threshold = f1_score(labels, scores >= trained.threshold)

    assert trained.threshold in set(scores.tolist())
    assert f1_at_threshold == pytest.approx(best_f1)
    assert trained.metrics["validation"]["f1"] == pytest.approx(best_f1)


@pytest.mark.slow
def test_k_best_kept_when_smaller(trained):
    selector = trained.features.named_steps["select"]

    assert selector.k == SMALL_CONFIG.k_best
    assert trained.metrics["features"] == SMALL_CONFIG.k_best


def test_k_best_clamped_to_vocabulary(dataset, caplog):
    texts = dataset.texts(SPLIT_TRAIN)[:300]
    labels = dataset.labels(SPLIT_TRAIN)[:300]
    config = ModelConfig(k_best=1_000_000)

    with caplog.at_level(logging.INFO, logger="k8s_analysis.model.train"):
        features, matrix = fit_features(texts, labels, config)
    vocabulary_size = len(features.named_steps["tfidf"].vocabulary_)

    assert features.named_steps["select"].k == vocabulary_size
    assert matrix.shape == (300, vocabulary_size)
    assert "clamped" in caplog.text


def test_case_rows_raise_insufficient_data():
    dataset = build_dataset(case_training_rows())

    # The failed check must name the empty vocabulary, so that is the message expected.
    with pytest.raises(InsufficientDataError, match="empty vocabulary"):
        train_classifier(dataset)


def test_case_none_text_dropped():
    frame = build_dataset(case_training_rows()).frame

    assert sorted(frame["clean_text"]) == ["1 2", "a i", "the and of"]


def test_case_texts_empty_vocabulary():
    texts = [row or "" for row in case_training_rows()["text"]]
    labels = case_training_rows()["is_bug"].to_numpy(dtype=np.float32)

    with pytest.raises(InsufficientTextError, match="empty vocabulary") as raised:
        fit_features(texts, labels, ModelConfig())

    assert isinstance(raised.value.__cause__, ValueError)


def test_unusable_texts_raise_text_error():
    dataset = build_dataset(unusable_notes())

    with pytest.raises(InsufficientTextError, match="empty vocabulary"):
        train_classifier(dataset, SMALL_CONFIG)


def test_insufficient_data_before_keras():
    # A fresh interpreter shows whether Keras was imported before the error was raised.
    script = textwrap.dedent(f"""
        import json, sys
        import pandas as pd
        from k8s_analysis.model.dataset import build_dataset
        from k8s_analysis.model.train import InsufficientDataError, train_classifier

        results = {{}}
        for name, notes in (("case", pd.read_json(sys.stdin, orient="records")), ("unusable", pd.DataFrame({{
            "pr_number": range(1, {len(UNUSABLE_TEXTS)} + 1),
            "text": {UNUSABLE_TEXTS!r},
            "is_bug": [index % 2 == 0 for index in range({len(UNUSABLE_TEXTS)})],
        }}))):
            try:
                train_classifier(build_dataset(notes))
                results[name] = "trained"
            except InsufficientDataError as error:
                results[name] = str(error)
        results["keras"] = "keras" in sys.modules
        results["tensorflow"] = "tensorflow" in sys.modules
        print(json.dumps(results))
    """)
    rows = case_training_rows().to_json(orient="records")

    completed = subprocess.run(
        [sys.executable, "-c", script], input=rows, capture_output=True, text=True, timeout=60, check=True
    )
    results = json.loads(completed.stdout.strip().splitlines()[-1])

    assert "empty vocabulary" in results["case"]
    assert "empty vocabulary" in results["unusable"]
    assert results["keras"] is False
    assert results["tensorflow"] is False


def test_empty_evaluation_splits_raise():
    # Three distinct texts all fall in the first 70%, so validation and test stay empty.
    notes = pd.DataFrame({
        "pr_number": [1, 2, 3],
        "text": ["Fix kubelet crash.", "Fix kubelet crash on restart.", "Fix scheduler crash."],
        "is_bug": [True, False, True],
    })

    with pytest.raises(InsufficientDataError, match="validation"):
        train_classifier(build_dataset(notes), SMALL_CONFIG)


def test_single_class_training_raises():
    notes = pd.DataFrame({
        "pr_number": range(100, 140),
        "text": [f"Fix the kubelet crash number {index} on node restart." for index in range(40)],
        # Only validation and test notes (the newest 30%) are bugs.
        "is_bug": [index >= 28 for index in range(40)],
    })
    dataset = build_dataset(notes)

    with pytest.raises(InsufficientDataError, match="one class"):
        train_classifier(dataset, SMALL_CONFIG)


def test_class_weights_balance_classes():
    labels = np.array([1, 0, 0, 0], dtype=np.float32)

    weights = class_weights(labels)

    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(4 / 2)}
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)


def test_class_weights_single_class():
    assert class_weights(np.zeros(5, dtype=np.float32)) == {0: 1.0, 1: 1.0}
