"""The saved model: one folder per version, a manifest checked at load, and a NumPy predictor.

A version folder contains ``features.pkl`` (the TF-IDF + SelectKBest pipeline), ``network.keras``
(the Keras MLP), ``manifest.json`` (library versions, threshold, configuration, split) and
``metrics.json``. Prediction reads the Keras weights straight from the ``.keras`` zip with
h5py and runs the forward pass in NumPy on the sparse feature row, so the CLI, the server and
the bot never import TensorFlow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import platform
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from k8s_analysis.model.text import clean_text

FEATURES_FILE = "features.pkl"
NETWORK_FILE = "network.keras"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
DEFAULT_THRESHOLD = 0.6
# Pickled scikit-learn objects are only safe under the release that wrote them.
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


def save_bundle(trained, models_dir: Path, version: str, training: dict) -> Path:
    """Write a version folder atomically (built in a temporary folder, then renamed)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / version
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}.", dir=models_dir))
    try:
        with open(staging / FEATURES_FILE, "wb") as handle:
            pickle.dump(trained.features, handle, protocol=pickle.HIGHEST_PROTOCOL)
        trained.network.save(staging / NETWORK_FILE)
        manifest = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "threshold": trained.threshold,
            "libraries": library_versions(),
            "device": trained.device,
            "config": training.get("config", {}),
            "training": training,
            "files": {"features": FEATURES_FILE, "network": NETWORK_FILE, "metrics": METRICS_FILE},
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        (staging / METRICS_FILE).write_text(json.dumps(trained.metrics, indent=2))
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def promote(models_dir: Path, version: str) -> Path:
    """Point ``models/current`` at ``version`` by replacing the symbolic link atomically."""
    current = models_dir / "current"
    temporary = models_dir / f".tmp-current-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(version, target_is_directory=True)
    os.replace(temporary, current)
    return current


@dataclass(frozen=True)
class DenseLayer:
    kernel: np.ndarray
    bias: np.ndarray
    activation: str


def read_dense_layers(network_path: Path) -> list[DenseLayer]:
    """Read the Dense layers' weights from a ``.keras`` file without Keras.

    Keras 3 stores each layer's variables under ``layers/<auto name>/vars`` where the auto
    name is the snake-case class name with a counter (``dense``, ``dense_1``, ...) in the
    order of ``config.json``'s layer list; Dropout has no variables and is the identity at
    inference.
    """
    with zipfile.ZipFile(network_path) as archive:
        config = json.loads(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"]
    dense = []
    with weights:
        for index, layer in enumerate(layers):
            group = weights[f"layers/{'dense' if index == 0 else f'dense_{index}'}/vars"]
            dense.append(DenseLayer(group["0"][()], group["1"][()], layer["config"]["activation"]))
    return dense


ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
}


class Predictor:
    """Probability that a release note is ``kind/bug``, computed without TensorFlow."""

    def __init__(self, model_dir: Path, allow_version_mismatch: bool = False) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = read_manifest(self.model_dir)
        check_versions(self.manifest, allow_version_mismatch)
        self.features = load_features(self.model_dir / FEATURES_FILE)
        self.layers = read_dense_layers(self.model_dir / NETWORK_FILE)
        for layer in self.layers:
            if layer.activation not in ACTIVATIONS:
                raise ModelLoadError(f"{self.model_dir}: unsupported activation {layer.activation!r}")

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("threshold", DEFAULT_THRESHOLD))

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        return sp.csr_matrix(self.features.transform([clean_text(t) for t in texts]), dtype=np.float32)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        matrix = self.transform(texts)
        values = None
        for layer in self.layers:
            # The first product keeps the input sparse; later layers are small and dense.
            values = (matrix @ layer.kernel if values is None else values @ layer.kernel) + layer.bias
            values = ACTIVATIONS[layer.activation](np.asarray(values, dtype=np.float32))
        return values.ravel()


def read_manifest(model_dir: Path) -> dict:
    if not model_dir.exists():
        raise ModelLoadError(f"no model at {model_dir}: the folder does not exist")
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ModelLoadError(f"no model at {model_dir}: {MANIFEST_FILE} is missing")
    return json.loads(path.read_text())


def check_versions(manifest: dict, allow_mismatch: bool) -> None:
    saved = manifest.get("libraries", {})
    running = library_versions()
    drift = [f"{name} {saved.get(name)} (running {running[name]})"
             for name in PINNED_LIBRARIES if saved.get(name) != running[name]]
    if drift and not allow_mismatch:
        raise ModelLoadError(
            f"model {manifest.get('version')} was saved with other library versions: {', '.join(drift)}; "
            "retrain it, or install those versions (allow_version_mismatch overrides at your own risk)"
        )


def load_features(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        with open(path, "rb") as handle:
            try:
                return pickle.load(handle)
            except InconsistentVersionWarning as warning:
                raise ModelLoadError(f"{path}: {warning}") from None
