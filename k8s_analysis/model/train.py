"""Train the kind/bug classifier: features + Keras MLP, a linear baseline, then a refit on all notes.

One training run does this:

1. Fit the features (``features.py``) on the training split and train the MLP with early
   stopping on the validation loss, restoring the best epoch's weights.
2. With ``label_features="auto"``, do step 1 twice, without and with the PR's sig/area labels,
   and keep the labels only when they raise validation F1 by LABEL_MIN_GAIN or more.
3. Choose the threshold on the validation scores (best F1, or a target precision).
4. Train a TF-IDF + logistic regression baseline on the same split, for comparison.
5. Refit features and network on every labelled note, for the best epoch count found in
   step 1, so that the saved model has learnt from the newest releases too. The figures stay
   those of step 1: the refit model has no held-back notes left to be measured on.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from k8s_analysis.model.dataset import SPLIT_TRAIN, SPLIT_VALIDATION, Dataset, release_key
from k8s_analysis.model.features import (
    FeatureConfig,
    InsufficientDataError,
    InsufficientTextError,
    NoteFeatures,
    fit_features,
)
from k8s_analysis.model.metrics import best_f1_threshold, choose_threshold, evaluate, evaluate_by_group

logger = logging.getLogger(__name__)

HIDDEN_LAYER = "hidden_{}"
OUTPUT_LAYER = "output"
LABEL_FEATURE_CHOICES = ("auto", "always", "never")
BASELINE_NAME = "TF-IDF word 1-2-grams + logistic regression"
# Label columns are kept only for a gain in validation F1 larger than the spread between
# seeds of one configuration, which was about 0.005 on the shared notes.
LABEL_MIN_GAIN = 0.005

__all__ = ["InsufficientDataError", "InsufficientTextError", "ModelConfig", "TrainedModel", "train_classifier"]


@dataclass(frozen=True)
class ModelConfig:
    word_ngram_max: int = 2
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    min_df: int = 1
    k_best: int = 40_000
    hidden_units: tuple[int, ...] = (64,)
    dropout: float = 0.5
    learning_rate: float = 5e-4
    epochs: int = 30
    batch_size: int = 32
    patience: int = 3
    seed: int = 0
    label_features: str = "auto"
    """"auto" keeps sig/area label columns only when they raise validation F1."""
    target_precision: float | None = None
    """Choose the lowest threshold reaching this precision instead of the best-F1 one."""
    refit: bool = True
    """Refit on all labelled notes after the split; False saves the split's model."""

    def __post_init__(self) -> None:
        if self.label_features not in LABEL_FEATURE_CHOICES:
            raise ValueError(f"label_features {self.label_features!r} is not one of "
                             f"{', '.join(LABEL_FEATURE_CHOICES)}")
        if not self.hidden_units or any(units < 1 for units in self.hidden_units):
            raise ValueError(f"hidden_units {list(self.hidden_units)} must list one or more positive sizes")
        if self.target_precision is not None and not 0.0 < self.target_precision < 1.0:
            raise ValueError(f"target_precision {self.target_precision} must lie between 0 and 1")

    def feature_config(self, use_labels: bool) -> FeatureConfig:
        return FeatureConfig(
            word_ngram_max=self.word_ngram_max, char_ngram_min=self.char_ngram_min,
            char_ngram_max=self.char_ngram_max, min_df=self.min_df, k_best=self.k_best,
            use_labels=use_labels,
        )

    def as_dict(self) -> dict:
        values = asdict(self)
        values["hidden_units"] = list(self.hidden_units)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {name: value for name, value in values.items() if name in cls.__dataclass_fields__}
        if "hidden_units" in known:
            known["hidden_units"] = tuple(known["hidden_units"])
        return cls(**known)


@dataclass
class SplitModel:
    """Output of step 1 for one feature variant: features, network, validation scores."""

    features: NoteFeatures
    network: object
    validation_scores: np.ndarray
    best_epoch: int
    history: dict


@dataclass
class TrainedModel:
    features: NoteFeatures
    network: object  # keras.Model; typed loosely so this module imports without TensorFlow
    threshold: float
    metrics: dict
    config: ModelConfig
    device: str
    history: dict = field(default_factory=dict)
    validation: pd.DataFrame | None = None
    """One row per validation note: pr_number, release, is_bug, probability, baseline_probability."""


def build_network(n_inputs: int, config: ModelConfig):
    import keras

    inputs = keras.Input(shape=(n_inputs,), name="features")
    layer = inputs
    for index, units in enumerate(config.hidden_units, start=1):
        layer = keras.layers.Dense(units, activation="relu", name=HIDDEN_LAYER.format(index))(layer)
        layer = keras.layers.Dropout(config.dropout, seed=config.seed, name=f"dropout_{index}")(layer)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(layer)
    network = keras.Model(inputs, outputs, name="kind_bug_mlp")
    network.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")
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


def sparse_batches(matrix, labels: np.ndarray, batch_size: int, class_weight: dict | None = None,
                   shuffle: bool = False, seed: int = 0):
    """Return a Keras PyDataset that densifies one batch of CSR rows at a time.

    Given the CSR matrix itself, ``fit`` grew the process by about 1 GB on 45,000 notes
    (measured with the benchmark in benchmarks/train.py). This dataset keeps one dense batch
    (32 x 40,000 float32 is 5 MB) in memory instead. With ``class_weight`` each batch
    carries per-row weights, the same as ``fit(class_weight=...)`` would apply.
    """
    import keras

    class SparseBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.order = np.arange(matrix.shape[0])
            self.random = np.random.default_rng(seed)
            self.weights = None
            if class_weight is not None:
                self.weights = np.where(labels > 0.5, class_weight[1], class_weight[0]).astype(np.float32)
            if shuffle:
                self.random.shuffle(self.order)

        def __len__(self) -> int:
            return -(-matrix.shape[0] // batch_size)

        def __getitem__(self, index: int):
            rows = np.sort(self.order[index * batch_size:(index + 1) * batch_size])
            batch = (matrix[rows].toarray(), labels[rows])
            return batch if self.weights is None else (*batch, self.weights[rows])

        def on_epoch_end(self) -> None:
            if shuffle:
                self.random.shuffle(self.order)

    return SparseBatches()


def predict_scores(network, matrix) -> np.ndarray:
    """Scores for a sparse matrix, densifying 512 rows at a time (never the whole matrix)."""
    if matrix.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    # Calling the model directly runs eagerly; predict_on_batch traces a new graph for each
    # batch shape and logs a retracing warning for the short last batch.
    return np.concatenate([np.asarray(network(matrix[start:start + 512].toarray(), training=False)).ravel()
                           for start in range(0, matrix.shape[0], 512)])


@dataclass
class SplitFeatures:
    """Features fitted on the training split, with both splits' rows."""

    features: NoteFeatures
    train_matrix: object
    validation_matrix: object


def fit_split_features(dataset: Dataset, config: FeatureConfig, log=logger) -> SplitFeatures:
    features, train_matrix = fit_features(
        dataset.texts(SPLIT_TRAIN), dataset.labels(SPLIT_TRAIN), config,
        dataset.sigs(SPLIT_TRAIN), dataset.areas(SPLIT_TRAIN), log=log,
    )
    validation_matrix = features.transform(
        dataset.texts(SPLIT_VALIDATION), dataset.sigs(SPLIT_VALIDATION), dataset.areas(SPLIT_VALIDATION))
    return SplitFeatures(features, train_matrix, validation_matrix)


def fit_split_model(dataset: Dataset, config: ModelConfig, use_labels: bool, log=logger,
                    prepared: SplitFeatures | None = None) -> SplitModel:
    """Train the MLP on the training split with early stopping on validation loss.

    ``prepared`` reuses features already fitted for this split (the tuner shares them
    between trials that differ only in the network).
    """
    import keras

    prepared = prepared or fit_split_features(dataset, config.feature_config(use_labels), log)
    train_labels = dataset.labels(SPLIT_TRAIN)
    keras.utils.set_random_seed(config.seed)
    network = build_network(prepared.train_matrix.shape[1], config)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    history = network.fit(
        sparse_batches(prepared.train_matrix, train_labels, config.batch_size,
                       class_weights(train_labels), shuffle=True, seed=config.seed),
        validation_data=sparse_batches(prepared.validation_matrix, dataset.labels(SPLIT_VALIDATION), 512),
        epochs=config.epochs, callbacks=[stop], verbose=0,
    )
    best_epoch = int(np.argmin(history.history["val_loss"])) + 1
    return SplitModel(prepared.features, network, predict_scores(network, prepared.validation_matrix), best_epoch,
                      {name: [float(v) for v in values] for name, values in history.history.items()})


def fit_baseline(dataset: Dataset) -> np.ndarray:
    """Validation probabilities of the linear baseline, trained on the same training split."""
    texts = dataset.texts(SPLIT_TRAIN)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(texts) >= 100 else 1,
                                 sublinear_tf=True, dtype=np.float32)
    train_matrix = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    model.fit(train_matrix, dataset.labels(SPLIT_TRAIN))
    return model.predict_proba(vectorizer.transform(dataset.texts(SPLIT_VALIDATION)))[:, 1]


def train_classifier(dataset: Dataset, config: ModelConfig = ModelConfig(), log=logger,
                     with_baseline: bool = True) -> TrainedModel:
    """Run steps 1-5 of the module docstring and return the model to save with its figures.

    The data is checked before TensorFlow is imported: an empty vocabulary, an empty split or
    a split with one class raises InsufficientDataError within a second.
    """
    check_vocabulary(dataset, config)
    check_splits(dataset)
    device = training_device()
    counts = dataset.counts()
    log.info("training on %s: %s train notes, %s validation notes (split by %s)",
             device, counts[SPLIT_TRAIN], counts[SPLIT_VALIDATION], dataset.info["method"])
    validation_labels = dataset.labels(SPLIT_VALIDATION)

    variants = {"never": [False], "always": [True], "auto": [False, True]}[config.label_features]
    candidates = {}
    for use_labels in variants:
        candidate = fit_split_model(dataset, config, use_labels, log)
        f1 = evaluate(validation_labels, candidate.validation_scores,
                      best_f1_threshold(validation_labels, candidate.validation_scores))["f1"]
        log.info("%s sig/area label features: validation F1 %.3f after %s epochs",
                 "with" if use_labels else "without", f1, candidate.best_epoch)
        candidates[use_labels] = (f1, candidate)
    use_labels = len(candidates) == 2 and candidates[True][0] >= candidates[False][0] + LABEL_MIN_GAIN
    if config.label_features == "always":
        use_labels = True
    chosen = candidates[use_labels][1]

    threshold = choose_threshold(validation_labels, chosen.validation_scores, config.target_precision, log)
    validation_rows = dataset.rows(SPLIT_VALIDATION)
    validation = pd.DataFrame({
        "pr_number": validation_rows["pr_number"].to_numpy(),
        "release": validation_rows["release"].astype(object).to_numpy(),
        "is_bug": validation_labels.astype(bool),
        "probability": chosen.validation_scores.astype(np.float32),
    })
    metrics = {
        "source": "split",
        "note": ("figures measured on the validation split by the model trained on the training split; "
                 + ("the saved model was then refit on all notes" if config.refit else "the saved model is that one")),
        "threshold": threshold,
        "threshold_rule": (f"lowest threshold with precision >= {config.target_precision} on validation"
                           if config.target_precision is not None else "best F1 on validation"),
        "validation": evaluate(validation_labels, chosen.validation_scores, threshold),
        "per_release": per_release(validation, "probability", threshold),
        "best_epoch": chosen.best_epoch,
        "features": chosen.features.n_features,
        "label_features": {
            "choice": config.label_features,
            "used": use_labels,
            "validation_f1": {("with" if labels else "without"): round(f1, 4)
                              for labels, (f1, _) in candidates.items()},
        },
        "split": dataset.info,
    }
    if with_baseline:
        baseline_scores = fit_baseline(dataset)
        validation["baseline_probability"] = baseline_scores.astype(np.float32)
        baseline_threshold = best_f1_threshold(validation_labels, baseline_scores)
        metrics["baseline"] = {"model": BASELINE_NAME,
                               **evaluate(validation_labels, baseline_scores, baseline_threshold)}
        log.info("baseline (%s): validation F1 %.3f, ROC-AUC %.3f",
                 BASELINE_NAME, metrics["baseline"]["f1"], metrics["baseline"]["roc_auc"])

    features, network = chosen.features, chosen.network
    if config.refit:
        best_epoch, history = chosen.best_epoch, chosen.history
        # The split's networks and features are done with; freeing them before the refit
        # keeps the peak memory to one model's worth.
        del candidates, chosen, features, network
        release_keras_memory()
        features, network = refit_all(dataset, config, use_labels, best_epoch, log)
        metrics["refit"] = {"rows": len(dataset.frame), "epochs": best_epoch, "features": features.n_features}
    else:
        history = chosen.history
    return TrainedModel(features, network, threshold, metrics, config, device, history, validation)


def release_keras_memory() -> None:
    """Drop Keras' graph state, collect garbage, and hand freed heap pages back to the system."""
    import ctypes
    import ctypes.util
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
    libc_name = ctypes.util.find_library("c")
    if libc_name and "libc.so" in libc_name:  # glibc only; elsewhere freed memory stays reserved
        ctypes.CDLL(libc_name).malloc_trim(0)


def refit_all(dataset: Dataset, config: ModelConfig, use_labels: bool, epochs: int, log=logger):
    """Fit features and network on every note for a fixed number of epochs (no early stopping)."""
    import keras

    labels = dataset.labels()
    log.info("refitting on all %s notes for %s epochs", len(labels), epochs)
    features, matrix = fit_features(dataset.texts(), labels, config.feature_config(use_labels),
                                    dataset.sigs(), dataset.areas(), log=log)
    keras.utils.set_random_seed(config.seed)
    network = build_network(matrix.shape[1], config)
    network.fit(sparse_batches(matrix, labels, config.batch_size, class_weights(labels), shuffle=True,
                               seed=config.seed),
                epochs=epochs, verbose=0)
    return features, network


def per_release(validation: pd.DataFrame, column: str, threshold: float) -> dict:
    """Figures for each release in the validation notes (none when releases are unknown)."""
    if validation["release"].isna().all():
        return {}
    known = validation[validation["release"].notna()]
    figures = evaluate_by_group(known["release"].to_numpy(), known["is_bug"].to_numpy(),
                                known[column].to_numpy(), threshold)
    return {name: figures[name] for name in sorted(figures, key=release_key)}


def check_vocabulary(dataset: Dataset, config: ModelConfig) -> None:
    """Raise InsufficientTextError when the training notes hold no content word.

    The probe drops English stop words, although the features keep them (they matter in
    bigrams such as "fix the"): notes made only of "the", "and", numbers and single letters
    carry nothing to learn from.
    """
    texts = dataset.texts(SPLIT_TRAIN)
    if not texts:
        raise InsufficientDataError("no notes with text in the training split; import more release notes")
    try:
        TfidfVectorizer(stop_words="english", min_df=config.min_df).fit(texts)
    except ValueError as error:
        raise InsufficientTextError(
            f"empty vocabulary: the {len(texts)} training notes contain no word of two or more letters, "
            f"other than English stop words, in at least {config.min_df} notes"
        ) from error


def check_splits(dataset: Dataset) -> None:
    """Raise InsufficientDataError unless both splits have notes and both classes."""
    counts = dataset.counts()
    if counts[SPLIT_TRAIN] == 0:
        raise InsufficientDataError("no notes with text in the training split; import more release notes")
    for name in (SPLIT_TRAIN, SPLIT_VALIDATION):
        labels = dataset.labels(name)
        if len(labels) == 0:
            raise InsufficientDataError(
                f"no notes with text in the {name} split ({counts}); import more release notes")
        if labels.min() == labels.max():
            raise InsufficientDataError(
                f"the {name} split contains one class only ({counts}); import notes with and without kind/bug")
