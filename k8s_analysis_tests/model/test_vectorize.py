"""Tests for KeptTermVectorizer: the fast TF-IDF path must give scikit-learn's values exactly."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from k8s_analysis.model import vectorize
from k8s_analysis.model.features import FeatureConfig, fit_features, unit_rows
from k8s_analysis.model.text import clean_text
from k8s_analysis_tests.model.test_train import load_release_notes

# Words shorter than, equal to and longer than the n-gram sizes, other alphabets, and
# whitespace that str.split() treats as a separator.
ODD_TEXTS = [
    "", "   ", "a", "ab", "abc", "a b c d", "ß straße İstanbul ǅ", "日本語 テキスト", "x" * 60,
    "tab\tseparated\u00a0no-break\u2003em space", "node_name=foo.bar/baz:v1 --flag=1", "ééé éé é",
]


@pytest.fixture(scope="module")
def notes():
    frame = load_release_notes()
    return [clean_text(text) for text in frame["text"]] + ODD_TEXTS, frame["is_bug"].to_numpy(dtype=np.float32)


@pytest.mark.parametrize("config", [
    FeatureConfig(k_best=40_000, min_df=1),
    FeatureConfig(word_ngram_max=3, char_ngram_min=1, char_ngram_max=3, k_best=8_000),
    FeatureConfig(word_ngram_max=1, char_ngram_max=0, k_best=2_000),
], ids=["default", "word-3-char-1-3", "words-only"])
def test_transform_equals_scikit_learn(notes, config):
    texts, labels = notes
    features, _ = fit_features(texts[:-len(ODD_TEXTS)], labels, config)

    fast = features.transform(texts)
    reference = features.reference_transform(texts)

    assert fast.shape == reference.shape == (len(texts), features.n_features)
    assert np.array_equal(fast.indptr, reference.indptr)
    assert np.array_equal(fast.indices, reference.indices)
    np.testing.assert_array_equal(fast.data, reference.data)


def test_word_cache_restarts_when_full(notes, monkeypatch):
    texts, labels = notes
    features, _ = fit_features(texts[:1000], labels[:1000], FeatureConfig(k_best=5_000))
    reference = features.reference_transform(texts[:1500])
    monkeypatch.setattr(vectorize, "WORD_CACHE_SIZE", 50)

    fast = features.transform(texts[:1500])

    assert len(features._text_columns._word_cache) <= 50
    assert (fast != reference).nnz == 0


def test_unit_rows_matches_normalize():
    matrix = sp.csr_matrix(np.array([[3.0, 0.0, 4.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=np.float32))
    # Unsorted indices, as a hand-built matrix may have.
    unsorted = sp.csr_matrix((np.array([4.0, 3.0], dtype=np.float32), np.array([2, 0]), np.array([0, 2, 2, 2])),
                             shape=(3, 3))

    rows = unit_rows(matrix)

    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows.toarray(), [[0.6, 0.0, 0.8], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(rows.toarray(), normalize(matrix).toarray(), atol=1e-7)
    sorted_rows = unit_rows(unsorted)
    assert sorted_rows.has_sorted_indices
    np.testing.assert_allclose(sorted_rows.toarray()[0], [0.6, 0.0, 0.8])
