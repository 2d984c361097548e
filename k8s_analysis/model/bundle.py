"""The saved model: one folder per version, checked at load, and a NumPy predictor.

A version folder holds:

- ``network.keras``: the Keras MLP as trained (for Keras users and for the agreement test);
- ``weights.npz``: the same network's Dense kernels and biases as plain NumPy arrays;
- ``features.json``: the kept vocabulary, IDF weights and label columns (see ``features.py``);
- ``metrics.json``: the split's figures, the baseline's, per-release figures and the checks;
- ``validation.parquet``: each validation note's label and both models' probabilities;
- ``manifest.json``: library versions, configuration, split, data snapshot and threshold.

Nothing is pickled, so loading a folder from anywhere runs no code from it. Prediction reads
``features.json`` and ``weights.npz`` and runs the forward pass in NumPy on the sparse rows:
the CLI, the server and the bot never import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn

from k8s_analysis.atomic import current_umask, write_text
from k8s_analysis.model.features import NoteFeatures
from k8s_analysis.model.text import clean_text

FEATURES_FILE = "features.json"
# The (pr_number, is_bug) pairs the model was trained from; the retrain sensor compares the tables with it.
TRAINING_LABELS_FILE = "training-labels.parquet"
# Versions that `k8s-analysis rollback` left, which the promotion sensor does not promote again.
ROLLED_BACK_FILE = "rolled-back.json"
WEIGHTS_FILE = "weights.npz"
NETWORK_FILE = "network.keras"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
VALIDATION_FILE = "validation.parquet"
CURRENT = "current"
DEFAULT_THRESHOLD = 0.6
# Tokenisation and TF-IDF are scikit-learn's: another release may split or weigh text
# differently, so the features would no longer match what the network learnt.
PINNED_LIBRARIES = ("scikit-learn",)


class ModelLoadError(RuntimeError):
    """A model folder is missing, incomplete, or was written by other library versions."""


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "scikit-learn": sklearn.__version__}
    for name in ("numpy", "scipy", "keras", "h5py"):
        versions[name] = metadata.version(name)
    for name in ("tensorflow", "tensorflow-cpu"):
        try:
            versions["tensorflow"] = metadata.version(name)
            break
        except metadata.PackageNotFoundError:
            continue
    return versions


def new_version_name(fingerprint: str, now: datetime | None = None) -> str:
    """A sortable version name: UTC time of training, then a hash of data and configuration."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:8]}"


def dense_layers(network) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Return the Keras network's Dense layers as (kernel, bias, activation), input to output."""
    import keras

    layers = []
    for layer in network.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            layers.append((kernel.astype(np.float32), bias.astype(np.float32), layer.get_config()["activation"]))
    return layers


def save_bundle(trained, models_dir: Path, version: str, training: dict) -> Path:
    """Write a version folder atomically (built in a temporary folder, then renamed).

    ``training`` contains what the manifest records beyond the model itself: the data snapshot,
    the split and the configuration's source.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / version
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}.", dir=models_dir))
    try:
        (staging / FEATURES_FILE).write_text(json.dumps(trained.features.to_dict(), ensure_ascii=False))
        save_network(trained.network, staging / NETWORK_FILE)
        layers = dense_layers(trained.network)
        arrays = {}
        for index, (kernel, bias, _) in enumerate(layers):
            arrays[f"kernel_{index}"] = kernel
            arrays[f"bias_{index}"] = bias
        np.savez(staging / WEIGHTS_FILE, **arrays)
        if trained.validation is not None:
            trained.validation.to_parquet(staging / VALIDATION_FILE, index=False)
        manifest = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "threshold": trained.threshold,
            "libraries": library_versions(),
            "device": trained.device,
            "config": trained.config.as_dict(),
            "label_features": bool(trained.features.labels),
            "activations": [activation for _, _, activation in layers],
            "files": {"features": FEATURES_FILE, "weights": WEIGHTS_FILE, "network": NETWORK_FILE,
                      "metrics": METRICS_FILE, "validation": VALIDATION_FILE},
            **training,
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        (staging / METRICS_FILE).write_text(json.dumps(trained.metrics, indent=2, default=str))
        os.chmod(staging, 0o777 & ~current_umask())
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def save_network(network, path: Path) -> None:
    """Save the network without its optimizer state, which would triple the file for nothing.

    An uncompiled copy with the same weights is what gets saved; load it with
    ``keras.saving.load_model`` and compile it again before training it further.
    """
    import keras

    # clone_model would copy the compile state too; from_config builds an uncompiled model.
    plain = keras.Model.from_config(network.get_config())
    plain.set_weights(network.get_weights())
    plain.save(path)


def promote(models_dir: Path, version: str) -> Path:
    """Point ``models/current`` at ``version`` by replacing the symbolic link atomically.

    The version ``current`` pointed at before is kept as ``models/previous``, which
    ``rollback`` promotes again. Promoting a version that a rollback left takes it off the
    rolled-back list: that promotion was asked for by hand.
    """
    if not (models_dir / version / MANIFEST_FILE).is_file():
        raise ModelLoadError(f"cannot promote {version}: {models_dir / version} has no {MANIFEST_FILE}; "
                             f"the versions in {models_dir} are {', '.join(list_versions(models_dir)) or 'none'}")
    current = models_dir / "current"
    before = os.readlink(current) if current.is_symlink() else None
    if before is not None and before != version:
        _replace_link(models_dir / "previous", before)
    _replace_link(current, version)
    rolled_back = rolled_back_versions(models_dir)
    if version in rolled_back:
        _write_rolled_back(models_dir, rolled_back - {version})
    return current


def rollback(models_dir: Path) -> tuple[str, str]:
    """Promote the version ``models/previous`` points at; return (the version left, the version now current)."""
    previous = models_dir / "previous"
    if not previous.is_symlink():
        raise ModelLoadError(f"nothing to roll back to: {previous} does not exist, so no model was promoted "
                             "after another one")
    current = models_dir / "current"
    left = os.readlink(current) if current.is_symlink() else "(none)"
    target = os.readlink(previous)
    promote(models_dir, target)
    if left != "(none)":
        _write_rolled_back(models_dir, rolled_back_versions(models_dir) | {left})
    return left, target


def rolled_back_versions(models_dir: Path) -> set[str]:
    """Return the versions a rollback left; automatic promotion skips them."""
    path = models_dir / ROLLED_BACK_FILE
    return set(json.loads(path.read_text())) if path.is_file() else set()


def _write_rolled_back(models_dir: Path, versions: set[str]) -> None:
    write_text(models_dir / ROLLED_BACK_FILE, json.dumps(sorted(versions), indent=2) + "\n")


def list_versions(models_dir: Path) -> list[str]:
    """Return the version folders under ``models_dir``, oldest name first."""
    if not models_dir.is_dir():
        return []
    return sorted(path.name for path in models_dir.iterdir()
                  if path.is_dir() and not path.is_symlink() and (path / MANIFEST_FILE).is_file())


def _replace_link(link: Path, target: str) -> None:
    """Make ``link`` a symbolic link to ``target`` in one rename, so readers never see it missing."""
    temporary = link.with_name(f".tmp-{link.name}-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target, target_is_directory=True)
    os.replace(temporary, link)


ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
}


@dataclass(frozen=True)
class DenseLayer:
    kernel: np.ndarray
    bias: np.ndarray
    activation: str


def read_weights(model_dir: Path, activations: list[str]) -> list[DenseLayer]:
    path = model_dir / WEIGHTS_FILE
    try:
        with np.load(path, allow_pickle=False) as arrays:
            layers = [DenseLayer(arrays[f"kernel_{index}"], arrays[f"bias_{index}"], activation)
                      for index, activation in enumerate(activations)]
    # NumPy reads a file without the .npz or .npy signature as a pickle, and with pickles
    # disallowed it raises ValueError about pickled data. The file is damaged, not a pickle.
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        raise ModelLoadError(f"{path} is not a readable weights archive ({type(error).__name__}); "
                             "restore the folder or retrain the model") from None
    for layer in layers:
        if layer.activation not in ACTIVATIONS:
            raise ModelLoadError(f"{model_dir}: unsupported activation {layer.activation!r}")
    return layers


class Predictor:
    """Probability that a release note is ``kind/bug``, computed without TensorFlow."""

    def __init__(self, model_dir: Path, allow_version_mismatch: bool = False) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = read_manifest(self.model_dir)
        check_bundle(self.manifest, self.model_dir, allow_version_mismatch)
        features_path = self.model_dir / FEATURES_FILE
        if not features_path.is_file():
            raise ModelLoadError(f"{self.model_dir}: {FEATURES_FILE} is missing; retrain the model")
        try:
            self.features = NoteFeatures.from_dict(json.loads(features_path.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise ModelLoadError(f"{features_path}: {error}") from None
        self.layers = read_weights(self.model_dir, self.manifest.get("activations", []))
        if not self.layers or self.layers[0].kernel.shape[0] != self.features.n_features:
            raise ModelLoadError(f"{self.model_dir}: {WEIGHTS_FILE} does not fit {FEATURES_FILE}; retrain the model")

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("threshold", DEFAULT_THRESHOLD))

    @property
    def uses_labels(self) -> bool:
        return bool(self.features.labels)

    def transform(self, texts: Sequence[str | None], sigs: Sequence | None = None,
                  areas: Sequence | None = None) -> sp.csr_matrix:
        """Feature rows; a None text counts as empty. One string is refused: scoring it as a list
        of characters would give one prediction per character."""
        if isinstance(texts, str | bytes):
            raise TypeError("expected a list of texts, got one string; wrap it in a list")
        return self.features.transform([clean_text(text) for text in texts], sigs, areas)

    def score(self, texts: Sequence[str | None], sigs: Sequence | None = None,
              areas: Sequence | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return each text's probability and whether it is informative, cleaning each text once."""
        if isinstance(texts, str | bytes):
            raise TypeError("expected a list of texts, got one string; wrap it in a list")
        cleaned = [clean_text(text) for text in texts]
        probabilities = self.forward(self.features.transform(cleaned, sigs, areas))
        return probabilities, self.features.has_known_word(cleaned)

    def informative(self, texts: Sequence[str | None]) -> np.ndarray:
        """Return True for texts with at least one word the training notes contained.

        Callers flag the other texts as low information and never call them kind/bug: only
        character fragments, or nothing, stand behind their probability.
        """
        return self.features.has_known_word([clean_text(text) for text in texts])

    def predict_proba(self, texts: Sequence[str], sigs: Sequence | None = None,
                      areas: Sequence | None = None) -> np.ndarray:
        """Return one probability per text.

        ``sigs`` and ``areas`` are per-text label lists. They are used when the model was trained
        with label features and ignored otherwise.
        """
        return self.forward(self.transform(texts, sigs, areas))

    def forward(self, matrix: sp.csr_matrix) -> np.ndarray:
        """Run the network on feature rows from ``transform`` and return its outputs."""
        if matrix.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        values = None
        for layer in self.layers:
            # The first product keeps the input sparse; later layers are small and dense.
            values = (matrix @ layer.kernel if values is None else values @ layer.kernel) + layer.bias
            values = ACTIVATIONS[layer.activation](np.asarray(values, dtype=np.float32))
        return np.asarray(values, dtype=np.float32).reshape(-1)


def read_manifest(model_dir: Path) -> dict:
    if not model_dir.exists():
        raise ModelLoadError(f"no model at {model_dir}: the folder does not exist")
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ModelLoadError(f"no model at {model_dir}: {MANIFEST_FILE} is missing")
    return json.loads(path.read_text())


def check_bundle(manifest: dict, model_dir: Path, allow_mismatch: bool) -> None:
    """Refuse a folder written by other scikit-learn releases or in another layout, saying
    everything that is wrong at once."""
    # Bundles of the original tool name their versions "created_with".
    saved = manifest.get("libraries") or manifest.get("created_with") or {}
    running = library_versions()
    drift = [f"{name} {saved.get(name)} (running {running[name]})"
             for name in running if name in saved and saved.get(name) != running[name]]
    pinned_drift = [name for name in PINNED_LIBRARIES if saved.get(name) != running[name]]
    problems = []
    if pinned_drift and not allow_mismatch:
        problems.append(
            f"it was saved with other library versions: {', '.join(drift)}; retrain it, or install "
            f"those versions ({', '.join(pinned_drift)} must match; allow_version_mismatch overrides "
            "at your own risk)")
    files = manifest.get("files", {})
    network = str(files.get("network") or files.get("mlp") or "")
    if network and not network.endswith(".keras"):
        problems.append(
            f"its network is stored as {network!r}, a format Keras 3 cannot load (only .keras files): "
            "re-export it with model.save('network.keras') where it was trained, or retrain it")
    if not problems and not (model_dir / WEIGHTS_FILE).is_file():
        problems.append(f"{WEIGHTS_FILE} is missing; retrain the model")
    if problems:
        raise ModelLoadError(f"cannot load model {manifest.get('version', model_dir)}: " + "; ".join(problems))
