"""The model store reading the promoted model from object storage (memory://), and the redeploy job."""

import asyncio
import json
import logging
import tempfile
from pathlib import Path

import pytest

from k8s_analysis.automation import redeploy_job
from k8s_analysis.model.bundle import MANIFEST_FILE, Predictor, promote
from k8s_analysis.paths import DataLayout
from k8s_analysis.resources import DataDirResource
from k8s_analysis.serving.metrics import ServerMetrics
from k8s_analysis.serving.models import ModelStore
from k8s_analysis.storage import publish_model, upload_folder, write_object
from k8s_analysis_tests.serving.running import copy_version
from k8s_analysis_tests.serving.test_server import BUG_NOTE

FIRST = "20250401T000000Z-0000c001"
SECOND = "20250402T000000Z-0000c002"


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch) -> Path:
    """The temporary folder under which each store creates its download cache."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture()
def layout(memory_storage, served_model_dir, tmp_path) -> DataLayout:
    """A data directory with two local versions that score BUG_NOTE differently; FIRST is published and promoted."""
    layout = DataLayout(tmp_path / "data")
    copy_version(served_model_dir, layout.models_dir, FIRST)
    copy_version(served_model_dir, layout.models_dir, SECOND, bias_shift=-3.0)
    promote(layout.models_dir, FIRST)
    publish_model(layout, FIRST, promoted=True)
    return layout


def local_score(layout: DataLayout, version: str) -> float:
    return float(Predictor(layout.models_dir / version).score([BUG_NOTE])[0][0])


def cached_versions(cache_root: Path) -> list[str]:
    return sorted(path.name for path in cache_root.glob("k8s-analysis-models-*/*"))


def test_store_loads_promoted_version(layout, cache_root):
    store = ModelStore(str(layout.promoted_model), "kubernetes-analysis", ServerMetrics())

    result = asyncio.run(store.reload())

    assert result.loaded
    assert result.version == FIRST
    assert store.origin == f"{layout.storage}/models/{FIRST}"
    assert float(store.predictor.score([BUG_NOTE])[0][0]) == local_score(layout, FIRST)
    assert cached_versions(cache_root) == [FIRST]
    assert not store.changed()


def test_store_follows_pointer(layout, cache_root):
    store = ModelStore(layout.promoted_model, "kubernetes-analysis", ServerMetrics())
    asyncio.run(store.reload())

    publish_model(layout, SECOND, promoted=True)

    assert store.changed()
    result = asyncio.run(store.reload())
    assert result.loaded
    assert store.version == SECOND
    assert float(store.predictor.score([BUG_NOTE])[0][0]) == local_score(layout, SECOND)
    # The cache keeps only the version being served.
    assert cached_versions(cache_root) == [SECOND]


def test_store_without_pointer_is_not_ready(memory_storage):
    store = ModelStore(memory_storage / "models" / "current", "kubernetes-analysis", ServerMetrics())

    result = asyncio.run(store.reload())

    assert not result.loaded
    assert result.version is None
    assert result.error.startswith(f"no model at {memory_storage}/models/current: "
                                   f"{memory_storage}/models/current.json does not exist")
    assert store.predictor is None
    assert not store.changed()
    # Nothing to load is not a failed load.
    assert store.metrics.registry.get_sample_value("k8s_analysis_model_reloads_total", {"outcome": "failure"}) is None


def test_store_skips_version_without_manifest(layout, cache_root):
    store = ModelStore(layout.promoted_model, "kubernetes-analysis", ServerMetrics())
    asyncio.run(store.reload())
    remote = layout.storage / "models" / SECOND
    upload_folder(layout.models_dir / SECOND, remote)
    (remote / MANIFEST_FILE).unlink()
    write_object(layout.storage / "models" / "current.json", json.dumps({"version": SECOND}).encode())

    assert store.changed()
    result = asyncio.run(store.reload())

    assert not result.loaded
    assert f"has no {MANIFEST_FILE}, so its upload did not finish" in result.error
    assert result.error.endswith(f"still serving {FIRST}")
    assert store.version == FIRST
    assert cached_versions(cache_root) == [FIRST]

    # Finishing the upload lets the next check load it.
    (remote / MANIFEST_FILE).write_bytes((layout.models_dir / SECOND / MANIFEST_FILE).read_bytes())
    assert store.changed()
    assert asyncio.run(store.reload()).loaded
    assert store.version == SECOND


def test_store_keeps_serving_when_storage_unreachable(layout, monkeypatch, caplog):
    store = ModelStore(layout.promoted_model, "kubernetes-analysis", ServerMetrics())
    asyncio.run(store.reload())

    def refuse_connection(*args, **kwargs):
        raise ConnectionRefusedError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(layout.storage.fs, "cat_file", refuse_connection)
        with caplog.at_level(logging.ERROR, logger="k8s_analysis.serving.models"):
            assert not store.changed()
            assert not store.changed()
            result = asyncio.run(store.reload())

    assert not result.loaded
    assert result.error == (f"cannot read {layout.storage}/models/current.json: connection refused; "
                            f"still serving {FIRST}")
    assert store.version == FIRST
    assert [record.getMessage() for record in caplog.records] == [
        f"cannot read {layout.storage}/models/current.json: connection refused; still serving {FIRST}; "
        "trying again at the next check"]

    publish_model(layout, SECOND, promoted=True)
    assert store.changed()
    assert asyncio.run(store.reload()).loaded
    assert store.version == SECOND


def test_redeploy_job_moves_pointer(layout):
    result = redeploy_job.execute_in_process(
        run_config={"ops": {"promote_model": {"config": {"version": SECOND}}}},
        resources={"data_dir": DataDirResource(root=str(layout.root))})

    assert result.success
    pointer = json.loads((layout.storage / "models" / "current.json").read_text())
    assert pointer["version"] == SECOND
    assert (layout.storage / "models" / SECOND / MANIFEST_FILE).exists()
