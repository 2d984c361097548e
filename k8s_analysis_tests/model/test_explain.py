"""Tests for the n-gram explanations: each reported effect must be what removing the column does."""

import numpy as np
import pytest

from k8s_analysis.model.bundle import Predictor
from k8s_analysis.model.explain import column_label, explain_rows

BUG_NOTE = "Fixed a bug where the kubelet panicked with a nil pointer dereference when a pod had no containers."
FEATURE_NOTE = "Added a new --output flag to kubectl get that prints resources as YAML."


@pytest.fixture(scope="module")
def predictor(served_model_dir):
    return Predictor(served_model_dir)


def log_odds(probability: np.ndarray) -> np.ndarray:
    probability = probability.astype(np.float64)
    return np.log(probability / (1.0 - probability))


def test_effect_equals_log_odds_without_column(predictor):
    matrix = predictor.transform([BUG_NOTE, FEATURE_NOTE])
    explanations = explain_rows(predictor, matrix, top=5)
    names = predictor.column_names

    for row, explanation in enumerate(explanations):
        base = log_odds(predictor.forward(matrix[row]))[0]
        assert explanation["up"] or explanation["down"]
        for contribution in explanation["up"] + explanation["down"]:
            prefix = {"word": "w:", "char": "c:"}[contribution["kind"]]
            column = names.index(prefix + contribution["ngram"])
            without = matrix[row].tolil()
            without[0, column] = 0.0
            expected = base - log_odds(predictor.forward(without.tocsr()))[0]
            assert contribution["log_odds"] == pytest.approx(expected, abs=2e-3)


def test_up_and_down_ordered_and_limited(predictor):
    explanation = explain_rows(predictor, predictor.transform([BUG_NOTE]), top=3)[0]

    up = [item["log_odds"] for item in explanation["up"]]
    down = [item["log_odds"] for item in explanation["down"]]
    assert len(up) == 3 and all(value > 0 for value in up) and up == sorted(up, reverse=True)
    assert len(down) <= 3 and all(value < 0 for value in down) and down == sorted(down)


def test_bug_words_raise_bug_note(predictor):
    explanation = explain_rows(predictor, predictor.transform([BUG_NOTE]), top=10)[0]

    raised = {item["ngram"].strip() for item in explanation["up"]}
    assert raised & {"fixed", "fix", "bug", "panicked", "nil"}


def test_explain_empty_text_is_empty(predictor):
    assert explain_rows(predictor, predictor.transform(["", "   "]), top=5) == [{"up": [], "down": []}] * 2


def test_column_label_splits_kind():
    assert column_label("w:fix bug") == ("fix bug", "word")
    assert column_label("c: pan") == (" pan", "char")
    assert column_label("sig/node") == ("sig/node", "label")
