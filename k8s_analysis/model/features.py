"""From a release note to the sparse feature row the network reads.

Three blocks are stacked side by side:

- word TF-IDF over 1..n-grams of the cleaned note;
- character TF-IDF over 2..5-grams within words, which catches spelling variants and parts of
  identifiers ("panic", "panics", "kubelet's") that word n-grams miss;
- optionally one column per ``sig/*`` and ``area/*`` label of the PR (never ``kind/*``, which
  is the label being predicted).

Chi-squared scores, as SelectKBest computes them on the training notes, keep the ``k`` most informative
columns, and each row is then scaled to unit length. The saved form is plain JSON: the kept
terms with their IDF weights, so a model folder contains no pickled code and loading one runs
none. Scoring rebuilds scikit-learn vectorizers whose vocabulary is only the kept terms.
TF-IDF is computed without normalisation and rows are normalised after selection, so the
rebuilt vectorizers give exactly the training-time values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import chi2

from k8s_analysis.model.vectorize import KeptTermVectorizer

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
LABEL_GROUPS = ("sig", "area")


class InsufficientDataError(ValueError):
    """The notes cannot train a model: too few rows, one class only, or no usable words."""


class InsufficientTextError(InsufficientDataError):
    """The training notes hold no usable words, so no vocabulary can be built."""


@dataclass(frozen=True)
class FeatureConfig:
    word_ngram_max: int = 2
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    """0 leaves the character block out."""
    min_df: int = 2
    """A term must occur in this many training notes to be kept."""
    k_best: int = 20_000
    use_labels: bool = False
    """Add the PR's sig/* and area/* labels as columns."""

    def as_dict(self) -> dict:
        return asdict(self)


def label_tokens(sigs: Sequence[str] | None, areas: Sequence[str] | None) -> list[str]:
    """Return the label columns one note switches on, as ``sig/node``-style names."""
    tokens = [f"sig/{name}" for name in (sigs if sigs is not None else ())]
    tokens += [f"area/{name}" for name in (areas if areas is not None else ())]
    return tokens


def label_matrix(columns: dict[str, int], rows: int, sigs: Sequence | None,
                 areas: Sequence | None) -> sp.csr_matrix:
    """Build the 0/1 label block: one row per note, one column per name in ``columns``.

    Labels without a column (unseen in training) are ignored.
    """
    sigs = sigs if sigs is not None else [None] * rows
    areas = areas if areas is not None else [None] * rows
    row_index, column_index = [], []
    for row, (note_sigs, note_areas) in enumerate(zip(sigs, areas, strict=True)):
        for token in label_tokens(note_sigs, note_areas):
            column = columns.get(token)
            if column is not None:
                row_index.append(row)
                column_index.append(column)
    values = np.ones(len(row_index), dtype=np.float32)
    return sp.csr_matrix((values, (row_index, column_index)), shape=(rows, len(columns)))


def word_vectorizer(ngram_max: int, min_df: int, vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(
        ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=True, norm=None,
        dtype=np.float32, vocabulary=vocabulary,
    )


def char_vectorizer(ngram_min: int, ngram_max: int, min_df: int, vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb", ngram_range=(ngram_min, ngram_max), min_df=min_df, sublinear_tf=True,
        norm=None, dtype=np.float32, vocabulary=vocabulary,
    )


def fitted_copy(vectorizer: TfidfVectorizer, terms: list[str], idf: np.ndarray) -> TfidfVectorizer:
    """Return a vectorizer with the same settings whose vocabulary is only ``terms``, with their IDF weights."""
    params = vectorizer.get_params()
    params["vocabulary"] = {term: index for index, term in enumerate(terms)}
    copy = TfidfVectorizer(**params)
    copy.idf_ = np.asarray(idf, dtype=np.float64)
    return copy


class NoteFeatures:
    """The fitted feature extractor: kept word and character terms, label columns, and k."""

    def __init__(self, config: FeatureConfig, word: TfidfVectorizer, char: TfidfVectorizer | None,
                 labels: list[str], known_words: list[str] | None = None) -> None:
        self.config = config
        self.word = word
        self.char = char
        self.labels = labels
        self.known_words = frozenset(known_words or ())
        self._label_index = {name: index for index, name in enumerate(labels)}
        self._tokenize = word.build_tokenizer()
        self._text_columns = KeptTermVectorizer(word, char)

    def has_known_word(self, texts: Sequence[str]) -> np.ndarray:
        """Return True for cleaned texts with at least one word seen in training.

        Character n-grams match almost any string ("zzzqx blorf" shares "zz" and "bl" with
        real notes), so only whole words count as evidence.
        """
        return np.array([any(token in self.known_words for token in self._tokenize(text)) for text in texts],
                        dtype=bool)

    @property
    def n_features(self) -> int:
        return len(self.word.vocabulary_) + (len(self.char.vocabulary_) if self.char else 0) + len(self.labels)

    def names(self) -> list[str]:
        """Column names in order: ``w:`` word terms, ``c:`` character n-grams, then labels."""
        names = [f"w:{term}" for term in self.word.get_feature_names_out()]
        if self.char is not None:
            names += [f"c:{term}" for term in self.char.get_feature_names_out()]
        return names + self.labels

    def transform(self, texts: Sequence[str], sigs: Sequence | None = None,
                  areas: Sequence | None = None) -> sp.csr_matrix:
        """Feature rows for cleaned texts; ``sigs``/``areas`` are per-note label lists or None."""
        if isinstance(texts, str):
            raise TypeError("transform expects a list of texts, not one string")
        return unit_rows(self.unscaled(texts, sigs, areas))

    def unscaled(self, texts: Sequence[str], sigs: Sequence | None = None,
                 areas: Sequence | None = None) -> sp.csr_matrix:
        """Return ``transform``'s rows before they are scaled to unit length."""
        if len(texts) == 0:
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        blocks = [self._text_columns.transform(texts)]
        if self.labels:
            blocks.append(self._label_block(len(texts), sigs, areas))
        return sp.hstack(blocks, format="csr", dtype=np.float32) if len(blocks) > 1 else blocks[0]

    def reference_transform(self, texts: Sequence[str], sigs: Sequence | None = None,
                            areas: Sequence | None = None) -> sp.csr_matrix:
        """Return ``transform``'s rows computed by scikit-learn's own vectorizers (slower)."""
        blocks = [self.word.transform(texts)]
        if self.char is not None:
            blocks.append(self.char.transform(texts))
        if self.labels:
            blocks.append(self._label_block(len(texts), sigs, areas))
        return unit_rows(sp.hstack(blocks, format="csr", dtype=np.float32))

    def _label_block(self, rows: int, sigs: Sequence | None, areas: Sequence | None) -> sp.csr_matrix:
        return label_matrix(self._label_index, rows, sigs, areas)

    def to_dict(self) -> dict:
        """Return the JSON form saved as ``features.json``."""

        def block(vectorizer: TfidfVectorizer) -> dict:
            return {"terms": vectorizer.get_feature_names_out().tolist(),
                    "idf": [float(value) for value in vectorizer.idf_]}

        return {
            "format": FORMAT_VERSION,
            "config": self.config.as_dict(),
            "word": block(self.word),
            "char": block(self.char) if self.char is not None else None,
            "labels": self.labels,
            "known_words": sorted(self.known_words),
        }

    @classmethod
    def from_dict(cls, data: dict) -> NoteFeatures:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"features format {data.get('format')!r} is not {FORMAT_VERSION}; retrain the model")
        config = FeatureConfig(**data["config"])
        word = fitted_copy(word_vectorizer(config.word_ngram_max, 1), data["word"]["terms"], data["word"]["idf"])
        char = None
        if data.get("char") is not None:
            template = char_vectorizer(config.char_ngram_min, config.char_ngram_max, 1)
            char = fitted_copy(template, data["char"]["terms"], data["char"]["idf"])
        return cls(config, word, char, list(data.get("labels", [])), data.get("known_words", []))


def unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 length, float32, indices sorted (Keras rejects unsorted CSR).

    Computed here rather than with sklearn's ``normalize``, whose input checks cost more than
    the arithmetic when one request scores one note. All-zero rows stay zero. A float32 CSR
    argument is scaled in place, as ``normalize(copy=False)`` did.
    """
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.sort_indices()
    lengths = np.diff(csr.indptr)
    squares = np.square(csr.data, dtype=np.float64)
    norms = np.sqrt(np.bincount(np.repeat(np.arange(csr.shape[0]), lengths), weights=squares,
                                minlength=csr.shape[0]))
    norms[norms == 0.0] = 1.0
    csr.data /= np.repeat(norms, lengths)
    return csr


def fit_features(texts: Sequence[str], labels: np.ndarray, config: FeatureConfig,
                 sigs: Sequence | None = None, areas: Sequence | None = None,
                 log=logger) -> tuple[NoteFeatures, sp.csr_matrix]:
    """Fit the blocks on the training notes, keep the k best columns; return them and the rows.

    Chi-squared scores one column at a time, so each block is scored on its own and only its
    kept columns are stacked. The matrix of every n-gram is never built in one piece, which
    lowers the peak memory on large training sets. The columns kept are those SelectKBest
    would keep on the stacked matrix.
    """
    word = word_vectorizer(config.word_ngram_max, config.min_df)
    try:
        blocks = [word.fit_transform(texts)]
    except ValueError as error:
        # scikit-learn raises "empty vocabulary" when no note has a token kept by min_df.
        raise InsufficientTextError(
            f"empty vocabulary: the {len(texts)} training notes contain no word that occurs in at "
            f"least {config.min_df} notes"
        ) from error
    char = None
    if config.char_ngram_max:
        char = char_vectorizer(config.char_ngram_min, config.char_ngram_max, config.min_df)
        blocks.append(char.fit_transform(texts))
    label_names: list[str] = []
    if config.use_labels:
        label_names = frequent_labels(len(texts), sigs, areas, config.min_df)
        columns = {name: index for index, name in enumerate(label_names)}
        blocks.append(label_matrix(columns, len(texts), sigs, areas))

    total = sum(block.shape[1] for block in blocks)
    k = min(config.k_best, total)
    if k < config.k_best:
        log.info("k_best clamped from %s to %s: the training notes give only %s features", config.k_best, k, total)
    scores = np.concatenate([chi2(block, labels)[0] for block in blocks])
    # SelectKBest's own rule: NaN scores rank lowest, a stable sort, the last k win.
    scores = np.where(np.isnan(scores), np.finfo(scores.dtype).min, scores)
    keep = np.zeros(total, dtype=bool)
    keep[np.argsort(scores, kind="mergesort")[total - k:]] = True

    offsets = np.cumsum([0] + [block.shape[1] for block in blocks])
    kept_columns = [np.flatnonzero(keep[start:end]) for start, end in zip(offsets[:-1], offsets[1:], strict=True)]
    for index, columns in enumerate(kept_columns):
        blocks[index] = blocks[index][:, columns]  # drops the unused columns' memory block by block
    kept_word = fitted_copy(word, word.get_feature_names_out()[kept_columns[0]].tolist(), word.idf_[kept_columns[0]])
    kept_char = None
    if char is not None:
        kept_char = fitted_copy(char, char.get_feature_names_out()[kept_columns[1]].tolist(),
                                char.idf_[kept_columns[1]])
    kept_labels = [label_names[i] for i in kept_columns[-1]] if config.use_labels else []
    known_words = [term for term in word.get_feature_names_out() if " " not in term]
    features = NoteFeatures(config, kept_word, kept_char, kept_labels, known_words)
    return features, unit_rows(sp.hstack(blocks, format="csr", dtype=np.float32))


def frequent_labels(rows: int, sigs: Sequence | None, areas: Sequence | None, min_df: int) -> list[str]:
    """Return the label columns that at least ``min_df`` training notes switch on, sorted by name."""
    counts: dict[str, int] = {}
    for note_sigs, note_areas in zip(sigs if sigs is not None else [None] * rows,
                                     areas if areas is not None else [None] * rows, strict=True):
        for token in set(label_tokens(note_sigs, note_areas)):
            counts[token] = counts.get(token, 0) + 1
    return sorted(name for name, count in counts.items() if count >= min_df)
