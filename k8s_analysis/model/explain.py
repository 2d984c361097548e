"""Explanations of a prediction: the words and labels that pushed its kind/bug log-odds up or down most.

Each distinct word of the cleaned note (a whitespace-separated piece, with every occurrence)
is removed in turn. The note's TF-IDF values are computed again without it, so the word's own
n-grams, the bigrams around it and the character n-grams it shares with other words all
change as they should. The row is then divided by the full note's length, not its own.
Scaling it up again would give the remaining words more weight. On a short note such as
"Fixed a crash." that alone would make "crash" look like evidence against a bug. The word's effect is
the log-odds of kind/bug with it minus the log-odds without it, so positive effects pushed
towards kind/bug. Log-odds add up where probabilities saturate, so a word of a note scored
0.99 still shows its weight. When the model uses sig/area labels, each label of the note is
removed the same way. Common English words (scikit-learn's stop-word list) and pieces without
a letter are scored but not listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from k8s_analysis.model.bundle import ACTIVATIONS, Predictor
from k8s_analysis.model.features import label_tokens
from k8s_analysis.model.text import clean_text

DEFAULT_TOP = 5
# Each distinct word costs one more feature row, so a text costs about its length squared:
# 0.1 to 0.3 s for 2,000 characters, 0.6 s for 5,000 and 14 s for 20,000 on the 2-core CI machine.
MAX_EXPLAINED_CHARACTERS = 5_000
MAX_EXPLAINED_TOTAL = 20_000
# Punctuation that sticks to words in cleaned notes ("yaml.", "(kubelet)"), left out of the display.
DISPLAY_STRIP = ".,;:!?()[]{}\"'"


@dataclass(frozen=True)
class Contribution:
    ngram: str
    """The word as it appears in the cleaned note, or a label such as ``sig/node``."""
    kind: str
    """``word`` or ``label``."""
    log_odds: float
    """Log-odds of kind/bug with the word minus the log-odds without it."""


def log_odds(predictor: Predictor, matrix: sp.csr_matrix) -> np.ndarray:
    """Run the network on feature rows and return the input of its final sigmoid."""
    layers = predictor.layers
    if layers[-1].activation != "sigmoid":
        raise ValueError(f"the last layer's activation is {layers[-1].activation!r}, not a sigmoid")
    values = None
    for index, layer in enumerate(layers):
        values = (matrix @ layer.kernel if values is None else values @ layer.kernel) + layer.bias
        values = np.asarray(values, dtype=np.float32)
        if index < len(layers) - 1:
            values = ACTIVATIONS[layer.activation](values)
    return values.reshape(-1)


def explain_texts(predictor: Predictor, texts: Sequence[str | None], sigs: Sequence | None = None,
                  areas: Sequence | None = None, top: int = DEFAULT_TOP) -> list[dict]:
    """Return, for each text, the ``top`` words (and labels) that raised and lowered its log-odds most.

    Each entry is ``{"up": [...], "down": [...]}`` with contributions as dictionaries, largest
    effect first; words with no effect are in neither list. A text without any word seen in
    training gets empty lists, because only character fragments stand behind its score.
    Raises ValueError for a text longer than ``MAX_EXPLAINED_CHARACTERS`` once cleaned, or
    texts longer than ``MAX_EXPLAINED_TOTAL`` together.
    """
    cleaned = [clean_text(text) for text in texts]
    longest = max((len(text) for text in cleaned), default=0)
    if longest > MAX_EXPLAINED_CHARACTERS:
        raise ValueError(f"a text of {longest:,} characters is too long to explain (the limit is "
                         f"{MAX_EXPLAINED_CHARACTERS:,}); send it without asking for an explanation")
    total = sum(len(text) for text in cleaned)
    if total > MAX_EXPLAINED_TOTAL:
        raise ValueError(f"these texts have {total:,} characters together, too many to explain in one request "
                         f"(the limit is {MAX_EXPLAINED_TOTAL:,}); split the request")
    informative = predictor.features.has_known_word(cleaned)
    explanations = []
    for row, text in enumerate(cleaned):
        if not informative[row]:
            explanations.append({"up": [], "down": []})
            continue
        note_sigs = sigs[row] if sigs is not None else None
        note_areas = areas[row] if areas is not None else None
        explanations.append(explain_one(predictor, text, note_sigs, note_areas, top))
    return explanations


def displayed_word(piece: str) -> str:
    """Return a whitespace-separated piece without the punctuation around it ("crash." -> "crash")."""
    return piece.strip(DISPLAY_STRIP) or piece


def explain_one(predictor: Predictor, cleaned: str, sigs, areas, top: int) -> dict:
    pieces = cleaned.split()
    displayed = [displayed_word(piece) for piece in pieces]
    variants, variant_sigs, variant_areas, candidates = [cleaned], [sigs], [areas], []
    # "crash." and "crash" are one word: removing it removes both.
    for word in dict.fromkeys(displayed):
        if word in ENGLISH_STOP_WORDS or not any(character.isalpha() for character in word):
            continue
        variants.append(" ".join(piece for piece, shown in zip(pieces, displayed, strict=True) if shown != word))
        variant_sigs.append(sigs)
        variant_areas.append(areas)
        candidates.append((word, "word"))
    if predictor.uses_labels:
        for label in label_tokens(sigs, areas):
            group, _, name = label.partition("/")
            variants.append(cleaned)
            variant_sigs.append([item for item in sigs or () if not (group == "sig" and item == name)])
            variant_areas.append([item for item in areas or () if not (group == "area" and item == name)])
            candidates.append((label, "label"))
    if not candidates:
        return {"up": [], "down": []}

    rows = predictor.features.unscaled(variants, variant_sigs, variant_areas)
    length = float(np.sqrt(rows[0].multiply(rows[0]).sum()))
    values = log_odds(predictor, rows / length if length else rows)
    effects = values[0] - values[1:]
    order = np.argsort(effects, kind="stable")
    up = [index for index in order[::-1][:top] if effects[index] > 0]
    down = [index for index in order[:top] if effects[index] < 0]

    def contribution(index: int) -> dict:
        ngram, kind = candidates[index]
        return asdict(Contribution(ngram, kind, round(float(effects[index]), 6)))

    return {"up": [contribution(index) for index in up], "down": [contribution(index) for index in down]}
