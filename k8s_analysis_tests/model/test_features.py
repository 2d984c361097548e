"""Tests for NoteFeatures: the word, character and label blocks, k, and the JSON form."""

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn.feature_selection import SelectKBest, chi2

from k8s_analysis.model.features import FeatureConfig, NoteFeatures, char_vectorizer, fit_features, word_vectorizer
from k8s_analysis.model.text import clean_text
from k8s_analysis_tests.model.test_train import load_release_notes


@pytest.fixture(scope="module")
def notes():
    frame = load_release_notes().sample(800, random_state=0)
    return {
        "texts": [clean_text(text) for text in frame["text"]],
        "labels": frame["is_bug"].to_numpy(dtype=np.float32),
        "sigs": frame["sigs"].tolist(),
        "areas": frame["areas"].tolist(),
    }


@pytest.fixture(scope="module")
def fitted(notes):
    config = FeatureConfig(k_best=3000, use_labels=True)
    return fit_features(notes["texts"], notes["labels"], config, notes["sigs"], notes["areas"])


def test_k_columns_kept(fitted):
    features, matrix = fitted

    assert features.n_features == 3000
    assert matrix.shape == (800, 3000)
    assert len(features.names()) == 3000


def test_rows_unit_length(fitted):
    _, matrix = fitted
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())

    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    assert matrix.dtype == np.float32
    assert matrix.has_sorted_indices


def test_transform_matches_training_rows(fitted, notes):
    features, matrix = fitted

    again = features.transform(notes["texts"], notes["sigs"], notes["areas"])

    assert abs(again - matrix).max() < 1e-6


def test_json_round_trip_exact(fitted, notes):
    features, matrix = fitted

    restored = NoteFeatures.from_dict(json.loads(json.dumps(features.to_dict())))

    assert restored.names() == features.names()
    assert abs(restored.transform(notes["texts"], notes["sigs"], notes["areas"]) - matrix).max() == 0


def test_blocks_present(fitted):
    names = fitted[0].names()

    assert any(name.startswith("w:") and " " in name for name in names)  # word bigrams
    assert any(name.startswith("c:") for name in names)
    assert all(name.startswith(("w:", "c:", "sig/", "area/")) for name in names)


def test_kind_labels_never_features(notes):
    # Even when a sig list smuggles a kind label in, only sig/ and area/ columns are made.
    sigs = [["node", "kind/bug"] if label else ["apps"] for label in notes["labels"]]
    config = FeatureConfig(k_best=100_000, use_labels=True, min_df=1)

    features, _ = fit_features(notes["texts"], notes["labels"], config, sigs, notes["areas"])

    assert all(name.startswith(("sig/", "area/")) for name in features.labels)
    assert not any(name.startswith("kind/") for name in features.labels)


def test_missing_labels_score_as_none(fitted, notes):
    features, _ = fitted

    without = features.transform(notes["texts"][:5])
    empty = features.transform(notes["texts"][:5], [[]] * 5, [[]] * 5)

    assert abs(without - empty).max() == 0


def test_unknown_label_ignored(fitted, notes):
    features, _ = fitted

    known = features.transform(notes["texts"][:1], [[]], [[]])
    unknown = features.transform(notes["texts"][:1], [["no-such-sig"]], [["no-such-area"]])

    assert abs(known - unknown).max() == 0


def test_one_string_refused(fitted):
    with pytest.raises(TypeError, match="list of texts"):
        fitted[0].transform("kubelet panics on start")


def test_empty_list_gives_no_rows(fitted):
    matrix = fitted[0].transform([])

    assert sp.issparse(matrix)
    assert matrix.shape == (0, 3000)


def test_k_clamped_and_logged(notes, caplog):
    config = FeatureConfig(k_best=10_000_000, char_ngram_max=0)

    with caplog.at_level(logging.INFO, logger="k8s_analysis.model.features"):
        features, matrix = fit_features(notes["texts"][:200], notes["labels"][:200], config)

    assert matrix.shape[1] == features.n_features < 10_000_000
    assert "k_best clamped from 10000000" in caplog.text
    assert features.char is None


def test_unsupported_format_refused(fitted):
    data = fitted[0].to_dict() | {"format": 99}

    with pytest.raises(ValueError, match="format 99"):
        NoteFeatures.from_dict(data)


def test_selection_matches_select_k_best(notes):
    """Scoring block by block keeps exactly the columns SelectKBest keeps on the whole matrix."""
    config = FeatureConfig(k_best=2500, use_labels=True)
    word = word_vectorizer(config.word_ngram_max, config.min_df)
    char = char_vectorizer(config.char_ngram_min, config.char_ngram_max, config.min_df)
    labels_probe, _ = fit_features(notes["texts"], notes["labels"], replace(config, k_best=10_000_000),
                                   notes["sigs"], notes["areas"])
    whole = sp.hstack([word.fit_transform(notes["texts"]), char.fit_transform(notes["texts"]),
                       labels_probe._label_block(len(notes["texts"]), notes["sigs"], notes["areas"])]).tocsr()
    names = ([f"w:{t}" for t in word.get_feature_names_out()] + [f"c:{t}" for t in char.get_feature_names_out()]
             + labels_probe.labels)
    expected = [names[i] for i in SelectKBest(chi2, k=2500).fit(whole, notes["labels"]).get_support(indices=True)]

    features, _ = fit_features(notes["texts"], notes["labels"], config, notes["sigs"], notes["areas"])

    assert features.names() == expected
