"""Tests for explanations: each reported effect must be what removing the word or label does."""

import numpy as np
import pytest

from k8s_analysis.model.bundle import Predictor
from k8s_analysis.model.explain import MAX_EXPLAINED_CHARACTERS, MAX_EXPLAINED_TOTAL, displayed_word, explain_texts
from k8s_analysis.model.text import clean_text

BUG_NOTE = "Fixed a bug where the kubelet panicked with a nil pointer dereference when a pod had no containers."
FEATURE_NOTE = "Added a new --output flag to kubectl get that prints resources as YAML."


@pytest.fixture(scope="module")
def predictor(served_model_dir):
    return Predictor(served_model_dir)


def logit(probability: float) -> float:
    probability = float(probability)
    return float(np.log(probability / (1.0 - probability)))


def without_word(text: str, displayed: str) -> str:
    """Return the cleaned text without every piece that displays as ``displayed``."""
    pieces = clean_text(text).split()
    return " ".join(piece for piece in pieces if displayed_word(piece) != displayed)


def logit_at_full_length(predictor, text: str, reduced: str, sigs=None, areas=None) -> float:
    """Score ``reduced`` with its row divided by the length of ``text``'s row, not its own."""
    full = predictor.features.unscaled([clean_text(text)], [sigs], [areas])
    length = float(np.sqrt(full.multiply(full).sum()))
    row = predictor.features.unscaled([reduced], [sigs], [areas]) / length
    return logit(predictor.forward(row)[0])


@pytest.mark.parametrize("text", [BUG_NOTE, FEATURE_NOTE])
def test_word_effect_equals_rescoring_without_it(predictor, text):
    explanation = explain_texts(predictor, [text], top=5)[0]
    full = logit(predictor.predict_proba([text])[0])

    contributions = explanation["up"] + explanation["down"]
    assert contributions
    for contribution in contributions:
        assert contribution["kind"] == "word"
        reduced = without_word(text, contribution["ngram"])
        expected = full - logit_at_full_length(predictor, text, reduced)
        assert contribution["log_odds"] == pytest.approx(expected, abs=1e-3)


def test_removal_keeps_full_row_length(predictor):
    """Scaling the shorter row to unit length again would give a different, larger-looking effect."""
    text = "Fixed a crash."
    explanation = explain_texts(predictor, [text], top=10)[0]
    contribution = next(item for item in explanation["up"] + explanation["down"] if item["ngram"] == "crash")
    full = logit(predictor.predict_proba([text])[0])
    rescaled = full - logit(predictor.predict_proba(["fixed a"])[0])

    assert contribution["log_odds"] == pytest.approx(full - logit_at_full_length(predictor, text, "fixed a"),
                                                     abs=1e-3)
    assert abs(contribution["log_odds"] - rescaled) > 1e-3


def test_stop_words_and_numbers_not_listed(predictor):
    explanation = explain_texts(predictor, ["Fixed the crash of a pod on the node in 1.29 and 2024."], top=50)[0]

    listed = {item["ngram"] for item in explanation["up"] + explanation["down"]}
    assert listed
    assert not listed & {"the", "of", "a", "on", "in", "and", "1.29", "2024"}


def test_up_and_down_ordered_and_limited(predictor):
    explanation = explain_texts(predictor, [BUG_NOTE], top=3)[0]

    up = [item["log_odds"] for item in explanation["up"]]
    down = [item["log_odds"] for item in explanation["down"]]
    assert len(up) == 3
    assert all(value > 0 for value in up)
    assert up == sorted(up, reverse=True)
    assert len(down) <= 3
    assert all(value < 0 for value in down)
    assert down == sorted(down)


def test_bug_words_raise_bug_note(predictor):
    explanation = explain_texts(predictor, [BUG_NOTE], top=5)[0]

    assert {item["ngram"] for item in explanation["up"]} & {"fixed", "bug", "panicked", "nil"}


def test_explain_empty_text_is_empty(predictor):
    assert explain_texts(predictor, ["", "   ", None], top=5) == [{"up": [], "down": []}] * 3


def test_explain_rejects_overlong_text(predictor):
    with pytest.raises(ValueError, match="too long to explain"):
        explain_texts(predictor, ["word " * (MAX_EXPLAINED_CHARACTERS // 4)])


def test_explain_rejects_too_many_characters_together(predictor):
    text = "fixed a crash " * (MAX_EXPLAINED_CHARACTERS // 15)
    count = MAX_EXPLAINED_TOTAL // len(clean_text(text)) + 1

    with pytest.raises(ValueError, match="too many to explain in one request"):
        explain_texts(predictor, [text] * count)


def test_repeated_word_listed_once(predictor):
    text = "Fixed a crash. The crash happened when the kubelet restarted."
    explanation = explain_texts(predictor, [text], top=20)[0]

    listed = [item for item in explanation["up"] + explanation["down"] if item["ngram"] == "crash"]
    assert len(listed) == 1
    reduced = "fixed a the happened when the kubelet restarted."
    expected = logit(predictor.predict_proba([text])[0]) - logit_at_full_length(predictor, text, reduced)
    assert listed[0]["log_odds"] == pytest.approx(expected, abs=1e-3)


def test_unknown_words_not_explained(predictor):
    assert explain_texts(predictor, ["zzzqx blorfle"], top=5) == [{"up": [], "down": []}]


def test_label_effect_equals_rescoring_without_it(labelled_model_dir):
    labelled = Predictor(labelled_model_dir)
    label = labelled.features.labels[0]
    group, _, name = label.partition("/")
    sigs = [name] if group == "sig" else []
    areas = [name] if group == "area" else []

    explanation = explain_texts(labelled, [BUG_NOTE], [sigs], [areas], top=1_000)[0]

    labels = [item for item in explanation["up"] + explanation["down"] if item["kind"] == "label"]
    assert [item["ngram"] for item in labels] == [label]
    full = logit(labelled.predict_proba([BUG_NOTE], [sigs], [areas])[0])
    length_row = labelled.features.unscaled([clean_text(BUG_NOTE)], [sigs], [areas])
    length = float(np.sqrt(length_row.multiply(length_row).sum()))
    without_label = labelled.features.unscaled([clean_text(BUG_NOTE)], [[]], [[]]) / length
    expected = full - logit(labelled.forward(without_label)[0])
    assert labels[0]["log_odds"] == pytest.approx(expected, abs=1e-3)
