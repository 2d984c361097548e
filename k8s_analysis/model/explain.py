"""Explanations of a prediction: the n-grams that pushed its kind/bug log-odds up or down most.

Each column a note switches on is removed in turn (its value set to zero, the row not rescaled)
and the network is run again. The column's effect is the log-odds of kind/bug with it minus the
log-odds without it: log-odds add up where probabilities saturate, so an n-gram of a note scored
0.99 still shows its weight. Removing one input changes the first layer's pre-activation by that
input's value times its kernel row, so every removal costs one small dense product and not a
new feature row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from k8s_analysis.model.bundle import ACTIVATIONS, Predictor

DEFAULT_TOP = 5
KINDS = {"w": "word", "c": "char"}


@dataclass(frozen=True)
class Contribution:
    ngram: str
    kind: str
    """``word`` for word n-grams, ``char`` for character n-grams, ``label`` for sig/area labels."""
    log_odds: float
    """Log-odds of kind/bug with the n-gram minus the log-odds without it."""


def column_label(name: str) -> tuple[str, str]:
    """Split a feature column name (``w:fix``, ``c: pan``, ``sig/node``) into n-gram and kind."""
    prefix, _, rest = name.partition(":")
    if rest and prefix in KINDS:
        return rest, KINDS[prefix]
    return name, "label"


def explain_rows(predictor: Predictor, matrix: sp.csr_matrix, top: int = DEFAULT_TOP) -> list[dict]:
    """Return, for each feature row, the ``top`` columns that raised and lowered its probability most.

    Each entry is ``{"up": [...], "down": [...]}`` with contributions as dictionaries, largest
    effect first. Columns with no effect at all are left out of both lists. The last
    layer must be a sigmoid (as ``train.py`` builds it), whose input is the log-odds.
    """
    names = predictor.column_names
    first, rest = predictor.layers[0], predictor.layers[1:]
    explanations = []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        columns, values = matrix.indices[start:end], matrix.data[start:end]
        if columns.size == 0:
            explanations.append({"up": [], "down": []})
            continue
        pre_activation = matrix[row] @ first.kernel + first.bias
        without = pre_activation - values[:, None] * first.kernel[columns]
        log_odds = log_odds_from_first_layer(np.vstack([pre_activation, without]), first, rest)
        effects = log_odds[0] - log_odds[1:]
        explanations.append(top_contributions(effects, columns, names, top))
    return explanations


def log_odds_from_first_layer(pre_activation: np.ndarray, first, rest) -> np.ndarray:
    """Run the network from the first layer's pre-activation and return the sigmoid's input."""
    layers = [first, *rest]
    if layers[-1].activation != "sigmoid":
        raise ValueError(f"the last layer's activation is {layers[-1].activation!r}, not a sigmoid")
    values = np.asarray(pre_activation, dtype=np.float32)
    if len(layers) > 1:
        values = ACTIVATIONS[first.activation](values)
        for layer in rest[:-1]:
            values = ACTIVATIONS[layer.activation](values @ layer.kernel + layer.bias)
        values = values @ layers[-1].kernel + layers[-1].bias
    return np.asarray(values, dtype=np.float32).reshape(-1)


def top_contributions(effects: np.ndarray, columns: np.ndarray, names: list[str], top: int) -> dict:
    order = np.argsort(effects)
    up = [index for index in order[::-1][:top] if effects[index] > 0]
    down = [index for index in order[:top] if effects[index] < 0]

    def contribution(index: int) -> dict:
        ngram, kind = column_label(names[columns[index]])
        return asdict(Contribution(ngram, kind, round(float(effects[index]), 6)))

    return {"up": [contribution(index) for index in up], "down": [contribution(index) for index in down]}
