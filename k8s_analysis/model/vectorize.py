"""TF-IDF over a fixed, kept vocabulary, fast enough to score one request at a time.

scikit-learn's vectorizers enumerate every n-gram of every text in Python and validate their
input on each call: about 1 ms for one note and 180 ms for 1,000 on the 2-core CI machine.
Prediction only needs the few thousand terms the model kept, and character n-grams of the
``char_wb`` analyzer never cross a word boundary, so each distinct word's kept character
n-grams are looked up once and cached. Word n-grams are looked up per text.

The values are scikit-learn's: the same tokenizer, the same n-gram rules, counts as float32,
``1 + log(count)`` and the IDF weights of the fitted vectorizers. The tests compare both paths
on every shared release note.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

# Distinct words kept in the character n-gram cache. The cache starts again when it is full, so
# a stream of new words cannot grow the server's memory without bound.
WORD_CACHE_SIZE = 200_000
EMPTY_COLUMNS = np.zeros(0, dtype=np.int32)


class KeptTermVectorizer:
    """Word and character TF-IDF columns of fitted vectorizers whose vocabulary is the kept terms.

    Columns are the word vectorizer's terms, then the character vectorizer's (when present), in
    their vocabulary order, which is the column order of ``NoteFeatures``.
    """

    def __init__(self, word: TfidfVectorizer, char: TfidfVectorizer | None) -> None:
        self._word_vocabulary = word.vocabulary_
        self._tokenize = word.build_tokenizer()
        self._word_ngram_range = word.ngram_range
        self._word_columns = len(word.vocabulary_)
        idf = [np.asarray(word.idf_, dtype=np.float64)]
        self._char_vocabulary: dict[str, int] = {}
        self._char_ngram_range = (0, -1)
        if char is not None:
            if char.analyzer != "char_wb":
                raise ValueError(f"only the char_wb analyzer is supported, not {char.analyzer!r}")
            self._char_vocabulary = char.vocabulary_
            self._char_ngram_range = char.ngram_range
            idf.append(np.asarray(char.idf_, dtype=np.float64))
        for vectorizer in (word, char):
            if vectorizer is not None and not (vectorizer.lowercase and vectorizer.sublinear_tf
                                               and vectorizer.use_idf and vectorizer.norm is None
                                               and vectorizer.stop_words is None):
                raise ValueError("expected lowercase, sublinear TF-IDF vectorizers without norm or stop words")
        self._idf = np.concatenate(idf)
        self.n_columns = len(self._idf)
        self._word_cache: dict[str, np.ndarray] = {}

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Return the unnormalised TF-IDF rows (float32, indices sorted) of already cleaned texts."""
        rows: list[int] = []
        columns: list[np.ndarray] = []
        for row, text in enumerate(texts):
            text = text.lower()
            word_ids = self._word_ids(text)
            columns.append(word_ids)
            rows.append(row)
            if self._char_vocabulary:
                for word in text.split():
                    ids = self._word_cache.get(word)
                    if ids is None:
                        ids = self._char_ids(word)
                    columns.append(ids)
                    rows.append(row)
        sizes = np.fromiter((ids.size for ids in columns), dtype=np.int64, count=len(columns))
        column_index = np.concatenate(columns) if columns else EMPTY_COLUMNS
        row_index = np.repeat(np.asarray(rows, dtype=np.int32), sizes)
        counts = np.ones(column_index.size, dtype=np.float32)
        # The COO to CSR conversion adds up repeated (row, column) pairs into counts.
        matrix = sp.csr_matrix((counts, (row_index, column_index)), shape=(len(texts), self.n_columns))
        matrix.sum_duplicates()
        np.log(matrix.data, out=matrix.data)
        matrix.data += 1.0
        matrix.data *= self._idf[matrix.indices]
        return matrix

    def _word_ids(self, text: str) -> np.ndarray:
        tokens = self._tokenize(text)
        low, high = self._word_ngram_range
        grams = list(tokens) if low == 1 else []
        for n in range(max(low, 2), min(high, len(tokens)) + 1):
            grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        lookup = self._word_vocabulary.get
        ids = [index for index in map(lookup, grams) if index is not None]
        return np.asarray(ids, dtype=np.int32) if ids else EMPTY_COLUMNS

    def _char_ids(self, word: str) -> np.ndarray:
        """Return the kept character n-grams of one word, padded with spaces as char_wb pads it."""
        padded = f" {word} "
        low, high = self._char_ngram_range
        lookup = self._char_vocabulary.get
        ids = []
        for n in range(low, high + 1):
            # A word shorter than n gives one n-gram, the whole padded word, once.
            starts = range(max(len(padded) - n + 1, 1))
            ids.extend(index for index in (lookup(padded[i:i + n]) for i in starts) if index is not None)
            if len(padded) <= n:
                break
        result = (np.asarray(ids, dtype=np.int32) + self._word_columns) if ids else EMPTY_COLUMNS
        if len(self._word_cache) >= WORD_CACHE_SIZE:
            self._word_cache = {}
        self._word_cache[word] = result
        return result
