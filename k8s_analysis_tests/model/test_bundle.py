"""Tests for the saved model bundle, promotion and the TensorFlow-free Predictor."""

import io
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from datetime import UTC, datetime
from hashlib import sha256
from importlib import metadata

import h5py
import numpy as np
import pytest
import sklearn

from k8s_analysis.model.bundle import (
    FEATURES_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    NETWORK_FILE,
    VALIDATION_FILE,
    WEIGHTS_FILE,
    ModelLoadError,
    Predictor,
    new_version_name,
    promote,
    rollback,
    save_bundle,
)
from k8s_analysis.model.dataset import SPLIT_VALIDATION, build_dataset
from k8s_analysis.model.text import clean_text
from k8s_analysis.model.train import train_classifier
from k8s_analysis_tests.model.test_train import SMALL_CONFIG, load_release_notes
from k8s_analysis_tests.shared_data import shared_path

VERSION = "20240102T030405Z-0badc0de"
# A scikit-learn release below the project's >=1.6 requirement, so never the running one.
OLD_SKLEARN = "1.3.2"
# Label features on, so that the sig/area path is saved and compared too.
BUNDLE_CONFIG = replace(SMALL_CONFIG, label_features="always")
REAL_NOTES = 200


def case_21() -> dict:
    return json.loads(shared_path("cases", "case-21-model-artifact-versions.json").read_text())


def golden_texts() -> list[str]:
    return case_21()["input"]["golden_texts"]


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(load_release_notes())


@pytest.fixture(scope="module")
def trained(dataset):
    return train_classifier(dataset, BUNDLE_CONFIG)


@pytest.fixture(scope="module")
def saved_dir(trained, tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    return save_bundle(trained, models_dir, VERSION, {"data": {"notes": 1}, "split": {"method": "release"}})


@pytest.fixture(scope="module")
def sample(dataset):
    """The three golden texts (no labels) and 200 raw validation notes with their labels."""
    rows = dataset.frame[dataset.frame["split"] == SPLIT_VALIDATION].head(REAL_NOTES)
    return {
        "texts": golden_texts() + rows["text"].tolist(),
        "sigs": [[]] * 3 + rows["sigs"].tolist(),
        "areas": [[]] * 3 + rows["areas"].tolist(),
    }


def keras_scores(network, features, sample) -> np.ndarray:
    matrix = features.transform([clean_text(text) for text in sample["texts"]], sample["sigs"], sample["areas"])
    return network.predict(matrix.toarray(), verbose=0).ravel()


def copy_bundle(saved_dir, tmp_path):
    copy = tmp_path / "models" / saved_dir.name
    shutil.copytree(saved_dir, copy)
    return copy


def set_saved_sklearn_version(model_dir, version: str) -> None:
    manifest_path = model_dir / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["libraries"]["scikit-learn"] = version
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.slow
def test_predictor_matches_trained_keras(trained, saved_dir, sample):
    expected = keras_scores(trained.network, trained.features, sample)

    scores = Predictor(saved_dir).predict_proba(sample["texts"], sample["sigs"], sample["areas"])

    assert scores.shape == (REAL_NOTES + 3,)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_predictor_matches_saved_keras_file(saved_dir, sample):
    # The .keras file loads with no custom objects, and agrees with the NumPy weights.
    import keras

    network = keras.saving.load_model(saved_dir / NETWORK_FILE)
    predictor = Predictor(saved_dir)

    expected = keras_scores(network, predictor.features, sample)
    scores = predictor.predict_proba(sample["texts"], sample["sigs"], sample["areas"])

    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_labels_change_scores(saved_dir, sample):
    predictor = Predictor(saved_dir)

    with_labels = predictor.predict_proba(sample["texts"], sample["sigs"], sample["areas"])
    without = predictor.predict_proba(sample["texts"])

    assert predictor.uses_labels
    assert np.abs(with_labels - without).max() > 1e-4


@pytest.mark.slow
def test_bundle_files(saved_dir, trained):
    names = {path.name for path in saved_dir.iterdir()}
    features = json.loads((saved_dir / FEATURES_FILE).read_text())

    assert names == {FEATURES_FILE, WEIGHTS_FILE, NETWORK_FILE, MANIFEST_FILE, METRICS_FILE, VALIDATION_FILE}
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in names)
    assert features["word"]["terms"] == trained.features.word.get_feature_names_out().tolist()
    assert features["labels"] == trained.features.labels


@pytest.mark.slow
def test_keras_file_without_optimizer(saved_dir):
    with zipfile.ZipFile(saved_dir / NETWORK_FILE) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    with weights:
        groups = set(weights.keys())

    assert "layers" in groups
    assert "optimizer" not in groups


@pytest.mark.slow
def test_weights_plain_arrays(saved_dir, trained):
    with np.load(saved_dir / WEIGHTS_FILE, allow_pickle=False) as arrays:
        shapes = {name: arrays[name].shape for name in arrays.files}

    width = BUNDLE_CONFIG.hidden_units[0]
    assert shapes == {"kernel_0": (trained.features.n_features, width), "bias_0": (width,),
                      "kernel_1": (width, 1), "bias_1": (1,)}


@pytest.mark.slow
def test_metrics_file_keeps_split_figures(saved_dir, trained):
    metrics = json.loads((saved_dir / METRICS_FILE).read_text())

    assert metrics["source"] == "split"
    assert "refit on all notes" in metrics["note"]
    assert metrics["validation"]["f1"] == pytest.approx(trained.metrics["validation"]["f1"])
    assert set(metrics["validation"]) >= {"precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "confusion"}
    assert metrics["baseline"]["model"].startswith("TF-IDF")


@pytest.mark.slow
def test_predictor_scores_are_probabilities(saved_dir, sample):
    scores = Predictor(saved_dir).predict_proba(sample["texts"])

    assert ((scores >= 0.0) & (scores <= 1.0)).all()
    # Constant scores would match a broken network just as well.
    assert np.ptp(scores) > 0.1


@pytest.mark.slow
def test_manifest_records_versions(trained, saved_dir):
    manifest = json.loads((saved_dir / MANIFEST_FILE).read_text())
    libraries = manifest["libraries"]

    assert manifest["version"] == VERSION
    assert manifest["threshold"] == trained.threshold
    assert libraries["scikit-learn"] == sklearn.__version__
    assert libraries["keras"] == metadata.version("keras")
    assert libraries["numpy"] == metadata.version("numpy")
    assert "tensorflow" in libraries
    assert manifest["config"]["label_features"] == "always"
    assert manifest["label_features"] is True
    assert manifest["activations"] == ["relu", "sigmoid"]
    assert manifest["data"] == {"notes": 1}
    assert manifest["split"] == {"method": "release"}


@pytest.mark.slow
def test_predictor_reads_manifest(trained, saved_dir):
    predictor = Predictor(saved_dir)

    assert predictor.version == VERSION
    assert predictor.threshold == trained.threshold


@pytest.mark.slow
def test_promote_links_current(saved_dir, tmp_path):
    version_dir = copy_bundle(saved_dir, tmp_path)
    models_dir = version_dir.parent

    current = promote(models_dir, VERSION)

    assert current == models_dir / "current"
    assert current.is_symlink()
    assert current.readlink().as_posix() == VERSION
    assert Predictor(current).version == VERSION


@pytest.mark.slow
def test_second_promote_replaces_link(saved_dir, tmp_path):
    models_dir = copy_bundle(saved_dir, tmp_path).parent
    second = "20240203T000000Z-12345678"
    shutil.copytree(models_dir / VERSION, models_dir / second)

    promote(models_dir, VERSION)
    current = promote(models_dir, second)

    assert current.is_symlink()
    assert current.readlink().as_posix() == second
    assert (models_dir / "previous").readlink().as_posix() == VERSION
    assert sorted(path.name for path in models_dir.iterdir()) == sorted([VERSION, second, "current", "previous"])


@pytest.mark.slow
def test_rollback_swaps_current_and_previous(saved_dir, tmp_path):
    models_dir = copy_bundle(saved_dir, tmp_path).parent
    second = "20240203T000000Z-12345678"
    shutil.copytree(models_dir / VERSION, models_dir / second)
    promote(models_dir, VERSION)
    promote(models_dir, second)

    assert rollback(models_dir) == (second, VERSION)
    assert (models_dir / "current").readlink().as_posix() == VERSION
    assert (models_dir / "previous").readlink().as_posix() == second
    # A second rollback undoes the first.
    assert rollback(models_dir) == (VERSION, second)


def test_rollback_without_previous_fails(tmp_path):
    with pytest.raises(ModelLoadError, match="nothing to roll back to"):
        rollback(tmp_path)


@pytest.mark.slow
def test_promote_unknown_version_fails(saved_dir, tmp_path):
    models_dir = copy_bundle(saved_dir, tmp_path).parent

    with pytest.raises(ModelLoadError, match=rf"cannot promote v-missing: .* the versions in .* are {VERSION}"):
        promote(models_dir, "v-missing")
    assert not (models_dir / "current").exists()


@pytest.mark.slow
def test_sklearn_mismatch_raises(saved_dir, tmp_path):
    model_dir = copy_bundle(saved_dir, tmp_path)
    set_saved_sklearn_version(model_dir, OLD_SKLEARN)

    with pytest.raises(ModelLoadError) as raised:
        Predictor(model_dir)

    assert f"scikit-learn {OLD_SKLEARN} (running {sklearn.__version__})" in str(raised.value)


@pytest.mark.slow
def test_mismatch_allowed_by_flag(saved_dir, tmp_path, sample):
    model_dir = copy_bundle(saved_dir, tmp_path)
    set_saved_sklearn_version(model_dir, OLD_SKLEARN)

    scores = Predictor(model_dir, allow_version_mismatch=True).predict_proba(sample["texts"])

    np.testing.assert_array_equal(scores, Predictor(saved_dir).predict_proba(sample["texts"]))


def test_case_21_bundle_refused(tmp_path):
    """The original tool's bundle: old versions listed, and the SavedModel folder named."""
    case = case_21()
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(case["input"]["artifact_manifest"]))
    (tmp_path / "mlp_savedmodel").mkdir()

    with pytest.raises(ModelLoadError) as raised:
        Predictor(tmp_path)
    message = str(raised.value)

    assert f"scikit-learn 1.3.2 (running {sklearn.__version__})" in message
    assert f"keras 2.15.0 (running {metadata.version('keras')})" in message
    assert "'mlp_savedmodel/'" in message
    assert "re-export it with model.save('network.keras')" in message


@pytest.mark.slow
def test_golden_round_trip(saved_dir, tmp_path):
    """case-21: save, load elsewhere, and score the golden texts the same to 1e-6."""
    before = Predictor(saved_dir).predict_proba(golden_texts())
    moved = copy_bundle(saved_dir, tmp_path)

    after = Predictor(moved).predict_proba(golden_texts())

    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_case_20_one_string_refused(saved_dir):
    # case-20 request b: a bare string must never be scored as a list of characters.
    with pytest.raises(TypeError, match="wrap it in a list"):
        Predictor(saved_dir).predict_proba("kubelet panics on start")


@pytest.mark.slow
def test_case_20_shapes(saved_dir):
    """case-20: as many predictions as documents; None is empty; empty rows are flagged."""
    predictor = Predictor(saved_dir)

    assert predictor.predict_proba([]).shape == (0,)
    blank = predictor.transform(["", "   ", None])
    assert predictor.forward(blank).shape == (3,)
    assert predictor.informative(["", "   ", None]).tolist() == [False, False, False]
    assert predictor.informative(["kubelet panics on start", "zzzqx blorfq"]).tolist() == [True, False]


def test_missing_folder_named(tmp_path):
    """The predictor names the folder; the CLI adds how to train one (tested with the CLI)."""
    missing = tmp_path / "models" / "current"

    with pytest.raises(ModelLoadError) as raised:
        Predictor(missing)

    assert str(missing) in str(raised.value)
    assert "the folder does not exist" in str(raised.value)


def test_missing_manifest_named(tmp_path):
    with pytest.raises(ModelLoadError, match="manifest.json is missing"):
        Predictor(tmp_path)


@pytest.mark.slow
def test_predictor_skips_tensorflow(saved_dir):
    script = (
        "import sys; from k8s_analysis.model.bundle import Predictor; "
        "p = Predictor(sys.argv[1]); p.predict_proba(['x']); print('tensorflow' in sys.modules)"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script, str(saved_dir)], capture_output=True, text=True, timeout=60, check=True
    )

    assert completed.stdout.strip() == "False"


def test_version_name_sortable():
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    name = new_version_name("notes-digest", now)

    assert name == "20240102T030405Z-" + sha256(b"notes-digest").hexdigest()[:8]
