"""Tests for the saved model bundle, promotion and the TensorFlow-free Predictor."""

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from hashlib import sha256
from importlib import metadata

import numpy as np
import pytest
import sklearn

from k8s_analysis.model.bundle import (
    MANIFEST_FILE,
    ModelLoadError,
    Predictor,
    new_version_name,
    promote,
    save_bundle,
)
from k8s_analysis.model.dataset import SPLIT_TEST, build_dataset
from k8s_analysis.model.text import clean_text
from k8s_analysis.model.train import sorted_csr, train_classifier
from k8s_analysis_tests.model.test_train import SMALL_CONFIG, load_release_notes
from k8s_analysis_tests.shared_data import shared_path

VERSION = "20240102T030405Z-0badc0de"
# A scikit-learn release below the project's >=1.6 requirement, so never the running one.
OLD_SKLEARN = "1.3.2"


def golden_texts() -> list[str]:
    case = json.loads(shared_path("cases", "case-21-model-artifact-versions.json").read_text())
    return case["input"]["golden_texts"]


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(load_release_notes())


@pytest.fixture(scope="module")
def trained(dataset):
    return train_classifier(dataset, SMALL_CONFIG)


@pytest.fixture(scope="module")
def saved_dir(trained, tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    return save_bundle(trained, models_dir, VERSION, {"config": {"epochs": SMALL_CONFIG.epochs}})


@pytest.fixture(scope="module")
def sample_texts(dataset):
    """Return the three golden texts and ten raw notes from the test split."""
    real_notes = dataset.frame.loc[dataset.frame["split"] == SPLIT_TEST, "text"].head(10).tolist()
    return golden_texts() + real_notes


def keras_scores(trained, texts: list[str]) -> np.ndarray:
    matrix = sorted_csr(trained.features.transform([clean_text(text) for text in texts]))
    return trained.network.predict(matrix, verbose=0).ravel()


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
def test_predictor_matches_keras(trained, saved_dir, sample_texts):
    expected = keras_scores(trained, sample_texts)

    scores = Predictor(saved_dir).predict_proba(sample_texts)

    assert scores.shape == (13,)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_predictor_scores_are_probabilities(saved_dir, sample_texts):
    scores = Predictor(saved_dir).predict_proba(sample_texts)

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
    assert libraries["h5py"] == metadata.version("h5py")
    assert "tensorflow" in libraries


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
    assert sorted(path.name for path in models_dir.iterdir()) == sorted([VERSION, second, "current"])


@pytest.mark.slow
def test_sklearn_mismatch_raises(saved_dir, tmp_path):
    model_dir = copy_bundle(saved_dir, tmp_path)
    set_saved_sklearn_version(model_dir, OLD_SKLEARN)

    with pytest.raises(ModelLoadError) as raised:
        Predictor(model_dir)

    assert f"scikit-learn {OLD_SKLEARN} (running {sklearn.__version__})" in str(raised.value)


@pytest.mark.slow
def test_mismatch_allowed_by_flag(saved_dir, tmp_path, sample_texts):
    model_dir = copy_bundle(saved_dir, tmp_path)
    set_saved_sklearn_version(model_dir, OLD_SKLEARN)

    scores = Predictor(model_dir, allow_version_mismatch=True).predict_proba(sample_texts)

    np.testing.assert_array_equal(scores, Predictor(saved_dir).predict_proba(sample_texts))


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
