"""Train the TF-IDF + SelectKBest + Keras MLP classifier that predicts ``kind/bug``."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import SelectKBest, chi2
from sklearn.metrics import f1_score, precision_recall_curve, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline

from k8s_analysis.model.dataset import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VALIDATION, Dataset

logger = logging.getLogger(__name__)

HIDDEN_LAYER = "hidden_{}"
OUTPUT_LAYER = "output"


class InsufficientDataError(ValueError):
    """The notes cannot train a model: too few rows, one class only, or no usable words."""


class InsufficientTextError(InsufficientDataError):
    """The training notes hold no usable words, so no vocabulary can be built."""


@dataclass(frozen=True)
class ModelConfig:
    ngram_max: int = 2
    min_df: int = 2
    k_best: int = 20_000
    hidden_units: tuple[int, ...] = (64,)
    dropout: float = 0.2
    learning_rate: float = 1e-3
    epochs: int = 30
    batch_size: int = 64
    patience: int = 3
    seed: int = 0


@dataclass
class TrainedModel:
    features: Pipeline
    network: object  # keras.Model; typed loosely so this module imports without TensorFlow
    threshold: float
    metrics: dict
    config: ModelConfig
    device: str
    history: dict = field(default_factory=dict)


def fit_features(texts: list[str], labels: np.ndarray, config: ModelConfig, log=logger) -> tuple[Pipeline, sp.csr_matrix]:
    """Fit TF-IDF and SelectKBest on the training texts; return the pipeline and its output."""
    vectorizer = TfidfVectorizer(
        ngram_range=(1, config.ngram_max), min_df=config.min_df, sublinear_tf=True, dtype=np.float32
    )
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError as error:
        # scikit-learn raises "empty vocabulary" when no document has a usable token.
        raise InsufficientTextError(
            f"empty vocabulary: the {len(texts)} training notes contain no words "
            f"that occur in at least {config.min_df} notes"
        ) from error
    n_features = matrix.shape[1]
    k = min(config.k_best, n_features)
    if k < config.k_best:
        log.info("k_best clamped from %s to %s: the vocabulary has only %s terms", config.k_best, k, n_features)
    selector = SelectKBest(chi2, k=k).fit(matrix, labels)
    features = Pipeline([("tfidf", vectorizer), ("select", selector)])
    return features, sorted_csr(selector.transform(matrix))


def sorted_csr(matrix: sp.spmatrix) -> sp.csr_matrix:
    """CSR with sorted indices and float32 values: Keras rejects unsorted sparse input."""
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.sort_indices()
    return csr


def build_network(n_inputs: int, config: ModelConfig):
    import keras

    inputs = keras.Input(shape=(n_inputs,), name="features")
    layer = inputs
    for index, units in enumerate(config.hidden_units, start=1):
        layer = keras.layers.Dense(units, activation="relu", name=HIDDEN_LAYER.format(index))(layer)
        layer = keras.layers.Dropout(config.dropout, seed=config.seed, name=f"dropout_{index}")(layer)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(layer)
    network = keras.Model(inputs, outputs, name="kind_bug_mlp")
    network.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return network


def training_device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU ({gpus[0].name})" if gpus else "CPU"


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weights that give both classes the same total weight in the loss."""
    positives = float(labels.sum())
    negatives = float(len(labels) - positives)
    if positives == 0 or negatives == 0:
        return {0: 1.0, 1: 1.0}
    total = positives + negatives
    return {0: total / (2 * negatives), 1: total / (2 * positives)}


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))]) if len(thresholds) else 0.5


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    predicted = scores >= threshold
    both_classes = 0 < labels.sum() < len(labels)
    return {
        "rows": int(len(labels)),
        "bug_share": float(labels.mean()) if len(labels) else 0.0,
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, scores)) if both_classes else float("nan"),
        "accuracy": float((predicted == labels.astype(bool)).mean()) if len(labels) else 0.0,
    }


def train_classifier(dataset: Dataset, config: ModelConfig = ModelConfig(), log=logger) -> TrainedModel:
    """Fit features on the training split, train the MLP with early stopping on validation
    loss, choose the F1-maximising threshold on validation, and evaluate on the test split."""
    check_training_split(dataset)
    train_labels = dataset.labels(SPLIT_TRAIN)
    features, train_matrix = fit_features(dataset.texts(SPLIT_TRAIN), train_labels, config, log)
    check_evaluation_splits(dataset)
    import keras

    keras.utils.set_random_seed(config.seed)
    validation_matrix = sorted_csr(features.transform(dataset.texts(SPLIT_VALIDATION)))
    validation_labels = dataset.labels(SPLIT_VALIDATION)

    device = training_device()
    log.info("training on %s: %s train rows, %s validation rows, %s features",
             device, train_matrix.shape[0], validation_matrix.shape[0], train_matrix.shape[1])
    network = build_network(train_matrix.shape[1], config)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    # A scipy CSR with a dense Input is densified one batch at a time, never as a whole.
    history = network.fit(
        train_matrix, train_labels,
        validation_data=(validation_matrix, validation_labels),
        epochs=config.epochs, batch_size=config.batch_size,
        class_weight=class_weights(train_labels), callbacks=[stop], verbose=0,
    )
    validation_scores = network.predict(validation_matrix, batch_size=1024, verbose=0).ravel()
    threshold = best_f1_threshold(validation_labels, validation_scores)
    test_matrix = sorted_csr(features.transform(dataset.texts(SPLIT_TEST)))
    test_scores = network.predict(test_matrix, batch_size=1024, verbose=0).ravel()
    metrics = {
        "threshold": threshold,
        "epochs_trained": len(history.history["loss"]),
        "validation": evaluate(validation_labels, validation_scores, threshold),
        "test": evaluate(dataset.labels(SPLIT_TEST), test_scores, threshold),
        "split_counts": dataset.counts(),
        "features": int(train_matrix.shape[1]),
    }
    return TrainedModel(features, network, threshold, metrics, config, device,
                        {k: [float(v) for v in values] for k, values in history.history.items()})


def check_training_split(dataset: Dataset) -> None:
    """Raise InsufficientDataError unless the training split has rows of both classes."""
    train_labels = dataset.labels(SPLIT_TRAIN)
    if len(train_labels) == 0:
        raise InsufficientDataError("no notes with text in the training split; import more release notes")
    if train_labels.min() == train_labels.max():
        raise InsufficientDataError("the training split contains one class only; import notes with and without kind/bug")


def check_evaluation_splits(dataset: Dataset) -> None:
    """Raise InsufficientDataError when a split is empty or validation contains one class."""
    counts = dataset.counts()
    empty = [name for name in (SPLIT_VALIDATION, SPLIT_TEST) if counts.get(name, 0) == 0]
    if empty:
        raise InsufficientDataError(
            f"no notes with text in the {' and '.join(empty)} split ({counts}); import more release notes"
        )
    validation_labels = dataset.labels(SPLIT_VALIDATION)
    if validation_labels.min() == validation_labels.max():
        raise InsufficientDataError(
            "the validation split contains one class only, so no threshold can be chosen; import more release notes"
        )


def config_as_dict(config: ModelConfig) -> dict:
    values = asdict(config)
    values["hidden_units"] = list(config.hidden_units)
    return values
